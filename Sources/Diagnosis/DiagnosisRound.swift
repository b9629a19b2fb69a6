import PGNodeModel
import Probes

/// One window's diagnosis by the engine: each container's findings, and what the probes counted
/// (the agent's metrics).
public struct DiagnosisRound: Sendable {
    /// Each container's findings, container by container in the order they were followed.
    public var findings: [Finding] = []
    /// Events each probe counted in the window.
    public var probeEvents: [ProbeEvents] = []
    /// Ring-buffer events dropped, since the probes were attached, because nobody read them in
    /// time (the maps' counts stay exact).
    public var droppedEvents: UInt64 = 0
    /// Whether the round was abandoned because the calling task was cancelled (the agent is
    /// stopping); `findings` are then those of the containers done by then.
    public var abandoned = false

    /// An empty round.
    public init() {}
}

/// How many events one probe counted in a window.
public struct ProbeEvents: Sendable, Equatable {
    /// The probe (`shm`, `reclaim`, `blkio`).
    public var probe: String
    /// Its events: calls of the shm functions, reclaim passes, block requests.
    public var count: UInt64

    /// A count.
    public init(probe: String, count: UInt64) {
        self.probe = probe
        self.count = count
    }

    /// What each probe counted in `results` (`Probe.events`: shm calls, reclaim passes, block
    /// requests), for each of `probes` (those loaded).
    public static func counts(_ results: ProbeResults, probes: [any Probe.Type] = ProbeCatalog.probes) -> [ProbeEvents]
    {
        probes.map { count($0, results) }
    }

    private static func count<P: Probe>(_ probe: P.Type, _ results: ProbeResults) -> ProbeEvents {
        ProbeEvents(probe: P.name, count: P.events(in: results[P.self]))
    }
}
