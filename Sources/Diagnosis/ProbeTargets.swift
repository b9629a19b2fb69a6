import HostFacts
import Probes
import Resolution

/// Which cgroups the kernel-side filters match for a container.
public enum ProbeTargets {
    /// The BPF target of `resolution`: its unified-hierarchy cgroup id, on v1 and hybrid nodes
    /// its v1 memory and blkio cgroup ids (the inodes of those directories), and the C library
    /// files its PostgreSQL processes map (for the shm probe's uprobes), and the server executables its
    /// postmasters run (for the query probe's USDT probes).
    public static func target(for resolution: Resolution, host: HostRoot) -> ProbeTarget {
        var target = ProbeTarget(
            v2: resolution.cgroup.v2?.id, memoryV1: resolution.cgroup.memoryV1Inode,
            libraries: CLibraryFiles.files(for: resolution, host: host),
            servers: ServerExecutableFiles.files(for: resolution, host: host))
        if let blkio = resolution.cgroup.v1.first(where: { $0.controller == "blkio" }), let mount = blkio.mountPoint {
            target.blkioV1 = try? host.status(CgroupPaths.join(mount, blkio.path)).inode
        }
        return target
    }
}

/// Joining cgroup paths to their mount points.
public enum CgroupPaths {
    /// `mountPoint` + `path`, without doubled slashes.
    public static func join(_ mountPoint: String, _ path: String) -> String {
        let trimmed = path.drop(while: { $0 == "/" })
        if trimmed.isEmpty { return mountPoint }
        return mountPoint.hasSuffix("/") ? mountPoint + trimmed : mountPoint + "/" + trimmed
    }
}
