import Checks
import HostFacts
import Resolution

/// Gathers `memory.hugepages` facts for a container's server: its huge page settings, the
/// main shared memory segment from the postmaster's smaps, the node's pools, the container's
/// hugetlb cgroup for the page size in use, and its processes' page tables.
public enum HugePagesFactsReader {
    /// At most this many of the server's processes have their `VmPTE` read (one small file each).
    static let pageTableProcessLimit = 4096

    /// The facts for `server` of `resolution`, read under `host`.
    public static func facts(server: PostgresServer, resolution: Resolution, host: HostRoot) -> HugePagesFacts {
        let hugePageSize: Result<SettingValue<Int64>?, InvalidSetting>
        if server.setting("huge_page_size") == nil, let major = server.majorVersion, major < 14 {
            hugePageSize = .success(nil)
        } else {
            hugePageSize = SettingFacts.bytes(server, "huge_page_size", 0).map { Optional($0) }
        }
        let pool = HugePagePool.read(host: host)
        let requested: Int64 =
            if case .success(let s?) = hugePageSize, s.value > 0 { s.value } else {
                pool.defaultPageSizeBytes ?? 2 << 20
            }
        var pageTables: Int64? = nil
        var counted = 0
        for process in server.processes.prefix(pageTableProcessLimit) {
            guard let bytes = try? ProcessPageTables.read(host: host, pid: process.pid) ?? nil else { continue }
            pageTables = (pageTables ?? 0).addingSaturating(bytes)
            counted += 1
        }
        return HugePagesFacts(
            hugePages: SettingFacts.read(server, "huge_pages", "try") { $0.value },
            hugePageSize: hugePageSize,
            sharedBuffers: SettingFacts.bytes(server, "shared_buffers", 128 << 20),
            segment: segment(server: server, host: host), pool: pool,
            cgroup: hugetlb(resolution: resolution, host: host, pageSizeBytes: requested), pageTableBytes: pageTables,
            pageTableProcesses: counted, runBy: server.runBy)
    }

    /// The postmaster's main shared memory segment, confirmed to be of the process discovered.
    public static func segment(server: PostgresServer, host: HostRoot) -> Result<SmapsMapping, CheckUnavailable> {
        let pid = server.postmasterPID
        let mappings: [SmapsMapping]
        do {
            mappings = try ProcessSmaps.read(host: host, pid: pid)
            try server.postmasterIdentity?.confirm(host: host)
        } catch {
            return .failure(CheckUnavailable("cannot read /proc/\(pid)/smaps: \(error)"))
        }
        guard let main = ProcessSmaps.mainSegment(mappings) else {
            return .failure(
                CheckUnavailable(
                    "/proc/\(pid)/smaps has no shared mapping of /dev/zero, /anon_hugepage or a SysV segment"))
        }
        return .success(main)
    }

    /// The container's hugetlb limits for `pageSizeBytes`: v1 when the hugetlb controller is
    /// there, else v2 when the unified cgroup has the files; `.success(nil)` when neither does.
    public static func hugetlb(resolution: Resolution, host: HostRoot, pageSizeBytes: Int64) -> Result<
        HugetlbCgroupLimits?, CheckUnavailable
    > {
        if let v1 = resolution.cgroup.v1.first(where: { $0.controller == "hugetlb" }), let mount = v1.mountPoint {
            do {
                return .success(
                    try HugetlbCgroupLimits.readV1(
                        host: host, mountPoint: mount, path: v1.path, pageSizeBytes: pageSizeBytes))
            } catch {
                return .failure(CheckUnavailable("cannot read the v1 hugetlb cgroup: \(error)"))
            }
        }
        let name = "hugetlb.\(HugetlbCgroupLimits.sizeName(pageSizeBytes: pageSizeBytes)).max"
        if let v2 = resolution.cgroup.v2, let mount = resolution.cgroup.v2MountPoint,
            host.exists(CgroupPaths.join(mount, v2.path) + "/" + name)
        {
            do {
                return .success(
                    try HugetlbCgroupLimits.readV2(
                        host: host, mountPoint: mount, path: v2.path, pageSizeBytes: pageSizeBytes))
            } catch {
                return .failure(CheckUnavailable("cannot read the hugetlb cgroup: \(error)"))
            }
        }
        return .success(nil)
    }
}
