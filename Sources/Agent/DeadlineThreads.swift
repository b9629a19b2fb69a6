import Logging
import Shipping
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What a piece of work run by `DeadlineThreads` is doing now, so that when it does not finish in
/// time the message can say where it was ("the container's memory cgroup").
public final class WorkProgress: Sendable {
    private let current: Mutex<String>

    /// Progress starting at `step`.
    public init(_ step: String = "") { current = Mutex(step) }

    /// The work is now doing `what`.
    public func step(_ what: String) { current.withLock { $0 = what } }

    /// What the work is doing.
    public var currentStep: String { current.withLock { $0 } }
}

/// How a piece of work run under a deadline ended, as far as its caller is concerned.
public enum DeadlineOutcome<Value: Sendable>: Sendable {
    /// It finished in time.
    case finished(Value)
    /// It was still at `step` when the deadline passed: its thread is abandoned (counted as stuck
    /// until it ends) and the caller goes on.
    case timedOut(step: String)
    /// An earlier run with the same key has been stuck at `step` for `seconds`: nothing was
    /// started; a new run starts once that one ends.
    case stillStuck(step: String, seconds: Double)
    /// `count` runs are stuck, the most allowed at once: nothing was started.
    case tooManyStuck(count: Int)
    /// No thread could be started (`errno`-style `code`).
    case notStarted(code: Int32)
    /// The calling task was cancelled (shutdown) while waiting; the thread is abandoned.
    case cancelled
}

/// Runs blocking work — a container's diagnosis, which reads files that may hang for ever on a
/// stuck NFS or FUSE mount, a kernel wait, a read nothing answers — each on its own POSIX thread,
/// and waits for it at most `deadline` seconds. Work past its deadline is abandoned: its thread
/// goes on and is counted as stuck until it ends; while it is stuck, work with the same key is not
/// started again (`stillStuck`), and at most `maxStuck` threads may be stuck at once
/// (`tooManyStuck` after that), so a node full of hanging mounts costs a bounded number of
/// threads. Each timeout is logged once; so is the end of a stuck thread.
public final class DeadlineThreads: Sendable {
    /// Seconds each piece of work may take.
    public let deadline: Double
    /// Threads that may be stuck at once.
    public let maxStuck: Int
    private let logger: Logger
    private let metrics: MetricsRegistry?
    private let what: String

    struct Stuck {
        var progress: WorkProgress
        var since: Double
    }

    struct State {
        var stuck: [String: Stuck] = [:]
        var boundLogged = false
    }

    private let state = Mutex(State())

    /// Threads for work that may take `deadline` seconds; `what` names the work in logs ("a
    /// container's diagnosis"); `metrics`, when given, gets `pgnode_diagnosis_timeouts_total` and
    /// `pgnode_diagnosis_stuck_threads`.
    public init(
        deadline: Double, maxStuck: Int = 32, what: String = "a container's diagnosis", logger: Logger,
        metrics: MetricsRegistry? = nil
    ) {
        self.deadline = deadline.isFinite ? max(0, deadline) : 10
        self.maxStuck = max(1, maxStuck)
        self.what = what
        self.logger = logger
        self.metrics = metrics
        metrics?.declare(
            AgentMetric.diagnosisTimeouts, .counter, help: "Diagnoses abandoned past their deadline.", initial: 0)
        metrics?.declare(
            AgentMetric.stuckThreads, .gauge, help: "Abandoned diagnosis threads that have not ended yet.", initial: 0)
    }

    /// The keys whose work is stuck now.
    public var stuckKeys: Set<String> { state.withLock { Set($0.stuck.keys) } }

    /// Runs `body` on a new thread and waits for it until the deadline, or until the calling
    /// task is cancelled. The calling task is suspended while it waits (no thread of the task
    /// pool is held); a second thread keeps the deadline.
    public func run<Value: Sendable>(
        _ key: String, _ body: @escaping @Sendable (WorkProgress) -> Value
    ) async -> DeadlineOutcome<Value> {
        if Task.isCancelled { return .cancelled }
        let refusal: DeadlineOutcome<Value>? = state.withLock { state in
            if let stuck = state.stuck[key] {
                return .stillStuck(step: stuck.progress.currentStep, seconds: MonotonicClock.now() - stuck.since)
            }
            guard state.stuck.count < maxStuck else {
                if !state.boundLogged {
                    state.boundLogged = true
                    logger.error(
                        "\(maxStuck) diagnosis threads are stuck, the most allowed; more work waits until one ends",
                        metadata: ["stuck": .array(state.stuck.keys.sorted().map { .string($0) })])
                }
                return .tooManyStuck(count: state.stuck.count)
            }
            return nil
        }
        if let refusal { return refusal }

        let started = MonotonicClock.now()
        let job = Job<Value>(progress: WorkProgress(), limit: started + deadline)
        let code = Self.startThread { [self] in
            let value = body(job.progress)
            let abandoned = job.lock.withLock {
                job.value = value
                return job.abandoned
            }
            if abandoned {
                ended(key, after: MonotonicClock.now() - started)
            } else {
                settle(job, key: key, started: started)
            }
        }
        if code != 0 { return .notStarted(code: code) }

        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<DeadlineOutcome<Value>, Never>) in
                job.lock.withLock { job.continuation = continuation }
                settle(job, key: key, started: started)
                // The deadline, kept by a thread that waits for it (or for the outcome).
                let timer = Self.startThread { [self] in
                    job.lock.withLock {
                        while job.continuation != nil && MonotonicClock.now() < job.limit {
                            job.lock.wait(until: job.limit)
                        }
                    }
                    settle(job, key: key, started: started)
                }
                if timer != 0 {
                    // No thread for the deadline: waiting could last for ever, so stop at once.
                    job.lock.withLock { job.limit = 0 }
                    settle(job, key: key, started: started)
                }
            }
        } onCancel: {
            job.lock.withLock { job.cancelled = true }
            settle(job, key: key, started: started)
        }
    }

    /// Resumes the caller of `run` if the outcome is known: the work finished, or the call was
    /// cancelled, or the deadline passed (then the thread is abandoned and counted as stuck).
    private func settle<Value: Sendable>(_ job: Job<Value>, key: String, started: Double) {
        let decided: (CheckedContinuation<DeadlineOutcome<Value>, Never>, DeadlineOutcome<Value>, Int)? =
            job.lock.withLock {
                guard let continuation = job.continuation else { return nil }
                let outcome: DeadlineOutcome<Value>
                if let value = job.value {
                    outcome = .finished(value)
                } else if job.cancelled {
                    outcome = .cancelled
                } else if MonotonicClock.now() >= job.limit {
                    outcome = .timedOut(step: job.progress.currentStep)
                } else {
                    return nil
                }
                job.continuation = nil
                job.lock.broadcast()
                guard case .finished = outcome else {
                    // Registered under the job's lock: the thread, when it ends, looks at
                    // `abandoned` under the same lock, so it cannot end unseen between the two.
                    job.abandoned = true
                    let count = state.withLock { state in
                        state.stuck[key] = Stuck(progress: job.progress, since: started)
                        return state.stuck.count
                    }
                    return (continuation, outcome, count)
                }
                return (continuation, outcome, 0)
            }
        guard let (continuation, outcome, count) = decided else { return }
        if case .timedOut(let step) = outcome {
            metrics?.add(AgentMetric.diagnosisTimeouts)
            logger.warning(
                "\(what) did not finish within its deadline; its thread is abandoned",
                metadata: [
                    "key": "\(key)", "reading": "\(step)", "deadline_s": "\(deadline)", "stuck_threads": "\(count)",
                ])
        }
        if count > 0 { metrics?.set(AgentMetric.stuckThreads, [], Double(count)) }
        continuation.resume(returning: outcome)
    }

    /// An abandoned thread ended after all.
    private func ended(_ key: String, after seconds: Double) {
        let count = state.withLock { state in
            state.stuck[key] = nil
            if state.stuck.count < maxStuck { state.boundLogged = false }
            return state.stuck.count
        }
        metrics?.set(AgentMetric.stuckThreads, [], Double(count))
        logger.info(
            "a stuck thread of \(what) ended",
            metadata: ["key": "\(key)", "after_s": "\(Int(seconds))", "stuck_threads": "\(count)"])
    }

    /// The state one run shares between its thread, its deadline's thread and its caller.
    final class Job<Value: Sendable>: @unchecked Sendable {
        let lock = ConditionLock()
        let progress: WorkProgress
        /// When the deadline passes (monotonic seconds).
        var limit: Double
        var value: Value?
        var cancelled = false
        /// Set once the caller was told something else than `finished`.
        var abandoned = false
        /// The caller, until it is resumed.
        var continuation: CheckedContinuation<DeadlineOutcome<Value>, Never>?

        init(progress: WorkProgress, limit: Double) {
            self.progress = progress
            self.limit = limit
        }
    }

    /// Starts `body` on a detached POSIX thread; the error number when it cannot.
    static func startThread(_ body: @escaping @Sendable () -> Void) -> Int32 {
        final class Box {
            let body: @Sendable () -> Void
            init(body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            return result
        }
        pthread_detach(thread)
        return 0
    }
}

extension DeadlineThreads {
    /// The value of `task` if it has one within `seconds`, else nil; the task is left to itself.
    /// For an asynchronous task that may be stuck in a blocking call (a statfs of a hung mount).
    public static func value<Value: Sendable>(of task: Task<Value, Never>, waitingAtMost seconds: Double) async
        -> Value?
    {
        let once = FirstValue<Value>()
        let limit = MonotonicClock.now() + (seconds.isFinite ? max(0, seconds) : 0)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
            once.lock.withLock { once.continuation = continuation }
            Task { once.resume(await task.value) }
            let timer = startThread {
                once.lock.withLock {
                    while !once.done && MonotonicClock.now() < limit { once.lock.wait(until: limit) }
                }
                once.resume(nil)
            }
            if timer != 0 { once.resume(nil) }
        }
    }
}

/// A continuation resumed by whichever comes first (the value, or the deadline).
final class FirstValue<Value: Sendable>: @unchecked Sendable {
    let lock = ConditionLock()
    var continuation: CheckedContinuation<Value?, Never>?
    var done = false

    func resume(_ value: Value?) {
        let waiting: CheckedContinuation<Value?, Never>? = lock.withLock {
            defer {
                continuation = nil
                done = true
                lock.broadcast()
            }
            return continuation
        }
        waiting?.resume(returning: value)
    }
}
