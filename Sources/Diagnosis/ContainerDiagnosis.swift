import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

/// What one observation window of the probes produced, for every target at once.
public struct ProbeWindow: Sendable {
    /// Results by target index.
    public var results: ProbeResults
    /// Every probe's status.
    public var statuses: [ProbeStatus]
    /// How long the probes observed, in nanoseconds.
    public var nanoseconds: Int64
    /// By target index: the highest `used` bytes of the target's /dev/shm sampled during the window.
    public var shmUsedPeakBytes: [Int: Int64]

    /// A window.
    public init(
        results: ProbeResults, statuses: [ProbeStatus], nanoseconds: Int64, shmUsedPeakBytes: [Int: Int64] = [:]
    ) {
        self.results = results
        self.statuses = statuses
        self.nanoseconds = nanoseconds
        self.shmUsedPeakBytes = shmUsedPeakBytes
    }
}

/// What the probe checks of every container of a window read besides the container's own files.
public struct WindowFacts: Sendable {
    /// The probes' window.
    public var window: ProbeWindow
    /// The node's cgroup hierarchies (to name the cgroups of I/O neighbours).
    public var layout: CgroupLayout
    /// The containers of the window, resolved (neighbours among them are named without a lookup).
    public var known: [Resolution]
    /// The kernel's page size.
    public var pageSize: Int
    /// Kernel timestamps to wall-clock time, sampled at the end of the window.
    public var clock: ProbeReports.Clock
    /// The node's disks.
    public var devices: [BlockNoiseReport.Device]
    /// `--query-text`: `query.latency` shows the slowest statements' text, not a hash.
    public var queryText: Bool

    /// Facts for a window.
    public init(
        window: ProbeWindow, layout: CgroupLayout, known: [Resolution], pageSize: Int, clock: ProbeReports.Clock,
        devices: [BlockNoiseReport.Device], queryText: Bool = false
    ) {
        self.queryText = queryText
        self.window = window
        self.layout = layout
        self.known = known
        self.pageSize = pageSize
        self.clock = clock
        self.devices = devices
    }
}

/// Runs every container-level check for one resolved container: gathers the facts (I/O at
/// this edge) and hands them to the pure checks. `step` is told what is being read before each
/// read, so that a diagnosis that does not finish in time can say where it was.
public enum ContainerDiagnosis {
    /// The checks `staticObservations` reports, in order.
    public static let staticChecks = [ShmSizeCheck.id, MemoryLimitCheck.id, MemoryBudgetCheck.id, HugePagesCheck.id]
    /// The checks of the window that need no probe (`cpu.throttling`: the cgroup's counters at
    /// both ends; `cpu.contention`: the processes' schedstat at both ends), reported for every
    /// container, with a probe slot or not. A probe may add to one (the sched probe names
    /// `cpu.contention`'s neighbours): it is still evaluated here, once.
    public static let windowChecks = [CPUThrottlingCheck.id, CPUContentionCheck.id]

    /// The checks the probes of `statuses` report themselves: theirs, less the window checks.
    public static func probeChecks(_ statuses: [ProbeStatus]) -> [String] {
        statuses.flatMap(\.checks).filter { !windowChecks.contains($0) }
    }

    /// Every check of one container for a window, in order: the static checks, `cpu.throttling`
    /// over `cpu` (the container's CPU cgroup between the window's two readings, or why there is
    /// none), `cpu.contention` over `sched` (its processes between the same two moments; the
    /// neighbours from the sched probe when it watches slot `slot`), then, when the container
    /// holds probe slot `slot` in `window`, the probe checks.
    public static func observations(
        _ resolution: Resolution, slot: Int?, host: HostRoot, window: WindowFacts?,
        cpu: Result<CPUCgroupWindow, CheckUnavailable> = .failure(CPUFactsReader.noWindow),
        sched: Result<SchedWindow, CheckUnavailable> = .failure(CPUContentionFactsReader.noWindow),
        step: (String) -> Void = { _ in }
    ) -> [Observation] {
        var observations = staticObservations(resolution, host: host, step: step)
        observations.append(CPUThrottlingCheck.evaluate(CPUFactsReader.facts(resolution, window: cpu)))
        // Its own namer: a cache shared with another container's thread (one that may still run,
        // abandoned) would be shared mutable state.
        let names = window.map { CgroupNames(host: host, layout: $0.layout, known: $0.known) }
        step("/proc for the roles of the processes (cpu.contention)")
        observations.append(
            CPUContentionCheck.evaluate(
                CPUContentionFactsReader.facts(
                    resolution, window: sched, cpu: cpu,
                    neighbours: CPUContentionFactsReader.neighbours(slot: slot, window: window?.window, names: names),
                    host: host)))
        if let slot, let window, let names {
            observations += probeObservations(
                resolution, index: slot, host: host, window: window.window, names: names, pageSize: window.pageSize,
                clock: window.clock, devices: window.devices, queryText: window.queryText, cpu: try? cpu.get(),
                step: step)
        }
        return observations
    }

    /// `shm.size` for the container's (first) server, `memory.limit`, `memory.budget` and
    /// `memory.hugepages`. The memory cgroup is read once: `shm.size`'s remedy and
    /// `memory.budget` weigh against the same limit that `memory.limit` reports.
    public static func staticObservations(
        _ resolution: Resolution, host: HostRoot, step: (String) -> Void = { _ in }
    ) -> [Observation] {
        var observations: [Observation] = []
        step("the container's memory cgroup (memory.limit)")
        let cgroup = MemoryFactsReader.read(resolution: resolution, host: host)
        let server = resolution.postgres.first
        let budget = server.map { MemoryBudgetFactsReader.facts(server: $0, cgroup: cgroup) }
        if let server {
            step("/dev/shm of process \(server.postmasterPID) (shm.size)")
            var facts = ShmFactsReader.facts(server: server, host: host)
            facts.memoryLimit = budget.flatMap(MemoryBudgetFactsReader.shmLimit)
            var o = ShmSizeCheck.evaluate(facts)
            o.evidence["postmaster_pid"] = .int(Int64(server.postmasterPID))
            o.evidence["data_directory"] = .from(server.dataDirectory)
            observations.append(o)
        } else {
            observations.append(
                .unavailable(check: ShmSizeCheck.id, reason: "no PostgreSQL server was found in the container"))
        }
        observations.append(
            MemoryLimitCheck.evaluate(MemoryFactsReader.facts(resolution: resolution, host: host, cgroup: cgroup)))
        guard let server, let budget else {
            let reason = "no PostgreSQL server was found in the container"
            return observations + [
                .unavailable(check: MemoryBudgetCheck.id, reason: reason),
                .unavailable(check: HugePagesCheck.id, reason: reason),
            ]
        }
        observations.append(MemoryBudgetCheck.evaluate(budget))
        step("/proc/\(server.postmasterPID)/smaps and the hugetlb cgroup (memory.hugepages)")
        var hugePages = HugePagesCheck.evaluate(
            HugePagesFactsReader.facts(server: server, resolution: resolution, host: host))
        hugePages.evidence["postmaster_pid"] = .int(Int64(server.postmasterPID))
        observations.append(hugePages)
        return observations
    }

    /// The checks of every probe of the window (`ProbeCheckFeeding`), for the target at `index`
    /// (`cpu`: its CPU cgroup over the same window, for `query.latency`'s CPU wait);
    /// a probe that did not run, or cannot watch this target, gives `unavailable` with its reason.
    public static func probeObservations(
        _ resolution: Resolution, index: Int, host: HostRoot, window: ProbeWindow, names: CgroupNames, pageSize: Int,
        clock: ProbeReports.Clock, devices: [BlockNoiseReport.Device], queryText: Bool = false,
        cpu: CPUCgroupWindow? = nil, step: (String) -> Void = { _ in }
    ) -> [Observation] {
        // Name the processes the probes saw, including those born during the window (read from
        // /proc now, while they still run).
        step("/proc for the names of the processes the probes saw")
        var processNames = ProcessNames(resolution)
        let feeding = window.statuses.map { ProbeCatalog.named($0.name) as? any ProbeCheckFeeding.Type }
        processNames.learn(feeding.flatMap { $0?.processes(slot: index, in: window.results) ?? [] }, host: host)
        return withoutActuallyEscaping(step) { step in
            let context = ProbeCheckContext(
                resolution: resolution, host: host, window: window, processNames: processNames, cgroupNames: names,
                pageSize: pageSize, clock: clock, devices: devices, step: step, queryText: queryText, cpu: cpu)
            return observations(of: zip(window.statuses, feeding), slot: index, context)
        }
    }

    /// Each probe's checks for `slot`: its feeding's observations, or `unavailable` when it does
    /// not run, cannot watch the target, or feeds nothing here.
    private static func observations(
        of probes: Zip2Sequence<[ProbeStatus], [(any ProbeCheckFeeding.Type)?]>, slot index: Int,
        _ context: ProbeCheckContext
    ) -> [Observation] {
        let window = context.window
        var observations: [Observation] = []
        for (status, probe) in probes {
            if let probe, status.running, window.results.unwatched[status.name]?[index] == nil {
                observations += probe.observations(slot: index, context)
                continue
            }
            let reason =
                !status.running
                ? status.reason ?? "the \(status.name) probe is not running"
                : window.results.unwatched[status.name]?[index] ?? "no check reads the \(status.name) probe"
            observations += probeChecks([status]).map {
                .unavailable(check: $0, reason: reason, evidence: ["probe": .string(status.name)])
            }
        }
        return observations
    }

    /// The probe checks of a container that has no probe slot: the probes follow at most
    /// `slots` containers at once on a node, and this one came after them.
    public static func unfollowedObservations(statuses: [ProbeStatus], slots: Int) -> [Observation] {
        let reason = "the probes follow at most \(slots) containers at once on a node and this one has no slot"
        return statuses.flatMap { status in
            probeChecks([status]).map {
                Observation.unavailable(check: $0, reason: reason, evidence: ["probe": .string(status.name)])
            }
        }
    }
}
