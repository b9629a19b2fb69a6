import Resolution

/// Why a discovery of the node's containers gave no new set of containers (the agent keeps the
/// previous one).
public enum DiscoveryError: Error, Sendable, CustomStringConvertible {
    /// The containers could not be resolved.
    case resolution(ResolutionError)
    /// Discovery did not finish: past its deadline, an earlier one still stuck, no thread for it,
    /// or the agent is stopping. The text says which.
    case unfinished(String)

    public var description: String {
        switch self {
        case .resolution(let error): "\(error)"
        case .unfinished(let why): why
        }
    }
}
