import HostFacts
import PGNodeModel

/// What `cpu.throttling` looks at for one container.
public struct CPUThrottlingFacts: Sendable, Equatable {
    /// A PostgreSQL setting: a value the server accepts (`.success`) or the text it refuses
    /// (`.failure`); nil when the container's server or its settings are not known.
    public typealias Setting = Result<SettingValue<Int64>, InvalidSetting>?

    /// The container's CPU cgroup over the window (two samples), or why it could not be read.
    public var window: Result<CPUCgroupWindow, CheckUnavailable>
    /// The pod's QoS class: `guaranteed`, `burstable`, `besteffort`.
    public var qosClass: String?
    /// `max_parallel_workers`: parallel workers the whole server may run at once.
    public var maxParallelWorkers: Setting
    /// `max_parallel_workers_per_gather`: parallel workers one Gather node (one query) may start.
    public var maxParallelWorkersPerGather: Setting
    /// `max_worker_processes`: background worker slots, parallel workers included.
    public var maxWorkerProcesses: Setting

    /// The facts for one container.
    public init(
        window: Result<CPUCgroupWindow, CheckUnavailable>, qosClass: String?, maxParallelWorkers: Setting,
        maxParallelWorkersPerGather: Setting, maxWorkerProcesses: Setting
    ) {
        self.window = window
        self.qosClass = qosClass
        self.maxParallelWorkers = maxParallelWorkers
        self.maxParallelWorkersPerGather = maxParallelWorkersPerGather
        self.maxWorkerProcesses = maxWorkerProcesses
    }
}

/// `cpu.throttling`: does the container's CPU limit (its CFS quota) stop the database's processes
/// in the middle of their work? A throttled cgroup runs none of its tasks until the next period
/// starts (up to 100 ms later with the kubelet's period), so a backend holding a lock stalls
/// every session waiting for it, whatever the average CPU use says.
public enum CPUThrottlingCheck {
    /// The check id.
    public static let id = "cpu.throttling"

    /// Above this share of the window's CFS periods throttled, a warning: in more than one period
    /// in four the container ran out of quota and everything it was running stopped until the
    /// period ended — a latency of up to a period on whatever query was on a CPU, often enough
    /// that it shows in every percentile above p75, not as the odd outlier.
    public static let warningThrottledRatio = 0.25
    /// Above this share, critical: the container is throttled in most periods, so the quota, not
    /// the work, sets how fast queries run; the stalls are the normal state of every query and of
    /// any lock holder.
    public static let criticalThrottledRatio = 0.5

    /// PostgreSQL's ranges for the three settings (guc_tables.c): a value outside is one no
    /// server runs with, and is never computed with.
    static let parallelWorkersRange: ClosedRange<Int64> = 0...1024
    static let workerProcessesRange: ClosedRange<Int64> = 0...262_143

    /// The observation for one container.
    public static func evaluate(_ facts: CPUThrottlingFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    /// The most processes one parallel query may run at once: the leader and the workers one
    /// Gather may start, `max_parallel_workers_per_gather`, which the server never grants beyond
    /// `max_parallel_workers` or `max_worker_processes` (when those are known). Nil when
    /// `max_parallel_workers_per_gather` is not known.
    public static func parallelQueryProcesses(perGather: Int64?, maxParallelWorkers: Int64?, maxWorkerProcesses: Int64?)
        -> Int64?
    {
        guard let perGather else { return nil }
        let workers = min(perGather, maxParallelWorkers ?? perGather, maxWorkerProcesses ?? perGather)
        return max(0, workers).addingSaturating(1)
    }

    static func observe(_ facts: CPUThrottlingFacts) -> Observation {
        // Settings: a value PostgreSQL accepts and that lies in its range, else listed as invalid.
        var invalid: [InvalidSetting] = []
        func take(_ name: String, _ setting: CPUThrottlingFacts.Setting, _ range: ClosedRange<Int64>) -> Int64? {
            switch setting {
            case nil: return nil
            case .failure(let why)?:
                invalid.append(why)
                return nil
            case .success(let s)? where !range.contains(s.value):
                invalid.append(
                    InvalidSetting(
                        name: name, text: "\(s.value)", source: s.source,
                        reason:
                            "no PostgreSQL server has this value (outside \(range.lowerBound) .. \(range.upperBound))"))
                return nil
            case .success(let s)?: return s.value
            }
        }
        let perGather = take(
            "max_parallel_workers_per_gather", facts.maxParallelWorkersPerGather, parallelWorkersRange)
        let parallelWorkers = take("max_parallel_workers", facts.maxParallelWorkers, parallelWorkersRange)
        let workerProcesses = take("max_worker_processes", facts.maxWorkerProcesses, workerProcessesRange)
        let settings: JSONObject = [
            "max_parallel_workers": settingJSON(facts.maxParallelWorkers),
            "max_parallel_workers_per_gather": settingJSON(facts.maxParallelWorkersPerGather),
            "max_worker_processes": settingJSON(facts.maxWorkerProcesses),
        ]

        let window: CPUCgroupWindow
        switch facts.window {
        case .failure(let why):
            return .unavailable(
                check: id, reason: why.reason,
                evidence: ["qos_class": .from(facts.qosClass), "settings": .object(settings)])
        case .success(let w): window = w
        }

        let seconds = Double(window.durationNanoseconds) / 1e9
        let periods = window.periods
        let throttled = window.throttledPeriods
        let ratio: Double? =
            if let periods, let throttled, periods > 0 { Double(throttled) / Double(periods) } else { nil }
        let quotaCores = window.bandwidth?.cores
        let processes = parallelQueryProcesses(
            perGather: perGather, maxParallelWorkers: parallelWorkers, maxWorkerProcesses: workerProcesses)

        var evidence: JSONObject = [
            "cgroup_version": .int(Int64(window.version)),
            "quota_cores": double(quotaCores, places: 4),
            "period_us": .from(window.bandwidth?.periodMicroseconds),
            "burst_us": .from(window.burstMicroseconds),
            "window_ns": .int(window.durationNanoseconds),
            "periods": .from(periods),
            "throttled_periods": .from(throttled),
            "throttled_periods_ratio": double(ratio, places: 4),
            "throttled_ns": .from(window.throttledNanoseconds),
            "throttled_seconds": double(window.throttledNanoseconds.map { Double($0) / 1e9 }, places: 6),
            "throttled_seconds_per_second": double(
                window.throttledNanoseconds.flatMap { seconds > 0 ? Double($0) / 1e9 / seconds : nil }, places: 4),
            "usage_ns": .from(window.usageNanoseconds),
            "usage_cores": double(
                window.usageNanoseconds.flatMap { seconds > 0 ? Double($0) / 1e9 / seconds : nil }, places: 4),
            "bursts": .from(window.bursts),
            "burst_seconds": double(window.burstNanoseconds.map { Double($0) / 1e9 }, places: 6),
            "qos_class": .from(facts.qosClass),
        ]
        if let pressure = window.pressure {
            evidence["pressure"] = .object(pressureJSON(pressure, window: window))
        }
        evidence["settings"] = .object(settings)
        evidence["parallel_query_processes"] = .from(processes)
        if window.countersReset { evidence["counters_reset"] = .bool(true) }
        if !window.missing.isEmpty { evidence["missing_files"] = .array(window.missing.map { .string($0) }) }

        guard window.durationNanoseconds > 0 else {
            return .unavailable(
                check: id, reason: "the window has no length (\(window.durationNanoseconds) ns)", evidence: evidence)
        }
        guard let bandwidth = window.bandwidth else {
            let file = window.version == 1 ? "cpu.cfs_quota_us and cpu.cfs_period_us" : "cpu.max"
            let why =
                window.version == 2 && window.missing.contains("cpu.max")
                ? " (on cgroup v2 it is absent when the cpu controller is not enabled for the cgroup)" : ""
            return .unavailable(
                check: id, reason: "the container's CPU quota could not be read from \(file)\(why)", evidence: evidence)
        }
        guard let periods, let throttled else {
            return .unavailable(
                check: id, reason: "the container's cpu.stat has no nr_periods or nr_throttled", evidence: evidence)
        }

        let reset =
            window.countersReset
            ? " The cgroup was recreated during the window; the counts are since then." : ""
        let unknownSettings =
            invalid.isEmpty
            ? ""
            : " \(invalid.map(\.name).joined(separator: ", ")) not known: configured to a value PostgreSQL refuses "
                + "(see settings)."
        let quotaText = quotaCores.map { "\(format($0, places: 2)) CPUs" } ?? "none"
        let usageText =
            window.usageNanoseconds.map { " It used \(format(Double($0) / 1e9 / seconds, places: 2)) CPUs." } ?? ""
        let remedyText = remedy(
            version: window.version, quotaCores: quotaCores, processes: processes, qosClass: facts.qosClass)
        let parallelNote: String =
            if let cores = quotaCores, let processes, cores < Double(processes) {
                " A parallel query may run \(processes) processes at once (max_parallel_workers_per_gather "
                    + "+ the leader), more than the quota."
            } else { "" }

        if periods == 0 {
            if bandwidth.quotaMicroseconds == nil {
                return Observation(
                    check: id, severity: .ok,
                    summary:
                        "No CPU limit: CFS bandwidth control does not throttle this container.\(usageText)"
                        + "\(reset)\(unknownSettings)",
                    evidence: evidence)
            }
            return Observation(
                check: id, severity: .ok,
                summary:
                    "No CPU demand in the window: no CFS period ran under the quota of \(quotaText)."
                    + "\(parallelNote)\(reset)\(unknownSettings)",
                evidence: evidence)
        }

        let share = ratio ?? 0
        let throttledSeconds = Double(window.throttledNanoseconds ?? 0) / 1e9
        let throttledSentence =
            "Throttled in \(throttled) of \(periods) CFS periods (\(format(share * 100, places: 0)) %) of the "
            + "window under a quota of \(quotaText): its run queues were stopped "
            + "\(format(throttledSeconds, places: 2)) s in total "
            + "(\(format(throttledSeconds / seconds, places: 2)) s per second).\(usageText)"
        if share > criticalThrottledRatio || share > warningThrottledRatio {
            return Observation(
                check: id, severity: share > criticalThrottledRatio ? .critical : .warning,
                summary: throttledSentence + parallelNote + reset + unknownSettings, evidence: evidence,
                remedy: remedyText)
        }
        if bandwidth.quotaMicroseconds == nil {
            return Observation(
                check: id, severity: .ok,
                summary:
                    "No CPU limit at the end of the window: CFS bandwidth control does not throttle this container"
                    + " (\(throttled) of \(periods) periods were throttled while a limit was set).\(usageText)"
                    + "\(reset)\(unknownSettings)",
                evidence: evidence)
        }
        if !parallelNote.isEmpty {
            return Observation(
                check: id, severity: .info,
                summary:
                    "The CPU quota (\(quotaText)) is below the \(processes ?? 0) processes one parallel query may run "
                    + "at once (max_parallel_workers_per_gather + the leader): such a query exhausts it within the "
                    + "period and is throttled. Throttled in \(format(share * 100, places: 0)) % of \(periods) "
                    + "periods of the window.\(reset)\(unknownSettings)",
                evidence: evidence, remedy: remedyText)
        }
        return Observation(
            check: id, severity: .ok, summary: throttledSentence + reset + unknownSettings, evidence: evidence)
    }

    /// What to change: the limit itself, dedicated CPUs, a burst allowance, and the parallelism
    /// PostgreSQL asks for.
    static func remedy(version: Int, quotaCores: Double?, processes: Int64?, qosClass: String?) -> String {
        let burstFile = version == 1 ? "cpu.cfs_burst_us" : "cpu.max.burst"
        var text =
            "Remove the container's CPU limit (resources.limits.cpu) and keep its request (resources.requests.cpu), "
            + "which still gives it its share when the node is busy; or raise the limit above what it uses at peak. "
        if qosClass == "guaranteed" {
            text +=
                "For CPUs of its own, give the Guaranteed pod an integer CPU count and run the kubelet with the "
                + "static CPU manager policy (--cpu-manager-policy=static): it then runs on dedicated CPUs, unthrottled. "
        } else {
            text +=
                "For CPUs of its own, make the pod Guaranteed (requests equal to limits) with an integer CPU count and "
                + "run the kubelet with the static CPU manager policy (--cpu-manager-policy=static). "
        }
        text +=
            "To let short bursts through without raising the average, allow a burst of unused quota "
            + "(\(burstFile), kernel 5.14+; the pod spec has no field for it: the runtime writes it from the OCI "
            + "spec's linux.resources.cpu.burst, or a node agent does). "
        if let cores = quotaCores {
            let fit = max(0, (Int64(clampingFinite: cores.rounded(.down)) ?? 0).subtractingSaturating(1))
            text +=
                "Keep max_parallel_workers_per_gather + 1 within the quota: at most \(fit) here "
                + "(ALTER SYSTEM SET max_parallel_workers_per_gather = \(fit); SELECT pg_reload_conf())"
            if let processes { text += ", against \(processes) processes per parallel query now" }
            text += "."
        } else {
            text += "Keep max_parallel_workers_per_gather + 1 within the CPUs the container may use."
        }
        return text
    }

    /// The PSI evidence: the later sample's averages and the stall time over the window.
    static func pressureJSON(_ pressure: CgroupFiles.Pressure, window: CPUCgroupWindow) -> JSONObject {
        [
            "some_avg10": double(pressure.some?.avg10, places: 2),
            "some_avg60": double(pressure.some?.avg60, places: 2),
            "some_avg300": double(pressure.some?.avg300, places: 2),
            "some_stall_ns": .from(window.pressureSomeStallNanoseconds),
            "full_avg10": double(pressure.full?.avg10, places: 2),
            "full_avg60": double(pressure.full?.avg60, places: 2),
            "full_avg300": double(pressure.full?.avg300, places: 2),
            "full_stall_ns": .from(window.pressureFullStallNanoseconds),
        ]
    }

    static func settingJSON(_ setting: CPUThrottlingFacts.Setting) -> JSONValue {
        switch setting {
        case nil: .null
        case .success(let s)?: .object(["value": .int(s.value), "source": .string(s.source)])
        case .failure(let invalid)?: invalid.json
        }
    }

    /// `value` rounded to `places` decimals, or null; a value too large to round keeps its digits
    /// (and one that is not finite is written as null by the JSON writer).
    static func double(_ value: Double?, places: Int) -> JSONValue {
        guard let value else { return .null }
        return .double(round(value, places: places))
    }

    static func round(_ value: Double, places: Int) -> Double {
        guard value.isFinite, abs(value) < 1e12 else { return value }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (value * scale).rounded() / scale
    }

    /// A number for a summary: `places` decimals (none for 0), `?` when not finite.
    static func format(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "?" }
        let r = round(value, places: places)
        if places == 0 || abs(r) >= 1e12 { return String(Int64(clampingFinite: r.rounded()) ?? 0) }
        var text = "\(r)"
        if text.contains("e") { return text }
        let decimals = text.split(separator: ".").dropFirst().first?.count ?? 0
        if decimals == 0 { text += "." }
        return text + String(repeating: "0", count: max(0, places - decimals))
    }
}
