import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Turns what the probes aggregated for one target into the reports the checks take.
public enum ProbeReports {
    /// Converts `bpf_ktime_get_ns()` times (CLOCK_MONOTONIC) to wall-clock timestamps.
    public struct Clock: Sendable {
        let offset: Int64

        /// A clock sampled now.
        public init() {
            var mono = timespec()
            clock_gettime(CLOCK_MONOTONIC, &mono)
            let monoNs = Int64(mono.tv_sec) * 1_000_000_000 + Int64(mono.tv_nsec)
            offset = Timestamp.now().nanoseconds - monoNs
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
