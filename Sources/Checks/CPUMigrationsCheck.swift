import PGNodeModel

/// What the migrations probe saw of one container over the window, with the topology it was
/// classified against and the container's cpuset.
public struct MigrationsReport: Sendable, Equatable {
    /// Migrations of the processes of one PostgreSQL role (or of the container's other processes).
    public struct Role: Sendable, Equatable {
        /// `client backend`, `autovacuum worker`, …; `other` for processes that are not a server's.
        public var role: String
        /// Processes of this role that moved.
        public var processes: Int64
        /// Their migrations, all classes.
        public var migrations: Int64
        /// … of which to another last-level cache of the same NUMA node.
        public var crossLLC: Int64
        /// … of which to another NUMA node.
        public var crossNUMA: Int64

        /// One role's migrations.
        public init(role: String, processes: Int64, migrations: Int64, crossLLC: Int64, crossNUMA: Int64) {
            self.role = role
            self.processes = processes
            self.migrations = migrations
            self.crossLLC = crossLLC
            self.crossNUMA = crossNUMA
        }
    }

    /// The container's cpuset and the domains it spans.
    public struct CPUSet: Sendable, Equatable {
        /// Its CPUs in the kernel's form (`0-3,8`).
        public var cpus: String
        /// How many CPUs.
        public var count: Int64
        /// Last-level caches and NUMA nodes those CPUs span.
        public var lastLevelCaches: Int64
        public var nodes: Int64

        /// A cpuset.
        public init(cpus: String, count: Int64, lastLevelCaches: Int64, nodes: Int64) {
            self.cpus = cpus
            self.count = count
            self.lastLevelCaches = lastLevelCaches
            self.nodes = nodes
        }
    }

    /// All migrations of the container's tasks in the window.
    public var migrations: Int64
    /// … between CPUs sharing a last-level cache.
    public var withinLLC: Int64
    /// … to another last-level cache of the same NUMA node.
    public var crossLLC: Int64
    /// … to another NUMA node.
    public var crossNUMA: Int64
    /// … from or to a CPU of unknown topology.
    public var unknown: Int64
    /// Per role (any order).
    public var roles: [Role]
    /// The window, in nanoseconds.
    public var windowNanoseconds: Int64
    /// Last-level caches and NUMA nodes of the node (0 when unknown).
    public var nodeLastLevelCaches: Int64
    public var nodeNUMANodes: Int64
    /// The container's cpuset, or why it could not be read.
    public var cpuset: Result<CPUSet, CheckUnavailable>

    /// A report.
    public init(
        migrations: Int64, withinLLC: Int64, crossLLC: Int64, crossNUMA: Int64, unknown: Int64, roles: [Role],
        windowNanoseconds: Int64, nodeLastLevelCaches: Int64, nodeNUMANodes: Int64,
        cpuset: Result<CPUSet, CheckUnavailable>
    ) {
        self.migrations = migrations
        self.withinLLC = withinLLC
        self.crossLLC = crossLLC
        self.crossNUMA = crossNUMA
        self.unknown = unknown
        self.roles = roles
        self.windowNanoseconds = windowNanoseconds
        self.nodeLastLevelCaches = nodeLastLevelCaches
        self.nodeNUMANodes = nodeNUMANodes
        self.cpuset = cpuset
    }
}

/// `cpu.migrations`: how often the scheduler moved the container's tasks between CPUs, and how
/// many of those moves left the last-level cache or the NUMA node. A moved backend finds its
/// working set (its private memory, the catalog caches, the shared buffers and locks it touches)
/// cold in the new cache; across NUMA nodes its memory also stays behind, remote.
public enum CPUMigrationsCheck {
    /// The check id.
    public static let id = "cpu.migrations"
    /// The roles whose moves cost queries their latency: the processes that run them.
    public static let backendRoles: Set<String> = ["client backend", "parallel worker"]
    /// Backends' migrations to another last-level cache (same node) per second at or above which
    /// the check warns. A backend moved to another LLC refills its working set, a few MiB, from
    /// memory: on the order of 100 µs to 1 ms of cache misses each time. At 100 moves a second
    /// that is 1–10 % of one CPU spent refilling caches, and each move lands on one query: the
    /// level at which short queries mixed with long ones saw their latency triple in the
    /// migrations measurements pgnode's practice started from. Below it the moves are `info`, and
    /// `ok` when none left its last-level cache or NUMA node.
    public static let warningCrossLLCPerSecond = 100.0
    /// Backends' migrations to another NUMA node per second at or above which the check warns
    /// (10 a second): after such a move every access to the backend's memory is remote (about
    /// 1.5–2× the latency) until NUMA balancing moves pages or the task back, so one move costs
    /// for as long as it stays; ten times fewer moves than across LLCs cost as much.
    public static let warningCrossNUMAPerSecond = 10.0

    /// The observation for one container.
    public static func evaluate(_ report: MigrationsReport) -> Observation {
        observe(report).flaggingSaturatedValues()
    }

    static func observe(_ report: MigrationsReport) -> Observation {
        let roles = report.roles.sorted {
            $0.migrations != $1.migrations ? $0.migrations > $1.migrations : $0.role < $1.role
        }
        let seconds = Double(report.windowNanoseconds) / 1e9
        let perSecond: (Int64) -> Double? = { count in
            seconds > 0 ? Double(count) / seconds : nil
        }
        var evidence: JSONObject = [
            "migrations": .int(report.migrations),
            "migrations_per_second": CPUThrottlingCheck.double(perSecond(report.migrations), places: 2),
            "within_llc": .int(report.withinLLC),
            "cross_llc": .int(report.crossLLC),
            "cross_numa": .int(report.crossNUMA),
            "unknown_topology": .int(report.unknown),
            "window_ns": .int(report.windowNanoseconds),
            "node_llcs": .int(report.nodeLastLevelCaches),
            "node_numa_nodes": .int(report.nodeNUMANodes),
            "per_role": .array(
                roles.map {
                    .object([
                        "role": .string($0.role), "processes": .int($0.processes), "migrations": .int($0.migrations),
                        "migrations_per_second": CPUThrottlingCheck.double(perSecond($0.migrations), places: 2),
                        "cross_llc": .int($0.crossLLC), "cross_numa": .int($0.crossNUMA),
                    ])
                }),
        ]
        switch report.cpuset {
        case .success(let set):
            evidence["cpuset"] = .object([
                "cpus": .string(set.cpus), "count": .int(set.count), "llcs": .int(set.lastLevelCaches),
                "numa_nodes": .int(set.nodes),
            ])
        case .failure(let why):
            evidence["cpuset"] = .object(["reason": .string(why.reason)])
        }
        guard report.windowNanoseconds > 0 else {
            return .unavailable(
                check: id, reason: "the observation window has no length (\(report.windowNanoseconds) ns)",
                evidence: evidence)
        }
        guard report.migrations > 0 else {
            return Observation(
                check: id, severity: .ok, summary: "The scheduler moved none of this container's tasks between CPUs.",
                evidence: evidence)
        }
        let backends = roles.filter { backendRoles.contains($0.role) }
        let backendCrossLLC = backends.map(\.crossLLC).saturatingSum()
        let backendCrossNUMA = backends.map(\.crossNUMA).saturatingSum()
        let crossLLCRate = perSecond(backendCrossLLC) ?? 0
        let crossNUMARate = perSecond(backendCrossNUMA) ?? 0
        let rate = perSecond(report.migrations) ?? 0
        var summary =
            "The scheduler moved this container's tasks between CPUs \(report.migrations) time(s) "
            + "(\(CPUThrottlingCheck.format(rate, places: 1))/s): \(report.crossLLC) to another last-level cache, "
            + "\(report.crossNUMA) to another NUMA node"
        if let top = roles.first { summary += "; most of them \(top.role) (\(top.migrations))" }
        summary += "."
        if case .success(let set) = report.cpuset, set.lastLevelCaches > 1 || set.nodes > 1 {
            summary +=
                " Its cpuset (\(set.cpus)) spans \(set.lastLevelCaches) last-level cache(s) and \(set.nodes) NUMA node(s)."
        }
        let remedy =
            "Give the pod CPUs of its own: Guaranteed QoS (requests equal to limits) with integer CPUs and the "
            + "kubelet's static CPU manager policy with the full-pcpus-only option, and the Topology Manager's "
            + "single-numa-node policy, so that its cpuset stays within one NUMA node (and, on nodes with several "
            + "LLCs per node, whole cores of one cache). Where the kernel exposes it "
            + "(/sys/kernel/debug/sched/migration_cost_ns, the sysctl kernel.sched_migration_cost_ns before 5.13), "
            + "a higher sched_migration_cost_ns makes the load balancer keep cache-hot tasks where they are."
        // Moves within one last-level cache cost little (the private L1/L2 only): `ok`, with the
        // counts in the evidence. `info` once some left their cache or node, `warning` when busy
        // backends did so often. (An idle container's few moves, now and then none, would
        // otherwise flip between `ok` and `info` window after window: news each time.)
        let severity: Severity =
            crossLLCRate >= warningCrossLLCPerSecond || crossNUMARate >= warningCrossNUMAPerSecond
            ? .warning : report.crossLLC.addingSaturating(report.crossNUMA) > 0 ? .info : .ok
        if severity == .warning {
            summary +=
                " Backends left their cache \(CPUThrottlingCheck.format(crossLLCRate, places: 1))/s and their NUMA node "
                + "\(CPUThrottlingCheck.format(crossNUMARate, places: 1))/s."
        }
        return Observation(check: id, severity: severity, summary: summary, evidence: evidence, remedy: remedy)
    }
}
