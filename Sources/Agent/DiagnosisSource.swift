import PGNodeModel

/// The span of time one round of diagnosis covers. Container findings cover `start…end` (what the
/// probes saw in the interval); node-level findings are a snapshot, and get a window with
/// `start == end` at the moment they were evaluated, so every evaluation has its own finding ids.
public struct DiagnosisWindow: Sendable, Equatable {
    /// When the window began (finding ids derive from it).
    public var start: Timestamp
    /// When it ended (the findings' `time`).
    public var end: Timestamp

    /// A window.
    public init(start: Timestamp, end: Timestamp) {
        self.start = start
        self.end = end
    }
}

/// What the agent diagnoses: discovery and checks, injected so that the loop, its timing, its
/// change detection and its delivery do not depend on how containers are found or probed.
///
/// The agent calls, in order: `discoverContainers()` at start; `nodeFindings` at start; then every
/// interval `containerFindings` for the window that just ended (with the containers discovered at
/// its start), `nodeFindings` again (the agent emits only the ones that changed), and
/// `discoverContainers()` for the next window. Calls never overlap.
public protocol DiagnosisSource: Sendable {
    /// The IDs of the PostgreSQL containers on the node now. An implementation that keeps BPF
    /// programs attached updates their target map here. A thrown error keeps the previous set.
    func discoverContainers() async throws -> Set<String>

    /// Node-level findings (kernel, BTF, BPF support) as of `window.end`.
    func nodeFindings(window: DiagnosisWindow) async -> [Finding]

    /// Each container's findings for `window`.
    func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding]

    /// Called once when the agent stops (SIGTERM/SIGINT), after the last round and before the
    /// findings are flushed: stop observing, detach BPF programs. The default does nothing.
    func stop() async
}

extension DiagnosisSource {
    public func stop() async {}
}
