import Checks
import PGNodeModel
import Testing

@Suite("shm.size")
struct ShmSizeCheckTests {
    static let mib: Int64 = 1 << 20

    func facts(
        size: Int64 = 64 * mib, used: Int64 = 0, kind: ShmSizeFacts.MountKind = .runtimeDefault,
        type: String = "posix", workMem: Int64 = 4 * mib, multiplier: Double = 2.0, perGather: Int64 = 2,
        workers: Int64 = 8, minDSM: Int64 = 0
    ) -> ShmSizeFacts {
        ShmSizeFacts(
            mount: .success(ShmMount(sizeBytes: size, usedBytes: used, kind: kind, source: "shm")),
            dynamicSharedMemoryType: .success(SettingValue(type, source: "default")),
            workMem: .success(SettingValue(workMem, source: "command line")),
            hashMemMultiplier: .success(SettingValue(multiplier, source: "default")),
            maxParallelWorkersPerGather: .success(SettingValue(perGather, source: "default")),
            maxParallelWorkers: .success(SettingValue(workers, source: "default")),
            minDynamicSharedMemory: .success(SettingValue(minDSM, source: "default")))
    }

    @Test("the budget is work_mem × hash_mem_multiplier × (workers per gather + 1), less min_dynamic_shared_memory")
    func budget() throws {
        func budget(_ facts: ShmSizeFacts) throws -> ShmSizeCheck.Budget {
            try #require(ShmSizeCheck.Budget.from(facts).budget)
        }
        #expect(try budget(facts()).oneJoinBytes == 24 * Self.mib)
        #expect(try budget(facts(minDSM: 4 * Self.mib)).oneJoinBytes == 20 * Self.mib)
        #expect(try budget(facts(minDSM: 100 * Self.mib)).oneJoinBytes == 0)
        #expect(try budget(facts(workMem: Int64.max / 2, multiplier: 1000)).oneJoinBytes == Int64.max)
        #expect(try budget(facts()).concurrentGathers == 4)
        #expect(try budget(facts(perGather: 0)).concurrentGathers == 1)
    }

    @Test("64 MiB with work_mem 64MB: critical, with the size and a YAML remedy")
    func critical() {
        let o = ShmSizeCheck.evaluate(facts(workMem: 64 * Self.mib))
        #expect(o.severity == .critical)
        #expect(o.evidence["shm_size_bytes"] == .int(64 * Self.mib))
        #expect(o.evidence["dsm_estimate_bytes"] == .int(384 * Self.mib))
        #expect(o.remedy.contains("medium: Memory"))
        #expect(o.remedy.contains("mountPath: /dev/shm"))
        #expect(o.evidence["operator"] == "none")
        #expect(o.evidence["settings"]?["work_mem_bytes"]?["source"] == "command line")
    }

    @Test("defaults in 64 MiB: one join fits but not the four max_parallel_workers allows → warning")
    func concurrency() {
        let o = ShmSizeCheck.evaluate(facts())
        #expect(o.severity == .warning)
        #expect(o.evidence["dsm_concurrent_estimate_bytes"] == .int(96 * Self.mib))
    }

    @Test("a large /dev/shm is ok; usage above 80 % is a warning")
    func okAndUsage() {
        #expect(ShmSizeCheck.evaluate(facts(size: 1024 * Self.mib)).severity == .ok)
        #expect(ShmSizeCheck.evaluate(facts(size: 1024 * Self.mib, used: 900 * Self.mib)).severity == .warning)
    }

    @Test("sysv or mmap dynamic shared memory: ok with the reason, whatever the size")
    func sysv() {
        let o = ShmSizeCheck.evaluate(facts(size: 1 * Self.mib, type: "sysv", workMem: 1024 * Self.mib))
        #expect(o.severity == .ok)
        #expect(o.summary.contains("sysv"))
        #expect(o.evidence["dsm_estimate_bytes"] == .int(0))
        #expect(ShmSizeCheck.evaluate(facts(size: 1, type: "mmap")).severity == .ok)
    }

    @Test("an unreadable mount is unavailable with the reason")
    func unavailable() {
        var f = facts()
        f.mount = .failure(CheckUnavailable("process 42 exited"))
        let o = ShmSizeCheck.evaluate(f)
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"] == "process 42 exited")
    }

    @Test("an emptyDir that is too small: the remedy says to raise its sizeLimit")
    func emptyDir() {
        let o = ShmSizeCheck.evaluate(facts(kind: .memoryEmptyDir, workMem: 64 * Self.mib))
        #expect(o.remedy.hasPrefix("Raise the sizeLimit of the memory emptyDir already mounted at /dev/shm"))
        #expect(!o.remedy.contains("volumeMounts"), "never a second emptyDir at /dev/shm")
    }
}

@Suite("shm.enospc")
struct ShmEnospcCheckTests {
    @Test("failures: critical, sizes largest first without repeats, pids with roles")
    func failures() {
        let report = ShmProbeReport(
            failures: [
                .init(pid: 10, requestedBytes: 100, firstSeen: Timestamp(nanoseconds: 2_000_000_000)),
                .init(pid: 11, requestedBytes: 300, firstSeen: Timestamp(nanoseconds: 1_000_000_000)),
                .init(
                    pid: 10, requestedBytes: 100, count: 2, firstSeen: Timestamp(nanoseconds: 2_500_000_000),
                    lastSeen: Timestamp(nanoseconds: 3_000_000_000)),
            ], dsmPeakBytes: 50, roles: [10: "client backend"])
        let o = ShmEnospcCheck.evaluate(report, shmSizeBytes: 64)
        #expect(o.severity == .critical)
        #expect(o.evidence["failures"] == .int(4))
        #expect(o.evidence["failed_request_bytes"] == .array([.int(300), .int(100)]))
        #expect(o.evidence["pids"]?.arrayValue?.count == 2)
        #expect(o.evidence["pids"]?.arrayValue?[0]["role"] == "client backend")
        #expect(o.evidence["pids"]?.arrayValue?[1]["role"] == .null)
        #expect(o.evidence["first_seen"] == "1970-01-01T00:00:01.000Z")
        #expect(o.evidence["last_seen"] == "1970-01-01T00:00:03.000Z")
        #expect(!o.remedy.isEmpty)
    }

    @Test("roles from the failure's own title win over those resolved before the window; leaders named both ways")
    func rolesFromTitles() {
        let t = Timestamp(nanoseconds: 1_000_000_000)
        let report = ShmProbeReport(
            failures: [
                .init(
                    pid: 200, requestedBytes: 16 << 20, firstSeen: t, containerPID: 27, role: "parallel worker",
                    leaderContainerPID: 26, leaderPID: 100),
                .init(
                    pid: 201, requestedBytes: 16 << 20, firstSeen: t, containerPID: 28, role: "parallel worker",
                    leaderContainerPID: 30),
                .init(pid: 100, requestedBytes: 8 << 20, firstSeen: t, containerPID: 26, role: "client backend"),
            ], dsmPeakBytes: 40 << 20, roles: [100: "postgres", 200: "postgres"], shmUsedPeakBytes: 64 << 20)
        let o = ShmEnospcCheck.evaluate(report, shmSizeBytes: 64 << 20)
        let pids = o.evidence["pids"]?.arrayValue ?? []
        #expect(pids.count == 3)
        #expect(
            pids[0]
                == .object([
                    "pid": 200, "role": "parallel worker", "container_pid": 27, "leader_container_pid": 26,
                    "leader_pid": 100,
                ]))
        #expect(pids[1]["leader_container_pid"] == 30)
        #expect(pids[1]["leader_pid"] == .null)
        #expect(pids[2] == .object(["pid": 100, "role": "client backend", "container_pid": 26]))
        #expect(o.evidence["failed_request_bytes"] == .array([.int(16 << 20), .int(8 << 20)]))
        #expect(o.evidence["shm_used_peak_bytes"] == .int(64 << 20))
        // The remedy sizes from what was held (the sampled 64 MiB) plus the largest request: 80 MiB × 1.25.
        #expect(o.remedy.contains("at least 100Mi"), "\(o.remedy)")
    }

    @Test("no failures: ok with the peak")
    func none() {
        let o = ShmEnospcCheck.evaluate(ShmProbeReport(failures: [], dsmPeakBytes: 4096, roles: [:]), shmSizeBytes: nil)
        #expect(o.severity == .ok)
        #expect(o.evidence["dsm_peak_bytes"] == .int(4096))
        #expect(o.evidence["first_seen"] == .null)
    }
}
