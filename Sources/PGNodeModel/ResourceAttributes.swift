/// Whom a finding is about, with OpenTelemetry semantic-convention keys.
/// Node-level findings carry only `k8s.node.name` (and `k8s.cluster.name` when it was given).
public struct ResourceAttributes: Sendable, Equatable, Hashable {
    /// `k8s.node.name`.
    public var nodeName: String
    /// `k8s.cluster.name` (`--cluster-name`): absent unless given, pgnode cannot learn it from the node.
    public var clusterName: String?
    /// `container.id`: the full 64-hex id.
    public var containerID: String?
    /// `container.runtime`: containerd, cri-o, docker or podman.
    public var containerRuntime: String?
    /// `k8s.pod.name`.
    public var podName: String?
    /// `k8s.pod.uid`.
    public var podUID: String?
    /// `k8s.namespace.name`.
    public var namespace: String?
    /// `k8s.container.name`.
    public var containerName: String?

    /// Attributes for a node-level finding.
    public init(nodeName: String, clusterName: String? = nil) {
        self.nodeName = nodeName
        self.clusterName = clusterName
    }

    /// Attributes for a container-level finding.
    public init(
        nodeName: String, containerID: String?, containerRuntime: String?, podName: String?, podUID: String?,
        namespace: String?, containerName: String?, clusterName: String? = nil
    ) {
        self.nodeName = nodeName
        self.clusterName = clusterName
        self.containerID = containerID
        self.containerRuntime = containerRuntime
        self.podName = podName
        self.podUID = podUID
        self.namespace = namespace
        self.containerName = containerName
    }

    /// Whether this describes a container rather than the node.
    public var isContainer: Bool { containerID != nil }

    /// The attributes as an ordered JSON object; absent container fields are omitted for node
    /// findings and written as null for container findings whose metadata is unknown;
    /// `k8s.cluster.name` follows `k8s.node.name` when it was given and is omitted otherwise.
    public var json: JSONObject {
        var object: JSONObject = ["k8s.node.name": .string(nodeName)]
        if let clusterName { object["k8s.cluster.name"] = .string(clusterName) }
        guard let containerID else { return object }
        object["container.id"] = .string(containerID)
        object["container.runtime"] = .from(containerRuntime)
        object["k8s.pod.name"] = .from(podName)
        object["k8s.pod.uid"] = .from(podUID)
        object["k8s.namespace.name"] = .from(namespace)
        object["k8s.container.name"] = .from(containerName)
        return object
    }
}

extension ResourceAttributes {
    /// The longest `--cluster-name` accepted, in bytes.
    public static let maximumClusterNameLength = 253

    /// Why `name` cannot be a `k8s.cluster.name`, or nil when it can: at least one and at most
    /// `maximumClusterNameLength` bytes, no control characters (it goes into every finding, a
    /// Loki label and log lines), no leading or trailing space.
    public static func clusterNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { return "a cluster name cannot be empty" }
        guard bytes.count <= maximumClusterNameLength else {
            return "a cluster name is at most \(maximumClusterNameLength) bytes, not \(bytes.count)"
        }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { return "a cluster name has no control characters" }
        guard bytes.first != 0x20, bytes.last != 0x20 else {
            return "a cluster name has no leading or trailing spaces"
        }
        return nil
    }
}
