import HostFacts
import PGNodeModel

/// Everything pgnode knows about one container: runtime, pod, cgroups, processes and the
/// PostgreSQL servers inside. `pgnode resolve` prints `json`; docs/resolution.md documents every key.
public struct Resolution: Sendable, Equatable {
    /// The container itself.
    public struct Container: Sendable, Equatable {
        /// The full 64-hex id.
        public var id: String
        /// The runtime, from its state files (else from the cgroup naming); nil when unknown.
        public var runtime: ContainerRuntime?
        /// The pod's QoS class from the cgroup path.
        public var qosClass: QoSClass?
        /// The pod UID from the cgroup path.
        public var podUID: String?
        /// The container's init process on the host (the runtime's pid file, else the process that
        /// is pid 1 in the container, else the lowest pid).
        public var pid: Int32?
        /// `cgroupfs` or `systemd`.
        public var cgroupDriver: String
        /// The node container's cgroup before `kubepods` on nested nodes (kind, k3d).
        public var nodeCgroupPrefix: String?
        /// The runtime state file read, relative to the host root.
        public var stateFile: String?
    }

    /// A cgroup directory and its id.
    public struct CgroupDirectory: Sendable, Equatable {
        /// The path inside the hierarchy.
        public var path: String
        /// The directory's inode (on cgroup2, the cgroup id `bpf_get_current_cgroup_id()` returns).
        public var id: UInt64?
    }

    /// The container's cgroups.
    public struct Cgroups: Sendable, Equatable {
        /// `v1`, `hybrid` or `v2`.
        public var mode: String
        /// Whether the paths are absolute on the host, and how pgnode made sure.
        public var namespace: CgroupNamespaceStatus
        /// The container's cgroup in the unified hierarchy, when it has one.
        public var v2: CgroupDirectory?
        /// Where the unified hierarchy is mounted, relative to the host root.
        public var v2MountPoint: String?
        /// Cgroups (in the unified hierarchy) the processes are in, when below the container's (crun's `/container`).
        public var v2Leaves: [CgroupDirectory]
        /// v1 controller → path, for memory, blkio, cpu, cpuacct, pids, hugetlb and cpuset.
        public var v1: [(controller: String, path: String, mountPoint: String?)]
        /// The v1 memory cgroup's inode.
        public var memoryV1Inode: UInt64?

        public static func == (lhs: Cgroups, rhs: Cgroups) -> Bool {
            lhs.mode == rhs.mode && lhs.namespace == rhs.namespace && lhs.v2 == rhs.v2 && lhs.v2Leaves == rhs.v2Leaves
                && lhs.v1.map(\.controller) == rhs.v1.map(\.controller) && lhs.v1.map(\.path) == rhs.v1.map(\.path)
                && lhs.memoryV1Inode == rhs.memoryV1Inode
        }
    }

    /// The container.
    public var container: Container
    /// Pod metadata (nil fields when unknown).
    public var pod: PodMetadata
    /// Cgroups.
    public var cgroup: Cgroups
    /// Every process of the container.
    public var processes: [ProcessRecord]
    /// PostgreSQL servers.
    public var postgres: [PostgresServer]
    /// Things pgnode could not establish, in words.
    public var problems: [String]

    /// The OpenTelemetry resource attributes of findings about this container.
    public func resourceAttributes(nodeName: String, clusterName: String? = nil) -> ResourceAttributes {
        ResourceAttributes(
            nodeName: nodeName, containerID: container.id, containerRuntime: container.runtime?.rawValue,
            podName: pod.name, podUID: pod.uid, namespace: pod.namespace, containerName: pod.containerName,
            clusterName: clusterName)
    }

    /// The resolution as one JSON object.
    public var json: JSONValue {
        var object = JSONObject()
        object["container"] = [
            "id": .string(container.id), "runtime": .from(container.runtime?.rawValue),
            "qos_class": .from(container.qosClass?.rawValue), "pod_uid": .from(container.podUID),
            "pid": .from(container.pid), "cgroup_driver": .string(container.cgroupDriver),
            "node_cgroup_prefix": .from(container.nodeCgroupPrefix), "state_file": .from(container.stateFile),
        ]
        object["pod"] = [
            "name": .from(pod.name), "namespace": .from(pod.namespace), "uid": .from(pod.uid),
            "container_name": .from(pod.containerName), "source": .from(pod.source),
        ]
        var cgroups: JSONObject = ["mode": .string(cgroup.mode), "namespace": .object(cgroup.namespace.json)]
        cgroups["v2"] =
            cgroup.v2.map { v2 in
                .object([
                    "path": .string(v2.path), "id": .from(v2.id), "mount_point": .from(cgroup.v2MountPoint),
                    "leaves": .array(cgroup.v2Leaves.map { ["path": .string($0.path), "id": .from($0.id)] }),
                ])
            } ?? .null
        if cgroup.v1.isEmpty {
            cgroups["v1"] = .null
        } else {
            var v1 = JSONObject()
            for entry in cgroup.v1 { v1[entry.controller] = .string(entry.path) }
            cgroups["v1"] = .object(v1)
        }
        cgroups["memory_v1_inode"] = .from(cgroup.memoryV1Inode)
        object["cgroup"] = .object(cgroups)
        object["pids"] = .array(
            processes.map { p in
                [
                    "pid": .int(Int64(p.pid)), "ns_pid": .from(p.namespacePID), "ppid": .from(p.parentPID),
                    "command": .string(p.command), "mnt_ns": .from(p.mountNamespace), "pid_ns": .from(p.pidNamespace),
                ]
            })
        object["postgres"] = .array(postgres.map(\.json))
        object["problems"] = .array(problems.map { .string($0) })
        return .object(object)
    }
}

extension PostgresServer {
    /// The server as JSON.
    public var json: JSONValue {
        var object: JSONObject = [
            "postmaster_pid": .int(Int64(postmasterPID)), "postmaster_ns_pid": .from(postmasterNamespacePID),
            "data_directory": .from(dataDirectory), "data_directory_source": .from(dataDirectorySource),
            "pid_file_matches": pidFileMatches.map(JSONValue.bool) ?? .null, "version": .from(version),
            "config_file": .from(configFile), "config_files": .array(configFiles.map { .string($0) }),
        ]
        if let settings {
            var s = JSONObject()
            for (name, setting) in settings { s[name] = setting?.json ?? .null }
            object["settings"] = .object(s)
            object["settings_unavailable_reason"] = .null
        } else {
            object["settings"] = .null
            object["settings_unavailable_reason"] = .from(settingsUnavailableReason)
        }
        object["operator"] = [
            "name": .string(runBy.kind.rawValue), "cluster": .from(runBy.cluster),
            "detected_from": .from(runBy.detectedFrom),
        ]
        object["processes"] = .array(processes.map(\.json))
        object["problems"] = .array(problems.map { .string($0) })
        return .object(object)
    }
}

extension PostgresProcess {
    /// The process as JSON: `pid`, `ns_pid`, `role`, `title`, then whichever role details are known.
    public var json: JSONValue {
        var object: JSONObject = [
            "pid": .int(Int64(pid)), "ns_pid": .from(namespacePID), "role": .from(role?.kind.rawValue),
            "title": .string(title),
        ]
        if let role {
            if let v = role.clusterName { object["cluster_name"] = .string(v) }
            if let v = role.leaderPID { object["leader_pid"] = .int(Int64(v)) }
            if let v = role.user { object["user"] = .string(v) }
            if let v = role.database { object["database"] = .string(v) }
            if let v = role.client { object["client"] = .string(v) }
            if let v = role.state { object["state"] = .string(v) }
            if let v = role.detail { object["detail"] = .string(v) }
        }
        return .object(object)
    }
}
