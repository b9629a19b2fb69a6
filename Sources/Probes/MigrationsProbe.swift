import HostFacts
import ProbeObjects

/// The migrations probe (`bpf/migrations.bpf.c`): `sched_migrate_task` (tp_btf, or raw_tp where
/// tp_btf cannot be used), per target and per thread: how often the scheduler moved its tasks
/// between CPUs, and how many of those moves left the last-level cache or the NUMA node. The
/// split is made in the kernel against the node's topology, which this type writes into the
/// object's `mig_cpu_domains` array when it is created (`CPUTopology.read` of the node's sysfs).
/// Counts are cumulative (windows subtract them); the per-thread entries are drained each
/// window. Feeds `cpu.migrations`.
public final class MigrationsProbe: Probe {
    public typealias Result = MigrationsResult

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: MigrationsObject.name, checks: ["cpu.migrations"], programTypes: ["raw_tracepoint"],
            mapTypes: ["hash", "array"], helpers: ["probe_read_kernel"],
            tracepoints: ["sched/sched_migrate_task"], needsTracefs: false),
        programs: [.pgnMigBtf] as [MigrationsObject.Program],
        rawTracepointPrograms: [.pgnMigRaw] as [MigrationsObject.Program])
    public static let v1Controller = CgroupRef.Kind.memoryV1

    public let object: BPFObject

    /// The probe over `object`, its CPU domains filled from this node's sysfs (a topology that
    /// cannot be read leaves every migration in `unknown`).
    public init(object: BPFObject) {
        self.object = object
        if let topology = try? CPUTopology.read(host: HostRoot()) { try? setTopology(topology) }
    }

    /// Writes `topology` into the kernel's `mig_cpu_domains` (CPU → LLC id + 1, node + 1; 0 for
    /// unknown). CPUs at or past `PGN_MAX_CPUS` stay unknown. Tests give it a topology this
    /// machine does not have to exercise the kernel's split.
    public func setTopology(_ topology: CPUTopology) throws(BPFError) {
        let domains = try object.map(MigrationsObject.Map.migCpuDomains)
        for cpu in 0..<Int(PGN_MAX_CPUS) {
            let llc = topology.lastLevelCache[cpu].map { UInt32(truncatingIfNeeded: $0) &+ 1 } ?? 0
            let node = topology.node[cpu].map { UInt32(truncatingIfNeeded: $0) &+ 1 } ?? 0
            // Every CPU, so that a second topology replaces the first entirely (a few thousand
            // map writes, once per session).
            try domains.update(UInt32(cpu), pgn_cpu_domain(llc: llc, node: node))
        }
    }

    public func clear(slot: Int) throws(BPFError) {
        try object.map(MigrationsObject.Map.migCounts).update(UInt32(slot), pgn_mig_counts())
        let threads = try object.map(MigrationsObject.Map.migByPid)
        for key in try threads.keys(pgn_mig_key.self) where key.target == UInt32(slot) {
            try threads.delete(key)
        }
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: MigrationsResult] { try Self.read(object, drain: drain) }

    // MARK: Windows

    /// Per slot: the counts of the previous reading.
    public struct Baseline: Sendable {
        var counts: [Int: MigrationCounts] = [:]
    }

    public static var initialBaseline: Baseline { Baseline() }

    /// Counts become differences; the drained threads pass.
    public static func window(_ cumulative: [Int: MigrationsResult], baseline: inout Baseline) -> [Int:
        MigrationsResult]
    {
        var result: [Int: MigrationsResult] = [:]
        for (slot, now) in cumulative {
            let before = baseline.counts[slot] ?? MigrationCounts()
            var window = now
            window.counts = now.counts.since(before)
            baseline.counts[slot] = now.counts
            if window.counts.migrations > 0 || !window.threads.isEmpty { result[slot] = window }
        }
        return result
    }

    public static func forget(slot: Int, baseline: inout Baseline) { baseline.counts[slot] = nil }

    /// Migrations.
    public static func events(in results: [Int: MigrationsResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { $0 &+ $1.counts.migrations }
    }

    /// The maps as they are; `drain` takes the per-thread entries out (per-window reading).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: MigrationsResult] {
        var results: [Int: MigrationsResult] = [:]
        let counts = try object.map(MigrationsObject.Map.migCounts)
        for index in 0..<Int(PGN_MAX_TARGETS) {
            guard let c = try counts.lookup(UInt32(index), as: pgn_mig_counts.self), c.migrations > 0 else { continue }
            results[index] = MigrationsResult(
                counts: MigrationCounts(
                    migrations: c.migrations, withinLLC: c.within_llc, crossLLC: c.cross_llc, crossNUMA: c.cross_numa,
                    unknown: c.unknown, unattributed: c.unattributed))
        }
        let threads = try object.map(MigrationsObject.Map.migByPid)
        for (key, value) in try drain
            ? threads.drain(pgn_mig_key.self, pgn_mig_value.self)
            : threads.entries(pgn_mig_key.self, pgn_mig_value.self)
        {
            guard key.target < PGN_MAX_TARGETS else { continue }
            results[Int(key.target), default: MigrationsResult()].threads.append(
                MigrationEntry(
                    pid: key.pid, tgid: value.tgid, comm: cString(value.comm), migrations: value.migrations,
                    crossLLC: value.cross_llc, crossNUMA: value.cross_numa))
        }
        for index in results.keys { results[index]!.threads.sort { ($0.migrations, $0.pid) > ($1.migrations, $1.pid) } }
        return results
    }
}

extension ProbeResults {
    /// The migrations probe's counts and threads by slot.
    public var migrations: [Int: MigrationsResult] {
        get { self[MigrationsProbe.self] }
        set { self[MigrationsProbe.self] = newValue }
    }
}

/// migrations: one target's window.
public struct MigrationsResult: Sendable, Equatable {
    /// Its migrations, by class.
    public var counts: MigrationCounts
    /// Its threads that moved, most moved first.
    public var threads: [MigrationEntry]

    public init(counts: MigrationCounts = MigrationCounts(), threads: [MigrationEntry] = []) {
        self.counts = counts
        self.threads = threads
    }
}

/// Migrations of one target by class (exclusive: the four classes add up to `migrations`).
public struct MigrationCounts: Sendable, Equatable {
    public var migrations: UInt64 = 0
    /// Between CPUs that share the last-level cache.
    public var withinLLC: UInt64 = 0
    /// To another last-level cache on the same NUMA node.
    public var crossLLC: UInt64 = 0
    /// To another NUMA node.
    public var crossNUMA: UInt64 = 0
    /// From or to a CPU whose domains were not known.
    public var unknown: UInt64 = 0
    /// Counted here but not per thread (the per-thread map was full).
    public var unattributed: UInt64 = 0

    public init(
        migrations: UInt64 = 0, withinLLC: UInt64 = 0, crossLLC: UInt64 = 0, crossNUMA: UInt64 = 0, unknown: UInt64 = 0,
        unattributed: UInt64 = 0
    ) {
        self.migrations = migrations
        self.withinLLC = withinLLC
        self.crossLLC = crossLLC
        self.crossNUMA = crossNUMA
        self.unknown = unknown
        self.unattributed = unattributed
    }

    /// These cumulative counts less `before` (a count that went back starts again).
    func since(_ before: MigrationCounts) -> MigrationCounts {
        MigrationCounts(
            migrations: WindowBaseline.delta(migrations, before.migrations),
            withinLLC: WindowBaseline.delta(withinLLC, before.withinLLC),
            crossLLC: WindowBaseline.delta(crossLLC, before.crossLLC),
            crossNUMA: WindowBaseline.delta(crossNUMA, before.crossNUMA),
            unknown: WindowBaseline.delta(unknown, before.unknown),
            unattributed: WindowBaseline.delta(unattributed, before.unattributed))
    }
}

/// migrations: one thread's moves in one target.
public struct MigrationEntry: Sendable, Equatable {
    public var pid: UInt32
    public var tgid: UInt32
    public var comm: String
    public var migrations: UInt64
    public var crossLLC: UInt64
    public var crossNUMA: UInt64

    public init(pid: UInt32, tgid: UInt32, comm: String, migrations: UInt64, crossLLC: UInt64, crossNUMA: UInt64) {
        self.pid = pid
        self.tgid = tgid
        self.comm = comm
        self.migrations = migrations
        self.crossLLC = crossLLC
        self.crossNUMA = crossNUMA
    }
}
