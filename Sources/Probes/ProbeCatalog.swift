import HostFacts

/// pgnode's probes: which embedded object, which programs, and what each needs from the kernel.
public struct ProbeDefinition: Sendable, Equatable {
    /// The requirements `bpf.support` checks before loading.
    public var requirement: BPFProbeRequirement
    /// The programs attached normally.
    public var programs: [String]
    /// Programs used instead of `programs` when `tp_btf` is not possible (no kernel BTF, or a
    /// kernel before 5.5); nil when the probe has no alternative.
    public var rawTracepointPrograms: [String]?

    /// The probe's (and its embedded object's) name.
    public var name: String { requirement.name }
}

/// Every probe pgnode carries.
public enum ProbeCatalog {
    /// Uprobes on the target containers' C library (posix_fallocate, ftruncate, unlink), attached
    /// per library file by `UprobeAttachments`: kprobe-type programs, no tracepoint, no tracefs
    /// (libbpf attaches them through the perf `uprobe` PMU, or tracefs's `uprobe_events` without it).
    public static let shm = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: "shm", checks: ["shm.enospc"], programTypes: ["kprobe"],
            mapTypes: ["hash", "array", "ringbuf"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel", "ringbuf_reserve", "ktime_get_boot_ns"],
            tracepoints: [], needsTracefs: false, needsUprobes: true),
        programs: [
            "pgn_shm_fa_in", "pgn_shm_fa_out", "pgn_shm_ft_in", "pgn_shm_ft_out", "pgn_shm_ul_in", "pgn_shm_ul_out",
        ],
        rawTracepointPrograms: nil)

    public static let reclaim = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: "reclaim", checks: ["memory.reclaim"], programTypes: ["tracepoint"], mapTypes: ["hash"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel"],
            tracepoints: [
                "vmscan/mm_vmscan_memcg_reclaim_begin", "vmscan/mm_vmscan_memcg_reclaim_end",
                "vmscan/mm_vmscan_direct_reclaim_begin", "vmscan/mm_vmscan_direct_reclaim_end",
            ],
            needsTracefs: true),
        programs: ["pgn_rcl_mcg_in", "pgn_rcl_mcg_out", "pgn_rcl_dir_in", "pgn_rcl_dir_out"],
        rawTracepointPrograms: nil)

    public static let blkio = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: "blkio", checks: ["blkio.noise"], programTypes: ["raw_tracepoint"],
            mapTypes: ["hash", "array", "percpu_array", "lru_hash"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel"],
            tracepoints: ["block/block_rq_insert", "block/block_rq_issue", "block/block_rq_complete"],
            needsTracefs: false),
        programs: ["pgn_blk_ins_btf", "pgn_blk_iss_btf", "pgn_blk_cmp_btf"],
        rawTracepointPrograms: ["pgn_blk_ins_raw", "pgn_blk_iss_raw", "pgn_blk_cmp_raw"])

    /// Every probe, in the order they are loaded.
    public static let all: [ProbeDefinition] = [shm, reclaim, blkio]

    /// The probe named `name`.
    public static func named(_ name: String) -> ProbeDefinition? { all.first { $0.name == name } }

    /// The program sets to try for `probe` here, in order: tp_btf needs the kernel's own BTF
    /// (a custom BTF is not enough), so without it only the raw_tp fallback is tried; with it,
    /// tp_btf first and raw_tp when the kernel rejects tp_btf (before 5.5). libbpf's probe of
    /// the `tracing` program type cannot tell (it needs an attach target), so the load decides.
    public static func programSets(
        for probe: ProbeDefinition, environment: BPFEnvironment, preferRawTracepoints: Bool = false
    ) -> [[String]] {
        guard let raw = probe.rawTracepointPrograms else { return [probe.programs] }
        return (environment.kernelBTF && !preferRawTracepoints) ? [probe.programs, raw] : [raw]
    }
}
