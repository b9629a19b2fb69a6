import HostFacts
import PGNodeModel

/// What `memory.limit` looks at for one container.
public struct MemoryLimitFacts: Sendable, Equatable {
    /// The container's memory cgroup, or why it could not be read.
    public var cgroup: Result<MemoryCgroupStats, CheckUnavailable>
    /// `shared_buffers` in bytes, when the server's settings are known.
    public var sharedBuffersBytes: Int64?
    /// `max_connections`.
    public var maxConnections: Int64?
    /// `work_mem` in bytes.
    public var workMemBytes: Int64?
    /// The pod's QoS class: `guaranteed`, `burstable`, `besteffort`.
    public var qosClass: String?
    /// Settings among `shared_buffers`, `max_connections` and `work_mem` whose configured text
    /// PostgreSQL refuses: their value above is nil (unknown), and the evidence says why.
    public var invalidSettings: [InvalidSetting]
    /// The operator that runs the server: the remedy names its `resources` field.
    public var runBy: PostgresOperator

    /// The facts for one container.
    public init(
        cgroup: Result<MemoryCgroupStats, CheckUnavailable>, sharedBuffersBytes: Int64?, maxConnections: Int64?,
        workMemBytes: Int64?, qosClass: String?, invalidSettings: [InvalidSetting] = [],
        runBy: PostgresOperator = .none
    ) {
        self.runBy = runBy
        self.cgroup = cgroup
        self.sharedBuffersBytes = sharedBuffersBytes
        self.maxConnections = maxConnections
        self.workMemBytes = workMemBytes
        self.qosClass = qosClass
        self.invalidSettings = invalidSettings
    }
}

/// `memory.limit`: how close is the container to its memory limit, and does the limit leave
/// room for PostgreSQL's shared memory?
public enum MemoryLimitCheck {
    /// The check id.
    public static let id = "memory.limit"
    /// Headroom above `shared_buffers` below which a limit is critical: backends, catalog caches,
    /// `work_mem` and the page cache need room besides the buffer pool.
    public static let floorBytes: Int64 = 128 << 20
    /// A working set above this fraction of the limit is a warning (the kubelet and the kernel
    /// reclaim and evict around here).
    public static let workingSetWarningFraction = 0.9

    /// The observation for one container.
    public static func evaluate(_ facts: MemoryLimitFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: MemoryLimitFacts) -> Observation {
        let stats: MemoryCgroupStats
        switch facts.cgroup {
        case .failure(let why): return .unavailable(check: id, reason: why.reason)
        case .success(let s): stats = s
        }
        var evidence: JSONObject = [
            "cgroup_version": .int(Int64(stats.version)),
            "limit_bytes": .from(stats.limitBytes),
            "usage_bytes": .from(stats.usageBytes),
            "working_set_bytes": .from(stats.workingSetBytes),
            "shmem_bytes": .from(stats.shmemBytes),
            "page_cache_bytes": .from(stats.pageCacheBytes),
            "anon_bytes": .from(stats.anonBytes),
            "shared_buffers_bytes": .from(facts.sharedBuffersBytes),
            "max_connections": .from(facts.maxConnections),
            "work_mem_bytes": .from(facts.workMemBytes),
            "oom_kills": .from(stats.oomKills),
            "qos_class": .from(facts.qosClass),
        ]
        facts.runBy.addEvidence(to: &evidence)
        if stats.version == 1 {
            evidence["max_usage_bytes"] = .from(stats.maxUsageBytes)
            evidence["failcnt"] = .from(stats.failCount)
        } else {
            evidence["high_bytes"] = .from(stats.highBytes)
            evidence["high_events"] = .from(stats.highEvents)
            evidence["max_events"] = .from(stats.maxEvents)
            evidence["oom_group_kills"] = .from(stats.oomGroupKills)
            evidence["pressure_some_avg10"] = stats.pressure?.some?.avg10.map { .double($0) } ?? .null
            evidence["pressure_full_avg10"] = stats.pressure?.full?.avg10.map { .double($0) } ?? .null
        }
        if !stats.missing.isEmpty { evidence["missing_files"] = .array(stats.missing.map { .string($0) }) }
        if !facts.invalidSettings.isEmpty {
            var invalid = JSONObject()
            for setting in facts.invalidSettings { invalid[setting.name] = setting.json }
            evidence["invalid_settings"] = .object(invalid)
        }

        let shared = max(0, facts.sharedBuffersBytes ?? 0)
        let recommended = roundUpTo256MiB(
            shared.addingSaturating(floorBytes).addingSaturating(max(shared / 2, 256 << 20)))
        let sizingHint =
            "Size the container's memory limit (resources.limits.memory) for shared_buffers, the backends' "
            + "work_mem and a page cache: at least \(recommended >> 20)Mi here, requests equal to limits for a "
            + "Guaranteed pod (or lower shared_buffers). "
            + OperatorRemedies.memory("\(recommended >> 20)Mi", operator: facts.runBy)

        if let kills = stats.oomKills, kills > 0 {
            let group =
                (stats.oomGroupKills ?? 0) > 0
                ? "; \(stats.oomGroupKills ?? 0) time(s) it ended the whole container at once (memory.oom.group)" : ""
            return Observation(
                check: id, severity: .critical,
                summary: "The OOM killer ended \(kills) process(es) in this container's memory cgroup\(group).",
                evidence: evidence, remedy: sizingHint)
        }
        if let limit = stats.limitBytes, let sb = facts.sharedBuffersBytes, limit <= sb.addingSaturating(floorBytes) {
            return Observation(
                check: id, severity: .critical,
                summary:
                    "The memory limit (\(mib(limit)) MiB) leaves less than \(floorBytes >> 20) MiB above "
                    + "shared_buffers (\(mib(sb)) MiB), which is charged to the same cgroup.",
                evidence: evidence, remedy: sizingHint)
        }
        if let limit = stats.limitBytes, limit > 0, let ws = stats.workingSetBytes,
            Double(ws) > Double(limit) * workingSetWarningFraction
        {
            return Observation(
                check: id, severity: .warning,
                summary:
                    "The working set (\(mib(ws)) MiB) is above \(Int(workingSetWarningFraction * 100)) % of the "
                    + "memory limit (\(mib(limit)) MiB): the kernel reclaims from the database's own processes.",
                evidence: evidence, remedy: sizingHint)
        }
        if stats.limitBytes == nil, facts.qosClass == "besteffort" {
            return Observation(
                check: id, severity: .warning,
                summary:
                    "The pod is BestEffort with no memory limit: it is the first to be evicted under node pressure.",
                evidence: evidence,
                remedy:
                    "Give the container memory requests and limits (equal, for a Guaranteed pod): at least "
                    + "\(recommended >> 20)Mi here. "
                    + OperatorRemedies.memory("\(recommended >> 20)Mi", operator: facts.runBy))
        }
        if let high = stats.highEvents, high > 0, stats.highBytes != nil {
            return Observation(
                check: id, severity: .warning,
                summary: "Usage went over memory.high \(high) time(s): the kernel throttled and reclaimed.",
                evidence: evidence, remedy: sizingHint)
        }
        let limitText = stats.limitBytes.map { "\(mib($0)) MiB" } ?? "no limit"
        let wsText = stats.workingSetBytes.map { "\(mib($0)) MiB" } ?? "unknown"
        let unknown =
            facts.invalidSettings.isEmpty
            ? ""
            : " \(facts.invalidSettings.map(\.name).joined(separator: ", ")) not known: configured to a value "
                + "PostgreSQL refuses (see invalid_settings)."
        return Observation(
            check: id, severity: .ok,
            summary: "Memory limit: \(limitText); working set \(wsText).\(unknown)", evidence: evidence)
    }

    /// Bytes in whole MiB, rounded to the nearest (as the evidence's human sizes show them).
    static func mib(_ bytes: Int64) -> Int64 { bytes.addingSaturating(1 << 19) >> 20 }

    /// `bytes` rounded up to a multiple of 256 MiB; the largest such multiple when that does not fit.
    static func roundUpTo256MiB(_ bytes: Int64) -> Int64 {
        let unit: Int64 = 256 << 20
        return bytes.addingSaturating(unit - 1) / unit * unit
    }
}
