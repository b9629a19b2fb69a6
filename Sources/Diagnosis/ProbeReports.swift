import Checks
import Glibc
import HostFacts
import OSSupport
import PGNodeModel
import Probes
import Resolution

/// Turns what the probes aggregated for one target into the reports the checks take.
public enum ProbeReports {
    /// Converts `bpf_ktime_get_ns()` times (CLOCK_MONOTONIC) to wall-clock timestamps.
    public struct Clock: Sendable {
        let offset: Int64

        /// A clock sampled now.
        public init() {
            offset = Timestamp.now().nanoseconds - Int64(clamping: MonotonicClock.nanoseconds())
        }

        /// The wall-clock time of a kernel timestamp (saturating: a time from a BPF map beyond
        /// 2262 stays at the end of `Timestamp`'s range).
        public func wall(_ kernelNanoseconds: UInt64) -> Timestamp {
            Timestamp(nanoseconds: Int64(clamping: kernelNanoseconds).addingSaturating(offset))
        }
    }

    /// Host pids by their pid in the container's pid namespace, for the processes `names` knows
    /// (resolved before the window, or learned right after it).
    public static func namespacePIDs(_ names: ProcessNames) -> [Int32: Int32] {
        var pids: [Int32: Int32] = [:]
        for (pid, name) in names.byPID {
            if let inner = name.namespacePID { pids[inner] = pid }
        }
        return pids
    }
}
