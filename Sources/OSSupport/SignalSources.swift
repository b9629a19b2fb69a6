import Dispatch
import Glibc

/// Signals delivered to a handler instead of their default action (`pgnode check`'s window,
/// the agent's shutdown): each signal is unblocked (a parent may have started pgnode with it
/// blocked, and the mask is inherited), its default action ignored, and a dispatch source
/// watches it.
///
/// `@unchecked Sendable`: `sources` is set in `init` and only cancelled afterwards.
public final class SignalSources: @unchecked Sendable {
    private let signals: [Int32]
    private let sources: [any DispatchSourceSignal]

    /// Delivers `signals` to `handler`, on `queue`, from now on.
    public init(_ signals: [Int32], queue: DispatchQueue, handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    /// Stops watching and gives the signals their default action back.
    public func restoreDefaults() {
        for source in sources { source.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }

    /// Ignores `number` for good (SIGPIPE: a closed socket or pipe is an error return instead).
    public static func ignore(_ number: Int32) {
        signal(number, SIG_IGN)
    }
}
