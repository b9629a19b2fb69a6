import Checks
import HostFacts
import Probes
import Resolution

/// Names cgroups that the kernel reported by id: finds the directory with that inode in its
/// hierarchy, then the container (and pod) it belongs to. Lookups walk each hierarchy at most
/// once per diagnosis.
public final class CgroupNames {
    let host: HostRoot
    let layout: CgroupLayout
    let resolver: ContainerResolver
    /// Hierarchy mount point → (inode → path), filled on first use.
    private var indexes: [String: [UInt64: String]] = [:]
    /// Container id → resolution (or nil when it could not be resolved).
    private var containers: [String: Resolution?] = [:]

    /// Most directories indexed per hierarchy: a node has a few thousand cgroups at most.
    static let maxDirectories = 50_000

    /// A namer for cgroups under `host`; `known` are resolutions already at hand.
    public init(host: HostRoot, layout: CgroupLayout, known: [Resolution]) {
        self.host = host
        self.layout = layout
        self.resolver = ContainerResolver(host: host)
        for resolution in known { containers[resolution.container.id] = resolution }
    }

    /// The mount point of a hierarchy kind.
    func mountPoint(_ kind: CgroupRef.Kind) -> String? {
        switch kind {
        case .v2: layout.v2MountPoint
        case .memoryV1: layout.v1Controllers["memory"]
        case .blkioV1: layout.v1Controllers["blkio"]
        }
    }

    /// The path (inside its hierarchy) of the cgroup with `id`, if it still exists.
    public func path(_ ref: CgroupRef) -> String? {
        guard let mount = mountPoint(ref.kind) else { return nil }
        if indexes[mount] == nil { indexes[mount] = index(mount) }
        return indexes[mount]?[ref.id]
    }

    private func index(_ mount: String) -> [UInt64: String] {
        var result: [UInt64: String] = [:]
        var pending = [""]
        var visited = 0
        while let relative = pending.popLast(), visited < Self.maxDirectories {
            visited += 1
            let dir = relative.isEmpty ? mount : mount + relative
            if let st = try? host.status(dir) { result[st.inode] = relative.isEmpty ? "/" : relative }
            guard let entries = try? host.list(dir) else { continue }
            for name in entries where !Self.isControlFile(name) && host.isDirectory(dir + "/" + name) {
                pending.append(relative + "/" + name)
            }
        }
        return result
    }

    /// Files every cgroup directory holds (`memory.stat`, `cgroup.procs`, `tasks`): never subdirectories.
    static func isControlFile(_ name: String) -> Bool {
        if ["tasks", "notify_on_release", "release_agent"].contains(name) { return true }
        guard let dot = name.firstIndex(of: ".") else { return false }
        return controllerPrefixes.contains(String(name[..<dot]))
    }

    static let controllerPrefixes: Set<String> = [
        "cgroup", "memory", "blkio", "io", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "hugetlb", "rdma",
        "misc", "net_cls", "net_prio", "perf_event",
    ]

    /// A neighbour entry for the cgroup `ref`: its path, and its container and pod when it is one.
    /// A v1 hierarchy's path is prefixed with its controller as in `/proc/<pid>/cgroup`
    /// (`blkio:/kubepods/…`), so that the same path in two hierarchies stays two entries.
    public func neighbour(_ ref: CgroupRef, requests: Int64) -> BlockNoiseReport.Neighbour {
        let entry = unprefixedNeighbour(ref, requests: requests)
        guard let prefix = Self.controllerPrefix(ref.kind), let path = self.path(ref), entry.cgroup == path else {
            return entry
        }
        var prefixed = entry
        prefixed.cgroup = prefix + path
        return prefixed
    }

    static func controllerPrefix(_ kind: CgroupRef.Kind) -> String? {
        switch kind {
        case .v2: nil
        case .memoryV1: "memory:"
        case .blkioV1: "blkio:"
        }
    }

    private func unprefixedNeighbour(_ ref: CgroupRef, requests: Int64) -> BlockNoiseReport.Neighbour {
        guard let path = path(ref) else {
            return BlockNoiseReport.Neighbour(
                cgroup: "cgroup id \(ref.id) (gone)", containerID: nil, podName: nil, namespace: nil, requests: requests
            )
        }
        guard let parsed = CgroupPath.parse(path) else {
            return BlockNoiseReport.Neighbour(
                cgroup: path, containerID: nil, podName: nil, namespace: nil, requests: requests)
        }
        let resolution = container(parsed.id)
        return BlockNoiseReport.Neighbour(
            cgroup: path, containerID: parsed.id, podName: resolution?.pod.name, namespace: resolution?.pod.namespace,
            requests: requests)
    }

    private func container(_ id: String) -> Resolution? {
        if let cached = containers[id] { return cached }
        let resolved = (try? ContainerReference.parse(id)).flatMap { try? resolver.resolve($0) }
        containers[id] = .some(resolved)
        return resolved
    }
}
