import PGNodeModel

/// What the query probe saw of one container's statements in one window, with what the other
/// probes saw that explains part of their time.
public struct QueryLatencyReport: Sendable, Equatable {
    /// The states statement time is split into, in the order of `stateNanoseconds`.
    public static let states = ["on_cpu", "cpu_wait", "io_wait", "lock_wait", "other"]

    /// One of the slowest statements.
    public struct Statement: Sendable, Equatable {
        public var durationNanoseconds: Int64
        /// The backend's host pid, its pid in the container, its role.
        public var pid: Int32
        public var containerPID: Int32?
        public var role: String?
        /// `simple` or `extended`.
        public var protocolName: String
        /// Its time by state (`states`).
        public var stateNanoseconds: [Int64]
        /// Time reclaiming memory inside it (also in `stateNanoseconds`).
        public var reclaimNanoseconds: Int64
        /// The first bytes of its text (simple protocol), nil when the probe had none.
        public var text: [UInt8]?

        /// One statement.
        public init(
            durationNanoseconds: Int64, pid: Int32, containerPID: Int32? = nil, role: String? = nil,
            protocolName: String, stateNanoseconds: [Int64], reclaimNanoseconds: Int64 = 0, text: [UInt8]? = nil
        ) {
            self.reclaimNanoseconds = reclaimNanoseconds
            self.durationNanoseconds = durationNanoseconds
            self.pid = pid
            self.containerPID = containerPID
            self.role = role
            self.protocolName = protocolName
            self.stateNanoseconds = stateNanoseconds
            self.text = text
        }
    }

    /// Statements by protocol.
    public var simple: Int64
    public var extended: Int64
    /// All statement time by state (`states`), summed over the window's statements.
    public var stateNanoseconds: [Int64]
    /// Of the CPU wait, the waits that began with the run queue throttled by the CFS quota.
    public var throttledNanoseconds: Int64
    /// Reclaim inside statements (the memory cgroup's and the node's direct reclaim).
    public var reclaimNanoseconds: Int64
    /// The container's CFS periods over the window and those its own quota throttled
    /// (`cpu.throttling`'s counters, read at both ends of the same window); nil when unknown or
    /// it has no quota.
    public var quotaPeriods: Int64?
    public var quotaThrottledPeriods: Int64?
    /// The client backends' dirty-page pauses (`balance_dirty_pages`) in the window, from the
    /// writeback probe; nil when it does not run. They sleep in I/O wait.
    public var writebackPausedNanoseconds: Int64?
    /// Durations in µs, log2 buckets.
    public var latencyMicroseconds: [UInt64]
    /// The slowest statements, any order.
    public var slowest: [Statement]
    /// Whether the text of the slowest is shown (`--query-text`), else a hash of it.
    public var showText: Bool
    /// Statements the kernel could not follow (its thread map full), and slow statements lost.
    public var untracked: Int64
    public var slowLost: Int64
    /// How long the probe observed, ns.
    public var windowNanoseconds: Int64

    /// A report.
    public init(
        simple: Int64, extended: Int64, stateNanoseconds: [Int64], throttledNanoseconds: Int64 = 0,
        reclaimNanoseconds: Int64 = 0, writebackPausedNanoseconds: Int64? = nil, latencyMicroseconds: [UInt64] = [],
        slowest: [Statement] = [], showText: Bool = false, untracked: Int64 = 0, slowLost: Int64 = 0,
        windowNanoseconds: Int64
    ) {
        self.simple = simple
        self.extended = extended
        self.stateNanoseconds = stateNanoseconds
        self.throttledNanoseconds = throttledNanoseconds
        self.reclaimNanoseconds = reclaimNanoseconds
        self.writebackPausedNanoseconds = writebackPausedNanoseconds
        self.latencyMicroseconds = latencyMicroseconds
        self.slowest = slowest
        self.showText = showText
        self.untracked = untracked
        self.slowLost = slowLost
        self.windowNanoseconds = windowNanoseconds
    }
}

/// `query.latency`: the container's statements timed from below (PostgreSQL's USDT probes) and
/// where their time went — on a CPU, waiting for one, on I/O, on PostgreSQL's own locks, or
/// otherwise asleep — and which check explains the largest share that is not the statements' own
/// CPU time.
///
/// Severity: `info`, unless one cause below PostgreSQL — waiting for a CPU (`cpu.throttling` when
/// at least half of the wait was throttled, or the container's own quota throttled it in at least
/// half of the window's CFS periods, so that the quota, not a neighbour, bounded its CPU; else
/// `cpu.contention`), I/O wait
/// (`writeback.throttle` when dirty-page pauses make most of it, else `blkio.noise`), or reclaim
/// inside statements (`memory.reclaim`) — takes more than `warningShare` of all statement time: `warning`,
/// naming that check. Lock waits and other sleeps are PostgreSQL's and the client's: reported,
/// never a warning here.
public enum QueryLatencyCheck {
    /// The check id.
    public static let id = "query.latency"
    /// The share of statement time one cause below PostgreSQL must exceed for a warning.
    public static let warningShare = 0.30
    /// Bytes of a statement's text shown with `--query-text`.
    public static let textLimit = 200

    /// A cause of statement time: its share and the check that explains it.
    public struct Cause: Sendable, Equatable {
        /// `cpu_wait`, `io_wait`, `lock_wait`, `other` or `reclaim`.
        public var name: String
        public var share: Double
        /// The check that explains it (nil: PostgreSQL's own locks, or the client).
        public var check: String?
        /// Whether it lies below PostgreSQL (the kernel, the node, the neighbours).
        public var belowPostgres: Bool
    }

    /// The observation for one container.
    public static func evaluate(_ report: QueryLatencyReport) -> Observation {
        observe(report).flaggingSaturatedValues()
    }

    /// The causes of `report`'s statement time besides its CPU time, largest first.
    public static func causes(_ report: QueryLatencyReport) -> [Cause] {
        let total = report.stateNanoseconds.saturatingSum()
        guard total > 0, report.stateNanoseconds.count == QueryLatencyReport.states.count else { return [] }
        func share(_ ns: Int64) -> Double { Double(max(ns, 0)) / Double(total) }
        let cpuWait = report.stateNanoseconds[1]
        let ioWait = report.stateNanoseconds[2]
        let writeback = report.writebackPausedNanoseconds ?? 0
        let waitsThrottled = report.throttledNanoseconds > 0 && report.throttledNanoseconds >= cpuWait / 2
        let quotaBound =
            if let periods = report.quotaPeriods, let throttled = report.quotaThrottledPeriods, throttled > 0 {
                Double(throttled) * 2 >= Double(periods)
            } else { false }
        var causes = [
            Cause(
                name: "cpu_wait", share: share(cpuWait),
                check: waitsThrottled || quotaBound ? "cpu.throttling" : "cpu.contention",
                belowPostgres: true),
            Cause(
                name: "io_wait", share: share(ioWait),
                check: writeback > 0 && writeback >= ioWait / 2 ? "writeback.throttle" : "blkio.noise",
                belowPostgres: true),
            Cause(name: "lock_wait", share: share(report.stateNanoseconds[3]), check: nil, belowPostgres: false),
            Cause(name: "other", share: share(report.stateNanoseconds[4]), check: nil, belowPostgres: false),
        ]
        if report.reclaimNanoseconds > 0 {
            causes.append(
                Cause(
                    name: "reclaim", share: min(share(report.reclaimNanoseconds), 1), check: "memory.reclaim",
                    belowPostgres: true))
        }
        return causes.sorted { ($0.share, $1.name) > ($1.share, $0.name) }
    }

    /// The `q` quantile (0…1) of the log2 histogram `buckets` (µs), interpolated linearly in its
    /// bucket; nil when empty.
    public static func quantile(_ q: Double, of counts: [UInt64]) -> Int64? {
        let histogram = Log2Histogram(counts: counts)
        let total = histogram.buckets.reduce(0.0) { $0 + Double($1.count) }
        guard total > 0 else { return nil }
        let rank = min(max(q, 0), 1) * total
        var seen = 0.0
        for bucket in histogram.buckets {
            let next = seen + Double(bucket.count)
            if rank <= next {
                let fraction = (rank - seen) / Double(bucket.count)
                let low = Double(bucket.low)
                let width = Double(bucket.high) - low + 1
                return Int64(clamping: UInt64(min(low + fraction * width, Double(UInt64(Int64.max)))))
            }
            seen = next
        }
        return Int64(clamping: histogram.buckets.last!.high)
    }

    static func shares(_ states: [Int64]) -> JSONValue {
        let total = states.saturatingSum()
        var object = JSONObject()
        for (i, name) in QueryLatencyReport.states.enumerated() {
            let ns = i < states.count ? max(states[i], 0) : 0
            object[name] = .double(total > 0 ? Double(ns) / Double(total) : 0)
        }
        return .object(object)
    }

    static func statementJSON(_ s: QueryLatencyReport.Statement, showText: Bool) -> JSONValue {
        var object: JSONObject = [
            "duration_us": .int(s.durationNanoseconds / 1000),
            "pid": .int(Int64(s.pid)),
            "container_pid": .from(s.containerPID),
            "role": .from(s.role),
            "protocol": .string(s.protocolName),
            "time_share": shares(s.stateNanoseconds),
            "reclaim_ns": .int(s.reclaimNanoseconds),
        ]
        if let text = s.text {
            if showText {
                object["text"] = .string(truncatedText(text))
            } else {
                object["text_sha256"] = .string(String(SHA256.hex(text).prefix(16)))
            }
        } else {
            object["text"] = .null
        }
        return .object(object)
    }

    /// The first `textLimit` bytes of `text` as a string, cut before an incomplete UTF-8 sequence.
    public static func truncatedText(_ text: [UInt8]) -> String {
        var bytes = Array(text.prefix(textLimit))
        if text.count > textLimit {
            // Drop a multi-byte sequence cut by the limit (continuation bytes and their lead byte).
            var end = bytes.count
            while end > 0 && bytes[end - 1] & 0xC0 == 0x80 { end -= 1 }
            if end > 0 && bytes[end - 1] >= 0xC0 { end -= 1 } else { end = bytes.count }
            bytes = Array(bytes.prefix(end))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func percent(_ share: Double) -> String {
        let tenths = Int64((share * 1000).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10) %" : "\(tenths / 10).\(tenths % 10) %"
    }

    static func milliseconds(_ us: Int64) -> String {
        if us < 1000 { return "\(us) µs" }
        let tenths = (us + 50) / 100
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    static func observe(_ report: QueryLatencyReport) -> Observation {
        let queries = report.simple.addingSaturating(report.extended)
        let p50 = quantile(0.50, of: report.latencyMicroseconds)
        let p95 = quantile(0.95, of: report.latencyMicroseconds)
        let p99 = quantile(0.99, of: report.latencyMicroseconds)
        let causes = causes(report)
        let slowest = report.slowest.sorted {
            ($0.durationNanoseconds, -Int64($0.pid)) > ($1.durationNanoseconds, -Int64($1.pid))
        }
        var evidence: JSONObject = [
            "queries": .int(queries),
            "by_protocol": .object(["simple": .int(report.simple), "extended": .int(report.extended)]),
            "latency_us": Log2Histogram(counts: report.latencyMicroseconds).json,
            "p50_us": .from(p50), "p95_us": .from(p95), "p99_us": .from(p99),
            "time_share": shares(report.stateNanoseconds),
            "statement_ns": .int(report.stateNanoseconds.saturatingSum()),
            "cpu_wait_throttled_ns": .int(report.throttledNanoseconds),
            "quota_periods": .from(report.quotaPeriods),
            "quota_throttled_periods": .from(report.quotaThrottledPeriods),
            "reclaim_ns": .int(report.reclaimNanoseconds),
            "writeback_paused_ns": .from(report.writebackPausedNanoseconds),
            "slowest": .array(slowest.map { statementJSON($0, showText: report.showText) }),
            "untracked": .int(report.untracked),
            "slow_lost": .int(report.slowLost),
            "window_ns": .int(report.windowNanoseconds),
        ]
        guard queries > 0 else {
            evidence["explained_by"] = .null
            return Observation(
                check: id, severity: .info,
                summary: "No statement ran in this container's servers during the window.", evidence: evidence)
        }
        let top = causes.first { $0.share > 0 }
        evidence["explained_by"] = .from(top?.check)
        var summary = "\(queries) statements (p99 \(p99.map(milliseconds) ?? "unknown"))"
        let severity: Severity
        var remedy = ""
        if let worst = causes.first(where: { $0.belowPostgres }), worst.share > warningShare, let check = worst.check {
            severity = .warning
            summary +=
                " lost \(percent(worst.share)) of their time \(phrase(worst.name)), below PostgreSQL: see \(check)."
            remedy = remedyText(check)
            evidence["explained_by"] = .string(check)
        } else if let top {
            severity = .info
            summary +=
                ": the largest share besides running was \(percent(top.share)) \(phrase(top.name))"
                + (top.check.map { " (\($0))" } ?? "") + "."
        } else {
            severity = .info
            summary += " spent their time running on a CPU."
        }
        return Observation(check: id, severity: severity, summary: summary, evidence: evidence, remedy: remedy)
    }

    static func phrase(_ cause: String) -> String {
        switch cause {
        case "cpu_wait": "waiting for a CPU"
        case "io_wait": "waiting for I/O"
        case "lock_wait": "waiting on PostgreSQL locks"
        case "reclaim": "reclaiming memory"
        default: "asleep for other reasons (client, latches)"
        }
    }

    static func remedyText(_ check: String) -> String {
        switch check {
        case "cpu.throttling":
            "The container's CPU quota throttles its backends inside statements: raise or remove the CPU limit "
                + "(resources.limits.cpu), or lower max_connections and parallel workers so that fewer backends "
                + "run at once; cpu.throttling has the numbers."
        case "cpu.contention":
            "Other tasks take the CPUs while the backends wait: give the pod a larger CPU request (cpu.shares/"
                + "cpu.weight), a dedicated node or the static CPU manager; cpu.contention names who ran."
        case "writeback.throttle":
            "The kernel pauses the backends for dirty pages: see writeback.throttle for the device and its "
                + "limits (strict_limit, max_bytes), and the *_flush_after settings."
        case "blkio.noise":
            "The backends wait for I/O: see blkio.noise for the device queue and neighbours, and raise "
                + "shared_buffers or the memory limit so that fewer reads miss the cache."
        case "memory.reclaim":
            "The backends reclaim memory themselves inside statements: raise the memory limit or lower "
                + "work_mem and shared_buffers; memory.reclaim has the numbers."
        default: ""
        }
    }
}
