import HostFacts
import PGNodeModel

/// The run and run-queue wait of one role's processes in a window.
public struct RoleSchedTime: Sendable, Equatable {
    /// `client backend`, `autovacuum worker`, `postmaster`, …; `other` for a process that is not
    /// one of the server's.
    public var role: String
    /// Its processes seen in the window.
    public var processes: Int
    /// Time they ran, in nanoseconds.
    public var runNanoseconds: Int64
    /// Time they waited for a CPU, in nanoseconds.
    public var waitNanoseconds: Int64

    /// A role's time.
    public init(role: String, processes: Int, runNanoseconds: Int64, waitNanoseconds: Int64) {
        self.role = role
        self.processes = processes
        self.runNanoseconds = runNanoseconds
        self.waitNanoseconds = waitNanoseconds
    }
}

/// Who ran on the CPUs while the container's runnable tasks waited for them (the sched probe's
/// `sched_switch` program, over the window), its cgroups named.
public struct CPUNeighbourReport: Sendable, Equatable {
    /// A cgroup that took CPU time from the container's waiting tasks.
    public struct Neighbour: Sendable, Equatable {
        /// Its cgroup path (or `cgroup id N (gone)` when it could not be named).
        public var cgroup: String
        /// Its container, when it is one.
        public var containerID: String?
        /// Its pod, when known.
        public var podName: String?
        /// Its namespace, when known.
        public var namespace: String?
        /// CPU time it ran while one of the container's tasks waited on that CPU, in nanoseconds.
        public var nanoseconds: Int64

        /// A neighbour.
        public init(cgroup: String, containerID: String?, podName: String?, namespace: String?, nanoseconds: Int64) {
            self.cgroup = cgroup
            self.containerID = containerID
            self.podName = podName
            self.namespace = namespace
            self.nanoseconds = nanoseconds
        }
    }

    /// Neighbours, in any order.
    public var neighbours: [Neighbour]
    /// Time taken by the container's own other tasks, in nanoseconds.
    public var ownNanoseconds: Int64
    /// Time the container's tasks waited while its own CFS quota throttled their run queue, in
    /// nanoseconds (cpu.throttling's, not a neighbour's).
    public var throttledNanoseconds: Int64
    /// Waits followed: the container's tasks switched out while runnable.
    public var waits: Int64

    /// A report.
    public init(neighbours: [Neighbour], ownNanoseconds: Int64, throttledNanoseconds: Int64, waits: Int64) {
        self.neighbours = neighbours
        self.ownNanoseconds = ownNanoseconds
        self.throttledNanoseconds = throttledNanoseconds
        self.waits = waits
    }
}

/// What `cpu.contention` looks at for one container: its processes' schedstat over the window,
/// and, from the sched probe, who took the CPU.
public struct CPUContentionFacts: Sendable, Equatable {
    /// The container's processes over the window (two readings of their schedstat and of the
    /// node's /proc/stat), or why there is none.
    public var window: Result<SchedWindow, CheckUnavailable>
    /// The same time by role.
    public var perRole: [RoleSchedTime]
    /// Periods in the window in which the container's own CFS quota throttled it
    /// (`cpu.throttling`'s `throttled_periods`); nil when unknown. Its tasks stay queued while
    /// throttled, so that time is in their run-queue wait too.
    public var throttledPeriods: Int64?
    /// The time its run queues were throttled in the window, in nanoseconds; nil when unknown.
    public var throttledNanoseconds: Int64?
    /// Who took the CPU (the sched probe), or why that is not known.
    public var neighbours: Result<CPUNeighbourReport, CheckUnavailable>

    /// Why the neighbours are not known when nothing says more.
    public static let noNeighbours = CheckUnavailable("the sched probe did not observe this container")

    /// The facts for one container.
    public init(
        window: Result<SchedWindow, CheckUnavailable>, perRole: [RoleSchedTime], throttledPeriods: Int64?,
        throttledNanoseconds: Int64?, neighbours: Result<CPUNeighbourReport, CheckUnavailable> = .failure(noNeighbours)
    ) {
        self.window = window
        self.perRole = perRole
        self.throttledPeriods = throttledPeriods
        self.throttledNanoseconds = throttledNanoseconds
        self.neighbours = neighbours
    }
}

/// `cpu.contention`: do the container's processes wait for a CPU because something else has it?
/// A runnable backend that waits on a run queue does nothing for its query, and one waiting while
/// it holds a lock makes others wait too. The wait is read from each process's schedstat (time
/// runnable but not running) and set against the time they ran; the node's steal time says how
/// much the hypervisor took. Who took the CPU comes from the sched probe (`neighbours`), when it
/// runs: the cgroups that ran on a CPU while one of the container's tasks waited there.
public enum CPUContentionCheck {
    /// The check id.
    public static let id = "cpu.contention"

    /// Above this share of runnable time (run + wait) spent waiting, a warning: for every 9 ms a
    /// backend runs it waits more than 1 ms for a CPU — on a query made of many short steps
    /// (an index lookup, a lock, a WAL write) each step may wait a whole time slice of the
    /// neighbour that has the CPU (up to a few ms), which shows in every query's latency.
    public static let warningWaitShare = 0.10
    /// Above this share, critical: the processes wait for a CPU as long as they run; every query
    /// takes at least twice its CPU time.
    public static let criticalWaitShare = 0.5
    /// Below this wait per second of wall time, never more than ok: an idle container's few
    /// wake-ups may wait a large share of their tiny run time, which costs its queries nothing
    /// one could measure (50 ms per second is 5 % of one CPU's time).
    public static let minimumWaitPerSecond = 0.05
    /// The most neighbours listed in the evidence, most time first: the rest (a node's many
    /// short-lived cgroups that ran a few ms each) are counted in `neighbours_omitted`.
    public static let maxNeighbours = 20
    /// Above this share of the node's CPU time stolen by the hypervisor, a warning: the node's
    /// virtual CPUs were not running for more than a tenth of the time they wanted to, whoever
    /// on the node wanted them.
    public static let warningStealRatio = 0.10
    /// Below this CPU demand (run plus run-queue wait, in CPU seconds per second of wall time),
    /// high steal is said but is no warning for this container: steal delays what wants to run,
    /// and an idle container's few wake-ups lose nothing one could measure to it (the node's other
    /// containers with demand carry the warning).
    public static let minimumStealDemandPerSecond = 0.05

    /// The observation for one container.
    public static func evaluate(_ facts: CPUContentionFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: CPUContentionFacts) -> Observation {
        let window: SchedWindow
        switch facts.window {
        case .failure(let why): return .unavailable(check: id, reason: why.reason)
        case .success(let w): window = w
        }
        let seconds = Double(window.durationNanoseconds) / 1e9
        let run = window.runNanoseconds
        let wait = window.waitNanoseconds
        let runnable = run.addingSaturating(wait)
        let share: Double? = runnable > 0 ? Double(wait) / Double(runnable) : nil
        let waitPerSecond: Double? = seconds > 0 ? Double(wait) / 1e9 / seconds : nil
        let demandPerSecond: Double? = seconds > 0 ? Double(runnable) / 1e9 / seconds : nil
        let steal: Double? =
            if let ticks = window.nodeTicks, let stolen = window.stealTicks, ticks > 0 {
                Double(stolen) / Double(ticks)
            } else { nil }

        let roles = facts.perRole.sorted {
            $0.waitNanoseconds != $1.waitNanoseconds ? $0.waitNanoseconds > $1.waitNanoseconds : $0.role < $1.role
        }
        var evidence: JSONObject = [
            "window_ns": .int(window.durationNanoseconds),
            "processes": .int(Int64(window.processes)),
            "processes_born": .int(Int64(window.born)),
            "processes_exited": .int(Int64(window.exited)),
            "run_ns": .int(run),
            "run_seconds": double(Double(run) / 1e9, places: 6),
            "run_queue_wait_ns": .int(wait),
            "run_queue_wait_seconds": double(Double(wait) / 1e9, places: 6),
            "run_queue_wait_per_second": double(waitPerSecond, places: 4),
            "run_queue_wait_share": double(share, places: 4),
            "steal_ratio": double(steal, places: 4),
            "cpu_demand_per_second": double(demandPerSecond, places: 4),
            "per_role": .array(
                roles.map { r in
                    let total = r.runNanoseconds.addingSaturating(r.waitNanoseconds)
                    return .object([
                        "role": .string(r.role), "processes": .int(Int64(r.processes)),
                        "run_seconds": double(Double(r.runNanoseconds) / 1e9, places: 6),
                        "wait_seconds": double(Double(r.waitNanoseconds) / 1e9, places: 6),
                        "wait_share": double(total > 0 ? Double(r.waitNanoseconds) / Double(total) : nil, places: 4),
                    ])
                }),
            "throttled_periods": .from(facts.throttledPeriods),
            "throttled_seconds": double(facts.throttledNanoseconds.map { Double($0) / 1e9 }, places: 6),
        ]
        if window.unread > 0 { evidence["processes_unread"] = .int(Int64(window.unread)) }
        var neighbours: [CPUNeighbourReport.Neighbour] = []
        switch facts.neighbours {
        case .success(let report):
            let sorted = report.neighbours.sorted {
                ($0.nanoseconds, $1.cgroup) > ($1.nanoseconds, $0.cgroup)
            }
            neighbours = Array(sorted.prefix(maxNeighbours))
            if sorted.count > maxNeighbours {
                let rest = sorted.dropFirst(maxNeighbours)
                evidence["neighbours_omitted"] = .int(Int64(rest.count))
                evidence["neighbours_omitted_seconds"] = double(
                    Double(rest.reduce(Int64(0)) { $0.addingSaturating($1.nanoseconds) }) / 1e9, places: 6)
            }
            evidence["neighbours"] = .array(
                neighbours.map {
                    .object([
                        "cgroup": .string($0.cgroup), "container.id": .from($0.containerID),
                        "k8s.pod.name": .from($0.podName), "k8s.namespace.name": .from($0.namespace),
                        "cpu_seconds_taken": double(Double($0.nanoseconds) / 1e9, places: 6),
                    ])
                })
            evidence["cpu_seconds_taken_by_own_processes"] = double(Double(report.ownNanoseconds) / 1e9, places: 6)
            evidence["throttled_wait_seconds"] = double(Double(report.throttledNanoseconds) / 1e9, places: 6)
            evidence["waits_followed"] = .int(report.waits)
        case .failure(let why):
            evidence["neighbours"] = .null
            evidence["neighbours_unavailable"] = .string(why.reason)
        }

        guard window.durationNanoseconds > 0 else {
            return .unavailable(
                check: id, reason: "the window has no length (\(window.durationNanoseconds) ns)", evidence: evidence)
        }
        let exitedNote =
            window.exited > 0
            ? " \(window.exited) process(es) exited during the window; their last part is not counted." : ""
        let stealAbove = (steal ?? 0) > warningStealRatio
        let stealHigh = stealAbove && (demandPerSecond ?? 0) >= minimumStealDemandPerSecond
        let stealText =
            (steal.map { " The node's steal time was \(format($0 * 100, places: 1)) %." } ?? "")
            + (stealAbove && !stealHigh
                ? " The container asked for too little CPU in the window (\(format(demandPerSecond ?? 0, places: 3)) CPU "
                    + "seconds per second) for the steal to cost it anything one could measure." : "")
        let remedyText = remedy(steal: stealHigh)

        guard let share, let waitPerSecond else {
            return Observation(
                check: id, severity: stealHigh ? .warning : .ok,
                summary: "No CPU demand in the window: the container's processes neither ran nor waited.\(stealText)",
                evidence: evidence, remedy: stealHigh ? remedyText : "")
        }
        let top =
            roles.first.map { " Most of it in \($0.role) (\(format(Double($0.waitNanoseconds) / 1e9, places: 2)) s)." }
            ?? ""
        let taker =
            neighbours.first.map { n in
                let who =
                    n.podName.map { pod in n.namespace.map { "pod \($0)/\(pod)" } ?? "pod \(pod)" }
                    ?? n.containerID.map { "container \($0)" } ?? n.cgroup
                return " The CPU went first to \(who) (\(format(Double(n.nanoseconds) / 1e9, places: 2)) s)."
            } ?? ""
        let sentence =
            "The container's processes waited \(format(Double(wait) / 1e9, places: 2)) s for a CPU in the window "
            + "(\(format(waitPerSecond, places: 3)) s per second), \(format(share * 100, places: 1)) % of the time "
            + "they were runnable.\(top)\(taker)\(stealText)\(exitedNote)"

        let contended = share > warningWaitShare && waitPerSecond >= minimumWaitPerSecond
        if contended, let periods = facts.throttledPeriods, periods > 0 {
            let throttled = facts.throttledNanoseconds.map { " (\(format(Double($0) / 1e9, places: 2)) s)" } ?? ""
            return Observation(
                check: id, severity: stealHigh ? .warning : .info,
                summary:
                    sentence
                    + " Its own CPU quota throttled it in \(periods) period(s)\(throttled) of the window, and a "
                    + "throttled task waits on its run queue too: see cpu.throttling before blaming a neighbour.",
                evidence: evidence, remedy: remedyText)
        }
        if contended {
            return Observation(
                check: id, severity: share > criticalWaitShare ? .critical : .warning, summary: sentence,
                evidence: evidence, remedy: remedyText)
        }
        return Observation(
            check: id, severity: stealHigh ? .warning : .ok, summary: sentence, evidence: evidence,
            remedy: stealHigh ? remedyText : "")
    }

    /// What to change: CPUs of its own, honest requests for the neighbours, a node without steal.
    static func remedy(steal: Bool) -> String {
        var text =
            "Give the database CPUs of its own: a Guaranteed pod (requests equal to limits) with an integer CPU "
            + "count and the kubelet's static CPU manager policy (--cpu-manager-policy=static). Make the neighbours' "
            + "CPU requests reflect what they use, so that the scheduler does not pack more work on the node than "
            + "its CPUs can run."
        if steal {
            text +=
                " The hypervisor took more than a tenth of the node's CPU time: move to a node type without CPU "
                + "steal (dedicated or non-burstable instances)."
        }
        return text
    }

    static func double(_ value: Double?, places: Int) -> JSONValue {
        CPUThrottlingCheck.double(value, places: places)
    }

    static func format(_ value: Double, places: Int) -> String {
        CPUThrottlingCheck.format(value, places: places)
    }
}
