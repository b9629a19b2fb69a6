import PGNodeModel

/// The memory a process's page tables take, `VmPTE` of `/proc/<pid>/status`: a process that
/// maps shared memory with 4 KiB pages needs a page-table entry (8 bytes) for every page it
/// touches, in every process that touches it.
public enum ProcessPageTables {
    /// `VmPTE:\t  164 kB` in `status` text → bytes; nil when the line is missing or garbled.
    public static func parse(status text: String) -> Int64? {
        for line in text.split(separator: "\n") where line.hasPrefix("VmPTE:") {
            let fields = line.dropFirst("VmPTE:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 2, fields[1] == "kB", let kilobytes = UInt64(fields[0]) else { return nil }
            return Int64(clamping: kilobytes).multipliedSaturating(by: 1024)
        }
        return nil
    }

    /// `VmPTE` of process `pid` under `host` (`status` read at most 64 KiB, without blocking).
    public static func read(host: HostRoot, pid: Int32) throws(HostReadError) -> Int64? {
        parse(status: try host.readText("proc/\(pid)/status", limit: 64 << 10))
    }
}
