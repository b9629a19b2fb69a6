import PGNodeModel

/// What `memory.budget` looks at for one container's server.
public struct MemoryBudgetFacts: Sendable, Equatable {
    /// The container's memory limit in bytes (`.success(nil)`: no limit), or why it is unknown.
    public var limit: Result<Int64?, CheckUnavailable>
    /// `shared_buffers` in bytes.
    public var sharedBuffers: Result<SettingValue<Int64>, InvalidSetting>
    /// `wal_buffers` in bytes; negative (-1 in PostgreSQL's terms): 1/32 of `shared_buffers`.
    public var walBuffers: Result<SettingValue<Int64>, InvalidSetting>
    /// `work_mem` in bytes.
    public var workMem: Result<SettingValue<Int64>, InvalidSetting>
    /// `max_connections`.
    public var maxConnections: Result<SettingValue<Int64>, InvalidSetting>
    /// `autovacuum_max_workers`.
    public var autovacuumMaxWorkers: Result<SettingValue<Int64>, InvalidSetting>
    /// `autovacuum_work_mem` in bytes; negative (-1): `maintenance_work_mem`.
    public var autovacuumWorkMem: Result<SettingValue<Int64>, InvalidSetting>
    /// `maintenance_work_mem` in bytes.
    public var maintenanceWorkMem: Result<SettingValue<Int64>, InvalidSetting>
    /// `max_parallel_workers`.
    public var maxParallelWorkers: Result<SettingValue<Int64>, InvalidSetting>
    /// `max_worker_processes` (parallel workers are taken from these).
    public var maxWorkerProcesses: Result<SettingValue<Int64>, InvalidSetting>
    /// The operator that runs the server: the remedy names its `resources` field.
    public var runBy: PostgresOperator

    /// The facts for one server.
    public init(
        limit: Result<Int64?, CheckUnavailable>, sharedBuffers: Result<SettingValue<Int64>, InvalidSetting>,
        walBuffers: Result<SettingValue<Int64>, InvalidSetting>, workMem: Result<SettingValue<Int64>, InvalidSetting>,
        maxConnections: Result<SettingValue<Int64>, InvalidSetting>,
        autovacuumMaxWorkers: Result<SettingValue<Int64>, InvalidSetting>,
        autovacuumWorkMem: Result<SettingValue<Int64>, InvalidSetting>,
        maintenanceWorkMem: Result<SettingValue<Int64>, InvalidSetting>,
        maxParallelWorkers: Result<SettingValue<Int64>, InvalidSetting>,
        maxWorkerProcesses: Result<SettingValue<Int64>, InvalidSetting>, runBy: PostgresOperator = .none
    ) {
        self.limit = limit
        self.sharedBuffers = sharedBuffers
        self.walBuffers = walBuffers
        self.workMem = workMem
        self.maxConnections = maxConnections
        self.autovacuumMaxWorkers = autovacuumMaxWorkers
        self.autovacuumWorkMem = autovacuumWorkMem
        self.maintenanceWorkMem = maintenanceWorkMem
        self.maxParallelWorkers = maxParallelWorkers
        self.maxWorkerProcesses = maxWorkerProcesses
        self.runBy = runBy
    }
}

/// `memory.budget`: can the server's plausible peak fit in the container's memory limit?
/// `work_mem` bounds one sort or hash of one plan node, so a query's memory is unbounded in
/// principle; the check uses a documented model instead, the peak that ordinary settings allow:
///
/// - shared: `shared_buffers` + `wal_buffers` (charged to the cgroup as shared memory);
/// - every connection: `max_connections` × (`work_mem` + `perBackendOverheadBytes`);
/// - autovacuum: `autovacuum_max_workers` × (`autovacuum_work_mem`, or `maintenance_work_mem`
///   when it is -1, + the overhead);
/// - parallel workers: min(`max_parallel_workers`, `max_worker_processes`) × (`work_mem` + the overhead).
public enum MemoryBudgetCheck {
    /// The check id.
    public static let id = "memory.budget"
    /// A backend's own memory besides `work_mem`: its catalog, relation and plan caches and the
    /// executor's state, a few MiB in an ordinary schema (more with thousands of relations).
    public static let perBackendOverheadBytes: Int64 = 4 << 20
    /// `wal_buffers = -1`: 1/32 of `shared_buffers`, at least this (8 pages of 8 kB)…
    static let walBuffersAutoMinimum: Int64 = 64 << 10
    /// … and at most one WAL segment (16 MiB unless initdb chose another `--wal-segsize`).
    static let walBuffersAutoMaximum: Int64 = 16 << 20
    /// An explicit `wal_buffers` below 4 pages is raised to 4 pages.
    static let walBuffersMinimum: Int64 = 4 * 8192

    /// The model's terms, once every setting is valid.
    public struct Terms: Sendable, Equatable {
        /// `shared_buffers` in bytes.
        public var sharedBuffersBytes: Int64
        /// `wal_buffers` in bytes, as the server sizes it.
        public var walBuffersBytes: Int64
        /// `max_connections`.
        public var connections: Int64
        /// `work_mem` in bytes.
        public var workMemBytes: Int64
        /// `autovacuum_max_workers`.
        public var autovacuumWorkers: Int64
        /// What one autovacuum worker may use, in bytes.
        public var autovacuumMemBytes: Int64
        /// Parallel workers that can run at once.
        public var parallelWorkers: Int64

        /// `shared_buffers` + `wal_buffers`.
        public var sharedBytes: Int64 { sharedBuffersBytes.addingSaturating(walBuffersBytes) }
        /// Every connection at `work_mem` plus its overhead.
        public var connectionsBytes: Int64 {
            connections.multipliedSaturating(by: workMemBytes.addingSaturating(perBackendOverheadBytes))
        }
        /// Every autovacuum worker at its memory plus the overhead.
        public var autovacuumBytes: Int64 {
            autovacuumWorkers.multipliedSaturating(by: autovacuumMemBytes.addingSaturating(perBackendOverheadBytes))
        }
        /// Every parallel worker at `work_mem` plus the overhead.
        public var parallelBytes: Int64 {
            parallelWorkers.multipliedSaturating(by: workMemBytes.addingSaturating(perBackendOverheadBytes))
        }
        /// The plausible peak: the sum of the terms.
        public var peakBytes: Int64 { [sharedBytes, connectionsBytes, autovacuumBytes, parallelBytes].saturatingSum() }

        /// The largest `work_mem` with which the peak fits in `limit`, or nil when nothing fits
        /// even at `work_mem = 0` (too many backends, or shared memory alone too large).
        public func workMemFitting(_ limit: Int64) -> Int64? {
            let users = connections.addingSaturating(parallelWorkers)
            let fixed = [
                sharedBytes, users.multipliedSaturating(by: perBackendOverheadBytes), autovacuumBytes,
            ].saturatingSum()
            guard users > 0, fixed < limit else { return nil }
            return limit.subtractingSaturating(fixed) / users
        }
    }

    /// The terms of `facts` when every setting is valid; else the invalid ones.
    public static func terms(_ facts: MemoryBudgetFacts) -> (terms: Terms?, invalid: [InvalidSetting]) {
        var invalid: [InvalidSetting] = []
        func take(
            _ name: String, _ setting: Result<SettingValue<Int64>, InvalidSetting>, negativeAllowed: Bool = false
        ) -> Int64? {
            switch setting {
            case .failure(let why):
                invalid.append(why)
                return nil
            case .success(let s) where s.value < 0 && !negativeAllowed:
                invalid.append(
                    InvalidSetting(
                        name: name, text: "\(s.value)", source: s.source,
                        reason: "no PostgreSQL server has this value (negative)"))
                return nil
            case .success(let s): return s.value
            }
        }
        let shared = take("shared_buffers", facts.sharedBuffers)
        let wal = take("wal_buffers", facts.walBuffers, negativeAllowed: true)
        let workMem = take("work_mem", facts.workMem)
        let connections = take("max_connections", facts.maxConnections)
        let avWorkers = take("autovacuum_max_workers", facts.autovacuumMaxWorkers)
        let avMem = take("autovacuum_work_mem", facts.autovacuumWorkMem, negativeAllowed: true)
        let maintenance = take("maintenance_work_mem", facts.maintenanceWorkMem)
        let parallel = take("max_parallel_workers", facts.maxParallelWorkers)
        let workers = take("max_worker_processes", facts.maxWorkerProcesses)
        guard let shared, let wal, let workMem, let connections, let avWorkers, let avMem, let maintenance,
            let parallel, let workers
        else { return (nil, invalid) }
        let walBytes =
            wal < 0 ? min(max(shared / 32, walBuffersAutoMinimum), walBuffersAutoMaximum) : max(wal, walBuffersMinimum)
        let terms = Terms(
            sharedBuffersBytes: shared, walBuffersBytes: walBytes, connections: connections, workMemBytes: workMem,
            autovacuumWorkers: avWorkers, autovacuumMemBytes: avMem < 0 ? maintenance : avMem,
            parallelWorkers: min(parallel, workers))
        return (terms, [])
    }

    /// The observation for one server.
    public static func evaluate(_ facts: MemoryBudgetFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: MemoryBudgetFacts) -> Observation {
        var evidence: JSONObject = [:]
        facts.runBy.addEvidence(to: &evidence)
        var settings: JSONObject = [
            "shared_buffers_bytes": ShmSizeCheck.setting(facts.sharedBuffers) { .int($0) },
            "wal_buffers_bytes": ShmSizeCheck.setting(facts.walBuffers) { .int($0) },
            "work_mem_bytes": ShmSizeCheck.setting(facts.workMem) { .int($0) },
            "max_connections": ShmSizeCheck.setting(facts.maxConnections) { .int($0) },
            "autovacuum_max_workers": ShmSizeCheck.setting(facts.autovacuumMaxWorkers) { .int($0) },
            "autovacuum_work_mem_bytes": ShmSizeCheck.setting(facts.autovacuumWorkMem) { .int($0) },
            "maintenance_work_mem_bytes": ShmSizeCheck.setting(facts.maintenanceWorkMem) { .int($0) },
            "max_parallel_workers": ShmSizeCheck.setting(facts.maxParallelWorkers) { .int($0) },
            "max_worker_processes": ShmSizeCheck.setting(facts.maxWorkerProcesses) { .int($0) },
        ]
        // -1 (a negative number of bytes) is PostgreSQL's "automatic": shown as -1, without a unit.
        for (name, fact) in [("wal_buffers", facts.walBuffers), ("autovacuum_work_mem", facts.autovacuumWorkMem)] {
            guard case .success(let s) = fact, s.value < 0 else { continue }
            settings["\(name)_bytes"] = nil
            settings[name] = .object(["value": .int(-1), "source": .string(s.source)])
        }
        evidence["settings"] = .object(settings)
        let limit: Int64?
        switch facts.limit {
        case .failure(let why): return .unavailable(check: id, reason: why.reason, evidence: evidence)
        case .success(let l): limit = l
        }
        evidence["limit_bytes"] = .from(limit)
        let computed = terms(facts)
        guard let t = computed.terms else {
            return .unavailable(check: id, reason: InvalidSetting.reason(computed.invalid), evidence: evidence)
        }
        let overhead = perBackendOverheadBytes
        evidence["terms"] = .object([
            "shared_buffers_bytes": .int(t.sharedBuffersBytes),
            "wal_buffers_bytes": .int(t.walBuffersBytes),
            "connections": .object([
                "count": .int(t.connections), "work_mem_bytes": .int(t.workMemBytes), "overhead_bytes": .int(overhead),
                "bytes": .int(t.connectionsBytes),
            ]),
            "autovacuum": .object([
                "count": .int(t.autovacuumWorkers), "memory_bytes": .int(t.autovacuumMemBytes),
                "overhead_bytes": .int(overhead), "bytes": .int(t.autovacuumBytes),
            ]),
            "parallel_workers": .object([
                "count": .int(t.parallelWorkers), "work_mem_bytes": .int(t.workMemBytes),
                "overhead_bytes": .int(overhead), "bytes": .int(t.parallelBytes),
            ]),
        ])
        let peak = t.peakBytes
        evidence["plausible_peak_bytes"] = .int(peak)
        let breakdown =
            "shared_buffers \(mib(t.sharedBuffersBytes)) + wal_buffers \(mib(t.walBuffersBytes)) + "
            + "\(t.connections) connections × (work_mem \(mib(t.workMemBytes)) + \(mib(overhead))) + "
            + "\(t.autovacuumWorkers) autovacuum workers × \(mib(t.autovacuumMemBytes.addingSaturating(overhead))) + "
            + "\(t.parallelWorkers) parallel workers × \(mib(t.workMemBytes.addingSaturating(overhead)))"
        guard let limit else {
            return Observation(
                check: id, severity: .ok,
                summary: "No memory limit; the plausible peak is \(mib(peak)) (\(breakdown)).", evidence: evidence)
        }
        let over = peak.subtractingSaturating(limit)
        evidence["over_limit_bytes"] = .int(max(0, over))
        guard over > 0 else {
            return Observation(
                check: id, severity: .ok,
                summary: "The plausible peak, \(mib(peak)) (\(breakdown)), fits the memory limit (\(mib(limit))).",
                evidence: evidence)
        }
        let raiseTo = MemoryLimitCheck.roundUpTo256MiB(peak)
        evidence["recommended_limit_bytes"] = .int(raiseTo)
        var remedy =
            "Raise the memory limit to at least \(raiseTo >> 20)Mi (by \(raiseTo.subtractingSaturating(limit) >> 20)Mi). "
            + OperatorRemedies.memory("\(raiseTo >> 20)Mi", operator: facts.runBy)
        if let fit = t.workMemFitting(limit), fit >= 64 << 10 {
            let kb = fit >> 10
            evidence["work_mem_fitting_bytes"] = .int(kb << 10)
            remedy +=
                "\nOr lower work_mem to \(kb >= 1024 ? "\(kb >> 10)MB" : "\(kb)kB") or less (per role or session "
                + "where a query needs more: ALTER ROLE … SET work_mem), or max_connections (a connection pooler)."
        } else {
            remedy +=
                "\nOr lower max_connections (a connection pooler in front) and shared_buffers: even at the smallest "
                + "work_mem the backends' own memory does not fit."
        }
        return Observation(
            check: id, severity: .warning,
            summary:
                "The plausible peak, \(mib(peak)) (\(breakdown)), exceeds the memory limit (\(mib(limit))) by "
                + "\(mib(over)): at that peak the kernel's OOM killer ends a backend and the postmaster restarts all.",
            evidence: evidence, remedy: remedy)
    }

    static func mib(_ bytes: Int64) -> String { ShmSizeCheck.mib(bytes) }
}
