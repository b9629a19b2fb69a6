import Glibc
import OSSupport

/// The agent's way out after SIGTERM/SIGINT, bounded by `--shutdown-grace` whatever hangs.
///
/// `request()` (the first signal) notes the time, runs the actions registered with
/// `whenRequested` (mark not ready, cancel the loop), and starts a watchdog. The executable then
/// waits for the loop with `loopEndedOrGraceOver()`: the loop stops at once (a round in progress is
/// abandoned), unless something it called does not return, in which case the wait ends when the
/// grace is over and the loop is left behind. Delivery gets `remaining` seconds. If even that
/// does not finish — the watchdog's `margin` seconds after the grace — the watchdog ends the
/// process with `watchdogStatus`.
public final class AgentShutdown: @unchecked Sendable {
    /// Seconds from the signal to the end of delivery.
    public let grace: Double
    /// Seconds past the grace after which the watchdog ends the process.
    public let margin: Double
    /// The exit status the watchdog ends the process with.
    public static let watchdogStatus: Int32 = 1

    private let lock = ConditionLock()
    private var requestedAt: Double?
    private var loopEnded = false
    private var actions: [@Sendable () -> Void] = []
    private let onWatchdog: @Sendable () -> Void

    /// A shutdown bounded by `grace` seconds; `onWatchdog` runs on the watchdog's thread just
    /// before it ends the process (a log line).
    public init(grace: Double, margin: Double = 5, onWatchdog: @escaping @Sendable () -> Void = {}) {
        self.grace = grace.isFinite ? max(0, grace) : 0
        self.margin = margin
        self.onWatchdog = onWatchdog
    }

    /// Stopping was asked for (the first call counts; later ones do nothing).
    public func request() {
        let toRun: [@Sendable () -> Void]? = lock.withLock {
            guard requestedAt == nil else { return nil }
            requestedAt = MonotonicClock.now()
            lock.broadcast()
            defer { actions = [] }
            return actions
        }
        guard let toRun else { return }
        for action in toRun { action() }
        let limit = (lock.withLock { requestedAt } ?? MonotonicClock.now()) + grace + margin
        startThread(name: "pgnode-shutdown-watchdog") { [self] in
            lock.withLock {
                while MonotonicClock.now() < limit { lock.wait(until: limit) }
            }
            onWatchdog()
            _exit(Self.watchdogStatus)
        }
    }

    /// Whether stopping was asked for.
    public var isRequested: Bool { lock.withLock { requestedAt != nil } }

    /// Runs `action` when stopping is asked for (at once if it already was).
    public func whenRequested(_ action: @escaping @Sendable () -> Void) {
        let now = lock.withLock {
            if requestedAt != nil { return true }
            actions.append(action)
            return false
        }
        if now { action() }
    }

    /// The loop has returned.
    public func markLoopEnded() {
        lock.withLock {
            loopEnded = true
            lock.broadcast()
        }
    }

    /// Seconds of the grace left (all of it before a request).
    public var remaining: Double {
        lock.withLock {
            guard let requestedAt else { return grace }
            return max(0, requestedAt + grace - MonotonicClock.now())
        }
    }

    /// Waits, on a thread of its own (no task thread is held), until the loop has ended, or until
    /// the grace is over after a request; true when the loop ended.
    public func loopEndedOrGraceOver() async -> Bool {
        await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
            startThread(name: "pgnode-shutdown-wait") { [self] in
                let ended = lock.withLock { () -> Bool in
                    while !loopEnded {
                        let limit = requestedAt.map { $0 + grace }
                        if let limit, MonotonicClock.now() >= limit { break }
                        lock.wait(until: limit)
                    }
                    return loopEnded
                }
                done.resume(returning: ended)
            }
        }
    }
}
