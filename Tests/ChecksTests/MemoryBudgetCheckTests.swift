import Checks
import HostFacts
import PGNodeModel
import Testing

/// `memory.budget` on facts, and the `/dev/shm` remedies that agree with the memory limit.
@Suite("memory.budget and remedies that agree")
struct MemoryBudgetCheckTests {
    static func value(_ v: Int64, _ source: String = "default") -> Result<SettingValue<Int64>, InvalidSetting> {
        .success(SettingValue(v, source: source))
    }

    /// PostgreSQL 15's defaults under `limit`, with `shared_buffers` and `work_mem` as given.
    static func facts(limit: Int64? = 512 << 20, sharedBuffers: Int64 = 256 << 20, workMem: Int64 = 64 << 20)
        -> MemoryBudgetFacts
    {
        MemoryBudgetFacts(
            limit: .success(limit), sharedBuffers: value(sharedBuffers, "command line"), walBuffers: value(-8192),
            workMem: value(workMem, "command line"), maxConnections: value(100), autovacuumMaxWorkers: value(3),
            autovacuumWorkMem: value(-1024), maintenanceWorkMem: value(64 << 20), maxParallelWorkers: value(8),
            maxWorkerProcesses: value(8))
    }

    @Test("512 MiB, shared_buffers=256MB, work_mem=64MB, 100 connections: warning, every term in the evidence")
    func overLimit() throws {
        let o = MemoryBudgetCheck.evaluate(Self.facts())
        #expect(o.severity == .warning, "\(o.summary)")
        // -1 is shown as PostgreSQL spells it, without a unit.
        #expect(o.evidence["settings"]?["wal_buffers"]?["value"] == .int(-1))
        #expect(o.evidence["settings"]?["wal_buffers_bytes"] == nil)
        #expect(o.evidence["settings"]?["autovacuum_work_mem"]?["value"] == .int(-1))
        let terms = try #require(o.evidence["terms"])
        #expect(terms["shared_buffers_bytes"] == .int(256 << 20))
        #expect(terms["wal_buffers_bytes"] == .int(8 << 20))  // 256 MB / 32
        #expect(terms["connections"]?["count"] == .int(100))
        #expect(terms["connections"]?["bytes"] == .int(100 * (68 << 20)))
        #expect(terms["autovacuum"]?["memory_bytes"] == .int(64 << 20))  // autovacuum_work_mem -1: maintenance_work_mem
        #expect(terms["autovacuum"]?["bytes"] == .int(3 * (68 << 20)))
        #expect(terms["parallel_workers"]?["bytes"] == .int(8 * (68 << 20)))
        let peak = Int64(264 << 20) + 111 * (68 << 20)
        #expect(o.evidence["plausible_peak_bytes"] == .int(peak))
        #expect(o.evidence["over_limit_bytes"] == .int(peak - (512 << 20)))
        #expect(o.summary.contains("100 connections × (work_mem 64 MiB + 4 MiB)"), "\(o.summary)")
        let remedy = o.remedy
        #expect(remedy.contains("Raise the memory limit to at least 7936Mi"), "\(remedy)")
        // (512 − 264 − 3 × 68 − 108 × 4) MiB over 108 backends is below 64 kB: the backends are the problem.
        #expect(remedy.contains("lower max_connections"), "\(remedy)")
    }

    @Test("a work_mem that fits is proposed when there is one")
    func workMemFitting() throws {
        var facts = Self.facts(limit: 2 << 30, sharedBuffers: 512 << 20, workMem: 64 << 20)
        let o = MemoryBudgetCheck.evaluate(facts)
        #expect(o.severity == .warning)
        // (2048 − 512 − 16 − 3 × 68 − 108 × 4) MiB / 108 = 8.2 MiB → 8MB.
        #expect(o.remedy.contains("lower work_mem to 8MB or less") == true, "\(o.remedy)")
        #expect(o.evidence["work_mem_fitting_bytes"]?.intValue.map { $0 >> 20 } == 8)

        facts = Self.facts(limit: 2 << 30, sharedBuffers: 512 << 20, workMem: 4 << 20)
        let fits = MemoryBudgetCheck.evaluate(facts)
        #expect(fits.severity == .ok, "\(fits.summary)")
        #expect(fits.remedy.isEmpty)
    }

    @Test("no limit: ok with the peak; an unreadable cgroup or an invalid setting: unavailable")
    func edges() {
        #expect(MemoryBudgetCheck.evaluate(Self.facts(limit: nil)).severity == .ok)
        var facts = Self.facts()
        facts.limit = .failure(CheckUnavailable("the container has no memory cgroup that pgnode can read"))
        #expect(MemoryBudgetCheck.evaluate(facts).severity == .unavailable)
        facts = Self.facts()
        facts.maintenanceWorkMem = .failure(
            InvalidSetting(
                name: "maintenance_work_mem", text: "1TB", source: "postgresql.conf:9", reason: "out of range"))
        let o = MemoryBudgetCheck.evaluate(facts)
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"]?.stringValue?.contains("maintenance_work_mem = '1TB'") == true)
        facts = Self.facts()
        facts.walBuffers = Self.value(16, "postgresql.conf:200")  // below 4 pages: raised to 4 pages
        #expect(MemoryBudgetCheck.terms(facts).terms?.walBuffersBytes == Int64(4) << 13)
    }

    static func shmFacts(memoryLimit: ShmMemoryLimit?, kind: ShmSizeFacts.MountKind = .runtimeDefault) -> ShmSizeFacts {
        ShmSizeFacts(
            mount: .success(ShmMount(sizeBytes: 64 << 20, usedBytes: 0, kind: kind, source: "shm")),
            dynamicSharedMemoryType: .success(SettingValue("posix", source: "default")),
            workMem: .success(SettingValue(64 << 20, source: "command line")),
            hashMemMultiplier: .success(SettingValue(2.0, source: "default")),
            maxParallelWorkersPerGather: .success(SettingValue(2, source: "default")),
            maxParallelWorkers: .success(SettingValue(8, source: "default")),
            minDynamicSharedMemory: .success(SettingValue(0, source: "default")), memoryLimit: memoryLimit)
    }

    @Test(
        "the issue's case: memory.limit ok, shm.size recommends 1632Mi of memory-backed /dev/shm and says the 512 MiB limit must grow by 1536Mi"
    )
    func remediesAgree() throws {
        // memory.limit: 512 MiB leaves more than 128 MiB above shared_buffers: ok.
        var stats = MemoryCgroupStats(version: 1)
        stats.limitBytes = 512 << 20
        stats.usageBytes = 100 << 20
        let limit = MemoryLimitCheck.evaluate(
            MemoryLimitFacts(
                cgroup: .success(stats), sharedBuffersBytes: 256 << 20, maxConnections: 100, workMemBytes: 64 << 20,
                qosClass: "burstable"))
        #expect(limit.severity == .ok, "\(limit.summary)")

        // shm.size, with the limit and the shared memory the budget reader hands it.
        let budget = Self.facts()
        let shared = ShmMemoryLimit(
            limitBytes: 512 << 20, sharedBuffersBytes: 256 << 20,
            walBuffersBytes: try #require(MemoryBudgetCheck.terms(budget).terms?.walBuffersBytes))
        let size = ShmSizeCheck.evaluate(Self.shmFacts(memoryLimit: shared))
        #expect(size.severity == .critical)
        #expect(size.evidence["recommended_shm_bytes"] == .int(1632 << 20))
        #expect(size.evidence["memory_limit_bytes"] == .int(512 << 20))
        // 1632 + 256 + 8 + 128 MiB.
        #expect(size.evidence["memory_needed_with_recommended_shm_bytes"] == .int(2024 << 20))
        let remedy = size.remedy
        #expect(remedy.contains("counts against the pod's memory limit"), "\(remedy)")
        #expect(
            remedy.contains(
                "1632Mi of /dev/shm + shared_buffers 256 MiB + wal_buffers 8 MiB + 128 MiB for the backends = 2024 MiB, "
                    + "more than the limit (512 MiB). Raise the limit by 1536Mi to at least 2048Mi"), "\(remedy)")
        #expect(remedy.contains("resources: {requests: {memory: 2048Mi}, limits: {memory: 2048Mi}}"), "\(remedy)")
        #expect(remedy.contains("Or need less: lower work_mem"), "\(remedy)")
        // And memory.budget warns about the same pod.
        #expect(MemoryBudgetCheck.evaluate(budget).severity == .warning)

        // Within the limit: said so, nothing to raise.
        let roomy = ShmSizeCheck.evaluate(
            Self.shmFacts(
                memoryLimit: ShmMemoryLimit(
                    limitBytes: 4 << 30, sharedBuffersBytes: 256 << 20, walBuffersBytes: 8 << 20)))
        #expect(roomy.remedy.contains("within the limit (4096 MiB)") == true, "\(roomy.remedy)")
        #expect(roomy.remedy.contains("Raise the limit") == false)
    }

    @Test("shm.enospc's remedy adds its /dev/shm up against the memory limit too, in the operator's terms")
    func enospcAgrees() {
        let report = ShmProbeReport(
            failures: [.init(pid: 10, requestedBytes: 1 << 30, firstSeen: Timestamp(nanoseconds: 1))],
            dsmPeakBytes: 0, roles: [:])
        let cnpg = PostgresOperator(kind: .cloudNativePG, cluster: "pg", namespace: "db")
        let o = ShmEnospcCheck.evaluate(
            report, shmSizeBytes: 64 << 20, shmKind: .memoryEmptyDir, runBy: cnpg,
            memoryLimit: ShmMemoryLimit(limitBytes: 512 << 20, sharedBuffersBytes: 256 << 20, walBuffersBytes: 8 << 20))
        #expect(o.severity == .critical)
        // The remedy's 2560Mi of /dev/shm + 256 + 8 + 128 MiB = 2952 MiB → 3072Mi.
        #expect(
            o.remedy.contains(
                "= 2952 MiB, more than the limit (512 MiB). Raise the limit by 2560Mi to at least 3072Mi"),
            "\(o.remedy)")
        #expect(
            o.remedy.contains(#"kubectl patch cluster pg -n db --type merge -p '{"spec":{"resources":"#), "\(o.remedy)")
        let unknown = ShmEnospcCheck.evaluate(report, shmSizeBytes: 64 << 20)
        #expect(unknown.remedy.contains("counts against the pod's memory limit"), "\(unknown.remedy)")
    }

    @Test("every remedy that adds memory-backed /dev/shm says it counts against the pod's memory limit")
    func everyRemedySaysSo() {
        let operators: [PostgresOperator] = [
            .none, PostgresOperator(kind: .cloudNativePG, cluster: "pg", namespace: "db"),
            PostgresOperator(kind: .zalando, cluster: "pg"), PostgresOperator(kind: .crunchyPGO, cluster: "pg"),
            PostgresOperator(kind: .stackGres, cluster: "pg"),
        ]
        let kinds: [ShmSizeFacts.MountKind] = [.runtimeDefault, .memoryEmptyDir, .host, .other]
        for op in operators {
            for kind in kinds {
                for limit in [
                    nil, ShmMemoryLimit(limitBytes: 512 << 20, sharedBuffersBytes: 256 << 20, walBuffersBytes: 0),
                ] {
                    var facts = Self.shmFacts(memoryLimit: limit, kind: kind)
                    facts.runBy = op
                    let remedy = ShmSizeCheck.evaluate(facts).remedy
                    #expect(remedy.contains("counts against the pod's memory limit"), "\(op.kind) \(kind): \(remedy)")
                }
                let shm = OperatorRemedies.shm(size: "1632Mi", kind: kind, operator: op)
                #expect(
                    shm.contains("counts against") || shm.contains("bounded by the"), "\(op.kind) \(kind): \(shm)")
            }
        }
    }
}
