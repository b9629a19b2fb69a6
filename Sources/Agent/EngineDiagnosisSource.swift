import Diagnosis
import PGNodeModel
import Shipping

/// The agent's view of the node, over the diagnosis engine (`DiagnosisEngine`), which owns the
/// round: every PostgreSQL container, the kernel checks and the probes, loaded and attached once
/// at the first discovery and attached until the agent stops. This adapter only maps the loop's
/// calls onto the engine's and keeps the agent's probe metrics (`pgnode_bpf_program_loaded`,
/// `pgnode_probe_events_total`, `pgnode_probe_events_dropped_total`).
public actor EngineDiagnosisSource: DiagnosisSource {
    private let engine: DiagnosisEngine
    private let metrics: MetricsRegistry
    /// Ring-buffer events dropped as of the last window (the metric counts the differences).
    private var droppedEvents: UInt64 = 0

    /// A source over `engine`, counting in `metrics`.
    public init(engine: DiagnosisEngine, metrics: MetricsRegistry) {
        self.engine = engine
        self.metrics = metrics
    }

    public func discoverContainers() async throws -> Set<String> {
        let found = try await engine.discover()
        for status in await engine.probeStatuses {
            for program in status.programs {
                metrics.set(AgentMetric.bpfLoaded, [("program", program)], status.running ? 1 : 0)
            }
        }
        return Set(found.map(\.container.id))
    }

    public func nodeFindings(window: DiagnosisWindow) async -> [Finding] {
        await engine.nodeFindings(start: window.start, end: window.end)
    }

    public func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding] {
        let round = await engine.collect(from: window.start, to: window.end, containers: containers)
        if round.droppedEvents > droppedEvents {
            metrics.add(AgentMetric.probeEventsDropped, [], Double(round.droppedEvents - droppedEvents))
            droppedEvents = round.droppedEvents
        }
        for events in round.probeEvents {
            metrics.add(AgentMetric.probeEvents, [("probe", events.probe)], Double(events.count))
        }
        return round.findings
    }

    public func stop() async { await engine.close() }
}
