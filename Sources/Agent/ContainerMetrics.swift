import PGNodeModel
import Shipping
import Synchronization

/// The per-container metrics: each container finding's severity as a gauge
/// (`pgnode_finding_severity{check,namespace,pod,container}`: 0 ok, 1 info, 2 warning,
/// 3 critical), whether the check could run (`pgnode_check_unavailable`), and key evidence
/// (`ContainerMetrics.evidence`: gauges of the last window, counters summed over windows).
///
/// Labels are the Kubernetes names (`namespace`, `pod`, `container`; empty when the runtime
/// does not say, and then `container` is the first 12 hex digits of the container id), never
/// pids or ids of their own, so a node has at most containers × checks series per metric. Every
/// series belongs to the container that last wrote it; `forget` removes the series of the
/// containers that have gone. A container restarted in the same pod writes the same series, so
/// the old container's going does not remove them.
public final class ContainerMetrics: Sendable {
    /// The metric names.
    public enum Name {
        public static let severity = "pgnode_finding_severity"
        public static let unavailable = "pgnode_check_unavailable"
    }

    /// A number in a check's evidence published as a metric.
    public struct EvidenceMetric: Sendable {
        /// The check whose evidence holds it.
        public var check: String
        /// The evidence key (a number).
        public var key: String
        /// The metric name.
        public var name: String
        /// `.gauge`: the window's value; `.counter`: summed over the windows.
        public var kind: MetricsRegistry.Kind
        /// Multiplies the evidence value (nanoseconds to seconds: 1e-9).
        public var scale: Double
        /// Labels of its own, after the container's (`kind="own"`).
        public var labels: [(String, String)]
        /// The `# HELP` text.
        public var help: String

        public init(
            check: String, key: String, name: String, kind: MetricsRegistry.Kind, scale: Double = 1,
            labels: [(String, String)] = [], help: String
        ) {
            self.check = check
            self.key = key
            self.name = name
            self.kind = kind
            self.scale = scale
            self.labels = labels
            self.help = help
        }
    }

    /// The evidence published as metrics (docs/agent.md lists them).
    public static let evidence: [EvidenceMetric] = [
        EvidenceMetric(
            check: "shm.size", key: "shm_size_bytes", name: "pgnode_shm_size_bytes", kind: .gauge,
            help: "Size of the container's /dev/shm, in bytes."),
        EvidenceMetric(
            check: "shm.size", key: "shm_used_bytes", name: "pgnode_shm_used_bytes", kind: .gauge,
            help: "Bytes used in the container's /dev/shm when the window ended."),
        EvidenceMetric(
            check: "shm.enospc", key: "dsm_peak_bytes", name: "pgnode_dsm_peak_bytes", kind: .gauge,
            help: "The most dynamic shared memory PostgreSQL held in /dev/shm at once in the last window, in bytes."),
        EvidenceMetric(
            check: "shm.enospc", key: "failures", name: "pgnode_shm_enospc_failures_total", kind: .counter,
            help: "Dynamic shared memory allocations that failed with ENOSPC."),
        EvidenceMetric(
            check: "memory.limit", key: "limit_bytes", name: "pgnode_memory_limit_bytes", kind: .gauge,
            help: "The container's memory limit, in bytes (absent without a limit)."),
        EvidenceMetric(
            check: "memory.limit", key: "working_set_bytes", name: "pgnode_memory_working_set_bytes", kind: .gauge,
            help: "The container's working set (usage less inactive file cache), in bytes."),
        EvidenceMetric(
            check: "memory.reclaim", key: "stall_ns", name: "pgnode_memory_reclaim_stall_seconds_total",
            kind: .counter, scale: 1e-9,
            help: "Time the container's processes spent stalled in memory reclaim, in seconds."),
        EvidenceMetric(
            check: "writeback.throttle", key: "paused_ns", name: "pgnode_writeback_paused_seconds_total",
            kind: .counter, scale: 1e-9,
            help:
                "Time the kernel paused the container's processes in balance_dirty_pages (dirty throttling), in seconds."
        ),
        EvidenceMetric(
            check: "writeback.throttle", key: "pauses", name: "pgnode_writeback_pauses_total", kind: .counter,
            help: "Times the kernel paused the container's processes because dirty pages outran writeback."),
        EvidenceMetric(
            check: "memory.reclaim", key: "reclaimed_bytes", name: "pgnode_memory_reclaimed_bytes_total",
            kind: .counter, help: "Bytes reclaimed by memory reclaim in the container's processes."),
        EvidenceMetric(
            check: "blkio.noise", key: "own_requests", name: "pgnode_blkio_requests_total", kind: .counter,
            labels: [("kind", "own")],
            help:
                "Block requests: the container's own (kind=\"own\") and other cgroups' completed ahead of them in "
                + "the same queue (kind=\"noise\")."),
        EvidenceMetric(
            check: "blkio.noise", key: "noise_requests", name: "pgnode_blkio_requests_total", kind: .counter,
            labels: [("kind", "noise")],
            help:
                "Block requests: the container's own (kind=\"own\") and other cgroups' completed ahead of them in "
                + "the same queue (kind=\"noise\")."),
        EvidenceMetric(
            check: "cpu.throttling", key: "throttled_periods_ratio", name: "pgnode_cpu_throttled_periods_ratio",
            kind: .gauge, help: "The share of CFS periods in the last window in which the container was throttled."),
        EvidenceMetric(
            check: "cpu.migrations", key: "within_llc", name: "pgnode_cpu_migrations_total", kind: .counter,
            labels: [("kind", "within_llc")],
            help:
                "Migrations of the container's tasks between CPUs: within one last-level cache (kind=\"within_llc\"), "
                + "to another LLC of the node (kind=\"cross_llc\"), to another NUMA node (kind=\"cross_numa\"), "
                + "or of unknown topology (kind=\"unknown\")."),
        EvidenceMetric(
            check: "cpu.migrations", key: "cross_llc", name: "pgnode_cpu_migrations_total", kind: .counter,
            labels: [("kind", "cross_llc")],
            help:
                "Migrations of the container's tasks between CPUs: within one last-level cache (kind=\"within_llc\"), "
                + "to another LLC of the node (kind=\"cross_llc\"), to another NUMA node (kind=\"cross_numa\"), "
                + "or of unknown topology (kind=\"unknown\")."),
        EvidenceMetric(
            check: "cpu.migrations", key: "cross_numa", name: "pgnode_cpu_migrations_total", kind: .counter,
            labels: [("kind", "cross_numa")],
            help:
                "Migrations of the container's tasks between CPUs: within one last-level cache (kind=\"within_llc\"), "
                + "to another LLC of the node (kind=\"cross_llc\"), to another NUMA node (kind=\"cross_numa\"), "
                + "or of unknown topology (kind=\"unknown\")."),
        EvidenceMetric(
            check: "cpu.migrations", key: "unknown_topology", name: "pgnode_cpu_migrations_total", kind: .counter,
            labels: [("kind", "unknown")],
            help:
                "Migrations of the container's tasks between CPUs: within one last-level cache (kind=\"within_llc\"), "
                + "to another LLC of the node (kind=\"cross_llc\"), to another NUMA node (kind=\"cross_numa\"), "
                + "or of unknown topology (kind=\"unknown\")."),
        EvidenceMetric(
            check: "cpu.contention", key: "run_queue_wait_share", name: "pgnode_cpu_run_queue_wait_ratio",
            kind: .gauge,
            help: "The share of its processes' runnable time in the last window spent waiting for a CPU."),
    ]

    private struct SeriesID: Hashable, Sendable {
        var name: String
        var labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }

        var pairs: [(String, String)] {
            stride(from: 0, to: labels.count - 1, by: 2).map { (labels[$0], labels[$0 + 1]) }
        }
    }

    private struct State: Sendable {
        /// Series → the container id that last wrote it.
        var owner: [SeriesID: String] = [:]
        /// Container id → the series it wrote.
        var owned: [String: Set<SeriesID>] = [:]
    }

    private let metrics: MetricsRegistry
    private let state = Mutex(State())

    /// Per-container metrics in `metrics` (declared here).
    public init(_ metrics: MetricsRegistry) {
        self.metrics = metrics
        metrics.declare(
            Name.severity, .gauge,
            help: "The severity of a container's finding in the last window: 0 ok, 1 info, 2 warning, 3 critical.")
        metrics.declare(
            Name.unavailable, .gauge, help: "1 when a container's check could not run in the last window, else 0.")
        for metric in Self.evidence { metrics.declare(metric.name, metric.kind, help: metric.help) }
    }

    /// The labels of a container finding's resource.
    public static func labels(_ resource: ResourceAttributes) -> [(String, String)] {
        let container = resource.containerName ?? String((resource.containerID ?? "").prefix(12))
        return [("namespace", resource.namespace ?? ""), ("pod", resource.podName ?? ""), ("container", container)]
    }

    /// Updates the metrics from a window's findings (node findings are ignored).
    public func record(_ findings: [Finding]) {
        for finding in findings {
            guard let id = finding.resource.containerID else { continue }
            let base = Self.labels(finding.resource)
            let checkLabels = [("check", finding.check)] + base
            if let rank = finding.severity.rank {
                write(Name.severity, checkLabels, by: id) { $0.set($1, $2, Double(rank)) }
                write(Name.unavailable, checkLabels, by: id) { $0.set($1, $2, 0) }
            } else {
                drop(SeriesID(Name.severity, checkLabels))
                write(Name.unavailable, checkLabels, by: id) { $0.set($1, $2, 1) }
            }
            for metric in Self.evidence where metric.check == finding.check {
                guard let value = Self.number(finding.observation.evidence[metric.key]) else {
                    // No number this window (the check could not run, or no limit): a gauge of an
                    // earlier window would mislead; a counter keeps its total.
                    if metric.kind == .gauge { drop(SeriesID(metric.name, base + metric.labels)) }
                    continue
                }
                let scaled = value * metric.scale
                let labels = base + metric.labels
                switch metric.kind {
                case .counter where scaled >= 0:
                    write(metric.name, labels, by: id) { $0.add($1, $2, scaled) }
                case .gauge:
                    write(metric.name, labels, by: id) { $0.set($1, $2, scaled) }
                default:
                    continue
                }
            }
        }
    }

    /// Removes the series of every container not in `present` (the ones that have gone).
    public func forget(allBut present: Set<String>) {
        let doomed: [SeriesID] = state.withLock { state in
            var doomed: [SeriesID] = []
            for (id, series) in state.owned where !present.contains(id) {
                for one in series where state.owner[one] == id {
                    doomed.append(one)
                    state.owner.removeValue(forKey: one)
                }
                state.owned.removeValue(forKey: id)
            }
            return doomed
        }
        for series in doomed { metrics.remove(series.name, series.pairs) }
    }

    private func write(
        _ name: String, _ labels: [(String, String)], by id: String,
        _ update: (MetricsRegistry, String, [(String, String)]) -> Void
    ) {
        let series = SeriesID(name, labels)
        state.withLock { state in
            if let previous = state.owner[series], previous != id { state.owned[previous]?.remove(series) }
            state.owner[series] = id
            state.owned[id, default: []].insert(series)
        }
        update(metrics, name, labels)
    }

    private func drop(_ series: SeriesID) {
        state.withLock { state in
            if let previous = state.owner.removeValue(forKey: series) { state.owned[previous]?.remove(series) }
        }
        metrics.remove(series.name, series.pairs)
    }

    /// A finite number in the evidence; nil for anything else (null, a string, NaN).
    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .int(let i)?: return Double(i)
        case .double(let d)? where d.isFinite: return d
        default: return nil
        }
    }
}
