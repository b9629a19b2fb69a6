import PGNodeModel

/// A PostgreSQL setting's value with where it came from (for evidence).
public struct SettingValue<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The value, in base units (bytes for memory settings).
    public var value: Value
    /// Where it was set: `default`, `postgresql.conf:12`, `postgresql.auto.conf:3`, `command line`, …
    public var source: String

    /// A value and its source.
    public init(_ value: Value, source: String) {
        self.value = value
        self.source = source
    }
}

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
    public var dynamicSharedMemoryType: SettingValue<String>
    /// `work_mem` in bytes.
    public var workMem: SettingValue<Int64>
    /// `hash_mem_multiplier`.
    public var hashMemMultiplier: SettingValue<Double>
    /// `max_parallel_workers_per_gather`.
    public var maxParallelWorkersPerGather: SettingValue<Int64>
    /// `max_parallel_workers`.
    public var maxParallelWorkers: SettingValue<Int64>
    /// `min_dynamic_shared_memory` in bytes (preallocated in the main shared memory, not in /dev/shm).
    public var minDynamicSharedMemory: SettingValue<Int64>

    /// The facts for one server.
    public init(
        mount: Result<ShmMount, CheckUnavailable>, dynamicSharedMemoryType: SettingValue<String>,
        workMem: SettingValue<Int64>, hashMemMultiplier: SettingValue<Double>,
        maxParallelWorkersPerGather: SettingValue<Int64>, maxParallelWorkers: SettingValue<Int64>,
        minDynamicSharedMemory: SettingValue<Int64>
    ) {
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

    /// The dynamic shared memory one parallel hash join may need:
    /// `work_mem × hash_mem_multiplier × (max_parallel_workers_per_gather + 1)`, less what
    /// `min_dynamic_shared_memory` preallocates in the main shared memory (never below zero).
    public static func oneJoinBudget(_ facts: ShmSizeFacts) -> Int64 {
        let participants = Double(max(0, facts.maxParallelWorkersPerGather.value) + 1)
        let budget = Double(facts.workMem.value) * max(0, facts.hashMemMultiplier.value) * participants
        let clamped = budget >= Double(Int64.max) ? Int64.max : Int64(budget)
        return max(0, clamped - max(0, facts.minDynamicSharedMemory.value))
    }

    /// How many parallel queries can hold workers at once: `max_parallel_workers /
    /// max_parallel_workers_per_gather` (at least 1).
    public static func concurrentGathers(_ facts: ShmSizeFacts) -> Int64 {
        let perGather = facts.maxParallelWorkersPerGather.value
        guard perGather > 0 else { return 1 }
        return max(1, facts.maxParallelWorkers.value / perGather)
    }

    /// The observation for one server.
    public static func evaluate(_ facts: ShmSizeFacts) -> Observation {
        var evidence: JSONObject = [:]
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

        let dsmType = facts.dynamicSharedMemoryType.value
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

        let budget = oneJoinBudget(facts)
        let gathers = concurrentGathers(facts)
        let (all, overflow) = budget.multipliedReportingOverflow(by: gathers)
        let concurrentBudget = overflow ? Int64.max : all
        evidence["dsm_estimate_bytes"] = .int(budget)
        evidence["dsm_concurrent_estimate_bytes"] = .int(concurrentBudget)
        evidence["concurrent_parallel_queries"] = .int(gathers)
        evidence["settings"] = .object(settings)

        let size = mount.sizeBytes
        let usage = size > 0 ? Double(mount.usedBytes) / Double(size) : 0
        let recommended = roundUpToMiB(max(concurrentBudget, budget) + budget / 4)
        evidence["recommended_shm_bytes"] = .int(recommended)

        if size < budget {
            return Observation(
                check: id, severity: .critical,
                summary:
                    "/dev/shm is \(mib(size)) but one parallel hash join may need \(mib(budget)) of dynamic shared memory "
                    + "there; such queries fail with 'could not resize shared memory segment … No space left on device'.",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind))
        }
        if usage > usageWarningFraction {
            return Observation(
                check: id, severity: .warning,
                summary: "/dev/shm is \(Int(usage * 100)) % full (\(mib(mount.usedBytes)) of \(mib(size))).",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind))
        }
        if size < concurrentBudget {
            return Observation(
                check: id, severity: .warning,
                summary:
                    "/dev/shm (\(mib(size))) holds one parallel hash join (\(mib(budget))) but not the \(gathers) "
                    + "that max_parallel_workers allows at once (\(mib(concurrentBudget))).",
                evidence: evidence, remedy: remedy(recommended: recommended, kind: mount.kind))
        }
        return Observation(
            check: id, severity: .ok,
            summary:
                "/dev/shm (\(mib(size)), \(Int(usage * 100)) % used) fits the \(mib(concurrentBudget)) that "
                + "\(gathers) concurrent parallel hash join(s) may need.",
            evidence: evidence)
    }

    static func remedy(recommended: Int64, kind: ShmSizeFacts.MountKind) -> String {
        let size = "\(recommended / (1 << 20))Mi"
        var text =
            "Mount a memory-backed emptyDir at /dev/shm sized for parallel queries (it counts against the pod's "
            + "memory limit):\n"
            + "  volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: \(size)}}]\n"
            + "  containers[].volumeMounts: [{name: dshm, mountPath: /dev/shm}]\n"
            + "With CloudNativePG set spec.ephemeralVolumesSizeLimit.shm: \(size). "
            + "Or need less: lower work_mem (per session: SET work_mem) or max_parallel_workers_per_gather."
        if kind == .memoryEmptyDir { text = "Raise the emptyDir's sizeLimit to \(size). " + text }
        return text
    }

    static func roundUpToMiB(_ bytes: Int64) -> Int64 {
        let mib: Int64 = 1 << 20
        let (sum, overflow) = bytes.addingReportingOverflow(mib - 1)
        return overflow ? Int64.max : sum / mib * mib
    }

    static func mib(_ bytes: Int64) -> String {
        let value = Double(bytes) / 1_048_576
        return value >= 10 || value.rounded() == value
            ? "\(Int64(value.rounded())) MiB" : "\((value * 10).rounded() / 10) MiB"
    }

    static func setting<V>(_ s: SettingValue<V>, _ encode: (V) -> JSONValue) -> JSONValue {
        .object(["value": encode(s.value), "source": .string(s.source)])
    }
}
