import PGNodeModel

/// A container's memory cgroup, read from cgroup v1 (`memory.*_in_bytes`) or v2 (`memory.max`,
/// `memory.current`, …). Fields a kernel does not provide are nil; never invented. Counters
/// above `Int64.max` are `Int64.max` (see `CgroupFiles`), and sums of them saturate there.
public struct MemoryCgroupStats: Sendable, Equatable {
    /// 1 or 2.
    public var version: Int
    /// The hard limit in bytes; nil when there is none.
    public var limitBytes: Int64?
    /// Current usage (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    public var usageBytes: Int64?
    /// v1 `memory.max_usage_in_bytes`; v2 `memory.peak` (6.1+).
    public var maxUsageBytes: Int64?
    /// v1 `memory.failcnt`.
    public var failCount: Int64?
    /// v2 `memory.high`; nil when `max` or absent.
    public var highBytes: Int64?
    /// v2 `memory.low`.
    public var lowBytes: Int64?
    /// v2 `memory.min`.
    public var minBytes: Int64?
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    public var anonBytes: Int64?
    /// Page cache (v1 `total_cache`, v2 `file`).
    public var pageCacheBytes: Int64?
    /// Shared memory: tmpfs, /dev/shm and System V/POSIX shared memory charged here (v1 `total_shmem`, v2 `shmem`).
    public var shmemBytes: Int64?
    /// Mapped file pages (v1 `total_mapped_file`, v2 `file_mapped`).
    public var mappedFileBytes: Int64?
    /// Inactive file pages (v1 `total_inactive_file`, v2 `inactive_file`).
    public var inactiveFileBytes: Int64?
    /// Dirty file pages (v1 `total_dirty`, v2 `file_dirty`).
    public var dirtyBytes: Int64?
    /// Major faults (v1 `total_pgmajfault`, v2 `pgmajfault`).
    public var majorFaults: Int64?
    /// Pages scanned / stolen by reclaim (v2 `pgscan`, `pgsteal`).
    public var pagesScanned: Int64?
    /// Pages reclaimed.
    public var pagesStolen: Int64?
    /// Refaults of previously evicted pages (v2 `workingset_refault_anon` + `_file`, or the older single counter).
    public var workingsetRefaults: Int64?
    /// OOM kills in this cgroup (v1 `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`).
    public var oomKills: Int64?
    /// v2 `memory.events`: times usage went over `memory.high` / hit `memory.max` / the OOM killer was invoked.
    public var highEvents: Int64?
    /// v2 `max` events.
    public var maxEvents: Int64?
    /// v2 `oom` events.
    public var oomEvents: Int64?
    /// v2 `oom_group_kill` (5.17+): times the OOM killer ended the whole cgroup at once
    /// (`memory.oom.group`, which the kubelet sets on cgroup v2 since Kubernetes 1.28).
    public var oomGroupKills: Int64?
    /// v1 `under_oom`.
    public var underOOM: Bool?
    /// v2 `memory.pressure`.
    public var pressure: CgroupFiles.Pressure?
    /// Files that could not be read (relative paths), for the reader.
    public var missing: [String]

    /// Empty stats of cgroup `version`; readers fill in what the kernel provides.
    public init(version: Int, missing: [String] = []) {
        self.version = version
        self.missing = missing
    }

    /// The working set as the kubelet counts it: usage minus inactive file pages (never below zero).
    public var workingSetBytes: Int64? {
        guard let usageBytes else { return nil }
        return max(0, usageBytes.subtractingSaturating(inactiveFileBytes ?? 0))
    }

    /// Reads the v1 memory cgroup at `path` (e.g. `/kubepods/burstable/pod…/<id>`) under the
    /// memory controller's mount point (e.g. `/sys/fs/cgroup/memory`).
    public static func readV1(host: HostRoot, mountPoint: String, path: String) throws(HostReadError)
        -> MemoryCgroupStats
    {
        let dir = join(mountPoint, path)
        guard host.isDirectory(dir) else { throw .notFound(path: dir) }
        var stats = MemoryCgroupStats(version: 1, missing: [])
        func read(_ name: String) -> String? {
            do { return try host.readText(dir + "/" + name) } catch {
                stats.missing.append(name)
                return nil
            }
        }
        if let text = read("memory.limit_in_bytes") { stats.limitBytes = CgroupFiles.limit(text)?.bytes }
        stats.usageBytes = read("memory.usage_in_bytes").flatMap(CgroupFiles.integer)
        stats.maxUsageBytes = read("memory.max_usage_in_bytes").flatMap(CgroupFiles.integer)
        stats.failCount = read("memory.failcnt").flatMap(CgroupFiles.integer)
        if let text = read("memory.stat") {
            let s = CgroupFiles.keyValues(text)
            stats.anonBytes = s["total_rss"] ?? s["rss"]
            stats.pageCacheBytes = s["total_cache"] ?? s["cache"]
            stats.shmemBytes = s["total_shmem"] ?? s["shmem"]
            stats.mappedFileBytes = s["total_mapped_file"] ?? s["mapped_file"]
            stats.inactiveFileBytes = s["total_inactive_file"] ?? s["inactive_file"]
            stats.dirtyBytes = s["total_dirty"] ?? s["dirty"]
            stats.majorFaults = s["total_pgmajfault"] ?? s["pgmajfault"]
            let anon = s["total_workingset_refault_anon"] ?? s["workingset_refault_anon"]
            let file = s["total_workingset_refault_file"] ?? s["workingset_refault_file"]
            stats.workingsetRefaults =
                anon.map { $0.addingSaturating(file ?? 0) } ?? file ?? s["total_workingset_refault"]
                ?? s["workingset_refault"]
        }
        if let text = read("memory.oom_control") {
            let s = CgroupFiles.keyValues(text)
            stats.oomKills = s["oom_kill"]
            stats.underOOM = s["under_oom"].map { $0 != 0 }
        }
        return stats
    }

    /// Reads the v2 cgroup at `path` under the unified mount point (e.g. `/sys/fs/cgroup`).
    public static func readV2(host: HostRoot, mountPoint: String, path: String) throws(HostReadError)
        -> MemoryCgroupStats
    {
        let dir = join(mountPoint, path)
        guard host.isDirectory(dir) else { throw .notFound(path: dir) }
        var stats = MemoryCgroupStats(version: 2, missing: [])
        func read(_ name: String) -> String? {
            do { return try host.readText(dir + "/" + name) } catch {
                stats.missing.append(name)
                return nil
            }
        }
        if let text = read("memory.max") { stats.limitBytes = CgroupFiles.limit(text)?.bytes }
        if let text = read("memory.high") { stats.highBytes = CgroupFiles.limit(text)?.bytes }
        stats.lowBytes = read("memory.low").flatMap(CgroupFiles.integer)
        stats.minBytes = read("memory.min").flatMap(CgroupFiles.integer)
        stats.usageBytes = read("memory.current").flatMap(CgroupFiles.integer)
        if host.exists(dir + "/memory.peak") { stats.maxUsageBytes = read("memory.peak").flatMap(CgroupFiles.integer) }
        if let text = read("memory.stat") {
            let s = CgroupFiles.keyValues(text)
            stats.anonBytes = s["anon"]
            stats.pageCacheBytes = s["file"]
            stats.shmemBytes = s["shmem"]
            stats.mappedFileBytes = s["file_mapped"]
            stats.inactiveFileBytes = s["inactive_file"]
            stats.dirtyBytes = s["file_dirty"]
            stats.majorFaults = s["pgmajfault"]
            stats.pagesScanned = s["pgscan"]
            stats.pagesStolen = s["pgsteal"]
            if let anon = s["workingset_refault_anon"], let file = s["workingset_refault_file"] {
                stats.workingsetRefaults = anon.addingSaturating(file)
            } else {
                stats.workingsetRefaults = s["workingset_refault"]
            }
        }
        if let text = read("memory.events") {
            let s = CgroupFiles.keyValues(text)
            stats.highEvents = s["high"]
            stats.maxEvents = s["max"]
            stats.oomEvents = s["oom"]
            stats.oomKills = s["oom_kill"]
            stats.oomGroupKills = s["oom_group_kill"]
        }
        if let text = read("memory.pressure") { stats.pressure = CgroupFiles.pressure(text) }
        return stats
    }

    static func join(_ mountPoint: String, _ path: String) -> String {
        let trimmed = path.drop(while: { $0 == "/" })
        return trimmed.isEmpty ? mountPoint : mountPoint + "/" + trimmed
    }
}
