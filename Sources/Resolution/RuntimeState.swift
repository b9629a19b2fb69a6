import HostFacts
import PGNodeModel

/// Pod metadata of a container, from its runtime's own state files (no API server needed).
/// Anything the state does not say stays nil: pgnode never invents a name.
public struct PodMetadata: Sendable, Equatable {
    /// `k8s.pod.name`.
    public var name: String?
    /// `k8s.namespace.name`.
    public var namespace: String?
    /// `k8s.pod.uid`.
    public var uid: String?
    /// `k8s.container.name`.
    public var containerName: String?
    /// Where the metadata came from (a path under the host root, or `environ`).
    public var source: String?
    /// The pod's labels and annotations that tell its operator (`OperatorDetection.labelKeys`),
    /// as far as the runtime state carries them (CRI-O and Docker keep labels; containerd only the
    /// annotations it is configured to pass).
    public var labels: [String: String]

    /// No metadata.
    public init(
        name: String? = nil, namespace: String? = nil, uid: String? = nil, containerName: String? = nil,
        source: String? = nil, labels: [String: String] = [:]
    ) {
        self.labels = labels
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.containerName = containerName
        self.source = source
    }
}

/// What a runtime's state says about one container.
public struct RuntimeState: Sendable, Equatable {
    /// The runtime whose state was found.
    public var runtime: ContainerRuntime
    /// Pod metadata from annotations or labels.
    public var pod: PodMetadata
    /// Whether the runtime marks it as a pod sandbox (pause container).
    public var isSandbox: Bool
    /// The container's init pid on the host, from the runtime's pid file or state.
    public var initPID: Int32?
    /// The state file read (relative to the host root).
    public var stateFile: String

    /// Reads the state of container `id`, trying `hint` first. Nil when no runtime has state for it.
    public static func read(host: HostRoot, id: String, hint: ContainerRuntime?) -> RuntimeState? {
        var order: [ContainerRuntime] = [.containerd, .crio, .docker, .podman]
        if let hint, let index = order.firstIndex(of: hint) { order.insert(order.remove(at: index), at: 0) }
        for runtime in order {
            let state: RuntimeState? =
                switch runtime {
                case .containerd: containerd(host: host, id: id)
                case .crio: crio(host: host, id: id)
                case .docker: docker(host: host, id: id)
                case .podman: podman(host: host, id: id)
                }
            if let state { return state }
        }
        return nil
    }

    /// containerd: the runtime v2 shim's bundle `run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/`
    /// (`config.json` annotations written by the CRI plugin, `init.pid`), or the v1 shim's.
    static func containerd(host: HostRoot, id: String) -> RuntimeState? {
        for base in ["run/containerd/io.containerd.runtime.v2.task", "run/containerd/io.containerd.runtime.v1.linux"] {
            guard let namespaces = try? host.list(base) else { continue }
            let ordered = namespaces.sorted { ($0 == "k8s.io" ? 0 : 1, $0) < ($1 == "k8s.io" ? 0 : 1, $1) }
            for ns in ordered {
                let bundle = "\(base)/\(ns)/\(id)"
                guard host.exists("\(bundle)/config.json") else { continue }
                let annotations = ociAnnotations(host: host, path: "\(bundle)/config.json")
                let pid = (try? host.readLine("\(bundle)/init.pid")).flatMap { Int32($0) }
                return RuntimeState(
                    runtime: .containerd,
                    pod: PodMetadata(
                        name: annotations["io.kubernetes.cri.sandbox-name"],
                        namespace: annotations["io.kubernetes.cri.sandbox-namespace"],
                        uid: annotations["io.kubernetes.cri.sandbox-uid"],
                        containerName: annotations["io.kubernetes.cri.container-name"],
                        source: "/\(bundle)/config.json", labels: operatorLabels(annotations)),
                    isSandbox: annotations["io.kubernetes.cri.container-type"] == "sandbox", initPID: pid,
                    stateFile: "/\(bundle)/config.json")
            }
        }
        return nil
    }

    /// CRI-O: `run/containers/storage/overlay-containers/<id>/userdata/config.json` (the OCI spec
    /// CRI-O writes, with `io.kubernetes.*` annotations) and its `pidfile`.
    static func crio(host: HostRoot, id: String) -> RuntimeState? {
        for base in ["run/containers/storage/overlay-containers", "var/lib/containers/storage/overlay-containers"] {
            let userdata = "\(base)/\(id)/userdata"
            guard host.exists("\(userdata)/config.json") else { continue }
            let annotations = ociAnnotations(host: host, path: "\(userdata)/config.json")
            // Podman keeps its containers in the same storage; CRI-O's have CRI-O annotations.
            guard
                annotations["io.kubernetes.cri-o.ContainerType"] != nil || annotations["io.kubernetes.pod.name"] != nil
            else { continue }
            let pid = (try? host.readLine("\(userdata)/pidfile")).flatMap { Int32($0) }
            return RuntimeState(
                runtime: .crio,
                pod: PodMetadata(
                    name: annotations["io.kubernetes.pod.name"], namespace: annotations["io.kubernetes.pod.namespace"],
                    uid: annotations["io.kubernetes.pod.uid"],
                    containerName: annotations["io.kubernetes.container.name"],
                    source: "/\(userdata)/config.json", labels: operatorLabels(annotations)),
                isSandbox: annotations["io.kubernetes.cri-o.ContainerType"] == "sandbox", initPID: pid,
                stateFile: "/\(userdata)/config.json")
        }
        return nil
    }

    /// Docker: `var/lib/docker/containers/<id>/config.v2.json` (labels the kubelet's dockershim or
    /// cri-dockerd set, and `State.Pid`).
    static func docker(host: HostRoot, id: String) -> RuntimeState? {
        let path = "var/lib/docker/containers/\(id)/config.v2.json"
        guard let text = try? host.readText(path, limit: 8 << 20), let json = try? JSONParser.parse(text) else {
            return nil
        }
        let labels = stringMap(json["Config"]?["Labels"])
        let pid = json["State"]?["Pid"]?.intValue.flatMap { $0 > 0 ? Int32(clamping: $0) : nil }
        return RuntimeState(
            runtime: .docker,
            pod: PodMetadata(
                name: labels["io.kubernetes.pod.name"], namespace: labels["io.kubernetes.pod.namespace"],
                uid: labels["io.kubernetes.pod.uid"], containerName: labels["io.kubernetes.container.name"],
                source: "/\(path)", labels: operatorLabels(labels)),
            isSandbox: labels["io.kubernetes.docker.type"] == "podsandbox", initPID: pid, stateFile: "/\(path)")
    }

    /// Podman (rootful): `var/lib/containers/storage/overlay-containers/<id>/userdata/config.json`.
    /// Podman has no pods in the Kubernetes sense unless `podman kube play` made them.
    static func podman(host: HostRoot, id: String) -> RuntimeState? {
        for base in ["var/lib/containers/storage/overlay-containers", "run/containers/storage/overlay-containers"] {
            let userdata = "\(base)/\(id)/userdata"
            guard host.exists("\(userdata)/config.json") else { continue }
            let annotations = ociAnnotations(host: host, path: "\(userdata)/config.json")
            let pid = (try? host.readLine("\(userdata)/pidfile")).flatMap { Int32($0) }
            return RuntimeState(
                runtime: .podman,
                pod: PodMetadata(
                    name: annotations["io.kubernetes.pod.name"], namespace: annotations["io.kubernetes.pod.namespace"],
                    uid: annotations["io.kubernetes.pod.uid"],
                    containerName: annotations["io.kubernetes.container.name"],
                    source: "/\(userdata)/config.json"),
                isSandbox: annotations["io.podman.annotations.infra"] == "true", initPID: pid,
                stateFile: "/\(userdata)/config.json")
        }
        return nil
    }

    /// The labels and annotations among `annotations` that tell a pod's operator: those named
    /// directly, and those inside the JSON maps CRI-O keeps (`io.kubernetes.cri-o.Labels`,
    /// `io.kubernetes.cri-o.Annotations`) and dockershim's `annotation.` labels.
    static func operatorLabels(_ annotations: [String: String]) -> [String: String] {
        var all = annotations
        for key in ["io.kubernetes.cri-o.Labels", "io.kubernetes.cri-o.Annotations"] {
            guard let text = annotations[key], text.utf8.count <= 1 << 20, let json = try? JSONParser.parse(text) else {
                continue
            }
            for (k, v) in stringMap(json) where all[k] == nil { all[k] = v }
        }
        for (k, v) in annotations where k.hasPrefix("annotation.") {
            let name = String(k.dropFirst("annotation.".count))
            if all[name] == nil { all[name] = v }
        }
        return all.filter { OperatorDetection.labelKeys.contains($0.key) }
            .mapValues { String($0.prefix(OperatorDetection.valueLimit)) }
    }

    /// The `annotations` of an OCI runtime spec; empty when unreadable.
    static func ociAnnotations(host: HostRoot, path: String) -> [String: String] {
        guard let text = try? host.readText(path, limit: 8 << 20), let json = try? JSONParser.parse(text) else {
            return [:]
        }
        return stringMap(json["annotations"])
    }

    static func stringMap(_ value: JSONValue?) -> [String: String] {
        guard let object = value?.objectValue else { return [:] }
        var result: [String: String] = [:]
        for (key, value) in object.members {
            if let s = value.stringValue { result[key] = s }
        }
        return result
    }
}
