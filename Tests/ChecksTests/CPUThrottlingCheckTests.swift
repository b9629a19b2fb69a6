import Checks
import HostFacts
import PGNodeModel
import Testing

/// Facts for `cpu.throttling`: a window made the way the agent makes it, from two samples.
enum CPUFacts {
    static let second: Int64 = 1_000_000_000

    /// A sample at `time` with the given limits and counters (the earlier one of a window has
    /// the same limits and zero counters).
    static func sample(
        at time: Int64, version: Int = 2, quota: Int64?, period: Int64 = 100_000, burst: Int64? = 0,
        periods: Int64? = 0, throttled: Int64? = 0, throttledNs: Int64? = 0, usageNs: Int64? = 0,
        pressureTotal: Int64? = nil
    ) -> CPUCgroupSample {
        var s = CPUCgroupSample(version: version, monotonicNanoseconds: time)
        s.cgroupInode = 42
        s.bandwidth = CPUBandwidth(quotaMicroseconds: quota, periodMicroseconds: period)
        s.burstMicroseconds = burst
        s.periods = periods
        s.throttledPeriods = throttled
        s.throttledNanoseconds = throttledNs
        s.usageNanoseconds = usageNs
        s.bursts = 0
        s.burstNanoseconds = 0
        if let pressureTotal {
            s.pressure = CgroupFiles.pressure(
                "some avg10=12.50 avg60=3.00 avg300=1.00 total=\(pressureTotal)\n"
                    + "full avg10=10.00 avg60=2.00 avg300=0.50 total=\(pressureTotal / 2)\n")
        }
        return s
    }

    /// A 10 s window with these deltas.
    static func window(
        version: Int = 2, quota: Int64?, period: Int64 = 100_000, periods: Int64, throttled: Int64,
        throttledNs: Int64 = 0, usageNs: Int64 = 0, pressureTotal: Int64? = nil
    ) -> CPUCgroupWindow {
        CPUCgroupWindow(
            from: sample(
                at: 0, version: version, quota: quota, period: period, pressureTotal: pressureTotal.map { _ in 0 }),
            to: sample(
                at: 10 * second, version: version, quota: quota, period: period, periods: periods,
                throttled: throttled, throttledNs: throttledNs, usageNs: usageNs, pressureTotal: pressureTotal))
    }

    static func setting(_ value: Int64, _ source: String = "default") -> CPUThrottlingFacts.Setting {
        .success(SettingValue(value, source: source))
    }

    /// PostgreSQL 15's defaults: 8 parallel workers, 2 per Gather, 8 worker processes.
    static func facts(_ window: CPUCgroupWindow, qos: String? = "burstable", perGather: Int64 = 2)
        -> CPUThrottlingFacts
    {
        CPUThrottlingFacts(
            window: .success(window), qosClass: qos, maxParallelWorkers: setting(8),
            maxParallelWorkersPerGather: setting(perGather), maxWorkerProcesses: setting(8))
    }
}

@Suite("cpu.throttling from facts")
struct CPUThrottlingCheckTests {
    @Test("no quota: ok, and it says so")
    func noQuota() {
        let o = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUFacts.window(quota: nil, periods: 0, throttled: 0)))
        #expect(o.check == "cpu.throttling" && o.severity == .ok)
        #expect(o.summary.hasPrefix("No CPU limit"), "\(o.summary)")
        #expect(o.remedy.isEmpty)
        #expect(o.evidence["quota_cores"] == .null && o.evidence["period_us"] == .int(100_000))
        #expect(o.evidence["throttled_periods_ratio"] == .null)
    }

    @Test("a quota but no periods in the window: ok, no CPU demand")
    func noDemand() {
        let o = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUFacts.window(quota: 50000, periods: 0, throttled: 0)))
        #expect(o.severity == .ok)
        #expect(o.summary.hasPrefix("No CPU demand in the window"), "\(o.summary)")
        #expect(o.evidence["quota_cores"] == .double(0.5) && o.evidence["periods"] == .int(0))
    }

    @Test(
        "thresholds: more than 25 % of periods throttled is a warning, more than 50 % critical",
        arguments: [
            (Int64(0), Severity.ok), (25, .ok), (26, .warning), (50, .warning), (51, .critical), (100, .critical),
        ] as [(Int64, Severity)])
    func thresholds(_ throttled: Int64, _ expected: Severity) {
        // Four CPUs of quota: the parallel-query rule does not apply with the defaults.
        let w = CPUFacts.window(quota: 400_000, periods: 100, throttled: throttled)
        let o = CPUThrottlingCheck.evaluate(CPUFacts.facts(w))
        #expect(o.severity == expected, "\(throttled) of 100: \(o.summary)")
        #expect(o.evidence["throttled_periods_ratio"] == .double(Double(throttled) / 100))
        #expect(o.remedy.isEmpty == (expected == .ok))
    }

    @Test("evidence: the names the issue fixes, computed over the window")
    func evidence() throws {
        // Half a CPU, 10 s: 95 of 100 periods throttled, 4.5 s throttled, 4.9 s of CPU.
        let w = CPUFacts.window(
            quota: 50000, periods: 100, throttled: 95, throttledNs: 4_500_000_000, usageNs: 4_900_000_000,
            pressureTotal: 4_000_000)
        let o = CPUThrottlingCheck.evaluate(CPUFacts.facts(w, qos: "burstable"))
        #expect(o.severity == .critical)
        let e = o.evidence
        for name in [
            "quota_cores", "period_us", "periods", "throttled_periods", "throttled_periods_ratio", "throttled_seconds",
            "throttled_seconds_per_second", "usage_cores", "burst_us", "qos_class", "pressure", "settings",
        ] {
            #expect(e[name] != nil, "\(name) missing")
        }
        #expect(e["quota_cores"] == .double(0.5) && e["period_us"] == .int(100_000))
        #expect(e["periods"] == .int(100) && e["throttled_periods"] == .int(95))
        #expect(e["throttled_periods_ratio"] == .double(0.95))
        #expect(e["throttled_seconds"] == .double(4.5) && e["throttled_seconds_per_second"] == .double(0.45))
        #expect(e["usage_cores"] == .double(0.49))
        #expect(e["burst_us"] == .int(0) && e["qos_class"] == "burstable")
        #expect(e["window_ns"] == .int(10 * CPUFacts.second) && e["cgroup_version"] == .int(2))
        let pressure = try #require(e["pressure"])
        #expect(pressure["some_avg10"] == .double(12.5) && pressure["full_avg10"] == .double(10))
        #expect(pressure["some_stall_ns"] == .int(4_000_000_000) && pressure["full_stall_ns"] == .int(2_000_000_000))
        let settings = try #require(e["settings"])
        #expect(settings["max_parallel_workers"]?["value"] == .int(8))
        #expect(settings["max_parallel_workers_per_gather"]?["value"] == .int(2))
        #expect(settings["max_parallel_workers_per_gather"]?["source"] == "default")
        #expect(settings["max_worker_processes"]?["value"] == .int(8))
        #expect(e["parallel_query_processes"] == .int(3))
        #expect(e["counters_reset"] == nil && e["missing_files"] == nil && e["saturated"] == nil)
        #expect(o.summary.contains("Throttled in 95 of 100 CFS periods (95 %)"), "\(o.summary)")
        #expect(o.summary.contains("0.50 CPUs") && o.summary.contains("4.50 s in total"), "\(o.summary)")
        // No PSI file: no pressure key at all.
        let bare = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUFacts.window(quota: 50000, periods: 10, throttled: 1)))
        #expect(bare.evidence["pressure"] == nil)
    }

    @Test(
        "remedy: remove or raise the limit, static CPU manager, the burst file of the cgroup version, parallel workers")
    func remedy() {
        let v2 = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(CPUFacts.window(quota: 50000, periods: 100, throttled: 60), qos: "burstable"))
        #expect(v2.remedy.contains("resources.limits.cpu") && v2.remedy.contains("resources.requests.cpu"))
        #expect(v2.remedy.contains("--cpu-manager-policy=static") && v2.remedy.contains("Guaranteed"))
        #expect(v2.remedy.contains("cpu.max.burst") && !v2.remedy.contains("cpu.cfs_burst_us"))
        #expect(v2.remedy.contains("max_parallel_workers_per_gather = 0"), "\(v2.remedy)")
        let v1 = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(
                CPUFacts.window(version: 1, quota: 400_000, periods: 100, throttled: 60), qos: "guaranteed"))
        #expect(v1.remedy.contains("cpu.cfs_burst_us") && !v1.remedy.contains("cpu.max.burst"))
        #expect(v1.remedy.contains("Guaranteed pod an integer CPU count"), "\(v1.remedy)")
        #expect(v1.remedy.contains("max_parallel_workers_per_gather = 3"), "\(v1.remedy)")
    }

    @Test("a quota below the processes one parallel query may start is info; at or above it, ok")
    func parallelQuery() {
        // Two CPUs, 2 workers per Gather + the leader = 3 processes.
        let w = CPUFacts.window(quota: 200_000, periods: 100, throttled: 10)
        let info = CPUThrottlingCheck.evaluate(CPUFacts.facts(w, perGather: 2))
        #expect(info.severity == .info, "\(info.summary)")
        #expect(info.summary.contains("below the 3 processes"), "\(info.summary)")
        #expect(info.remedy.contains("max_parallel_workers_per_gather = 1"), "\(info.remedy)")
        #expect(CPUThrottlingCheck.evaluate(CPUFacts.facts(w, perGather: 1)).severity == .ok)
        // The server never grants more workers than max_parallel_workers or max_worker_processes.
        #expect(
            CPUThrottlingCheck.parallelQueryProcesses(perGather: 4, maxParallelWorkers: 1, maxWorkerProcesses: 8) == 2)
        #expect(
            CPUThrottlingCheck.parallelQueryProcesses(perGather: 4, maxParallelWorkers: 8, maxWorkerProcesses: 0) == 1)
        #expect(
            CPUThrottlingCheck.parallelQueryProcesses(perGather: 4, maxParallelWorkers: nil, maxWorkerProcesses: nil)
                == 5)
        #expect(
            CPUThrottlingCheck.parallelQueryProcesses(perGather: nil, maxParallelWorkers: 8, maxWorkerProcesses: 8)
                == nil)
        var capped = CPUFacts.facts(w, perGather: 4)
        capped.maxParallelWorkers = CPUFacts.setting(1, "postgresql.conf:7")
        #expect(CPUThrottlingCheck.evaluate(capped).severity == .ok)
        // Throttling beats the note, which then joins the summary.
        let throttled = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(CPUFacts.window(quota: 200_000, periods: 100, throttled: 30)))
        #expect(throttled.severity == .warning && throttled.summary.contains("3 processes"), "\(throttled.summary)")
        // No demand: ok, as the rule says, with the note in the summary.
        let idle = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUFacts.window(quota: 50000, periods: 0, throttled: 0)))
        #expect(idle.severity == .ok && idle.summary.contains("3 processes"), "\(idle.summary)")
    }

    @Test("settings: refused or out of PostgreSQL's range are listed and never used; unknown ones are null")
    func settings() throws {
        let w = CPUFacts.window(quota: 100_000, periods: 100, throttled: 0)
        var facts = CPUFacts.facts(w)
        facts.maxParallelWorkersPerGather = .failure(
            InvalidSetting(
                name: "max_parallel_workers_per_gather", text: "2000", source: "postgresql.conf:12",
                reason: "2000 is outside the valid range for parameter \"max_parallel_workers_per_gather\" (0 .. 1024)")
        )
        var o = CPUThrottlingCheck.evaluate(facts)
        #expect(o.severity == .ok)  // one CPU and 2 per Gather would be info: the refused value is not used
        #expect(o.evidence["parallel_query_processes"] == .null)
        let setting = try #require(o.evidence["settings"]?["max_parallel_workers_per_gather"])
        #expect(setting["value"] == .null && setting["invalid_value"] == "2000")
        #expect(setting["source"] == "postgresql.conf:12")
        #expect(o.summary.contains("max_parallel_workers_per_gather not known"), "\(o.summary)")

        facts = CPUFacts.facts(w)
        facts.maxWorkerProcesses = CPUFacts.setting(-1, "x")
        o = CPUThrottlingCheck.evaluate(facts)
        #expect(o.summary.contains("max_worker_processes not known"), "\(o.summary)")
        #expect(o.evidence["parallel_query_processes"] == .int(3))

        facts = CPUThrottlingFacts(
            window: .success(w), qosClass: nil, maxParallelWorkers: nil, maxParallelWorkersPerGather: nil,
            maxWorkerProcesses: nil)
        o = CPUThrottlingCheck.evaluate(facts)
        #expect(o.severity == .ok && o.evidence["qos_class"] == .null)
        #expect(o.evidence["settings"]?["max_parallel_workers"] == .null)
        #expect(o.evidence["parallel_query_processes"] == .null)
    }

    @Test("unavailable: no cgroup, no window, no quota, no cpu.stat")
    func unavailable() {
        var facts = CPUFacts.facts(CPUFacts.window(quota: nil, periods: 0, throttled: 0))
        facts.window = .failure(CheckUnavailable("cannot read the v1 cpu cgroup: gone"))
        var o = CPUThrottlingCheck.evaluate(facts)
        #expect(o.severity == .unavailable && o.evidence["reason"] == "cannot read the v1 cpu cgroup: gone")
        #expect(o.evidence["settings"] != nil)

        let a = CPUFacts.sample(at: 5, quota: 50000)
        o = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUCgroupWindow(from: a, to: a)))
        #expect(o.severity == .unavailable && o.summary.contains("no length"), "\(o.summary)")

        var noMax = CPUFacts.sample(at: CPUFacts.second, quota: nil)
        noMax.bandwidth = nil
        noMax.missing = ["cpu.max"]
        o = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(CPUCgroupWindow(from: CPUFacts.sample(at: 0, quota: nil), to: noMax)))
        #expect(o.severity == .unavailable && o.summary.contains("cpu controller is not enabled"), "\(o.summary)")
        #expect(o.evidence["missing_files"] == .array(["cpu.max"]))

        var noStat = CPUFacts.sample(at: CPUFacts.second, quota: 50000, periods: nil, throttled: nil)
        noStat.missing = ["cpu.stat"]
        o = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(CPUCgroupWindow(from: CPUFacts.sample(at: 0, quota: 50000), to: noStat)))
        #expect(o.severity == .unavailable && o.summary.contains("nr_periods"), "\(o.summary)")
    }

    @Test("a cgroup recreated in the window: counted since then, and said")
    func recreated() {
        var later = CPUFacts.sample(
            at: 10 * CPUFacts.second, quota: 50000, periods: 40, throttled: 30, throttledNs: 1_000_000_000,
            usageNs: 2_000_000_000)
        later.cgroupInode = 43
        let o = CPUThrottlingCheck.evaluate(
            CPUFacts.facts(CPUCgroupWindow(from: CPUFacts.sample(at: 0, quota: 50000, periods: 900), to: later)))
        #expect(o.severity == .critical)
        #expect(o.evidence["counters_reset"] == .bool(true) && o.evidence["periods"] == .int(40))
        #expect(o.summary.contains("recreated"), "\(o.summary)")
    }

    @Test("the limit removed during the window: its throttling still counts; none after it is ok")
    func limitRemoved() {
        let w = CPUFacts.window(quota: nil, periods: 10, throttled: 9)
        #expect(CPUThrottlingCheck.evaluate(CPUFacts.facts(w)).severity == .critical)
        let calm = CPUThrottlingCheck.evaluate(CPUFacts.facts(CPUFacts.window(quota: nil, periods: 10, throttled: 1)))
        #expect(
            calm.severity == .ok && calm.summary.hasPrefix("No CPU limit at the end of the window"), "\(calm.summary)")
    }
}
