/// One file-backed mapping of a process, as a line of `/proc/<pid>/maps` shows it.
public struct MappedFile: Sendable, Equatable {
    /// The mapping's first address.
    public var start: UInt64
    /// The device of the file's inode, as the kernel shows it (`fd:01` → major 0xfd, minor 1).
    public var deviceMajor: UInt32
    /// The device's minor number.
    public var deviceMinor: UInt32
    /// The file's inode number.
    public var inode: UInt64
    /// The path, as the process sees it (relative to its own root); without the kernel's
    /// " (deleted)" mark.
    public var path: String
    /// Whether the kernel marked the file as deleted since it was mapped.
    public var deleted: Bool
    /// Whether the mapping is executable (`r-xp`).
    public var executable: Bool

    public init(
        deviceMajor: UInt32, deviceMinor: UInt32, inode: UInt64, path: String, deleted: Bool = false,
        executable: Bool = false, start: UInt64 = 0
    ) {
        self.start = start
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.inode = inode
        self.path = path
        self.deleted = deleted
        self.executable = executable
    }

    /// The last component of `path`.
    public var baseName: String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

/// Parses `/proc/<pid>/maps` (proc(5)). Anonymous mappings, pseudo-files (`[heap]`, `[vdso]`) and
/// malformed lines are skipped.
public enum ProcessMaps {
    /// Every file-backed mapping of `text`, in order (a file mapped in several pieces appears
    /// once per piece).
    public static func parse(_ text: String) -> [MappedFile] {
        text.split(separator: "\n", omittingEmptySubsequences: true).compactMap(parseLine)
    }

    /// One line, or nil when it maps no file.
    public static func parseLine(_ line: Substring) -> MappedFile? {
        // address perms offset dev inode [padding] path — the path may hold spaces.
        var rest = line[...]
        var fields: [Substring] = []
        for _ in 0..<5 {
            rest = rest.drop(while: { $0 == " " })
            guard let end = rest.firstIndex(of: " ") else { return nil }
            fields.append(rest[..<end])
            rest = rest[end...]
        }
        var path = String(rest.drop(while: { $0 == " " }))
        guard path.hasPrefix("/"), let inode = UInt64(fields[4]), inode != 0 else { return nil }
        let device = fields[3].split(separator: ":")
        guard device.count == 2, let major = UInt32(device[0], radix: 16), let minor = UInt32(device[1], radix: 16),
            let start = fields[0].split(separator: "-").first.flatMap({ UInt64($0, radix: 16) })
        else { return nil }
        let mark = " (deleted)"
        let deleted = path.hasSuffix(mark)
        if deleted { path.removeLast(mark.count) }
        return MappedFile(
            deviceMajor: major, deviceMinor: minor, inode: inode, path: MountInfo.unescape(path[...]),
            deleted: deleted, executable: fields[1].dropFirst(2).first == "x", start: start)
    }

    /// The file-backed mappings of process `pid` under `host`.
    public static func read(host: HostRoot, pid: Int32) throws(HostReadError) -> [MappedFile] {
        parse(try host.readText("proc/\(pid)/maps", limit: 16 << 20))
    }
}
