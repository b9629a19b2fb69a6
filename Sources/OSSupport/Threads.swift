import Glibc

/// A mutex with a condition variable (pthreads), for the threads that must block: the delivery
/// thread waiting for findings or for its next retry, the HTTP server's accept loop, a diagnosis
/// waiting for its deadline.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// A lock; its condition waits on the monotonic clock.
    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal or until `deadline` (monotonic seconds); call with the lock held (inside `withLock`).
    public func wait(until deadline: Double?) {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return
        }
        let clamped = max(0, min(deadline, MonotonicClock.now() + 86_400))
        var ts = timespec(tv_sec: Int(clamped), tv_nsec: Int((clamped - clamped.rounded(.down)) * 1e9))
        pthread_cond_timedwait(condition, mutex, &ts)
    }

    /// Wakes every waiter.
    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// The monotonic clock (`CLOCK_MONOTONIC`, also the clock of `bpf_ktime_get_ns()`).
public enum MonotonicClock {
    /// Now, in seconds since an arbitrary point.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Now, in nanoseconds since an arbitrary point (boot, on Linux).
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Starts `body` on a new detached POSIX thread; `name` says what it is for in errors. For the
/// agent's own long-lived threads, without which it cannot run: a failure is not recoverable.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let result = tryStartThread(body)
    precondition(result == 0, "pthread_create failed for \(name): errno \(result)")
}

/// Starts `body` on a new detached POSIX thread; returns 0, or pthread_create's error number when
/// it cannot (and `body` is not run): for threads whose caller can report the failure.
public func tryStartThread(_ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Box {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) {
            self.body = body
        }
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
