/// Why a container could not be resolved.
public enum ResolutionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The container reference is malformed (not hex, too short, unknown scheme): a usage error.
    case invalidReference(String)
    /// The `--pod` argument is not `NAMESPACE/NAME`.
    case invalidPod(String)
    /// No running container matches the reference.
    case notFound(String)
    /// The prefix matches more than one container; the candidates are the full ids.
    case ambiguous(prefix: String, candidates: [String])
    /// The reference names a pod sandbox (pause container), which holds no workload.
    case sandbox(String)
    /// No running container belongs to the pod.
    case podNotFound(namespace: String, name: String)
    /// The host's process table could not be read at all.
    case processTableUnreadable(String)

    /// Whether this is a usage error (bad argument) rather than a lookup failure.
    public var isUsageError: Bool {
        switch self {
        case .invalidReference, .invalidPod: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .invalidReference(let reason): reason
        case .invalidPod(let reason): reason
        case .notFound(let reference): "no running container matches '\(reference)'"
        case .ambiguous(let prefix, let candidates):
            "'\(prefix)' matches \(candidates.count) containers: \(candidates.joined(separator: ", "))"
        case .sandbox(let id): "'\(id)' is a pod sandbox (pause container), not a workload container"
        case .podNotFound(let namespace, let name): "no running container belongs to pod \(namespace)/\(name)"
        case .processTableUnreadable(let reason): "cannot read the process table: \(reason)"
        }
    }
}
