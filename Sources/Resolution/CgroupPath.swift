/// A pod's Kubernetes quality-of-service class, as the kubelet encodes it in cgroup paths.
public enum QoSClass: String, Sendable, Equatable {
    /// Requests equal limits for every resource: the pod sits directly under `kubepods`.
    case guaranteed
    /// Some requests or limits: under `kubepods/burstable`.
    case burstable
    /// No requests or limits: under `kubepods/besteffort`.
    case besteffort
}

/// What a cgroup path says about the container whose processes live in it.
public struct ContainerCgroup: Sendable, Equatable {
    /// What the innermost container-like component of the path is.
    public enum Kind: String, Sendable, Equatable {
        /// A container's own cgroup.
        case container
        /// CRI-O's or Podman's monitor process (`crio-conmon-<id>`, `libpod-conmon-<id>`): not a container.
        case conmon
    }

    /// The full 64-hex container id.
    public var id: String
    /// The runtime the path's naming reveals (`cri-containerd-` → containerd, …); nil for a bare id
    /// (the kubelet's cgroupfs driver), which any runtime may have created.
    public var runtime: ContainerRuntime?
    /// Container or monitor.
    public var kind: Kind
    /// The path up to and including the container's component (where the runtime sets limits).
    public var containerPath: String
    /// Components below the container's cgroup where the processes actually are, e.g. `/container`
    /// (crun's extra level); empty when they are in the container's cgroup itself.
    public var subPath: String
    /// The pod UID with dashes (systemd slices spell it with underscores), when the path has one.
    public var podUID: String?
    /// The QoS class, when the path reaches the `kubepods` level (or the pod slice names it).
    public var qosClass: QoSClass?
    /// Components before `kubepods` (the node container's cgroup on kind or k3d nodes), if any.
    public var nodePrefix: String?
    /// `systemd` when the path uses systemd slice and scope units, else `cgroupfs`.
    public var driver: String
}

/// Pure parsing of cgroup paths into container ids, pods and QoS classes, for every layout a
/// Kubernetes node (or a plain Docker or Podman host) has.
public enum CgroupPath {
    /// Parses `path` (from `/proc/<pid>/cgroup` or a runtime's `cgroupsPath`), or nil when no
    /// component names a container.
    public static func parse(_ path: String) -> ContainerCgroup? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else { return nil }
        var index = components.count - 1
        while index >= 0 {
            let component = components[index]
            let parent = index > 0 ? components[index - 1] : nil
            if let match = classify(component, parent: parent) {
                let containerPath = "/" + components[...index].joined(separator: "/")
                let below = components[(index + 1)...]
                let subPath = below.isEmpty ? "" : "/" + below.joined(separator: "/")
                var result = ContainerCgroup(
                    id: match.id, runtime: match.runtime, kind: match.kind, containerPath: containerPath,
                    subPath: subPath, podUID: nil, qosClass: nil, nodePrefix: nil,
                    driver: component.hasSuffix(".scope") || component.contains(":") ? "systemd" : "cgroupfs")
                describePod(components[..<index], colonPrefix: match.colonPrefix, into: &result)
                return result
            }
            index -= 1
        }
        return nil
    }

    private struct Match {
        var id: String
        var runtime: ContainerRuntime?
        var kind: ContainerCgroup.Kind
        var colonPrefix: Substring?
    }

    /// Recognises one path component as a container (or monitor) cgroup.
    private static func classify(_ component: Substring, parent: Substring?) -> Match? {
        // systemd driver scopes, and CRI-O's cgroupfs names without `.scope`.
        let scoped: [(prefix: String, runtime: ContainerRuntime, kind: ContainerCgroup.Kind)] = [
            ("cri-containerd-", .containerd, .container),
            ("crio-conmon-", .crio, .conmon),
            ("crio-", .crio, .container),
            ("docker-", .docker, .container),
            ("libpod-conmon-", .podman, .conmon),
            ("libpod-", .podman, .container),
        ]
        for entry in scoped where component.hasPrefix(entry.prefix) {
            var rest = component.dropFirst(entry.prefix.count)
            if rest.hasSuffix(".scope") { rest = rest.dropLast(6) }
            if ContainerReference.isFullID(rest) {
                return Match(id: String(rest), runtime: entry.runtime, kind: entry.kind, colonPrefix: nil)
            }
        }
        // The systemd cgroupsPath form used as a literal directory name by a runtime that runs with
        // the cgroupfs driver: `kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`.
        let colon = component.split(separator: ":", omittingEmptySubsequences: false)
        if colon.count == 3, ContainerReference.isFullID(colon[2]) {
            let runtime: ContainerRuntime? =
                switch colon[1] {
                case "cri-containerd": .containerd
                case "crio": .crio
                case "docker": .docker
                case "libpod": .podman
                default: nil
                }
            if let runtime {
                return Match(id: String(colon[2]), runtime: runtime, kind: .container, colonPrefix: colon[0])
            }
        }
        if ContainerReference.isFullID(component) {
            return Match(
                id: String(component), runtime: parent == "docker" ? .docker : nil, kind: .container,
                colonPrefix: nil)
        }
        return nil
    }

    /// Fills the pod UID, QoS class and node prefix from the components above the container.
    private static func describePod(
        _ above: ArraySlice<Substring>, colonPrefix: Substring?, into result: inout ContainerCgroup
    ) {
        var slices = Array(above)
        if let colonPrefix { slices.append(colonPrefix) }
        for (offset, component) in slices.enumerated().reversed() {
            if let (uid, qos) = podSlice(component) {
                result.podUID = uid
                if let qos { result.qosClass = qos }
                if let kubepods = slices[..<offset].lastIndex(where: { $0 == "kubepods" || $0 == "kubepods.slice" }) {
                    let between = slices[(kubepods + 1)..<offset]
                    if result.qosClass == nil {
                        switch between.first {
                        case nil: result.qosClass = .guaranteed
                        case "burstable", "kubepods-burstable.slice": result.qosClass = .burstable
                        case "besteffort", "kubepods-besteffort.slice": result.qosClass = .besteffort
                        default: break
                        }
                    }
                    if kubepods > 0 {
                        result.nodePrefix = "/" + slices[..<kubepods].joined(separator: "/")
                    }
                }
                return
            }
        }
    }

    /// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd).
    private static func podSlice(_ component: Substring) -> (String, QoSClass?)? {
        if component.hasPrefix("pod") && !component.hasSuffix(".slice") {
            let uid = component.dropFirst(3)
            return isPodUID(uid) ? (String(uid), nil) : nil
        }
        guard component.hasPrefix("kubepods") && component.hasSuffix(".slice") else { return nil }
        let name = component.dropLast(6)
        let forms: [(String, QoSClass)] = [
            ("kubepods-burstable-pod", .burstable), ("kubepods-besteffort-pod", .besteffort),
            ("kubepods-pod", .guaranteed),
        ]
        for (prefix, qos) in forms where name.hasPrefix(prefix) {
            let uid = String(name.dropFirst(prefix.count).replacing("_", with: "-"))
            return isPodUID(uid[...]) ? (uid, qos) : nil
        }
        return nil
    }

    /// A Kubernetes pod UID (a UUID; static pods use a 32-hex hash): hex digits and dashes.
    static func isPodUID(_ text: Substring) -> Bool {
        text.utf8.count >= 8 && text.utf8.count <= 64
            && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || $0 == 45 }
    }
}
