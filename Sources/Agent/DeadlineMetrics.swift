import Diagnosis
import Logging
import Shipping

/// `pgnode_diagnosis_timeouts_total` and `pgnode_diagnosis_stuck_threads`: what the deadline
/// threads of the containers' diagnoses tell.
public struct DeadlineMetrics: DeadlineObserver {
    private let metrics: MetricsRegistry

    /// Counts in `metrics` (declared here, at 0).
    public init(_ metrics: MetricsRegistry) {
        self.metrics = metrics
        metrics.declare(
            AgentMetric.diagnosisTimeouts, .counter, help: "Diagnoses abandoned past their deadline.", initial: 0)
        metrics.declare(
            AgentMetric.stuckThreads, .gauge, help: "Abandoned diagnosis threads that have not ended yet.", initial: 0)
    }

    public func timedOut() { metrics.add(AgentMetric.diagnosisTimeouts) }

    public func stuckThreads(_ count: Int) { metrics.set(AgentMetric.stuckThreads, [], Double(count)) }
}

extension DeadlineThreads {
    /// Threads whose timeouts and stuck threads are counted in `metrics` (`DeadlineMetrics`).
    public convenience init(
        deadline: Double, maxStuck: Int = 32, what: String = "a container's diagnosis", logger: Logger,
        metrics: MetricsRegistry
    ) {
        self.init(
            deadline: deadline, maxStuck: maxStuck, what: what, logger: logger, observer: DeadlineMetrics(metrics))
    }
}
