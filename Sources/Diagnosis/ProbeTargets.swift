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
        let (libraries, servers) = mappedFiles(resolution, host: host)
        var target = ProbeTarget(
            v2: resolution.cgroup.v2?.id, memoryV1: resolution.cgroup.memoryV1Inode, libraries: libraries,
            servers: servers)
        if let blkio = resolution.cgroup.v1.first(where: { $0.controller == "blkio" }), let mount = blkio.mountPoint {
            target.blkioV1 = try? host.status(CgroupPaths.join(mount, blkio.path)).inode
        }
        return target
    }
}

extension ProbeTargets {
    /// The C libraries and the server executables of `resolution`'s postmasters (else of the
    /// container's init process, for the C libraries, when no server was found), each process's
    /// `maps` read once, one entry per file; a pid counts only while it still names the process
    /// discovered.
    static func mappedFiles(_ resolution: Resolution, host: HostRoot) -> ([LibraryFile], [LibraryFile]) {
        let postmasters = Set(resolution.postgres.map(\.postmasterPID))
        var pids = resolution.postgres.map(\.postmasterPID)
        if pids.isEmpty, let pid = resolution.container.pid { pids = [pid] }
        var libraries: [LibraryFile] = []
        var servers: [LibraryFile] = []
        for pid in pids {
            guard let maps = try? ProcessMaps.read(host: host, pid: pid) else { continue }
            let found = CLibraryFiles.files(in: maps, root: host.resolve("proc/\(pid)/root"))
            let server = postmasters.contains(pid) ? ServerExecutableFiles.file(pid: pid, maps: maps, host: host) : nil
            guard let identity = resolution.identity(ofProcess: pid), (try? identity.confirm(host: host)) != nil else {
                continue
            }
            libraries += found
            if let server { servers.append(server) }
        }
        return (unique(libraries), unique(servers))
    }

    /// `files` with one entry per file (device and inode), in order.
    static func unique(_ files: [LibraryFile]) -> [LibraryFile] {
        var seen = Set<LibraryFile.Identity>()
        return files.filter { seen.insert($0.identity).inserted }
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
