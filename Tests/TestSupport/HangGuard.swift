import Foundation
import Testing

/// Runs work that must not block on a thread of its own and waits for it, at most a generous
/// deadline: a guard against hanging the whole test run, never a measure of speed.
///
/// When the deadline passes, the test fails and `unblock` is called again and again until the
/// work ends (a FIFO opened for writing releases a reader stuck in `open`), so that one
/// regression fails one test instead of stalling every test after it.
public enum HangGuard {
    /// The deadline: far beyond what any of this work takes on a loaded machine.
    public static let deadlineSeconds = 120.0

    /// The result of `body`, run on its own thread; records an issue when `body` is still running
    /// after the deadline.
    public static func run<T: Sendable>(
        _ what: String, unblock: @escaping @Sendable () -> Void, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: @escaping @Sendable () throws -> T
    ) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.set(Result { try body() })
            done.signal()
        }
        thread.start()
        if done.wait(timeout: .now() + deadlineSeconds) == .timedOut {
            Issue.record("\(what) still blocked after \(Int(deadlineSeconds)) s", sourceLocation: sourceLocation)
            while done.wait(timeout: .now() + 0.1) == .timedOut { unblock() }
        }
        return try box.get()
    }

    /// Opens every FIFO in `paths` for writing without blocking and closes it again: a reader
    /// blocked in `open` on one of them then returns (and reads end of file).
    public static func releaseFIFOs(_ paths: [String]) {
        for path in paths {
            let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { close(fd) }
        }
    }
}

/// One result handed from the guarded thread to the test.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?

    func set(_ value: Result<T, any Error>) {
        lock.lock()
        result = value
        lock.unlock()
    }

    func get() throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard let result else { throw CancellationError() }
        return try result.get()
    }
}
