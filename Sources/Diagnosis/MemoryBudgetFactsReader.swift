import Checks
import HostFacts
import Resolution

/// Gathers `memory.budget` facts for a container's server: its memory settings and the
/// container's memory limit (from the memory cgroup already read for `memory.limit`).
public enum MemoryBudgetFactsReader {
    /// The facts for `server`, with `cgroup` the container's memory cgroup (or why it is unreadable).
    public static func facts(server: PostgresServer, cgroup: Result<MemoryCgroupStats, CheckUnavailable>)
        -> MemoryBudgetFacts
    {
        let major = server.majorVersion ?? 15
        return MemoryBudgetFacts(
            limit: cgroup.map(\.limitBytes),
            sharedBuffers: SettingFacts.bytes(server, "shared_buffers", major >= 15 ? 128 << 20 : 8 << 20),
            walBuffers: SettingFacts.bytes(server, "wal_buffers", -8192),
            workMem: SettingFacts.bytes(server, "work_mem", 4 << 20),
            maxConnections: SettingFacts.integer(server, "max_connections", 100),
            autovacuumMaxWorkers: SettingFacts.integer(server, "autovacuum_max_workers", 3),
            autovacuumWorkMem: SettingFacts.bytes(server, "autovacuum_work_mem", -1024),
            maintenanceWorkMem: SettingFacts.bytes(server, "maintenance_work_mem", 64 << 20),
            maxParallelWorkers: SettingFacts.integer(server, "max_parallel_workers", 8),
            maxWorkerProcesses: SettingFacts.integer(server, "max_worker_processes", 8), runBy: server.runBy)
    }

    /// The limit and shared memory a `/dev/shm` remedy must fit beside, when both are known.
    public static func shmLimit(_ facts: MemoryBudgetFacts) -> ShmMemoryLimit? {
        guard case .success(let limit) = facts.limit, case .success(let shared) = facts.sharedBuffers,
            shared.value >= 0
        else { return nil }
        var wal: Int64 = 0
        if let terms = MemoryBudgetCheck.terms(facts).terms { wal = terms.walBuffersBytes }
        return ShmMemoryLimit(limitBytes: limit, sharedBuffersBytes: shared.value, walBuffersBytes: wal)
    }
}
