import Dispatch
import Glibc
import OSSupport
import Synchronization

/// SIGINT and SIGTERM during `pgnode check`'s observation window: the first one ends the window
/// early (the findings are still printed, then the command exits 128 + the signal); outside the
/// window the signals keep their default action.
///
/// `@unchecked Sendable`: `sources` is written in `init` and read in `restore`, by the command's
/// task; the signal handler touches only `state`, behind its lock.
final class WindowSignals: @unchecked Sendable {
    private struct State {
        var signal: Int32?
        var window: Task<Void, Never>?
    }

    private let state = Mutex(State())
    private var sources: SignalSources?

    /// Catches SIGINT and SIGTERM from now on.
    init() {
        sources = SignalSources([SIGINT, SIGTERM], queue: .global()) { [self] number in
            let window = state.withLock { state in
                state.signal = state.signal ?? number
                return state.window
            }
            window?.cancel()
        }
    }

    /// Waits `seconds`, or until a signal comes (at once if one came already).
    func wait(seconds: Double) async {
        let window = Task<Void, Never> { try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000)) }
        let signalled = state.withLock { state in
            state.window = window
            return state.signal != nil
        }
        if signalled { window.cancel() }
        await window.value
    }

    /// The signal that came, if one did.
    var received: Int32? { state.withLock { $0.signal } }

    /// Gives SIGINT and SIGTERM their default action back.
    func restore() {
        sources?.restoreDefaults()
    }
}
