import Foundation
import TestSupport
import Testing

@testable import HostFacts

@Suite("CPU cgroups: v1 from real files of this machine, v2 from faithful fixtures, windows that cannot trap")
struct CPUCgroupTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures").path
    static let v1Path =
        "/kubepods/burstable/podc9e4396d-a05e-4b62-901d-af42ea776470/ec354ee62f983d0b4b60f92a7c7b263d41fe72f5a5720fec293edfd21f7872dd"
    /// The hybrid layout of this machine: cpu and cpuacct mounted apart, PSI in the unified hierarchy.
    static var v1Location: CPUCgroupLocation? {
        CPUCgroupLocation.locate(
            v1: [
                ("memory", v1Path, "/sys/fs/cgroup/memory"), ("cpu", v1Path, "/sys/fs/cgroup/cpu"),
                ("cpuacct", v1Path, "/sys/fs/cgroup/cpuacct"),
            ], v2Path: v1Path, v2MountPoint: "/sys/fs/cgroup/unified")
    }

    @Test("locating the controller: v1 (apart or co-mounted, with the unified PSI), v2, nothing")
    func locate() {
        #expect(
            Self.v1Location
                == .v1(
                    cpu: "/sys/fs/cgroup/cpu" + Self.v1Path, cpuacct: "/sys/fs/cgroup/cpuacct" + Self.v1Path,
                    unified: "/sys/fs/cgroup/unified" + Self.v1Path))
        #expect(
            CPUCgroupLocation.locate(
                v1: [("cpu", "/a", "/sys/fs/cgroup/cpu,cpuacct"), ("cpuacct", "/a", "/sys/fs/cgroup/cpu,cpuacct")],
                v2Path: nil, v2MountPoint: nil)
                == .v1(cpu: "/sys/fs/cgroup/cpu,cpuacct/a", cpuacct: "/sys/fs/cgroup/cpu,cpuacct/a", unified: nil))
        // A v1 cpu entry without a mount point (not mounted under this root) is not readable: v2 then.
        #expect(
            CPUCgroupLocation.locate(v1: [("cpu", "/a", nil)], v2Path: "/kubepods/x", v2MountPoint: "/sys/fs/cgroup")
                == .v2("/sys/fs/cgroup/kubepods/x"))
        #expect(CPUCgroupLocation.locate(v1: [], v2Path: "/", v2MountPoint: "/sys/fs/cgroup") == .v2("/sys/fs/cgroup"))
        #expect(CPUCgroupLocation.locate(v1: [("memory", "/a", "/m")], v2Path: "/a", v2MountPoint: nil) == nil)
    }

    @Test("v1, real files: a busy loop under half a CPU, two samples 5.31 s apart")
    func v1Fixture() throws {
        let location = try #require(Self.v1Location)
        let t0 = try CPUCgroupSample.read(
            host: HostRoot(Self.fixtures + "/cgroup1/kernel-6.18/t0"), location: location,
            monotonicNanoseconds: 2_758_520_000_000)
        var t1 = try CPUCgroupSample.read(
            host: HostRoot(Self.fixtures + "/cgroup1/kernel-6.18/t1"), location: location,
            monotonicNanoseconds: 2_763_830_000_000)
        #expect(t0.version == 1 && t0.missing.isEmpty)
        #expect(t0.bandwidth == CPUBandwidth(quotaMicroseconds: 50000, periodMicroseconds: 100_000))
        #expect(t0.bandwidth?.cores == 0.5)
        #expect(t0.burstMicroseconds == 0)
        #expect(t0.periods == 32 && t0.throttledPeriods == 31 && t0.throttledNanoseconds == 1_501_506_615)
        #expect(t0.bursts == 0 && t0.burstNanoseconds == 0)
        #expect(t0.usageNanoseconds == 1_677_236_224)
        #expect(t0.pressure?.some?.avg10 == 8.69 && t0.pressure?.full?.totalMicroseconds == 1_644_760)
        #expect(t1.periods == 86 && t1.throttledPeriods == 85 && t1.usageNanoseconds == 4_327_528_416)

        // The two snapshots are two fixture directories; on a node it is one cgroup, one inode.
        #expect(t0.cgroupInode != nil && t0.cgroupInode != t1.cgroupInode)
        #expect(CPUCgroupWindow(from: t0, to: t1).countersReset)
        t1.cgroupInode = t0.cgroupInode
        let w = CPUCgroupWindow(from: t0, to: t1)
        #expect(!w.countersReset)
        #expect(w.version == 1 && w.durationNanoseconds == 5_310_000_000)
        #expect(w.periods == 54 && w.throttledPeriods == 54)
        #expect(w.throttledNanoseconds == Int64(2_640_210_540))  // 4_141_717_155 − 1_501_506_615
        #expect(w.usageNanoseconds == Int64(2_650_292_192))  // 4_327_528_416 − 1_677_236_224
        #expect(w.bursts == 0 && w.burstNanoseconds == 0)
        #expect(w.pressureSomeStallNanoseconds == Int64(2_648_050_000))  // (4_292_810 − 1_644_760) µs
        #expect(w.pressure?.some?.avg10 == 26.87)
        #expect(w.bandwidth?.quotaMicroseconds == 50000 && w.burstMicroseconds == 0)
        #expect(w.missing.isEmpty)
    }

    @Test("v1 without cpuacct, PSI or burst: what is absent is nil and listed")
    func v1Partial() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/sys/fs/cgroup/cpu,cpuacct/a"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "-1\n".write(toFile: dir + "/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        try "100000\n".write(toFile: dir + "/cpu.cfs_period_us", atomically: false, encoding: .utf8)
        // A 4.x kernel: three fields; a 32-bit counter past 2^31 prints negative.
        try "nr_periods -2147483648\nnr_throttled 12\nthrottled_time 99\n".write(
            toFile: dir + "/cpu.stat", atomically: false, encoding: .utf8)
        let s = try CPUCgroupSample.readV1(
            host: HostRoot(root), cpuDirectory: "/sys/fs/cgroup/cpu,cpuacct/a", cpuacctDirectory: nil,
            unifiedDirectory: "/sys/fs/cgroup/unified/a", monotonicNanoseconds: 1)
        #expect(s.bandwidth == CPUBandwidth(quotaMicroseconds: nil, periodMicroseconds: 100_000))
        #expect(s.bandwidth?.cores == nil)
        #expect(s.burstMicroseconds == nil && s.bursts == nil && s.pressure == nil && s.usageNanoseconds == nil)
        #expect(s.periods == 1 << 31 && s.throttledPeriods == 12 && s.throttledNanoseconds == 99)
        #expect(s.missing == ["cpuacct.usage"])
        #expect(throws: HostReadError.self) {
            try CPUCgroupSample.readV1(
                host: HostRoot(root), cpuDirectory: "/sys/fs/cgroup/cpu/gone", cpuacctDirectory: nil,
                unifiedDirectory: nil)
        }
    }

    static func v2(_ kernel: String, _ path: String) throws -> CPUCgroupSample {
        try CPUCgroupSample.read(
            host: HostRoot(fixtures + "/cgroup2/" + kernel), location: .v2("/sys/fs/cgroup" + path),
            monotonicNanoseconds: 0)
    }

    @Test("v2, 5.4 cgroupfs layout, BestEffort: no limit, no periods, no burst, no PSI")
    func kernel54() throws {
        let s = try Self.v2(
            "kernel-5.4",
            "/kubepods/besteffort/pod7e3c2a10-9d8b-4f6e-a5c4-b3a2918d7c6e/9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
        )
        #expect(s.version == 2)
        #expect(s.bandwidth == CPUBandwidth(quotaMicroseconds: nil, periodMicroseconds: 100_000))
        #expect(s.periods == 0 && s.throttledPeriods == 0 && s.throttledNanoseconds == 0)
        #expect(s.usageNanoseconds == 48_211_734_000)
        #expect(s.burstMicroseconds == nil && s.bursts == nil && s.burstNanoseconds == nil)
        #expect(s.pressure == nil)
        #expect(s.missing.isEmpty)  // cpu.max.burst and cpu.pressure are looked for only when present
    }

    @Test("v2, 5.10 systemd layout: half a CPU, throttled; PSI with only a some line")
    func kernel510() throws {
        let s = try Self.v2(
            "kernel-5.10",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e8d2b6a_1c3f_4a7e_9d0b_2f4e6a8c0d1e.slice/cri-containerd-b7e2d9c4a1f8063e5d2c9b7a4f1e8d3c6b9a2f5e8d1c4b7a0f3e6d9c2b5a8f1e.scope"
        )
        #expect(s.bandwidth == CPUBandwidth(quotaMicroseconds: 50000, periodMicroseconds: 100_000))
        #expect(s.periods == 184_302 && s.throttledPeriods == 70071)
        #expect(s.throttledNanoseconds == 1_822_145_066_000)
        #expect(s.usageNanoseconds == 8_843_118_902_000)
        #expect(s.bursts == nil && s.burstMicroseconds == nil)
        #expect(s.pressure?.some?.avg10 == 31.42 && s.pressure?.some?.totalMicroseconds == 2_133_870_412)
        #expect(s.pressure?.full == nil)
        #expect(s.missing.isEmpty)
    }

    @Test("v2, 6.1: two CPUs, burst fields at zero, PSI some and full")
    func kernel61() throws {
        let s = try Self.v2(
            "kernel-6.1",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f2d1c3e_5b6a_4c7d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-4c1f0e2b7a9d8c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e.scope"
        )
        #expect(s.bandwidth?.cores == 2)
        #expect(s.burstMicroseconds == 0 && s.bursts == 0 && s.burstNanoseconds == 0)
        #expect(s.periods == 401_288 && s.throttledPeriods == 249_157)
        #expect(s.pressure?.full?.avg10 == 38.27)
        #expect(s.missing.isEmpty)
    }

    @Test("v2, 6.8 with psi=0: a burst allowance in use, core_sched.force_idle_usec among the keys")
    func kernel68() throws {
        let s = try Self.v2(
            "kernel-6.8",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e3b2a_5d4f_4e8a_9b6c_1d2e3f4a5b6c.slice/cri-containerd-3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8.scope"
        )
        #expect(s.bandwidth == CPUBandwidth(quotaMicroseconds: 100_000, periodMicroseconds: 100_000))
        #expect(s.burstMicroseconds == 50000 && s.bursts == 19302 && s.burstNanoseconds == 611_820_455_000)
        #expect(s.periods == 230_541 && s.throttledPeriods == 11873 && s.throttledNanoseconds == 402_118_906_000)
        #expect(s.pressure == nil)
        #expect(s.missing.isEmpty)
    }

    @Test("v2 without the cpu controller: no cpu.max, no period counters; usage still read")
    func v2NoController() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/sys/fs/cgroup/unified/k"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // This machine's unified hierarchy, which has no controllers, prints just these.
        try "usage_usec 34270662\nuser_usec 22494572\nsystem_usec 11776089\nnice_usec 0\n".write(
            toFile: dir + "/cpu.stat", atomically: false, encoding: .utf8)
        let before = CPUCgroupSample.monotonicNow()
        let s = try CPUCgroupSample.readV2(host: HostRoot(root), directory: "/sys/fs/cgroup/unified/k")
        let after = CPUCgroupSample.monotonicNow()
        #expect(s.bandwidth == nil && s.periods == nil && s.throttledPeriods == nil)
        #expect(s.usageNanoseconds == 34_270_662_000)
        #expect(s.missing == ["cpu.max"])
        // Stamped with the monotonic clock while it was read.
        #expect((before...after).contains(s.monotonicNanoseconds))
    }

    @Test("cpu.max and cpu.cfs_quota_us: every form the kernel prints, and garbage")
    func bandwidthParsers() {
        #expect(
            CPUCgroupSample.v2Max("max 100000\n") == CPUBandwidth(quotaMicroseconds: nil, periodMicroseconds: 100_000))
        #expect(CPUCgroupSample.v2Max("50000 100000\n")?.cores == 0.5)
        #expect(CPUCgroupSample.v2Max("1000 1000")?.cores == 1)
        for garbage in ["", "max", "50000", "-1 100000", "0 100000", "50000 -100000", "a b", "1 2 3", "max max"] {
            #expect(CPUCgroupSample.v2Max(garbage) == nil, "\(garbage)")
        }
        #expect(CPUCgroupSample.v1Quota("-1\n") == .unlimited)
        #expect(CPUCgroupSample.v1Quota("20000\n") == .microseconds(20000))
        for garbage in ["", "0", "-2", "max", "1e5", "99999999999999999999999"] {
            #expect(CPUCgroupSample.v1Quota(garbage) == nil, "\(garbage)")
        }
        // Above Int64.max: clamped (saturated), as every cgroup counter.
        #expect(CPUCgroupSample.v2Max("18446744073709551615 100000")?.quotaMicroseconds == .max)
        #expect(CPUBandwidth(quotaMicroseconds: 1, periodMicroseconds: 0).cores == nil)
    }

    @Test("period counters printed with %d: negative values are their 32-bit pattern")
    func periodCounters() {
        #expect(CPUCgroupSample.periodCounter("0") == 0)
        #expect(CPUCgroupSample.periodCounter("2147483647") == 2_147_483_647)
        #expect(CPUCgroupSample.periodCounter("-2147483648") == 2_147_483_648)
        #expect(CPUCgroupSample.periodCounter("-1") == 4_294_967_295)
        #expect(CPUCgroupSample.periodCounter("-2147483649") == nil)
        #expect(CPUCgroupSample.periodCounter("18446744073709551615") == .max)
        #expect(CPUCgroupSample.periodCounter("x") == nil)
    }

    static func sample(
        at time: Int64, periods: Int64?, throttled: Int64?, throttledNs: Int64?, usageNs: Int64?, inode: UInt64? = 7
    ) -> CPUCgroupSample {
        var s = CPUCgroupSample(version: 2, monotonicNanoseconds: time)
        s.cgroupInode = inode
        s.bandwidth = CPUBandwidth(quotaMicroseconds: 20000, periodMicroseconds: 100_000)
        s.periods = periods
        s.throttledPeriods = throttled
        s.throttledNanoseconds = throttledNs
        s.usageNanoseconds = usageNs
        return s
    }

    @Test("windows: the 32-bit wrap, a recreated cgroup, counters gone backwards, missing fields, samples out of order")
    func windows() {
        let second: Int64 = 1_000_000_000
        // nr_periods wrapped past 2^32 (printed −1, then 9): 10 periods in 10 s.
        var w = CPUCgroupWindow(
            from: Self.sample(at: 0, periods: 4_294_967_295, throttled: 4_294_967_290, throttledNs: 5, usageNs: 5),
            to: Self.sample(at: 10 * second, periods: 9, throttled: 2, throttledNs: 10, usageNs: 20))
        #expect(!w.countersReset && w.periods == 10 && w.throttledPeriods == 8)
        #expect(w.throttledNanoseconds == 5 && w.usageNanoseconds == 15)

        // A "wrap" of more periods than 10 s can hold (1 ms is the shortest period) is a recreated cgroup.
        w = CPUCgroupWindow(
            from: Self.sample(at: 0, periods: 1_000_000, throttled: 10, throttledNs: 5, usageNs: 5),
            to: Self.sample(at: 10 * second, periods: 30, throttled: 3, throttledNs: 2, usageNs: 40))
        #expect(w.countersReset && w.periods == 30 && w.throttledPeriods == 3)
        #expect(w.throttledNanoseconds == 2 && w.usageNanoseconds == 40)

        // One 64-bit counter going backwards is enough; so is a new inode.
        w = CPUCgroupWindow(
            from: Self.sample(at: 0, periods: 1, throttled: 0, throttledNs: 0, usageNs: 100),
            to: Self.sample(at: second, periods: 5, throttled: 0, throttledNs: 0, usageNs: 50))
        #expect(w.countersReset && w.periods == 5 && w.usageNanoseconds == 50)
        w = CPUCgroupWindow(
            from: Self.sample(at: 0, periods: 1, throttled: 0, throttledNs: 0, usageNs: 1, inode: 7),
            to: Self.sample(at: second, periods: 5, throttled: 1, throttledNs: 9, usageNs: 9, inode: 8))
        #expect(w.countersReset && w.periods == 5 && w.throttledPeriods == 1)

        // A field one sample lacks has no delta.
        w = CPUCgroupWindow(
            from: Self.sample(at: 0, periods: nil, throttled: 0, throttledNs: 0, usageNs: nil),
            to: Self.sample(at: second, periods: 5, throttled: 1, throttledNs: nil, usageNs: 9))
        #expect(!w.countersReset && w.periods == nil && w.throttledPeriods == 1)
        #expect(w.throttledNanoseconds == nil && w.usageNanoseconds == nil)

        // Samples out of order: a negative window (the check says there is none), no trap.
        w = CPUCgroupWindow(
            from: Self.sample(at: .max, periods: 0, throttled: 0, throttledNs: 0, usageNs: 0),
            to: Self.sample(at: .min, periods: 5, throttled: 5, throttledNs: .max, usageNs: .max))
        #expect(w.durationNanoseconds == .min && w.periods == 5 && w.throttledNanoseconds == .max)
    }

    @Test("windows of extreme counters never trap", arguments: [Int64.max, .min, .max - 1, 1 << 32, -1, 0, 1])
    func extremeWindows(_ value: Int64) {
        let values: [Int64?] = [nil, value, .max, .min, 0, 1 << 32, (1 << 32) - 1]
        for a in values {
            for b in values {
                for time in [Int64.min, 0, .max] {
                    let w = CPUCgroupWindow(
                        from: Self.sample(at: 0, periods: a, throttled: a, throttledNs: a, usageNs: a),
                        to: Self.sample(at: time, periods: b, throttled: b, throttledNs: b, usageNs: b))
                    for delta in [w.periods, w.throttledPeriods, w.throttledNanoseconds, w.usageNanoseconds] {
                        #expect((delta ?? 0) >= 0, "\(String(describing: a)) → \(String(describing: b))")
                    }
                }
            }
        }
    }

    @Test("v2 microseconds multiplied into nanoseconds saturate; PSI totals that went backwards give no stall")
    func saturation() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/cg"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "max 100000\n".write(toFile: dir + "/cpu.max", atomically: false, encoding: .utf8)
        try "usage_usec 18446744073709551615\nthrottled_usec 9223372036854775\nnr_periods 1\nnr_throttled 1\n".write(
            toFile: dir + "/cpu.stat", atomically: false, encoding: .utf8)
        try "some avg10=nan avg60=1 avg300=1 total=100\n".write(
            toFile: dir + "/cpu.pressure", atomically: false, encoding: .utf8)
        let a = try CPUCgroupSample.readV2(host: HostRoot(root), directory: "/cg", monotonicNanoseconds: 0)
        #expect(a.usageNanoseconds == .max && a.throttledNanoseconds == 9_223_372_036_854_775_000)
        #expect(a.pressure?.some?.avg10 == nil && a.pressure?.some?.totalMicroseconds == 100)
        var b = a
        b.monotonicNanoseconds = 1_000_000_000
        b.pressure?.some?.totalMicroseconds = 50
        let w = CPUCgroupWindow(from: a, to: b)
        #expect(w.pressureSomeStallNanoseconds == nil && !w.countersReset && w.usageNanoseconds == 0)
    }
}
