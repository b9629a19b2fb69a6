/// The CPUs a container may run on, from its cpuset cgroup: v1 `cpuset.effective_cpus` (what the
/// kernel applies: the configured `cpuset.cpus` within the parent's) or, on older kernels,
/// `cpuset.cpus`; v2 `cpuset.cpus.effective`. With the kubelet's static CPU manager a
/// Guaranteed pod with integer CPUs gets its own CPUs here; any other pod gets the shared pool.
public struct CPUSetCgroup: Sendable, Equatable {
    /// The file read, relative to the host root.
    public var file: String
    /// Its CPUs, ascending.
    public var cpus: [Int]

    /// A cpuset as read.
    public init(file: String, cpus: [Int]) {
        self.file = file
        self.cpus = cpus
    }

    /// Where a container's cpuset files are, from its cgroups as the resolution gives them (as
    /// `CPUCgroupLocation.locate` takes them): the v1 `cpuset` controller's directory when mounted
    /// (`version` 1), else the unified one (2); nil when neither is known.
    public static func locate(
        v1: [(controller: String, path: String, mountPoint: String?)], v2Path: String?, v2MountPoint: String?
    ) -> (directory: String, version: Int)? {
        if let entry = v1.first(where: { $0.controller == "cpuset" }), let mount = entry.mountPoint {
            return (CPUCgroupLocation.join(mount, entry.path), 1)
        }
        guard let v2Path, let v2MountPoint else { return nil }
        return (CPUCgroupLocation.join(v2MountPoint, v2Path), 2)
    }

    /// The cpuset of the container whose cpuset directory (v1, `version` 1) or unified directory
    /// (v2) is `directory` under `host`: the first of the files above that can be read. Throws
    /// the last read's error when none can be, `.notACPUList` when the one read holds something
    /// else.
    public static func read(host: HostRoot, directory: String, version: Int) throws(CPUSetError) -> CPUSetCgroup {
        let names = version == 1 ? ["cpuset.effective_cpus", "cpuset.cpus", "cpus"] : ["cpuset.cpus.effective"]
        var failure = HostReadError.notFound(path: host.resolve(directory + "/" + names[0]))
        for name in names {
            let file = directory + "/" + name
            let text: String
            do { text = try host.readText(file, limit: CPUList.textLimit) } catch {
                failure = error
                continue
            }
            guard let cpus = CPUList.parse(text) else { throw .notACPUList(path: host.resolve(file)) }
            return CPUSetCgroup(file: file, cpus: cpus)
        }
        throw .read(failure)
    }
}

/// Why a container's cpuset could not be read.
public enum CPUSetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No cpuset file could be read (the last error).
    case read(HostReadError)
    /// The file read holds no CPU list.
    case notACPUList(path: String)

    public var description: String {
        switch self {
        case .read(let error): "\(error)"
        case .notACPUList(let path): "\(path): not a CPU list"
        }
    }
}
