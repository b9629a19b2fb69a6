import Foundation
import HostFacts
import TestSupport
import Testing

@Suite("cgroup file parsers")
struct CgroupFilesTests {
    @Test("limits: max, v1's 'no limit', numbers, garbage")
    func limits() {
        #expect(CgroupFiles.limit("max\n") == .unlimited)
        #expect(CgroupFiles.limit("9223372036854771712\n") == .unlimited)
        #expect(CgroupFiles.limit("1073741824\n") == .bytes(1_073_741_824))
        #expect(CgroupFiles.limit("") == nil)
        #expect(CgroupFiles.limit("-1") == nil)
        #expect(CgroupFiles.limit("99999999999999999999999") == nil)
        #expect(CgroupFiles.limit("12k") == nil)
    }

    @Test("key-value files skip what does not parse")
    func keyValues() {
        let s = CgroupFiles.keyValues("anon 10\nfile 20\ngarbage\nhuge 99999999999999999999\nx y\n\ntwo 1 2\n")
        #expect(s == ["anon": 10, "file": 20])
        #expect(CgroupFiles.keyValues("").isEmpty)
    }

    @Test("PSI lines")
    func pressure() throws {
        let p = try #require(
            CgroupFiles.pressure(
                "some avg10=12.47 avg60=8.03 avg300=2.51 total=48213771\nfull avg10=9.80 avg60=6.12 avg300=1.90 total=39120344\n"
            ))
        #expect(p.some?.avg10 == 12.47)
        #expect(p.full?.totalMicroseconds == 39_120_344)
        #expect(CgroupFiles.pressure("") == nil)
        #expect(CgroupFiles.pressure("some garbage\nnone avg10=1\n") == nil)
        #expect(CgroupFiles.pressure("some avg10=1.5")?.full == nil)
    }
}

@Suite("Memory cgroups: v2 from faithful fixtures, v1 for real")
struct MemoryCgroupTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/cgroup2")
        .path

    @Test("a 6.1 kernel's Burstable container near its limit, with OOM kills and PSI")
    func kernel61() throws {
        let path =
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f2d1c3e_5b6a_4c7d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-4c1f0e2b7a9d8c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e.scope"
        let stats = try MemoryCgroupStats.readV2(
            host: HostRoot(Self.fixtures + "/kernel-6.1"), mountPoint: "/sys/fs/cgroup", path: path)
        #expect(stats.version == 2)
        #expect(stats.limitBytes == 1_073_741_824)
        #expect(stats.highBytes == nil)
        #expect(stats.usageBytes == 1_002_438_656)
        #expect(stats.maxUsageBytes == 1_073_610_752)
        #expect(stats.workingSetBytes == Int64(883_654_656))  // 1_002_438_656 − 118_784_000
        #expect(stats.shmemBytes == 553_648_128)
        #expect(stats.oomKills == 1 && stats.oomGroupKills == 0)
        #expect(stats.maxEvents == 1893)
        #expect(stats.pagesScanned == 1_288_421)
        #expect(stats.workingsetRefaults == 183_457)
        #expect(stats.pressure?.some?.avg10 == 12.47)
        #expect(stats.missing.isEmpty)
    }

    @Test("a 5.4 kernel: no memory.peak, no PSI, the old refault counter")
    func kernel54() throws {
        let path =
            "/kubepods/besteffort/pod7e3c2a10-9d8b-4f6e-a5c4-b3a2918d7c6e/9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
        let stats = try MemoryCgroupStats.readV2(
            host: HostRoot(Self.fixtures + "/kernel-5.4"), mountPoint: "/sys/fs/cgroup", path: path)
        #expect(stats.limitBytes == nil)
        #expect(stats.maxUsageBytes == nil)
        #expect(stats.pressure == nil)
        #expect(stats.missing == ["memory.pressure"])
        #expect(stats.workingsetRefaults == 0)
        #expect(stats.oomKills == 0)
    }

    @Test("a 5.10 kernel: memory.high below memory.max with high events, pgscan/pgsteal in the old field set, PSI")
    func kernel510() throws {
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e8d2b6a_1c3f_4a7e_9d0b_2f4e6a8c0d1e.slice/cri-containerd-b7e2d9c4a1f8063e5d2c9b7a4f1e8d3c6b9a2f5e8d1c4b7a0f3e6d9c2b5a8f1e.scope"
        let stats = try MemoryCgroupStats.readV2(
            host: HostRoot(Self.fixtures + "/kernel-5.10"), mountPoint: "/sys/fs/cgroup", path: path)
        #expect(stats.limitBytes == 536_870_912)
        #expect(stats.highBytes == 483_180_544)
        #expect(stats.highEvents == 4821 && stats.maxEvents == 37)
        #expect(stats.oomKills == 0 && stats.oomEvents == 0)
        // 5.10's memory.events has no oom_group_kill (5.17), and there is no memory.peak (5.19).
        #expect(stats.oomGroupKills == nil)
        #expect(stats.maxUsageBytes == nil)
        #expect(stats.pagesScanned == 640_512 && stats.pagesStolen == 598_023)
        #expect(stats.workingsetRefaults == 96218)  // the anon/file split exists since 5.9
        #expect(stats.shmemBytes == 142_606_336 && stats.pageCacheBytes == 441_294_848)
        #expect(stats.workingSetBytes == Int64(509_214_720 - 241_459_200))
        #expect(stats.pressure?.some?.avg10 == 3.21 && stats.pressure?.full?.avg10 == 2.95)
        // memory.peak is looked for only when present: nothing is missing.
        #expect(stats.missing.isEmpty)
    }

    @Test("a 6.8 kernel booted with psi=0: no memory.pressure; a group OOM kill; the new memory.stat fields")
    func kernel68() throws {
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e3b2a_5d4f_4e8a_9b6c_1d2e3f4a5b6c.slice/cri-containerd-3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8.scope"
        let stats = try MemoryCgroupStats.readV2(
            host: HostRoot(Self.fixtures + "/kernel-6.8"), mountPoint: "/sys/fs/cgroup", path: path)
        #expect(stats.limitBytes == 805_306_368)
        #expect(stats.highBytes == nil)  // "max"
        #expect(stats.oomKills == 5 && stats.oomGroupKills == 1 && stats.oomEvents == 3)
        #expect(stats.maxUsageBytes == 805_298_176)
        #expect(stats.pressure == nil)
        #expect(stats.missing == ["memory.pressure"])
        // pgscan/pgsteal are the totals, not the _kswapd/_direct/_khugepaged parts beside them.
        #expect(stats.pagesScanned == 2_954_110 && stats.pagesStolen == 2_211_934)
        #expect(stats.shmemBytes == 570_425_344)
        #expect(stats.workingSetBytes == Int64(791_277_568 - 28_672_000))
    }

    @Test("a missing cgroup directory is notFound")
    func missing() {
        #expect(throws: HostReadError.self) {
            try MemoryCgroupStats.readV2(
                host: HostRoot(Self.fixtures + "/kernel-6.1"), mountPoint: "/sys/fs/cgroup", path: "/gone")
        }
    }

    @Test(
        "a real v1 memory cgroup with a limit and a process that fills shared memory",
        .enabled(if: TestEnvironment.privilegedTestsEnabled))
    func realV1() throws {
        guard TestEnvironment.requireRoot(),
            TestEnvironment.require(
                FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                "a v1 memory controller at /sys/fs/cgroup/memory")
        else { return }
        let name = "pgnode-test-\(getpid())"
        let dir = "/sys/fs/cgroup/memory/\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { _ = try? Command.run(["rmdir", dir]) }
        try "268435456".write(toFile: dir + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
        // A shell in the cgroup writes 32 MiB into /dev/shm: charged to this cgroup as shmem.
        let shmFile = "/dev/shm/\(name)"
        defer { try? FileManager.default.removeItem(atPath: shmFile) }
        let result = try Command.run([
            "sh", "-c", "echo $$ > \(dir)/cgroup.procs && dd if=/dev/zero of=\(shmFile) bs=1M count=32 status=none",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let stats = try MemoryCgroupStats.readV1(host: HostRoot("/"), mountPoint: "/sys/fs/cgroup/memory", path: name)
        #expect(stats.version == 1)
        #expect(stats.limitBytes == 268_435_456)
        #expect((stats.shmemBytes ?? 0) >= 32 << 20)
        #expect((stats.usageBytes ?? 0) >= 32 << 20)
        #expect(stats.oomKills == 0)
        #expect(stats.missing.isEmpty)
        // The root cgroup has no limit: v1's huge number reads as none.
        let root = try MemoryCgroupStats.readV1(host: HostRoot("/"), mountPoint: "/sys/fs/cgroup/memory", path: "/")
        #expect(root.limitBytes == nil)
    }
}
