/// Why the facts a check needs could not be gathered (a cgroup that vanished, a mount that
/// cannot be read): the check then reports `unavailable` with this reason in `evidence.reason`.
public struct CheckUnavailable: Error, Sendable, Equatable {
    /// The reason, for `evidence.reason`.
    public var reason: String

    /// A reason.
    public init(_ reason: String) { self.reason = reason }
}
