import Checks
import HostFacts
import Resolution

/// Gathers `memory.limit` facts for one container from its memory cgroup (v1 or v2).
public enum MemoryFactsReader {
    /// The facts for `resolution`, read under `host`.
    public static func facts(resolution: Resolution, host: HostRoot) -> MemoryLimitFacts {
        facts(resolution: resolution, host: host, cgroup: read(resolution: resolution, host: host))
    }

    /// The facts for `resolution`, with its memory cgroup already read (`cgroup`).
    public static func facts(
        resolution: Resolution, host: HostRoot, cgroup: Result<MemoryCgroupStats, CheckUnavailable>
    ) -> MemoryLimitFacts {
        let server = resolution.postgres.first
        // A setting configured to a value PostgreSQL refuses has no number: it stays unknown
        // (nil) and is listed as invalid.
        let invalid = ["shared_buffers", "max_connections", "work_mem"].compactMap { name -> InvalidSetting? in
            guard let s = server?.setting(name), let error = s.error else { return nil }
            return InvalidSetting(name: name, text: s.value, source: s.source, reason: error)
        }
        return MemoryLimitFacts(
            cgroup: cgroup,
            sharedBuffersBytes: server?.setting("shared_buffers")?.bytes,
            maxConnections: server?.setting("max_connections")?.number.flatMap { Int64(exactly: $0) },
            workMemBytes: server?.setting("work_mem")?.bytes,
            qosClass: resolution.container.qosClass?.rawValue, invalidSettings: invalid,
            runBy: server?.runBy ?? .none)
    }

    /// The container's memory cgroup statistics, from v1 when the memory controller is there,
    /// else from the unified hierarchy.
    public static func read(resolution: Resolution, host: HostRoot) -> Result<MemoryCgroupStats, CheckUnavailable> {
        if let memory = resolution.cgroup.v1.first(where: { $0.controller == "memory" }), let mount = memory.mountPoint
        {
            do {
                return .success(try MemoryCgroupStats.readV1(host: host, mountPoint: mount, path: memory.path))
            } catch {
                return .failure(CheckUnavailable("cannot read the v1 memory cgroup: \(error)"))
            }
        }
        if let v2 = resolution.cgroup.v2, let mount = resolution.cgroup.v2MountPoint,
            host.exists(CgroupPaths.join(mount, v2.path) + "/memory.current")
        {
            do {
                return .success(try MemoryCgroupStats.readV2(host: host, mountPoint: mount, path: v2.path))
            } catch {
                return .failure(CheckUnavailable("cannot read the memory cgroup: \(error)"))
            }
        }
        return .failure(CheckUnavailable("the container has no memory cgroup that pgnode can read"))
    }
}
