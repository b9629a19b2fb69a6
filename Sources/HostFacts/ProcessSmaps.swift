import PGNodeModel

/// One mapping of a process as `/proc/<pid>/smaps` shows it: the header line (as in `maps`) and
/// the sizes the kernel counts for it.
public struct SmapsMapping: Sendable, Equatable {
    /// The mapping's first address.
    public var start: UInt64
    /// The address past its end.
    public var end: UInt64
    /// The permissions as printed (`rw-s`: the fourth letter is `s` for a shared mapping).
    public var permissions: String
    /// The inode of what it maps (0 for anonymous memory).
    public var inode: UInt64
    /// The path or pseudo-name (`/dev/zero`, `/anon_hugepage`, `/SYSV0010c047`, `[heap]`), empty
    /// for anonymous memory; without the kernel's " (deleted)" mark.
    public var path: String
    /// Whether the kernel marked the path as deleted (every SysV and anonymous shared mapping is).
    public var deleted: Bool
    /// `Size:` in bytes (nil when the line is missing or garbled).
    public var sizeBytes: Int64?
    /// `KernelPageSize:` in bytes: the page size the kernel backs the mapping with.
    public var kernelPageSizeBytes: Int64?
    /// `MMUPageSize:` in bytes.
    public var mmuPageSizeBytes: Int64?
    /// `Rss:` in bytes.
    public var rssBytes: Int64?
    /// `Shared_Hugetlb:` plus `Private_Hugetlb:` in bytes (hugetlbfs pages mapped).
    public var hugetlbBytes: Int64?
    /// `VmFlags:` (`ht` marks a hugetlb mapping).
    public var flags: [String]

    /// A mapping.
    public init(
        start: UInt64, end: UInt64, permissions: String, inode: UInt64, path: String, deleted: Bool = false,
        sizeBytes: Int64? = nil, kernelPageSizeBytes: Int64? = nil, mmuPageSizeBytes: Int64? = nil,
        rssBytes: Int64? = nil, hugetlbBytes: Int64? = nil, flags: [String] = []
    ) {
        self.start = start
        self.end = end
        self.permissions = permissions
        self.inode = inode
        self.path = path
        self.deleted = deleted
        self.sizeBytes = sizeBytes
        self.kernelPageSizeBytes = kernelPageSizeBytes
        self.mmuPageSizeBytes = mmuPageSizeBytes
        self.rssBytes = rssBytes
        self.hugetlbBytes = hugetlbBytes
        self.flags = flags
    }

    /// Whether the mapping is shared (`MAP_SHARED`).
    public var isShared: Bool { permissions.dropFirst(3).first == "s" }

    /// Whether this can be PostgreSQL's main shared memory segment: a shared mapping of
    /// anonymous shared memory (`/dev/zero`, `shared_memory_type = mmap`, the default), of
    /// anonymous huge pages (`/anon_hugepage`, `MAP_HUGETLB`) or of a System V segment
    /// (`/SYSV<key>`, `shared_memory_type = sysv`, and the small interlock segment that every
    /// server keeps). Dynamic shared memory in `/dev/shm` is not.
    public var isMainSegmentCandidate: Bool {
        isShared && deleted && (path == "/dev/zero" || path == "/anon_hugepage" || path.hasPrefix("/SYSV"))
    }
}

/// Parses `/proc/<pid>/smaps` (proc(5)): a `maps` header line per mapping, then `Key: value kB`
/// lines. Malformed lines are skipped; a field line before any header is ignored; sizes are
/// kept in bytes, saturating (`kB` × 1024 never traps).
public enum ProcessSmaps {
    /// The most bytes read from one smaps file. A postmaster's is some 200 KB (about 800
    /// mappings of 24 lines); a process with a million mappings is cut off with an error, not read.
    public static let readLimit = 16 << 20

    /// Every mapping of `text`, in order.
    public static func parse(_ text: String) -> [SmapsMapping] {
        var mappings: [SmapsMapping] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let header = header(line) {
                mappings.append(header)
                continue
            }
            guard !mappings.isEmpty, let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let value = line[line.index(after: colon)...]
            switch key {
            case "Size": mappings[mappings.count - 1].sizeBytes = kilobytes(value)
            case "KernelPageSize": mappings[mappings.count - 1].kernelPageSizeBytes = kilobytes(value)
            case "MMUPageSize": mappings[mappings.count - 1].mmuPageSizeBytes = kilobytes(value)
            case "Rss": mappings[mappings.count - 1].rssBytes = kilobytes(value)
            case "Shared_Hugetlb", "Private_Hugetlb":
                if let bytes = kilobytes(value) {
                    mappings[mappings.count - 1].hugetlbBytes =
                        (mappings[mappings.count - 1].hugetlbBytes ?? 0).addingSaturating(bytes)
                }
            case "VmFlags":
                mappings[mappings.count - 1].flags = value.split(separator: " ").map(String.init)
            default: continue
            }
        }
        return mappings
    }

    /// `  146016 kB` → bytes; nil unless it is an unsigned number followed by `kB`.
    static func kilobytes(_ value: Substring) -> Int64? {
        let fields = value.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2, fields[1] == "kB", let number = UInt64(fields[0]) else { return nil }
        return Int64(clamping: number).multipliedSaturating(by: 1024)
    }

    /// A header line (`start-end perms offset dev inode [path]`), or nil when `line` is not one.
    static func header(_ line: Substring) -> SmapsMapping? {
        var rest = line[...]
        var fields: [Substring] = []
        for _ in 0..<5 {
            rest = rest.drop(while: { $0 == " " })
            let end = rest.firstIndex(of: " ") ?? rest.endIndex
            guard end > rest.startIndex else { return nil }
            fields.append(rest[..<end])
            rest = rest[end...]
        }
        let range = fields[0].split(separator: "-", omittingEmptySubsequences: false)
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
            fields[1].count == 4, fields[3].contains(":"), let inode = UInt64(fields[4])
        else { return nil }
        var path = String(rest.drop(while: { $0 == " " }))
        let mark = " (deleted)"
        let deleted = path.hasSuffix(mark)
        if deleted { path.removeLast(mark.count) }
        return SmapsMapping(
            start: start, end: end, permissions: String(fields[1]), inode: inode,
            path: MountInfo.unescape(path[...]), deleted: deleted)
    }

    /// PostgreSQL's main shared memory segment among `mappings`: the largest candidate
    /// (`SmapsMapping.isMainSegmentCandidate`), so that the interlock SysV segment of a
    /// `shared_memory_type = mmap` server (one page) is passed over; nil when there is none.
    public static func mainSegment(_ mappings: [SmapsMapping]) -> SmapsMapping? {
        mappings.filter(\.isMainSegmentCandidate).max { ($0.sizeBytes ?? 0) < ($1.sizeBytes ?? 0) }
    }

    /// The mappings of process `pid` under `host` (at most `readLimit` bytes; a non-regular file
    /// is refused before it is read, and the open does not block).
    public static func read(host: HostRoot, pid: Int32) throws(HostReadError) -> [SmapsMapping] {
        parse(try host.readText("proc/\(pid)/smaps", limit: readLimit))
    }
}
