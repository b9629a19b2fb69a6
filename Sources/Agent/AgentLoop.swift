import Logging
import OSSupport
import PGNodeModel
import Shipping
import Sinks
import Synchronization

/// The agent's own metric names (the shipper's are in `Shipper.Metric`).
public enum AgentMetric {
    public static let findings = "pgnode_findings_total"
    public static let containers = "pgnode_containers"
    public static let runs = "pgnode_diagnosis_runs_total"
    public static let duration = "pgnode_diagnosis_duration_seconds"
    public static let discoveryErrors = "pgnode_discovery_errors_total"
    public static let probeEvents = "pgnode_probe_events_total"
    public static let probeEventsDropped = "pgnode_probe_events_dropped_total"
    public static let bpfLoaded = "pgnode_bpf_program_loaded"
    public static let buildInfo = "pgnode_build_info"
    public static let startTime = "pgnode_start_time_seconds"
    public static let diagnosisTimeouts = "pgnode_diagnosis_timeouts_total"
    public static let stuckThreads = "pgnode_diagnosis_stuck_threads"

    /// Declares the agent's metrics. `pgnode_probe_events_total{probe}` and
    /// `pgnode_bpf_program_loaded{program}` are filled by the probe layer.
    public static func declare(_ metrics: MetricsRegistry) {
        metrics.declare(findings, .counter, help: "Findings emitted, by check and severity.")
        metrics.declare(containers, .gauge, help: "PostgreSQL containers being diagnosed.", initial: 0)
        metrics.declare(runs, .counter, help: "Diagnosis windows completed.", initial: 0)
        metrics.declare(duration, .gauge, help: "How long the last diagnosis round took, in seconds.", initial: 0)
        metrics.declare(discoveryErrors, .counter, help: "Container discoveries that failed.", initial: 0)
        metrics.declare(probeEvents, .counter, help: "Events the BPF probes delivered, by probe.")
        metrics.declare(
            probeEventsDropped, .counter,
            help: "Ring-buffer failure events dropped before a window read them (the maps' counts stay exact).",
            initial: 0)
        metrics.declare(bpfLoaded, .gauge, help: "1 when a BPF program is loaded and attached, 0 when not, by program.")
        metrics.declare(buildInfo, .gauge, help: "Always 1; the version is a label.")
        metrics.set(buildInfo, [("version", PGNodeVersion.current)], 1)
        metrics.declare(startTime, .gauge, help: "When the agent started, in seconds since the epoch.")
        metrics.set(startTime, [], Double(Timestamp.now().nanoseconds) / 1e9)
    }
}

/// What /healthz and /readyz report.
public final class AgentHealth: Sendable {
    private struct State {
        var heartbeat = MonotonicClock.now()
        var ready = false
        var stopping = false
    }

    private let state = Mutex(State())
    /// The longest pause between heartbeats that still counts as healthy, in seconds.
    public let staleAfter: Double

    /// Health for a loop that beats every `interval` seconds.
    public init(interval: Double) { staleAfter = 2 * interval + 30 }

    /// The loop is alive.
    public func beat() { state.withLock { $0.heartbeat = MonotonicClock.now() } }
    /// The first diagnosis is done: the agent is ready.
    public func markReady() { state.withLock { $0.ready = true } }
    /// Shutdown began: no longer ready.
    public func markStopping() { state.withLock { $0.stopping = true } }

    /// Whether the loop has beaten recently.
    public var isHealthy: Bool { state.withLock { MonotonicClock.now() - $0.heartbeat <= staleAfter } }
    /// Whether the agent is ready (first diagnosis done, not stopping).
    public var isReady: Bool { state.withLock { $0.ready && !$0.stopping } }
}

/// The agent loop: diagnosis every interval, findings handed to a sink that never blocks it.
public final class AgentLoop: Sendable {
    private let source: any DiagnosisSource
    private let sink: any FindingSink
    private let metrics: MetricsRegistry
    private let logger: Logger
    /// Seconds between rounds.
    public let interval: Double
    /// Health for /healthz and /readyz.
    public let health: AgentHealth

    /// A loop; `run()` starts it.
    public init(
        source: any DiagnosisSource, sink: any FindingSink, metrics: MetricsRegistry, logger: Logger,
        interval: Double
    ) {
        self.source = source
        self.sink = sink
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
        self.health = AgentHealth(interval: interval)
        AgentMetric.declare(metrics)
    }

    /// The identity of a node-level finding across evaluations: its check and its resource.
    public static func key(_ finding: Finding) -> String {
        finding.check + "\u{1F}" + JSONWriter.string(.object(finding.resource.json))
    }

    /// Node findings whose observation differs from the last emitted one (new checks included);
    /// `last` is updated. Time and id are not compared: they change with every evaluation.
    public static func changed(_ findings: [Finding], since last: inout [String: Observation]) -> [Finding] {
        var out: [Finding] = []
        for finding in findings {
            let key = key(finding)
            if last[key] != finding.observation {
                out.append(finding)
                last[key] = finding.observation
            }
        }
        return out
    }

    /// Runs until the task is cancelled: node findings at start, then every interval the
    /// containers' findings for the window and the node findings that changed. When cancellation
    /// comes, the window in progress is abandoned (its findings would cover only part of the
    /// interval), and so is a round in progress: what it returns after the cancellation is not
    /// emitted (a source stops waiting for its work when cancelled). Then the source's `stop()`
    /// is called.
    public func run() async {
        defer { logger.info("agent loop stopped") }
        var lastNode: [String: Observation] = [:]
        var containers = await discover(previous: [])
        let startTime = Timestamp.now()
        let node = await source.nodeFindings(window: DiagnosisWindow(start: startTime, end: startTime))
        if Task.isCancelled {
            await source.stop()
            return
        }
        emit(Self.changed(node, since: &lastNode))
        health.markReady()
        health.beat()
        logger.info(
            "agent started",
            metadata: [
                "interval_s": "\(interval)", "containers": "\(containers.count)", "node_findings": "\(node.count)",
            ])

        var windowStart = Timestamp.now()
        var next = MonotonicClock.now() + interval
        while !Task.isCancelled {
            // Ticks keep a fixed period, so slow rounds do not make the interval drift; after a long
            // stall the schedule restarts from now rather than running short catch-up windows.
            let wait = next - MonotonicClock.now()
            if wait > 0 {
                do {
                    try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
                } catch {
                    break
                }
            }
            next += interval
            if next < MonotonicClock.now() + interval / 2 { next = MonotonicClock.now() + interval }
            let began = MonotonicClock.now()
            let window = DiagnosisWindow(start: windowStart, end: Timestamp.now())
            let containerFindings = await source.containerFindings(window: window, containers: containers)
            if Task.isCancelled { break }
            emit(containerFindings)
            let now = Timestamp.now()
            let nodeFindings = await source.nodeFindings(window: DiagnosisWindow(start: now, end: now))
            if Task.isCancelled { break }
            emit(Self.changed(nodeFindings, since: &lastNode))
            containers = await discover(previous: containers)
            metrics.add(AgentMetric.runs)
            metrics.set(AgentMetric.duration, [], MonotonicClock.now() - began)
            health.beat()
            windowStart = window.end
        }
        await source.stop()
    }

    private func discover(previous: Set<String>) async -> Set<String> {
        do {
            let found = try await source.discoverContainers()
            let added = found.subtracting(previous)
            let removed = previous.subtracting(found)
            if !added.isEmpty || !removed.isEmpty {
                logger.info(
                    "containers changed",
                    metadata: [
                        "added": .array(added.sorted().map { .string($0) }),
                        "removed": .array(removed.sorted().map { .string($0) }),
                        "containers": "\(found.count)",
                    ])
            }
            metrics.set(AgentMetric.containers, [], Double(found.count))
            return found
        } catch {
            if Task.isCancelled { return previous }
            metrics.add(AgentMetric.discoveryErrors)
            logger.error("container discovery failed; keeping the previous set", metadata: ["error": "\(error)"])
            return previous
        }
    }

    private func emit(_ findings: [Finding]) {
        guard !findings.isEmpty else { return }
        for finding in findings {
            metrics.add(AgentMetric.findings, [("check", finding.check), ("severity", finding.severity.rawValue)])
        }
        sink.submit(findings)
    }
}
