import HostFacts
import PGNodeModel

/// Resolves container ids and pods on the node whose root is `host` into `Resolution`s.
///
/// Each call scans the process table once (`proc/*/cgroup`), in the host's cgroup namespace
/// when pgnode can join it, and reads each container's runtime state, cgroups and processes.
public struct ContainerResolver: Sendable {
    /// The node's root.
    public let host: HostRoot

    /// A resolver for the node at `host`.
    public init(host: HostRoot) { self.host = host }

    /// The container `reference` names. Throws `.notFound`, `.ambiguous` or `.sandbox`.
    public func resolve(_ reference: ContainerReference) throws(ResolutionError) -> Resolution {
        try CgroupNamespace.withHostNamespace(host: host) { status throws(ResolutionError) in
            let layout = cgroupLayout()
            let scan: ProcessScan
            if let quick = quickScan(reference, layout: layout, namespace: status) {
                scan = quick
            } else {
                scan = try ProcessScan.scan(host: host, prefix: reference.hex)
            }
            let matches = scan.containers.keys.filter(reference.matches).sorted()
            guard !matches.isEmpty else {
                if scan.monitors.keys.contains(where: reference.matches) {
                    throw .notFound("\(reference.original) (only a conmon monitor process, not a container)")
                }
                throw .notFound(reference.original)
            }
            guard matches.count == 1, let id = matches.first, let found = scan.containers[id] else {
                throw .ambiguous(prefix: reference.original, candidates: matches)
            }
            let resolution = build(found, layout: layout, namespace: status, hint: reference.runtime)
            if resolution.isSandbox { throw .sandbox(id) }
            var result = resolution.value
            if let wanted = reference.runtime, let runtime = result.container.runtime, wanted != runtime {
                result.problems.append(
                    "the id was given as \(wanted.rawValue)://, but the container belongs to \(runtime.rawValue)")
            }
            return result
        }
    }

    /// Every workload container of pod `pod` (sandboxes skipped), in container-name order.
    public func resolve(pod: PodReference) throws(ResolutionError) -> [Resolution] {
        let all = try resolveContainers()
        let matching = all.filter { $0.pod.namespace == pod.namespace && $0.pod.name == pod.name }
        guard !matching.isEmpty else { throw .podNotFound(namespace: pod.namespace, name: pod.name) }
        return matching
    }

    /// Every workload container on the node (sandboxes skipped), by id.
    public func resolveContainers() throws(ResolutionError) -> [Resolution] {
        try CgroupNamespace.withHostNamespace(host: host) { status throws(ResolutionError) in
            let scan = try ProcessScan.scan(host: host)
            let layout = cgroupLayout()
            return scan.containers.keys.sorted().compactMap { id in
                guard let found = scan.containers[id] else { return nil }
                let built = build(found, layout: layout, namespace: status, hint: nil)
                return built.isSandbox ? nil : built.value
            }
        }
    }

    /// Every container on the node that runs PostgreSQL: what `check` and the agent diagnose
    /// when no container is named.
    public static func resolveAll(host: HostRoot) throws(ResolutionError) -> [Resolution] {
        try ContainerResolver(host: host).resolveContainers().filter { !$0.postgres.isEmpty }
    }

    /// The containers matching `reference` found by walking a cgroup hierarchy (v1 memory, else
    /// the unified one) and confirmed through `proc/<pid>/cgroup` of their processes; nil when the
    /// walk finds nothing live or anything does not add up, so that the full process scan decides.
    func quickScan(_ reference: ContainerReference, layout: CgroupLayout, namespace: CgroupNamespaceStatus)
        -> ProcessScan?
    {
        guard namespace.absolute, let mount = layout.v1Controllers["memory"] ?? layout.v2MountPoint else { return nil }
        let found = CgroupTreeSearch.find(prefix: reference.hex, host: host, mountPoint: mount)
        var scan = ProcessScan(containers: [:], monitors: [:], processesScanned: 0, vanished: 0, unreadable: 0)
        for (id, paths) in found {
            let pids = Set(paths.flatMap { CgroupTreeSearch.processes(host: host, mountPoint: mount, path: $0) })
            for pid in pids.sorted() {
                scan.processesScanned += 1
                guard let text = try? host.readText("proc/\(pid)/cgroup", limit: 1 << 20) else {
                    scan.vanished += 1
                    continue
                }
                guard let entries = try? ProcCgroup.parse(text), let (entry, cgroup) = ProcessScan.bestMatch(entries)
                else { return nil }
                guard cgroup.id == id, cgroup.kind == .container else { return nil }
                if var existing = scan.containers[id] {
                    existing.pids.append(pid)
                    existing.leafPaths[entry.hierarchyID, default: []].insert(entry.path)
                    scan.containers[id] = existing
                } else {
                    scan.containers[id] = DiscoveredContainer(
                        cgroup: cgroup, entries: entries, pids: [pid], leafPaths: [entry.hierarchyID: [entry.path]])
                }
            }
        }
        return scan.containers.isEmpty ? nil : scan
    }

    /// The node's cgroup layout, from the host's mount table.
    func cgroupLayout() -> CgroupLayout {
        let text = (try? host.readText("proc/1/mountinfo")) ?? (try? host.readText("proc/self/mountinfo")) ?? ""
        return CgroupLayout.detect(host: host, mounts: MountInfo.parse(text).entries)
    }

    /// Builds the resolution of a discovered container.
    func build(
        _ found: DiscoveredContainer, layout: CgroupLayout, namespace: CgroupNamespaceStatus, hint: ContainerRuntime?
    ) -> (value: Resolution, isSandbox: Bool) {
        let id = found.cgroup.id
        var problems: [String] = []
        let state = RuntimeState.read(host: host, id: id, hint: found.cgroup.runtime ?? hint)
        if state == nil {
            problems.append(
                "no runtime state found for this id (containerd, CRI-O, Docker, Podman); pod metadata is unknown")
        }
        let cgroups = describeCgroups(found, layout: layout, namespace: namespace, problems: &problems)

        // Every process: the scan's, plus whatever cgroup.procs of the container's cgroups lists now.
        var pids = Set(found.pids)
        if namespace.absolute {
            for pid in cgroupProcs(cgroups, layout: layout) { pids.insert(pid) }
        }
        let processes = pids.sorted().compactMap { ProcessRecord.read(host: host, pid: $0) }
        if processes.isEmpty { problems.append("every process of the container exited while it was being resolved") }

        let initPID: Int32? =
            if let statePID = state?.initPID, processes.contains(where: { $0.pid == statePID }) {
                statePID
            } else {
                processes.first(where: { $0.namespacePID == 1 })?.pid ?? processes.first?.pid
            }
        let isSandbox = state?.isSandbox ?? (!processes.isEmpty && processes.allSatisfy { $0.command == "pause" })

        var pod = state?.pod ?? PodMetadata()
        if pod.name == nil, let initPID, let identity = processes.first(where: { $0.pid == initPID })?.identity {
            var environ = (try? host.read("proc/\(initPID)/environ", limit: 1 << 20)) ?? []
            // Read by pid: of the container's process only if that process is still at that pid.
            if (try? identity.confirm(host: host)) == nil { environ = [] }
            if let hostname = Cmdline.environment(environ)["HOSTNAME"], !hostname.isEmpty {
                pod.name = hostname
                pod.source = (pod.source.map { $0 + ", " } ?? "") + "HOSTNAME in the container's environment"
            }
        }
        if pod.uid == nil, let uid = found.cgroup.podUID {
            pod.uid = uid
            pod.source = (pod.source.map { $0 + ", " } ?? "") + "cgroup path (uid)"
        }
        if let stateUID = state?.pod.uid, let pathUID = found.cgroup.podUID, stateUID != pathUID {
            problems.append("pod uid \(stateUID) in the runtime state differs from \(pathUID) in the cgroup path")
        }

        var postgres = isSandbox ? [] : PostgresDiscovery.servers(host: host, processes: processes)
        for index in postgres.indices {
            postgres[index].runBy = OperatorDetection.detect(
                environment: postgres[index].operatorEnvironment, labels: pod.labels)
            postgres[index].runBy.namespace = pod.namespace
        }
        let container = Resolution.Container(
            id: id, runtime: state?.runtime ?? found.cgroup.runtime, qosClass: found.cgroup.qosClass,
            podUID: found.cgroup.podUID ?? state?.pod.uid, pid: initPID, cgroupDriver: found.cgroup.driver,
            nodeCgroupPrefix: found.cgroup.nodePrefix, stateFile: state?.stateFile)
        let resolution = Resolution(
            container: container, pod: pod, cgroup: cgroups, processes: processes, postgres: postgres,
            problems: problems)
        return (resolution, isSandbox)
    }

    /// The v1 controllers pgnode reports.
    static let v1Controllers = ["memory", "blkio", "cpu", "cpuacct", "pids", "hugetlb", "cpuset"]

    func describeCgroups(
        _ found: DiscoveredContainer, layout: CgroupLayout, namespace: CgroupNamespaceStatus, problems: inout [String]
    ) -> Resolution.Cgroups {
        var result = Resolution.Cgroups(
            mode: layout.mode.rawValue, namespace: namespace, v2: nil, v2MountPoint: layout.v2MountPoint, v2Leaves: [],
            v1: [], memoryV1Inode: nil)
        func inode(_ mountPoint: String?, _ path: String) -> UInt64? {
            guard namespace.absolute, let mountPoint else { return nil }
            return try? host.status(mountPoint + path).inode
        }
        // The container's own cgroup in a hierarchy: its path parsed from the entry, so that
        // crun's `/container` and other sub-cgroups lead back to the container's level.
        func containerPath(_ entry: ProcCgroupEntry) -> String {
            if let parsed = CgroupPath.parse(entry.path), parsed.id == found.cgroup.id { return parsed.containerPath }
            return entry.path
        }
        if let unified = found.entries.first(where: \.isUnified), layout.mode != .v1 || layout.v2MountPoint != nil,
            unified.path != "/" || CgroupPath.parse(unified.path) != nil
        {
            let path = containerPath(unified)
            result.v2 = Resolution.CgroupDirectory(path: path, id: inode(layout.v2MountPoint, path))
            let leaves = (found.leafPaths[0] ?? []).filter { $0 != path }.sorted()
            result.v2Leaves = leaves.map { Resolution.CgroupDirectory(path: $0, id: inode(layout.v2MountPoint, $0)) }
            if result.v2?.id == nil, namespace.absolute, layout.v2MountPoint != nil {
                problems.append("cgroup v2 directory \(path) not found under \(layout.v2MountPoint ?? "")")
            }
        }
        for controller in Self.v1Controllers {
            guard let entry = found.entries.first(where: { $0.controllers.contains(controller) }) else { continue }
            result.v1.append((controller, containerPath(entry), layout.v1Controllers[controller]))
        }
        if let memory = result.v1.first(where: { $0.controller == "memory" }) {
            result.memoryV1Inode = inode(memory.mountPoint, memory.path)
        }
        if !namespace.absolute {
            problems.append(namespace.note ?? "cgroup paths are relative to pgnode's cgroup namespace")
        }
        return result
    }

    /// Pids listed in `cgroup.procs` of the container's cgroup and its descendants (v2, else the
    /// v1 pids or memory hierarchy).
    func cgroupProcs(_ cgroups: Resolution.Cgroups, layout: CgroupLayout) -> [Int32] {
        if let v2 = cgroups.v2, let mount = layout.v2MountPoint {
            return CgroupTreeSearch.processes(host: host, mountPoint: mount, path: v2.path)
        }
        if let entry = cgroups.v1.first(where: { $0.controller == "pids" || $0.controller == "memory" }),
            let mount = entry.mountPoint
        {
            return CgroupTreeSearch.processes(host: host, mountPoint: mount, path: entry.path)
        }
        return []
    }
}
