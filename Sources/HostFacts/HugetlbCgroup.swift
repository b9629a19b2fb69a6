import PGNodeModel

/// A container's hugetlb cgroup limits for one huge page size. The kernel charges huge pages to
/// two counters: the fault counter (v1 `hugetlb.<size>.limit_in_bytes`, v2 `hugetlb.<size>.max`)
/// when a page is first touched, and, since Linux 5.7, the reservation counter (`.rsvd.…`) when
/// a mapping reserves its pages at `mmap`. A fault over the fault limit is a SIGBUS to the
/// process that touches the page; a reservation over the reservation limit fails the `mmap` with
/// ENOMEM, which PostgreSQL's `huge_pages = try` handles by using normal pages.
public struct HugetlbCgroupLimits: Sendable, Equatable {
    /// 1 or 2.
    public var version: Int
    /// The page size the files are for, in bytes.
    public var pageSizeBytes: Int64
    /// The fault limit; nil when the file is missing or garbled.
    public var limit: CgroupFiles.Limit?
    /// Bytes of huge pages faulted in (`usage_in_bytes`, `current`).
    public var usageBytes: Int64?
    /// The reservation limit; nil when the kernel has no such file (before 5.7) or it is garbled.
    public var reservationLimit: CgroupFiles.Limit?
    /// Bytes reserved (`rsvd.usage_in_bytes`, `rsvd.current`).
    public var reservationUsageBytes: Int64?
    /// v1 `failcnt` (faults refused), v2 `events` `max` (the same).
    public var failCount: Int64?
    /// Files that could not be read (missing when the kernel lacks them).
    public var missing: [String]

    /// Limits as given.
    public init(
        version: Int, pageSizeBytes: Int64, limit: CgroupFiles.Limit?, usageBytes: Int64? = nil,
        reservationLimit: CgroupFiles.Limit?, reservationUsageBytes: Int64? = nil, failCount: Int64? = nil,
        missing: [String] = []
    ) {
        self.version = version
        self.pageSizeBytes = pageSizeBytes
        self.limit = limit
        self.usageBytes = usageBytes
        self.reservationLimit = reservationLimit
        self.reservationUsageBytes = reservationUsageBytes
        self.failCount = failCount
        self.missing = missing
    }

    /// The size as the kernel names it in the files (`mem_fmt` in mm/hugetlb_cgroup.c):
    /// `2MB`, `1GB`, `64KB`.
    public static func sizeName(pageSizeBytes: Int64) -> String {
        let gib: Int64 = 1 << 30
        let mib: Int64 = 1 << 20
        if pageSizeBytes >= gib { return "\(pageSizeBytes / gib)GB" }
        if pageSizeBytes >= mib { return "\(pageSizeBytes / mib)MB" }
        return "\(max(0, pageSizeBytes) / 1024)KB"
    }

    /// Reads the v1 hugetlb cgroup at `path` under the controller's mount point for
    /// `pageSizeBytes`. The directory must exist; each file at most 4 KiB.
    public static func readV1(host: HostRoot, mountPoint: String, path: String, pageSizeBytes: Int64)
        throws(HostReadError) -> HugetlbCgroupLimits
    {
        try read(
            host: host, version: 1, directory: MemoryCgroupStats.join(mountPoint, path), pageSizeBytes: pageSizeBytes)
    }

    /// Reads the v2 cgroup at `path` under the unified mount point for `pageSizeBytes`.
    public static func readV2(host: HostRoot, mountPoint: String, path: String, pageSizeBytes: Int64)
        throws(HostReadError) -> HugetlbCgroupLimits
    {
        try read(
            host: host, version: 2, directory: MemoryCgroupStats.join(mountPoint, path), pageSizeBytes: pageSizeBytes)
    }

    static func read(host: HostRoot, version: Int, directory: String, pageSizeBytes: Int64) throws(HostReadError)
        -> HugetlbCgroupLimits
    {
        guard host.isDirectory(directory) else { throw .notFound(path: directory) }
        let prefix = "hugetlb.\(sizeName(pageSizeBytes: pageSizeBytes))"
        var missing: [String] = []
        func read(_ name: String) -> String? {
            do { return try host.readText("\(directory)/\(prefix).\(name)", limit: 4096) } catch {
                missing.append("\(prefix).\(name)")
                return nil
            }
        }
        var limits = HugetlbCgroupLimits(
            version: version, pageSizeBytes: pageSizeBytes, limit: nil, reservationLimit: nil)
        if version == 1 {
            limits.limit = read("limit_in_bytes").flatMap(CgroupFiles.limit)
            limits.usageBytes = read("usage_in_bytes").flatMap(CgroupFiles.integer)
            limits.failCount = read("failcnt").flatMap(CgroupFiles.integer)
            limits.reservationLimit = read("rsvd.limit_in_bytes").flatMap(CgroupFiles.limit)
            limits.reservationUsageBytes = read("rsvd.usage_in_bytes").flatMap(CgroupFiles.integer)
        } else {
            limits.limit = read("max").flatMap(CgroupFiles.limit)
            limits.usageBytes = read("current").flatMap(CgroupFiles.integer)
            limits.failCount = read("events").map(CgroupFiles.keyValues)?["max"]
            limits.reservationLimit = read("rsvd.max").flatMap(CgroupFiles.limit)
            limits.reservationUsageBytes = read("rsvd.current").flatMap(CgroupFiles.integer)
        }
        limits.missing = missing
        return limits
    }
}
