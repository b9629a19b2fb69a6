import PGNodeModel

/// What `shm.size` looks at for one PostgreSQL server.
public struct ShmSizeFacts: Sendable, Equatable {
    /// How the container's `/dev/shm` is provided.
    public enum MountKind: String, Sendable {
        /// The tmpfs the container runtime creates for every pod (64 MiB unless configured).
        case runtimeDefault = "runtime_default"
        /// A Kubernetes `emptyDir` with `medium: Memory` mounted at `/dev/shm`.
        case memoryEmptyDir = "memory_emptydir"
        /// The node's own `/dev/shm` (`hostIPC: true`).
        case host
        /// Something else (a hostPath, a CSI volume, a tmpfs from the image's entrypoint).
        case other
    }

    /// The mount as the server sees it, or why it could not be read.
    public var mount: Result<ShmMount, CheckUnavailable>
    /// `dynamic_shared_memory_type`: `posix` (the default), `sysv`, `mmap`.
    public var dynamicSharedMemoryType: Result<SettingValue<String>, InvalidSetting>
    /// `work_mem` in bytes.
    public var workMem: Result<SettingValue<Int64>, InvalidSetting>
    /// `hash_mem_multiplier`.
    public var hashMemMultiplier: Result<SettingValue<Double>, InvalidSetting>
    /// `max_parallel_workers_per_gather`.
    public var maxParallelWorkersPerGather: Result<SettingValue<Int64>, InvalidSetting>
    /// `max_parallel_workers`.
    public var maxParallelWorkers: Result<SettingValue<Int64>, InvalidSetting>
    /// `min_dynamic_shared_memory` in bytes (preallocated in the main shared memory, not in /dev/shm).
    public var minDynamicSharedMemory: Result<SettingValue<Int64>, InvalidSetting>
    /// The operator that runs the server: the remedy names its setting.
    public var runBy: PostgresOperator
    /// The container's memory limit and the shared memory under it, which a larger memory-backed
    /// `/dev/shm` competes with; nil when not known.
    public var memoryLimit: ShmMemoryLimit?

    /// The facts for one server: each setting a value PostgreSQL accepts (`.success`) or the
    /// text it refuses (`.failure`).
    public init(
        mount: Result<ShmMount, CheckUnavailable>,
        dynamicSharedMemoryType: Result<SettingValue<String>, InvalidSetting>,
        workMem: Result<SettingValue<Int64>, InvalidSetting>,
        hashMemMultiplier: Result<SettingValue<Double>, InvalidSetting>,
        maxParallelWorkersPerGather: Result<SettingValue<Int64>, InvalidSetting>,
        maxParallelWorkers: Result<SettingValue<Int64>, InvalidSetting>,
        minDynamicSharedMemory: Result<SettingValue<Int64>, InvalidSetting>, runBy: PostgresOperator = .none,
        memoryLimit: ShmMemoryLimit? = nil
    ) {
        self.runBy = runBy
        self.memoryLimit = memoryLimit
        self.mount = mount
        self.dynamicSharedMemoryType = dynamicSharedMemoryType
        self.workMem = workMem
        self.hashMemMultiplier = hashMemMultiplier
        self.maxParallelWorkersPerGather = maxParallelWorkersPerGather
        self.maxParallelWorkers = maxParallelWorkers
        self.minDynamicSharedMemory = minDynamicSharedMemory
    }
}

/// The container's `/dev/shm` as statfs sees it through the container's root.
public struct ShmMount: Sendable, Equatable {
    /// Total size in bytes.
    public var sizeBytes: Int64
    /// Used bytes.
    public var usedBytes: Int64
    /// How it is provided.
    public var kind: ShmSizeFacts.MountKind
    /// The mount's source as mountinfo names it (for evidence).
    public var source: String?

    /// A mount.
    public init(sizeBytes: Int64, usedBytes: Int64, kind: ShmSizeFacts.MountKind, source: String?) {
        self.sizeBytes = sizeBytes
        self.usedBytes = usedBytes
        self.kind = kind
        self.source = source
    }
}

/// `shm.size`: is the container's `/dev/shm` large enough for the dynamic shared memory that
/// parallel queries put there?
public enum ShmSizeCheck {
    /// The check id.
    public static let id = "shm.size"
    /// Usage above this fraction of the mount is a warning.
    public static let usageWarningFraction = 0.8

    /// The settings that size dynamic shared memory, once every one is known to be valid.
    public struct Budget: Sendable, Equatable {
        /// `work_mem` in bytes.
        public var workMemBytes: Int64
        /// `hash_mem_multiplier`.
        public var hashMemMultiplier: Double
        /// `max_parallel_workers_per_gather`.
        public var maxParallelWorkersPerGather: Int64
        /// `max_parallel_workers`.
        public var maxParallelWorkers: Int64
        /// `min_dynamic_shared_memory` in bytes.
        public var minDynamicSharedMemoryBytes: Int64

        /// The settings.
        public init(
            workMemBytes: Int64, hashMemMultiplier: Double, maxParallelWorkersPerGather: Int64,
            maxParallelWorkers: Int64, minDynamicSharedMemoryBytes: Int64
        ) {
            self.workMemBytes = workMemBytes
            self.hashMemMultiplier = hashMemMultiplier
            self.maxParallelWorkersPerGather = maxParallelWorkersPerGather
            self.maxParallelWorkers = maxParallelWorkers
            self.minDynamicSharedMemoryBytes = minDynamicSharedMemoryBytes
        }

        /// The settings of `facts` when all are valid; else nil, and every one that is not a
        /// value PostgreSQL accepts: those the facts carry as invalid, and numbers no server can
        /// have (negative, not finite).
        public static func from(_ facts: ShmSizeFacts) -> (budget: Budget?, invalid: [InvalidSetting]) {
            var invalid: [InvalidSetting] = []
            func take<V>(_ name: String, _ setting: Result<SettingValue<V>, InvalidSetting>, _ sane: (V) -> Bool) -> V?
            {
                switch setting {
                case .failure(let why):
                    invalid.append(why)
                    return nil
                case .success(let s) where !sane(s.value):
                    invalid.append(
                        InvalidSetting(
                            name: name, text: "\(s.value)", source: s.source,
                            reason: "no PostgreSQL server has this value (negative or not a finite number)"))
                    return nil
                case .success(let s):
                    return s.value
                }
            }
            let workMem = take("work_mem", facts.workMem) { $0 >= 0 }
            let multiplier = take("hash_mem_multiplier", facts.hashMemMultiplier) { $0.isFinite && $0 >= 0 }
            let perGather = take("max_parallel_workers_per_gather", facts.maxParallelWorkersPerGather) { $0 >= 0 }
            let workers = take("max_parallel_workers", facts.maxParallelWorkers) { $0 >= 0 }
            let minDSM = take("min_dynamic_shared_memory", facts.minDynamicSharedMemory) { $0 >= 0 }
            guard let workMem, let multiplier, let perGather, let workers, let minDSM else { return (nil, invalid) }
            let budget = Budget(
                workMemBytes: workMem, hashMemMultiplier: multiplier, maxParallelWorkersPerGather: perGather,
                maxParallelWorkers: workers, minDynamicSharedMemoryBytes: minDSM)
            return (budget, [])
        }

        /// The dynamic shared memory one parallel hash join may need:
        /// `work_mem × hash_mem_multiplier × (max_parallel_workers_per_gather + 1)`, less what
        /// `min_dynamic_shared_memory` preallocates in the main shared memory (never below zero).
        /// Saturates at `Int64.max` (PostgreSQL's own ranges stay below 2^62).
        public var oneJoinBytes: Int64 {
            let participants = Double(maxParallelWorkersPerGather.addingSaturating(1))
            let budget = Double(workMemBytes) * hashMemMultiplier * participants
            let bytes = Int64(clampingFinite: budget) ?? .max  // inputs are finite and ≥ 0: only +∞ here
            return max(0, bytes.subtractingSaturating(minDynamicSharedMemoryBytes))
        }

        /// How many parallel queries can hold workers at once: `max_parallel_workers /
        /// max_parallel_workers_per_gather` (at least 1).
        public var concurrentGathers: Int64 {
            guard maxParallelWorkersPerGather > 0 else { return 1 }
            return max(1, maxParallelWorkers / maxParallelWorkersPerGather)
        }
    }

    /// The observation for one server.
    public static func evaluate(_ facts: ShmSizeFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: ShmSizeFacts) -> Observation {
        var evidence: JSONObject = [:]
        facts.runBy.addEvidence(to: &evidence)
        let settings: JSONObject = [
            "dynamic_shared_memory_type": setting(facts.dynamicSharedMemoryType) { .string($0) },
            "work_mem_bytes": setting(facts.workMem) { .int($0) },
            "hash_mem_multiplier": setting(facts.hashMemMultiplier) { .double($0) },
            "max_parallel_workers_per_gather": setting(facts.maxParallelWorkersPerGather) { .int($0) },
            "max_parallel_workers": setting(facts.maxParallelWorkers) { .int($0) },
            "min_dynamic_shared_memory_bytes": setting(facts.minDynamicSharedMemory) { .int($0) },
        ]

        let mount: ShmMount
        switch facts.mount {
        case .failure(let why):
            evidence["settings"] = .object(settings)
            return .unavailable(check: id, reason: why.reason, evidence: evidence)
        case .success(let m): mount = m
        }
        evidence["shm_size_bytes"] = .int(mount.sizeBytes)
        evidence["shm_used_bytes"] = .int(mount.usedBytes)
        evidence["shm_kind"] = .string(mount.kind.rawValue)
        evidence["shm_source"] = .from(mount.source)

        let dsmType: String
        switch facts.dynamicSharedMemoryType {
        case .failure(let invalid):
            evidence["settings"] = .object(settings)
            return .unavailable(check: id, reason: InvalidSetting.reason([invalid]), evidence: evidence)
        case .success(let s): dsmType = s.value
        }
        guard dsmType == "posix" else {
            evidence["dsm_estimate_bytes"] = .int(0)
            evidence["settings"] = .object(settings)
            let whereTo =
                dsmType == "sysv"
                ? "System V shared memory" : dsmType == "mmap" ? "files in the data directory" : "'\(dsmType)'"
            return Observation(
                check: id, severity: .ok,
                summary:
                    "dynamic_shared_memory_type is \(dsmType), so parallel queries put their shared memory in \(whereTo), "
                    + "not /dev/shm; its size does not limit them.",
                evidence: evidence)
        }

        let inputs = Budget.from(facts)
        guard let settingsBudget = inputs.budget else {
            evidence["settings"] = .object(settings)
            return .unavailable(check: id, reason: InvalidSetting.reason(inputs.invalid), evidence: evidence)
        }
        let budget = settingsBudget.oneJoinBytes
        let gathers = settingsBudget.concurrentGathers
        let concurrentBudget = budget.multipliedSaturating(by: gathers)
        evidence["dsm_estimate_bytes"] = .int(budget)
        evidence["dsm_concurrent_estimate_bytes"] = .int(concurrentBudget)
        evidence["concurrent_parallel_queries"] = .int(gathers)
        evidence["settings"] = .object(settings)

        let size = mount.sizeBytes
        let usage = size > 0 ? Double(mount.usedBytes) / Double(size) : 0
        let recommended = roundUpToMiB(max(concurrentBudget, budget).addingSaturating(budget / 4))
        evidence["recommended_shm_bytes"] = .int(recommended)
        if let limit = facts.memoryLimit {
            evidence["memory_limit_bytes"] = .from(limit.limitBytes)
            evidence["memory_needed_with_recommended_shm_bytes"] = .int(limit.neededBytes(shmBytes: recommended))
        }

        if size < budget {
            return Observation(
                check: id, severity: .critical,
                summary:
                    "/dev/shm is \(mib(size)) but one parallel hash join may need \(mib(budget)) of dynamic shared memory "
                    + "there; such queries fail with 'could not resize shared memory segment … No space left on device'.",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind, facts))
        }
        if usage > usageWarningFraction {
            return Observation(
                check: id, severity: .warning,
                summary: "/dev/shm is \(percent(usage)) % full (\(mib(mount.usedBytes)) of \(mib(size))).",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind, facts))
        }
        if size < concurrentBudget {
            return Observation(
                check: id, severity: .warning,
                summary:
                    "/dev/shm (\(mib(size))) holds one parallel hash join (\(mib(budget))) but not the \(gathers) "
                    + "that max_parallel_workers allows at once (\(mib(concurrentBudget))).",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind, facts))
        }
        return Observation(
            check: id, severity: .ok,
            summary:
                "/dev/shm (\(mib(size)), \(percent(usage)) % used) fits the \(mib(concurrentBudget)) that "
                + "\(gathers) concurrent parallel hash join(s) may need.",
            evidence: evidence)
    }

    static func remedy(recommended: Int64, kind: ShmSizeFacts.MountKind, _ facts: ShmSizeFacts) -> String {
        OperatorRemedies.shm(size: "\(recommended / (1 << 20))Mi", kind: kind, operator: facts.runBy) + "\n"
            + ShmMemoryLimit.note(shmBytes: recommended, limit: facts.memoryLimit, operator: facts.runBy)
            + "\nOr need less: lower work_mem (per session: SET work_mem) or max_parallel_workers_per_gather."
    }

    static func roundUpToMiB(_ bytes: Int64) -> Int64 {
        let mib: Int64 = 1 << 20
        let (sum, overflow) = bytes.addingReportingOverflow(mib - 1)
        return overflow ? Int64.max : sum / mib * mib
    }

    static func mib(_ bytes: Int64) -> String {
        let value = Double(bytes) / 1_048_576
        return value >= 10 || value.rounded() == value
            ? "\(Int64(clampingFinite: value.rounded()) ?? 0) MiB" : "\((value * 10).rounded() / 10) MiB"
    }

    /// A fraction as a whole percentage, for a summary (a used size far above the mount's stays a number).
    static func percent(_ fraction: Double) -> Int64 { Int64(clampingFinite: fraction * 100) ?? 0 }

    static func setting<V>(_ s: Result<SettingValue<V>, InvalidSetting>, _ encode: (V) -> JSONValue) -> JSONValue {
        switch s {
        case .success(let s): .object(["value": encode(s.value), "source": .string(s.source)])
        case .failure(let invalid): invalid.json
        }
    }
}
