import HostFacts
import ProbeObjects

/// The sched probe (`bpf/sched.bpf.c`): `sched_switch` (tp_btf, or raw_tp where tp_btf cannot be
/// used). When a target's task is switched out while still runnable, the CPU time until it runs
/// again on that CPU is charged to the cgroups of the tasks that ran there meanwhile (per target
/// and neighbour cgroup, in the kernel); time while the target's own run queue was throttled by
/// its quota, and time taken by its own cgroup's other tasks, are counted apart. Feeds the
/// `neighbours` of `cpu.contention`.
public final class SchedProbe: Probe {
    public typealias Result = SchedResult

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: SchedObject.name, checks: ["cpu.contention"], programTypes: ["raw_tracepoint"],
            mapTypes: ["hash", "percpu_array"], helpers: ["probe_read_kernel"], tracepoints: ["sched/sched_switch"],
            needsTracefs: false),
        programs: [.pgnSchedBtf] as [SchedObject.Program],
        rawTracepointPrograms: [.pgnSchedRaw] as [SchedObject.Program])
    public static let v1Controller = CgroupRef.Kind.memoryV1

    public let object: BPFObject

    public init(object: BPFObject) { self.object = object }

    /// Removes the slot's neighbours. Its counters are differenced by the window; a CPU that
    /// still remembers one of its tasks forgets it at that CPU's next switches.
    public func clear(slot: Int) throws(BPFError) {
        let takers = try object.map(SchedObject.Map.schedTakers)
        for key in try takers.keys(pgn_sched_taker_key.self) where key.target == UInt32(slot) {
            try takers.delete(key)
        }
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: SchedResult] { try Self.read(object, drain: drain) }

    // MARK: Windows

    /// Per slot: the counters of the previous reading.
    public struct Baseline: Sendable {
        var slots: [Int: SchedResult] = [:]
    }

    public static var initialBaseline: Baseline { Baseline() }

    /// Counters become differences; the neighbours (drained) pass.
    public static func window(_ cumulative: [Int: SchedResult], baseline: inout Baseline) -> [Int: SchedResult] {
        var result: [Int: SchedResult] = [:]
        for (slot, now) in cumulative {
            let before = baseline.slots[slot] ?? SchedResult()
            var window = now
            window.waits = WindowBaseline.delta(now.waits, before.waits)
            window.resumed = WindowBaseline.delta(now.resumed, before.resumed)
            window.left = WindowBaseline.delta(now.left, before.left)
            window.takenNs = WindowBaseline.delta(now.takenNs, before.takenNs)
            window.ownNs = WindowBaseline.delta(now.ownNs, before.ownNs)
            window.throttledNs = WindowBaseline.delta(now.throttledNs, before.throttledNs)
            var remembered = now
            remembered.neighbours = []
            baseline.slots[slot] = remembered
            if window.waits > 0 || window.takenNs > 0 || window.ownNs > 0 || window.throttledNs > 0
                || !window.neighbours.isEmpty
            {
                result[slot] = window
            }
        }
        return result
    }

    /// Waits followed: target tasks switched out while runnable.
    public static func events(in results: [Int: SchedResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { $0 &+ $1.waits }
    }

    // MARK: Decoding

    /// The maps as they are; `drain` takes the neighbour entries out (per-window reading). The
    /// per-CPU counters are summed wrapping (the kernel's u64 wrap the same way).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: SchedResult] {
        var results: [Int: SchedResult] = [:]
        let counts = try object.map(SchedObject.Map.schedCounts)
        for index in 0..<Int(PGN_MAX_TARGETS) {
            var result = SchedResult()
            for c in try counts.lookupPerCPU(UInt32(index), as: pgn_sched_counts.self) ?? [] {
                result.waits &+= c.waits
                result.resumed &+= c.resumed
                result.left &+= c.left
                result.takenNs &+= c.taken_ns
                result.ownNs &+= c.own_ns
                result.throttledNs &+= c.throttled_ns
            }
            if result.waits > 0 || result.takenNs > 0 || result.ownNs > 0 || result.throttledNs > 0 {
                results[index] = result
            }
        }
        let takers = try object.map(SchedObject.Map.schedTakers)
        for (key, value) in try drain
            ? takers.drain(pgn_sched_taker_key.self, pgn_sched_taker_value.self)
            : takers.entries(pgn_sched_taker_key.self, pgn_sched_taker_value.self)
        where Int(key.target) < Int(PGN_MAX_TARGETS) {
            let ref = CgroupRef(id: key.cgroup_id, kind: CgroupRef.Kind(rawValue: key.kind) ?? .v2)
            results[Int(key.target), default: SchedResult()].neighbours.append(
                .init(cgroup: ref, nanoseconds: value.ns, intervals: value.intervals))
        }
        for index in results.keys {
            results[index]!.neighbours.sort { ($0.nanoseconds, $1.cgroup.id) > ($1.nanoseconds, $0.cgroup.id) }
        }
        return results
    }
}

extension ProbeResults {
    /// The sched probe's results by slot.
    public var sched: [Int: SchedResult] {
        get { self[SchedProbe.self] }
        set { self[SchedProbe.self] = newValue }
    }
}

/// sched: what one target's runnable tasks lost to others on their CPUs. Times in nanoseconds.
public struct SchedResult: Sendable, Equatable {
    /// A cgroup that ran while one of the target's tasks waited on the same CPU.
    public struct Neighbour: Sendable, Equatable {
        /// Its cgroup (memory controller's hierarchy on v1 and hybrid nodes, unified on v2).
        public var cgroup: CgroupRef
        /// CPU time it took meanwhile.
        public var nanoseconds: UInt64
        /// Context switches that ended such a time.
        public var intervals: UInt64

        /// A neighbour.
        public init(cgroup: CgroupRef, nanoseconds: UInt64, intervals: UInt64) {
            self.cgroup = cgroup
            self.nanoseconds = nanoseconds
            self.intervals = intervals
        }
    }

    /// Target tasks switched out while runnable, followed until they ran again or left the CPU.
    public var waits: UInt64 = 0
    /// Of those, ended by the task running again on that CPU.
    public var resumed: UInt64 = 0
    /// Ended otherwise: it migrated, the CPU went idle, or the pid was gone.
    public var left: UInt64 = 0
    /// Charged to other cgroups (the sum of `neighbours` over the same window).
    public var takenNs: UInt64 = 0
    /// Taken by other tasks of the target's own cgroup.
    public var ownNs: UInt64 = 0
    /// Waited while the target's run queue was throttled by its own CFS quota.
    public var throttledNs: UInt64 = 0
    /// By time taken, most first.
    public var neighbours: [Neighbour] = []

    /// An empty result.
    public init() {}
}
