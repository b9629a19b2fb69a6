import PGNodeModel
import Shipping

/// Where the agent hands findings: it must return at once, whatever the destination is doing.
public protocol FindingSink: AnyObject, Sendable {
    /// Queues `findings` (never blocks).
    func submit(_ findings: [Finding])
    /// Stops: delivers what it can within `grace` seconds and keeps the rest (in the spool, for a
    /// shipper). Returns when done or when the grace period is over.
    func shutdown(grace: Double)
}

/// The shipper (`--endpoint`): findings to the spool, then to the receiver.
extension Shipper: FindingSink {}
