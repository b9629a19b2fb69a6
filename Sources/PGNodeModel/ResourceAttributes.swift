/// Whom a finding is about, with OpenTelemetry semantic-convention keys.
/// Node-level findings carry only `k8s.node.name`.
public struct ResourceAttributes: Sendable, Equatable, Hashable {
    /// `k8s.node.name`.
    public var nodeName: String
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
    public init(nodeName: String) { self.nodeName = nodeName }

    /// Attributes for a container-level finding.
    public init(
        nodeName: String, containerID: String?, containerRuntime: String?, podName: String?, podUID: String?,
        namespace: String?, containerName: String?
    ) {
        self.nodeName = nodeName
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
    /// findings and written as null for container findings whose metadata is unknown.
    public var json: JSONObject {
        var object: JSONObject = ["k8s.node.name": .string(nodeName)]
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
