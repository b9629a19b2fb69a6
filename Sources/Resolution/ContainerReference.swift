/// A container runtime pgnode knows how to read state from.
public enum ContainerRuntime: String, Sendable, Equatable, CaseIterable {
    /// containerd (CRI plugin or `ctr`).
    case containerd
    /// CRI-O.
    case crio = "cri-o"
    /// Docker (dockershim or cri-dockerd, or plain Docker).
    case docker
    /// Podman.
    case podman
}

/// What the user asked for: a full container id or a unique prefix of one, optionally with the
/// runtime named by a `containerd://`, `cri-o://` or `docker://` scheme (the form `kubectl`
/// shows in `.status.containerStatuses[].containerID`).
public struct ContainerReference: Sendable, Equatable, CustomStringConvertible {
    /// Lower-case hex: the full 64-digit id, or a prefix of at least 12 digits.
    public var hex: String
    /// The runtime named by the scheme, if one was given.
    public var runtime: ContainerRuntime?
    /// The text as given, for messages.
    public var original: String

    /// The shortest prefix accepted: the 12 digits `docker ps` and `crictl ps` show.
    public static let minimumPrefixLength = 12
    /// The length of a full id.
    public static let fullLength = 64

    /// Whether this is a full id rather than a prefix.
    public var isFullID: Bool { hex.count == Self.fullLength }

    public var description: String { original }

    /// Parses `text`; a usage error (`.invalidReference`) explains what is wrong.
    public static func parse(_ text: String) throws(ResolutionError) -> ContainerReference {
        let trimmed = text.trimmingWhitespace()
        var rest = Substring(trimmed)
        var runtime: ContainerRuntime? = nil
        if let range = trimmed.firstRange(of: "://") {
            let scheme = trimmed[..<range.lowerBound].lowercased()
            switch scheme {
            case "containerd": runtime = .containerd
            case "cri-o", "crio": runtime = .crio
            case "docker": runtime = .docker
            case "podman": runtime = .podman
            default:
                throw .invalidReference(
                    "container id '\(text)': unknown scheme '\(scheme)://' (use containerd://, cri-o:// or docker://)")
            }
            rest = trimmed[range.upperBound...]
        }
        guard !rest.isEmpty else { throw .invalidReference("container id '\(text)' is empty") }
        guard rest.utf8.count <= fullLength else {
            throw .invalidReference("container id '\(text.prefix(80))' is longer than \(fullLength) hex digits")
        }
        guard rest.utf8.allSatisfy(Self.isHexDigit) else {
            throw .invalidReference("container id '\(text)' is not hexadecimal")
        }
        guard rest.utf8.count >= minimumPrefixLength else {
            throw .invalidReference(
                "container id '\(text)' is too short: give at least \(minimumPrefixLength) hex digits")
        }
        return ContainerReference(hex: rest.lowercased(), runtime: runtime, original: text)
    }

    /// Whether `id` (a full id) is matched by this reference.
    public func matches(_ id: String) -> Bool { id.hasPrefix(hex) }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte)
    }

    /// Whether `text` is exactly a full 64-digit lower-case hex id.
    public static func isFullID<S: StringProtocol>(_ text: S) -> Bool {
        text.utf8.count == fullLength && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// A pod named as `NAMESPACE/NAME`.
public struct PodReference: Sendable, Equatable, CustomStringConvertible {
    /// The namespace.
    public var namespace: String
    /// The pod name.
    public var name: String

    public var description: String { "\(namespace)/\(name)" }

    /// The pod `name` in `namespace`.
    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// Parses `NAMESPACE/NAME` (both parts non-empty, DNS-label characters).
    public static func parse(_ text: String) throws(ResolutionError) -> PodReference {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .invalidPod("--pod '\(text)' must be NAMESPACE/NAME")
        }
        let allowed: (UInt8) -> Bool = {
            (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 || (65...90).contains($0)
        }
        guard parts[0].utf8.allSatisfy(allowed), parts[1].utf8.allSatisfy(allowed), text.utf8.count <= 512 else {
            throw .invalidPod("--pod '\(text)' has characters a Kubernetes name cannot contain")
        }
        return PodReference(namespace: String(parts[0]), name: String(parts[1]))
    }
}
