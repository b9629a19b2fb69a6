import Checks
import HostFacts
import PGNodeModel
import Testing

/// Facts for `cpu.contention`: windows made the way the reader makes them, from two samples.
enum ContentionFacts {
    static let second: Int64 = 1_000_000_000

    /// A 10 s window of one process that ran `run` and waited `wait` nanoseconds, on a node
    /// that had `ticks` CPU ticks of which `steal` were stolen.
    static func window(run: Int64, wait: Int64, ticks: Int64? = 2000, steal: Int64? = 0, exited: Bool = false)
        -> SchedWindow
    {
        let p = ProcessIdentity(pid: 100, startTime: 7)
        let gone = ProcessIdentity(pid: 101, startTime: 7)
        let one = SchedStat(runNanoseconds: 0, waitNanoseconds: 0, timeslices: 0)
        var startProcesses = [p: one]
        if exited { startProcesses[gone] = one }
        let start = SchedSample(
            monotonicNanoseconds: 0, processes: startProcesses,
            node: NodeCPUTimes(totalTicks: 10_000, stealTicks: 100))
        let end = SchedSample(
            monotonicNanoseconds: 10 * second,
            processes: [p: SchedStat(runNanoseconds: run, waitNanoseconds: wait, timeslices: 10)],
            node: ticks.map {
                NodeCPUTimes(totalTicks: $0.addingSaturating(10_000), stealTicks: (steal ?? 0).addingSaturating(100))
            })
        return SchedWindow(from: start, to: end)
    }

    static func facts(
        _ window: SchedWindow, roles: [RoleSchedTime] = [], throttledPeriods: Int64? = 0, throttledNs: Int64? = 0
    ) -> CPUContentionFacts {
        CPUContentionFacts(
            window: .success(window),
            perRole: roles.isEmpty
                ? [
                    RoleSchedTime(
                        role: "client backend", processes: 1, runNanoseconds: window.runNanoseconds,
                        waitNanoseconds: window.waitNanoseconds)
                ] : roles,
            throttledPeriods: throttledPeriods, throttledNanoseconds: throttledNs)
    }
}

@Suite("cpu.contention from facts (procfs part)")
struct CPUContentionCheckTests {
    typealias F = ContentionFacts

    @Test(
        "thresholds: wait above 10 % of runnable time is a warning, above 50 % critical",
        arguments: [
            (9_000, 1_000, Severity.ok),  // 10 %: not above
            (8_900, 1_100, .warning),
            (5_000, 5_000, .warning),  // 50 %: not above
            (4_900, 5_100, .critical),
        ])
    func thresholds(_ runMs: Int64, _ waitMs: Int64, _ expected: Severity) {
        let o = CPUContentionCheck.evaluate(F.facts(F.window(run: runMs * 1_000_000, wait: waitMs * 1_000_000)))
        #expect(o.severity == expected, "\(o.summary)")
        if expected != .ok {
            #expect(o.remedy.contains("--cpu-manager-policy=static"))
        }
    }

    @Test("evidence: the names the issue fixes, over the window; per role sorted by wait")
    func evidence() {
        let w = F.window(run: 8 * F.second, wait: 2 * F.second, ticks: 2000, steal: 50)
        let roles = [
            RoleSchedTime(
                role: "autovacuum worker", processes: 1, runNanoseconds: F.second, waitNanoseconds: F.second / 2),
            RoleSchedTime(
                role: "client backend", processes: 8, runNanoseconds: 7 * F.second, waitNanoseconds: 3 * F.second / 2),
        ]
        let o = CPUContentionCheck.evaluate(F.facts(w, roles: roles))
        #expect(o.severity == .warning)
        #expect(o.evidence["run_queue_wait_seconds"] == .double(2))
        #expect(o.evidence["run_queue_wait_share"] == .double(0.2))
        #expect(o.evidence["run_queue_wait_per_second"] == .double(0.2))
        #expect(o.evidence["steal_ratio"] == .double(0.025))
        #expect(o.evidence["processes"] == .int(1) && o.evidence["processes_exited"] == .int(0))
        let perRole = o.evidence["per_role"]?.arrayValue ?? []
        #expect(perRole.first?["role"] == .string("client backend"), "\(perRole)")
        #expect(perRole.first?["wait_share"] == .double(0.1765))
        #expect(o.summary.contains("Most of it in client backend (1.50 s)"), "\(o.summary)")
    }

    @Test("an idle container: a large share of a tiny run time is ok (below 50 ms of wait per second)")
    func idle() {
        let o = CPUContentionCheck.evaluate(F.facts(F.window(run: 10_000_000, wait: 40_000_000)))
        #expect(o.severity == .ok, "\(o.summary)")
        #expect(o.evidence["run_queue_wait_share"] == .double(0.8))
        let none = CPUContentionCheck.evaluate(F.facts(F.window(run: 0, wait: 0)))
        #expect(none.severity == .ok && none.summary.hasPrefix("No CPU demand"), "\(none.summary)")
        #expect(none.evidence["run_queue_wait_share"] == .null)
    }

    @Test("throttled by its own quota: the wait is at least partly the quota's, so info pointing to cpu.throttling")
    func ownQuota() {
        let facts = F.facts(
            F.window(run: 5 * F.second, wait: 5 * F.second), throttledPeriods: 90, throttledNs: 4 * F.second)
        let o = CPUContentionCheck.evaluate(facts)
        #expect(o.severity == .info, "\(o.summary)")
        #expect(o.summary.contains("see cpu.throttling"), "\(o.summary)")
        #expect(o.evidence["throttled_periods"] == .int(90) && o.evidence["throttled_seconds"] == .double(4))
    }

    /// Steal above a tenth of the node's CPU time: a warning with the node-type remedy when the
    /// container wants CPU; said, but ok, when it is idle.
    @Test("steal: a warning when the container wants CPU, said but ok when it is idle")
    func steal() {
        // 10 s window: 0.5 CPU second run is 0.05 CPU seconds per second, the floor.
        let busy = CPUContentionCheck.evaluate(F.facts(F.window(run: F.second / 2, wait: 0, ticks: 1000, steal: 150)))
        #expect(busy.severity == .warning, "\(busy.summary)")
        #expect(busy.remedy.contains("without CPU steal"))
        #expect(busy.evidence["cpu_demand_per_second"] == .double(0.05))
        #expect(busy.evidence["steal_ratio"] == .double(0.15))
        let below = CPUContentionCheck.evaluate(
            F.facts(F.window(run: F.second / 2 - 1, wait: 0, ticks: 1000, steal: 150)))
        #expect(below.severity == .ok, "\(below.summary)")
        #expect(below.summary.contains("steal time was 15.0 %") && below.summary.contains("too little CPU"))
        #expect(below.remedy.isEmpty)
        let idle = CPUContentionCheck.evaluate(F.facts(F.window(run: 0, wait: 0, ticks: 1000, steal: 150)))
        #expect(idle.severity == .ok && idle.summary.contains("too little CPU"), "\(idle.summary)")
        // Demand counts the wait too: 0.3 s run and 0.3 s wait is 0.06 CPU seconds per second.
        let waiting = CPUContentionCheck.evaluate(
            F.facts(F.window(run: 3 * F.second / 10, wait: 3 * F.second / 10, ticks: 1000, steal: 150)))
        #expect(waiting.severity != .ok && waiting.remedy.contains("without CPU steal"), "\(waiting.summary)")
        let unknown = CPUContentionCheck.evaluate(F.facts(F.window(run: F.second, wait: 0, ticks: nil)))
        #expect(unknown.evidence["steal_ratio"] == .null && unknown.severity == .ok)
    }

    @Test("processes that exited are said to be missing from the totals; no window is unavailable")
    func exitedAndUnavailable() {
        let o = CPUContentionCheck.evaluate(F.facts(F.window(run: F.second, wait: 0, exited: true)))
        #expect(o.summary.contains("1 process(es) exited during the window"), "\(o.summary)")
        let none = CPUContentionCheck.evaluate(
            CPUContentionFacts(
                window: .failure(CheckUnavailable("no window")), perRole: [], throttledPeriods: nil,
                throttledNanoseconds: nil))
        #expect(none.severity == .unavailable)
        let reversed = SchedWindow(
            from: SchedSample(monotonicNanoseconds: 10, processes: [:]),
            to: SchedSample(monotonicNanoseconds: 0, processes: [:]))
        #expect(CPUContentionCheck.evaluate(F.facts(reversed)).severity == .unavailable)
    }

    @Test("extreme facts never trap", arguments: [Int64.max, .min, .max - 1, -1, 0, 1])
    func extreme(_ value: Int64) {
        let w = F.window(run: value, wait: value, ticks: value, steal: value)
        let roles = [RoleSchedTime(role: "x", processes: .max, runNanoseconds: value, waitNanoseconds: .max)]
        var withNeighbours = F.facts(w, roles: roles, throttledPeriods: value, throttledNs: value)
        withNeighbours.neighbours = .success(
            CPUNeighbourReport(
                neighbours: [
                    .init(cgroup: "a", containerID: nil, podName: nil, namespace: nil, nanoseconds: value),
                    .init(cgroup: "b", containerID: "c", podName: "p", namespace: "n", nanoseconds: .max),
                ], ownNanoseconds: value, throttledNanoseconds: value, waits: value))
        for facts in [
            F.facts(w, roles: roles, throttledPeriods: value, throttledNs: value),
            F.facts(w, roles: roles, throttledPeriods: nil, throttledNs: nil), withNeighbours,
        ] {
            let o = CPUContentionCheck.evaluate(facts)
            #expect(!o.summary.isEmpty)
        }
    }

    @Test("neighbours: sorted by CPU time taken, the first named in the summary; unknown says why")
    func neighbours() throws {
        var facts = F.facts(F.window(run: 5_000_000_000, wait: 5_000_000_000))
        facts.neighbours = .success(
            CPUNeighbourReport(
                neighbours: [
                    .init(
                        cgroup: "memory:/system.slice/cron.service", containerID: nil, podName: nil, namespace: nil,
                        nanoseconds: 200_000_000),
                    .init(
                        cgroup: "memory:/kubepods/burstable/podu/abc", containerID: "abc", podName: "hog-0",
                        namespace: "batch", nanoseconds: 4_500_000_000),
                ], ownNanoseconds: 1_000, throttledNanoseconds: 0, waits: 42))
        let o = CPUContentionCheck.evaluate(facts)
        #expect(o.severity == .warning)
        let list = try #require(o.evidence["neighbours"]?.arrayValue)
        #expect(list.map { $0["k8s.pod.name"] } == ["hog-0", .null])
        #expect(list.first?["container.id"] == "abc")
        #expect(list.first?["k8s.namespace.name"] == "batch")
        #expect(list.first?["cpu_seconds_taken"] == .double(4.5))
        #expect(o.evidence["waits_followed"] == .int(42))
        #expect(o.summary.contains("The CPU went first to pod batch/hog-0 (4.50 s)."), "\(o.summary)")

        // Past the most listed, the rest are counted.
        var many = facts
        many.neighbours = .success(
            CPUNeighbourReport(
                neighbours: (0..<25).map {
                    .init(
                        cgroup: "c\($0)", containerID: nil, podName: nil, namespace: nil, nanoseconds: Int64($0) * 1000)
                }, ownNanoseconds: 0, throttledNanoseconds: 0, waits: 1))
        let capped = CPUContentionCheck.evaluate(many)
        #expect(capped.evidence["neighbours"]?.arrayValue?.count == CPUContentionCheck.maxNeighbours)
        #expect(capped.evidence["neighbours"]?.arrayValue?.first?["cgroup"] == "c24")
        #expect(capped.evidence["neighbours_omitted"] == .int(5))

        facts.neighbours = .failure(CheckUnavailable("the sched probe is not running: no BTF"))
        let unknown = CPUContentionCheck.evaluate(facts)
        #expect(unknown.severity == .warning)
        #expect(unknown.evidence["neighbours"] == .null)
        #expect(unknown.evidence["neighbours_unavailable"] == "the sched probe is not running: no BTF")
    }
}
