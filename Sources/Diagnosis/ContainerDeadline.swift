import Glibc
import PGNodeModel

/// One container's diagnosis under a deadline, on `DeadlineThreads`: its observations when it
/// finishes in time; otherwise each of its checks is `unavailable`, saying what it was reading
/// ("timed out reading the container's memory cgroup (memory.limit) …"), and the round goes on
/// for the other containers.
public struct ContainerDeadline: Sendable {
    /// The threads the diagnoses run on.
    public let threads: DeadlineThreads

    /// Diagnoses on `threads`.
    public init(threads: DeadlineThreads) { self.threads = threads }

    /// The observations of container `id`: what `body` returns within the deadline, else every
    /// check of `checks` unavailable with the reason; nil when the calling task was cancelled
    /// (the agent is stopping: the round is abandoned).
    public func observations(
        container id: String, checks: [String], _ body: @escaping @Sendable (WorkProgress) -> [Observation]
    ) async -> [Observation]? {
        let outcome = await threads.run(id, body)
        if case .finished(let observations) = outcome { return observations }
        guard let (reason, evidence) = Self.reason(outcome, deadline: threads.deadline) else { return nil }
        return checks.map { .unavailable(check: $0, reason: reason, evidence: evidence) }
    }

    /// Why a diagnosis that did not finish gave nothing, with evidence; nil for `finished` and
    /// `cancelled`.
    public static func reason<Value>(_ outcome: DeadlineOutcome<Value>, deadline: Double) -> (String, JSONObject)? {
        let limit = seconds(deadline)
        switch outcome {
        case .finished, .cancelled:
            return nil
        case .timedOut(let step):
            return (
                "timed out reading \(step) after \(limit) s; the diagnosis went on for the other containers",
                ["reading": .string(step), "deadline_s": .double(deadline)]
            )
        case .stillStuck(let step, let stuck):
            return (
                "timed out reading \(step): an earlier diagnosis of this container has been stuck there for "
                    + "\(seconds(stuck)) s; it is not started again until that read returns",
                ["reading": .string(step), "deadline_s": .double(deadline), "stuck_s": .double(stuck.rounded())]
            )
        case .tooManyStuck(let count):
            return (
                "not diagnosed: \(count) diagnoses are stuck on reads that do not return, the most pgnode lets "
                    + "hang at once; this container is diagnosed again once one of them ends",
                ["stuck_diagnoses": .int(Int64(count)), "deadline_s": .double(deadline)]
            )
        case .notStarted(let code):
            return (
                "not diagnosed: no thread could be started for it (\(String(cString: strerror(code))))",
                ["errno": .int(Int64(code))]
            )
        }
    }

    /// Seconds for a message: `10` for 10.0, `0.5` for 0.5.
    public static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        let whole = value.rounded()
        return abs(value - whole) < 0.05 && abs(whole) < 1e15 ? "\(Int64(whole))" : "\((value * 10).rounded() / 10)"
    }
}
