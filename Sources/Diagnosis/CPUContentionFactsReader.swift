import Checks
import HostFacts
import PGNodeModel
import ProbeObjects
import Probes
import Resolution

/// Gathers `cpu.contention` facts for one container: one reading of its processes' schedstat and
/// of the node's /proc/stat (taken at each end of the window by `CPUWindowSampler`), the time by
/// PostgreSQL role, its own quota's throttling over the same window (`cpu.throttling`'s
/// counters: a throttled task waits on its run queue too), and who took the CPU (the sched probe).
public enum CPUContentionFactsReader {
    /// The directory whose `cgroup.procs` lists the container's processes: its v1 `cpu`
    /// controller's, else its unified one.
    static func processesDirectory(_ resolution: Resolution) -> String? {
        switch CPUFactsReader.location(resolution) {
        case .v1(let cpu, _, _): cpu
        case .v2(let directory): directory
        case nil: nil
        }
    }

    /// One reading of the container's processes under `host` (bounded reads of regular files
    /// only; at most `SchedSample.processLimit` processes), or why it could not be taken.
    public static func sample(_ resolution: Resolution, host: HostRoot) -> Result<SchedSample, CheckUnavailable> {
        guard let directory = processesDirectory(resolution) else {
            return .failure(CheckUnavailable("the container has no CPU cgroup that pgnode can read"))
        }
        do {
            return .success(try SchedSample.read(host: host, cgroupDirectory: directory))
        } catch {
            return .failure(CheckUnavailable("cannot list the container's processes (cgroup.procs): \(error)"))
        }
    }

    /// The window between two readings, or why there is none (the first reading that failed).
    public static func window(
        from start: Result<SchedSample, CheckUnavailable>, to end: Result<SchedSample, CheckUnavailable>
    ) -> Result<SchedWindow, CheckUnavailable> {
        switch (start, end) {
        case (.failure(let why), _): .failure(CheckUnavailable("at the start of the window, \(why.reason)"))
        case (_, .failure(let why)): .failure(CheckUnavailable("at the end of the window, \(why.reason)"))
        case (.success(let first), .success(let last)): .success(SchedWindow(from: first, to: last))
        }
    }

    /// Why a container has no window: pgnode did not observe (`pgnode check --duration 0`).
    public static let noWindow = CheckUnavailable(
        "no observation window (pgnode check --duration 0): run-queue wait is counted between two readings of "
            + "the processes' schedstat, so it needs --duration above 0")

    /// The facts for `resolution`: its processes over `window`, by role (named from the
    /// resolution, and from /proc under `host` now for those born in the window), its own
    /// throttling from `cpu`, and `neighbours`.
    public static func facts(
        _ resolution: Resolution, window: Result<SchedWindow, CheckUnavailable>,
        cpu: Result<CPUCgroupWindow, CheckUnavailable>, neighbours: Result<CPUNeighbourReport, CheckUnavailable>,
        host: HostRoot
    ) -> CPUContentionFacts {
        let throttling = try? cpu.get()
        var roles: [RoleSchedTime] = []
        if case .success(let w) = window {
            var names = ProcessNames(resolution)
            names.learn(w.perProcess.keys.map(\.pid), host: host)
            roles = perRole(w, names: names)
        }
        return CPUContentionFacts(
            window: window, perRole: roles, throttledPeriods: throttling?.throttledPeriods,
            throttledNanoseconds: throttling?.throttledNanoseconds, neighbours: neighbours)
    }

    /// The window's processes summed by role: the PostgreSQL role `names` knows, else `other`.
    static func perRole(_ window: SchedWindow, names: ProcessNames) -> [RoleSchedTime] {
        var byRole: [String: RoleSchedTime] = [:]
        for (identity, delta) in window.perProcess {
            let role = names.byPID[identity.pid]?.role ?? "other"
            var r = byRole[role] ?? RoleSchedTime(role: role, processes: 0, runNanoseconds: 0, waitNanoseconds: 0)
            r.processes += 1
            r.runNanoseconds = r.runNanoseconds.addingSaturating(delta.run)
            r.waitNanoseconds = r.waitNanoseconds.addingSaturating(delta.wait)
            byRole[role] = r
        }
        return byRole.values.sorted { $0.role < $1.role }
    }

    /// Who took the CPU from the container at `slot`, from the sched probe's part of `window`
    /// (its cgroups named by `names`), or why that is not known: no probe window (the engine
    /// did not observe), no slot, the probe not running or not watching the container.
    public static func neighbours(slot: Int?, window: ProbeWindow?, names: CgroupNames?)
        -> Result<CPUNeighbourReport, CheckUnavailable>
    {
        guard let window, let names else { return .failure(CPUContentionFacts.noNeighbours) }
        guard let status = window.statuses.first(where: { $0.name == SchedProbe.name }) else {
            return .failure(CheckUnavailable("the sched probe is not part of this build"))
        }
        guard status.running else {
            return .failure(CheckUnavailable(status.reason ?? "the sched probe is not running"))
        }
        guard let slot else {
            return .failure(
                CheckUnavailable(
                    "the probes follow at most \(PGN_MAX_TARGETS) containers at once and this one has no slot"))
        }
        if let reason = window.results.unwatched[SchedProbe.name]?[slot] { return .failure(CheckUnavailable(reason)) }
        return .success(report(window.results.sched[slot] ?? SchedResult(), names: names))
    }

    /// The probe's result as the check's report, its cgroups named (the engine's containers
    /// first, then the runtime's state for others).
    public static func report(_ result: SchedResult, names: CgroupNames) -> CPUNeighbourReport {
        CPUNeighbourReport(
            neighbours: result.neighbours.map { n in
                let named = names.neighbour(n.cgroup, requests: 0)
                return CPUNeighbourReport.Neighbour(
                    cgroup: named.cgroup, containerID: named.containerID, podName: named.podName,
                    namespace: named.namespace, nanoseconds: Int64(clamping: n.nanoseconds))
            }, ownNanoseconds: Int64(clamping: result.ownNs), throttledNanoseconds: Int64(clamping: result.throttledNs),
            waits: Int64(clamping: result.waits))
    }
}
