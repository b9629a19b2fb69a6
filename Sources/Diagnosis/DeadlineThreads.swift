import Glibc
import Logging
import OSSupport
import Synchronization

/// What a piece of work run by `DeadlineThreads` is doing now, and since when, so that when it
/// does not finish in time the message can say where it was ("the container's memory cgroup")
/// and for how long.
public final class WorkProgress: Sendable {
    private let current: Mutex<(step: String, since: Double)>

    /// Progress starting at `step`.
    public init(_ step: String = "") { current = Mutex((step, MonotonicClock.now())) }

    /// The work is now doing `what`.
    public func step(_ what: String) {
        let now = MonotonicClock.now()
        current.withLock { $0 = (what, now) }
    }

    /// What the work is doing.
    public var currentStep: String { current.withLock { $0.step } }

    /// When the work began what it is doing (monotonic seconds).
    public var currentStepSince: Double { current.withLock { $0.since } }
}

/// Tells work started with `DeadlineThreads.start` that it should end, and lets it pause between
/// two steps without missing that.
public final class StopRequest: @unchecked Sendable {
    private let lock = ConditionLock()
    private var requested = false

    init() {}

    /// Waits `seconds`, or less when the work is told to stop meanwhile; true when it should go on.
    public func pause(_ seconds: Double) -> Bool {
        let limit = MonotonicClock.now() + (seconds.isFinite ? max(0, seconds) : 0)
        return lock.withLock {
            while !requested && MonotonicClock.now() < limit { lock.wait(until: limit) }
            return !requested
        }
    }

    func request() {
        lock.withLock {
            requested = true
            lock.broadcast()
        }
    }
}

/// Told when work run by `DeadlineThreads` passes its deadline and how many abandoned threads
/// are left (the agent counts them in its metrics).
public protocol DeadlineObserver: Sendable {
    /// A piece of work did not finish within its deadline; its thread is abandoned.
    func timedOut()
    /// `count` abandoned threads have not ended yet.
    func stuckThreads(_ count: Int)
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
///
/// `run` waits for the work from its start; `start` lets work run in the background (sampling
/// during a window) until `BackgroundWork.finish` tells it to stop and waits for it, the deadline
/// counted from then. Both share the stuck keys: background work stuck under a key keeps `run`
/// from starting work with that key, and the other way round.
public final class DeadlineThreads: Sendable {
    /// Seconds each piece of work may take.
    public let deadline: Double
    /// Threads that may be stuck at once.
    public let maxStuck: Int
    private let logger: Logger
    private let observer: (any DeadlineObserver)?
    private let what: String

    struct State {
        /// The progress of each stuck key's work.
        var stuck: [String: WorkProgress] = [:]
        var boundLogged = false
    }

    private let state = Mutex(State())

    /// Threads for work that may take `deadline` seconds; `what` names the work in logs ("a
    /// container's diagnosis"); `observer`, when given, is told of timeouts and stuck threads.
    public init(
        deadline: Double, maxStuck: Int = 32, what: String = "a container's diagnosis", logger: Logger,
        observer: (any DeadlineObserver)? = nil
    ) {
        self.deadline = deadline.isFinite ? max(0, deadline) : 10
        self.maxStuck = max(1, maxStuck)
        self.what = what
        self.logger = logger
        self.observer = observer
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
        if let refusal: DeadlineOutcome<Value> = refusal(key) { return refusal }
        let job = Job<Value>(limit: MonotonicClock.now() + deadline)
        if let failed = launch(job, key: key, body) { return failed }
        return await wait(job, key: key)
    }

    /// Starts `body` on a new thread, to run until it ends or is told to stop (`StopRequest`,
    /// which `BackgroundWork.finish` signals); nothing waits for it meanwhile. Refused, like `run`,
    /// while work with the same key is stuck or too many threads are: then `finish` returns the
    /// refusal at once.
    public func start<Value: Sendable>(
        _ key: String, _ body: @escaping @Sendable (WorkProgress, StopRequest) -> Value
    ) -> BackgroundWork<Value> {
        if let refusal: DeadlineOutcome<Value> = refusal(key) { return BackgroundWork(refused: refusal) }
        let stop = StopRequest()
        let job = Job<Value>(limit: .infinity)
        if let failed = launch(job, key: key, { body($0, stop) }) { return BackgroundWork(refused: failed) }
        return BackgroundWork(threads: self, key: key, job: job, stop: stop)
    }

    /// Why work with `key` may not start now, or nil when it may.
    private func refusal<Value: Sendable>(_ key: String) -> DeadlineOutcome<Value>? {
        state.withLock { state in
            if let stuck = state.stuck[key] {
                return .stillStuck(step: stuck.currentStep, seconds: MonotonicClock.now() - stuck.currentStepSince)
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
    }

    /// Starts `job`'s thread; the outcome when it cannot start.
    private func launch<Value: Sendable>(
        _ job: Job<Value>, key: String, _ body: @escaping @Sendable (WorkProgress) -> Value
    ) -> DeadlineOutcome<Value>? {
        let code = tryStartThread { [self] in
            let value = body(job.progress)
            let abandoned = job.lock.withLock {
                job.value = value
                return job.abandoned
            }
            if abandoned {
                ended(key, after: MonotonicClock.now() - job.started)
            } else {
                settle(job, key: key)
            }
        }
        return code == 0 ? nil : .notStarted(code: code)
    }

    /// Waits for `job` until its limit, or until the calling task is cancelled.
    fileprivate func wait<Value: Sendable>(_ job: Job<Value>, key: String) async -> DeadlineOutcome<Value> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<DeadlineOutcome<Value>, Never>) in
                job.lock.withLock { job.continuation = continuation }
                settle(job, key: key)
                // The deadline, kept by a thread that waits for it (or for the outcome).
                let timer = tryStartThread { [self] in
                    job.lock.withLock {
                        while job.continuation != nil && MonotonicClock.now() < job.limit {
                            job.lock.wait(until: job.limit)
                        }
                    }
                    settle(job, key: key)
                }
                if timer != 0 {
                    // No thread for the deadline: waiting could last for ever, so stop at once.
                    job.lock.withLock { job.limit = 0 }
                    settle(job, key: key)
                }
            }
        } onCancel: {
            job.lock.withLock { job.cancelled = true }
            settle(job, key: key)
        }
    }

    /// Resumes the caller waiting for `job` if the outcome is known: the work finished, or the
    /// wait was cancelled, or the limit passed (then the thread is abandoned and counted as stuck).
    private func settle<Value: Sendable>(_ job: Job<Value>, key: String) {
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
                        state.stuck[key] = job.progress
                        return state.stuck.count
                    }
                    return (continuation, outcome, count)
                }
                return (continuation, outcome, 0)
            }
        guard let (continuation, outcome, count) = decided else { return }
        if case .timedOut(let step) = outcome {
            observer?.timedOut()
            logger.warning(
                "\(what) did not finish within its deadline; its thread is abandoned",
                metadata: [
                    "key": "\(key)", "reading": "\(step)", "deadline_s": "\(deadline)", "stuck_threads": "\(count)",
                ])
        }
        if count > 0 { observer?.stuckThreads(count) }
        continuation.resume(returning: outcome)
    }

    /// An abandoned thread ended after all.
    private func ended(_ key: String, after seconds: Double) {
        let count = state.withLock { state in
            state.stuck[key] = nil
            if state.stuck.count < maxStuck { state.boundLogged = false }
            return state.stuck.count
        }
        observer?.stuckThreads(count)
        logger.info(
            "a stuck thread of \(what) ended",
            metadata: ["key": "\(key)", "after_s": "\(Int(seconds))", "stuck_threads": "\(count)"])
    }

    /// The state one piece of work shares between its thread, its deadline's thread and its caller.
    final class Job<Value: Sendable>: @unchecked Sendable {
        let lock = ConditionLock()
        let progress = WorkProgress()
        /// When the thread was started (monotonic seconds).
        let started = MonotonicClock.now()
        /// When the deadline passes (monotonic seconds); infinite for background work until it is
        /// told to stop.
        var limit: Double
        var value: Value?
        var cancelled = false
        /// Set once the caller was told something else than `finished`.
        var abandoned = false
        /// The caller, until it is resumed.
        var continuation: CheckedContinuation<DeadlineOutcome<Value>, Never>?

        init(limit: Double) { self.limit = limit }
    }
}

/// Work started with `DeadlineThreads.start`, running on a thread of its own until it ends or is
/// told to stop.
public final class BackgroundWork<Value: Sendable>: Sendable {
    private enum Launch: Sendable {
        case running(DeadlineThreads, key: String, DeadlineThreads.Job<Value>, StopRequest)
        case refused(DeadlineOutcome<Value>)
    }

    private let launch: Launch

    init(threads: DeadlineThreads, key: String, job: DeadlineThreads.Job<Value>, stop: StopRequest) {
        launch = .running(threads, key: key, job, stop)
    }

    init(refused outcome: DeadlineOutcome<Value>) { launch = .refused(outcome) }

    /// Tells the work to stop and waits for its value at most the deadline from now (or until the
    /// calling task is cancelled): past it, the thread is abandoned and its key counted as stuck,
    /// as for `DeadlineThreads.run`. A refused start gives its refusal.
    public func finish() async -> DeadlineOutcome<Value> {
        switch launch {
        case .refused(let outcome):
            return outcome
        case .running(let threads, let key, let job, let stop):
            job.lock.withLock { job.limit = min(job.limit, MonotonicClock.now() + threads.deadline) }
            stop.request()
            return await threads.wait(job, key: key)
        }
    }

    /// Tells the work to stop without waiting for it (the process is ending).
    public func cancel() {
        if case .running(_, _, _, let stop) = launch { stop.request() }
    }
}
