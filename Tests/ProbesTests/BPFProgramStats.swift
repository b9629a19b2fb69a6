import CLibBPF
import Glibc

/// Why the kernel's program statistics could not be turned on or read.
struct BPFProgramStatsError: Error, CustomStringConvertible {
    var description: String
}

/// The kernel's own count of how often a loaded BPF program ran (`bpf_prog_info`): the
/// mechanism tests assert instead of timing anything.
///
/// `run_cnt` only moves while statistics are enabled (`kernel.bpf_stats_enabled = 1`, or an
/// open `BPF_ENABLE_STATS` descriptor: `Collection` holds one). `recursion_misses` counts the runs
/// the kernel skipped because the program was already running on that CPU.
enum BPFProgramStats {
    /// What the kernel counted for one program.
    struct Counts: Equatable, CustomStringConvertible {
        /// Times the program ran while statistics were enabled.
        var runs: UInt64
        /// Times it did not run because it was already running on that CPU.
        var recursionMisses: UInt64

        var description: String { "\(runs) runs, \(recursionMisses) recursion misses" }
    }

    /// Keeps the kernel counting program runs while it is open (`BPF_ENABLE_STATS`, 5.8+): the
    /// kernel takes the setting back when the last holder closes its descriptor, however the test
    /// ends, and leaves `kernel.bpf_stats_enabled` (the machine's own setting) untouched.
    final class Collection {
        private var fd: Int32

        init() throws(BPFProgramStatsError) {
            fd = bpf_enable_stats(BPF_STATS_RUN_TIME)
            guard fd >= 0 else {
                throw BPFProgramStatsError(description: "BPF_ENABLE_STATS: \(String(cString: strerror(errno)))")
            }
        }

        /// Stops counting (for this holder).
        func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }

        deinit { close() }
    }

    /// The counts of the program with kernel id `id`.
    static func counts(id: UInt32) throws(BPFProgramStatsError) -> Counts {
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else {
            throw BPFProgramStatsError(description: "program \(id): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        return try counts(fd: fd)
    }

    /// The counts of the program behind `fd`.
    static func counts(fd: Int32) throws(BPFProgramStatsError) -> Counts {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else {
            throw BPFProgramStatsError(description: "BPF_OBJ_GET_INFO_BY_FD: \(String(cString: strerror(errno)))")
        }
        return Counts(runs: info.run_cnt, recursionMisses: info.recursion_misses)
    }

    /// The counts of every program in `ids` (name → kernel id), by name.
    static func counts(_ ids: [String: UInt32]) throws(BPFProgramStatsError) -> [String: Counts] {
        var result: [String: Counts] = [:]
        for (name, id) in ids { result[name] = try counts(id: id) }
        return result
    }
}
