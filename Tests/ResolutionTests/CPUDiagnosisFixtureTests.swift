import Checks
import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import TestSupport
import Testing

/// `cpu.throttling` from resolution to finding on a fixture host root shaped like this machine
/// (hybrid: `cpu` and `cpuacct` apart under /sys/fs/cgroup, PSI in the unified hierarchy): the
/// container resolved from its processes, its CPU cgroup located and read by `CPUFactsReader`
/// at both ends of a window (the real v1 files of `HostFactsTests/Fixtures/cgroup1`, t0 then
/// t1), the server's settings from its configuration, then `ContainerDiagnosis` and the check.
@Suite("cpu diagnosis on fixture host roots")
struct CPUDiagnosisFixtureTests {
    static let samples = TestEnvironment.packageRoot.appendingPathComponent(
        "Tests/HostFactsTests/Fixtures/cgroup1/kernel-6.18"
    ).path
    static let id = "ec354ee62f983d0b4b60f92a7c7b263d41fe72f5a5720fec293edfd21f7872dd"
    static let path = "/kubepods/burstable/podc9e4396d-a05e-4b62-901d-af42ea776470/\(id)"
    /// The hierarchies of the hybrid mount table that hold CPU files.
    static let hierarchies = ["sys/fs/cgroup/cpu", "sys/fs/cgroup/cpuacct", "sys/fs/cgroup/unified"]
    /// `/proc/uptime` when t0 and t1 were read (the fixture's README).
    static let t0 = Int64(2_758_520_000_000)
    static let t1 = Int64(2_763_830_000_000)

    /// A hybrid host with a server in the container, its CPU files those of `sample` (t0 or t1).
    static func host(autoConfig: String = "") throws -> FixtureHost {
        let fixture = try FixtureHost(mounts: "hybrid")
        let controllers = ["name=systemd", "pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpuacct", "cpu"]
        let cgroup =
            controllers.enumerated().map { "\(9 - $0.offset):\($0.element):\(path)\n" }.joined() + "0::\(path)\n"
        try FixtureHostTests.addServer(fixture, id: id, cgroup: cgroup)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", autoConfig: autoConfig)
        try fixture.cgroupDirectories(
            path, hierarchies: hierarchies + ["sys/fs/cgroup/memory", "sys/fs/cgroup/pids"],
            procs: [4242, 4243, 4244, 4245, 4246])
        try place("t0", in: fixture)
        return fixture
    }

    /// Writes the CPU files of `sample` into the container's cgroup directories.
    static func place(_ sample: String, in fixture: FixtureHost) throws {
        for hierarchy in hierarchies {
            let source = "\(samples)/\(sample)/\(hierarchy)\(path)"
            for file in try FileManager.default.contentsOfDirectory(atPath: source) {
                try fixture.write(
                    "\(hierarchy)\(path)/\(file)", try String(contentsOfFile: "\(source)/\(file)", encoding: .utf8))
            }
        }
    }

    /// One reading through `CPUFactsReader`, stamped at `time` (the fixture's, not now).
    static func sample(_ resolution: Resolution, _ fixture: FixtureHost, at time: Int64) throws -> CPUCgroupSample {
        var sample = try CPUFactsReader.sample(resolution, host: fixture.host).get()
        sample.monotonicNanoseconds = time
        return sample
    }

    /// The container's `cpu.throttling` as `ContainerDiagnosis` reports it over `cpu`.
    static func throttling(
        _ resolution: Resolution, _ fixture: FixtureHost, cpu: Result<CPUCgroupWindow, CheckUnavailable>
    ) throws -> Observation {
        let observations = ContainerDiagnosis.observations(
            resolution, slot: nil, host: fixture.host, window: nil, cpu: cpu)
        #expect(
            observations.map(\.check) == [
                "shm.size", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling", "cpu.contention",
            ])
        return try #require(observations.first { $0.check == CPUThrottlingCheck.id })
    }

    @Test("hybrid, real v1 files t0 → t1: half a CPU throttled in 54 of 54 periods is critical; QoS and settings")
    func throttled() throws {
        let fixture = try Self.host(autoConfig: "max_parallel_workers_per_gather = 4\n")
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        #expect(resolution.cgroup.mode == "hybrid")
        let location = try #require(CPUFactsReader.location(resolution))
        #expect(
            location
                == .v1(
                    cpu: "/sys/fs/cgroup/cpu\(Self.path)", cpuacct: "/sys/fs/cgroup/cpuacct\(Self.path)",
                    unified: "/sys/fs/cgroup/unified\(Self.path)"))

        let first = try Self.sample(resolution, fixture, at: Self.t0)
        try Self.place("t1", in: fixture)
        let last = try Self.sample(resolution, fixture, at: Self.t1)
        let samples = CPUWindowSamples(start: .success(first), end: .success(last))
        #expect(samples.endSample == last)
        let o = try Self.throttling(resolution, fixture, cpu: samples.window)

        #expect(o.severity == .critical, "\(o.summary)")
        #expect(o.summary.hasPrefix("Throttled in 54 of 54 CFS periods (100 %)"), "\(o.summary)")
        #expect(o.evidence["quota_cores"] == .double(0.5) && o.evidence["period_us"] == .int(100_000))
        #expect(o.evidence["burst_us"] == .int(0))
        #expect(o.evidence["periods"] == .int(54) && o.evidence["throttled_periods"] == .int(54))
        #expect(o.evidence["throttled_periods_ratio"] == .double(1))
        #expect(o.evidence["usage_cores"] == .double(0.4991), "\(o.evidence)")
        #expect(o.evidence["qos_class"] == .string("burstable"))
        #expect(o.evidence["pressure"]?["some_stall_ns"] != .null, "\(o.evidence)")
        #expect(
            o.evidence["settings"]?["max_parallel_workers_per_gather"]
                == .object(["value": .int(4), "source": .string("/var/lib/postgresql/data/postgresql.auto.conf:1")]),
            "\(o.evidence)")
        #expect(o.evidence["settings"]?["max_parallel_workers"]?["value"] == .int(8))
        #expect(o.evidence["parallel_query_processes"] == .int(5))
        #expect(o.evidence["counters_reset"] == nil && o.evidence["missing_files"] == nil)
        #expect(o.remedy.contains("cpu.cfs_burst_us") && o.remedy.contains("at most 0 here"), "\(o.remedy)")
    }

    @Test("no window (pgnode check --duration 0): unavailable, saying why, with the QoS class and settings")
    func noWindow() throws {
        let fixture = try Self.host()
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        let observations = ContainerDiagnosis.observations(resolution, slot: nil, host: fixture.host, window: nil)
        let o = try #require(observations.first { $0.check == CPUThrottlingCheck.id })
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"] == .string(CPUFactsReader.noWindow.reason))
        #expect(o.evidence["qos_class"] == .string("burstable"))
        #expect(o.evidence["settings"]?["max_parallel_workers_per_gather"]?["value"] == .int(2))
    }

    @Test("counters that went backwards (a cgroup recreated: t1 read first, then t0): counted since then, flagged")
    func backwards() throws {
        let fixture = try Self.host()
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        try Self.place("t1", in: fixture)
        let first = try Self.sample(resolution, fixture, at: Self.t0)
        try Self.place("t0", in: fixture)
        let last = try Self.sample(resolution, fixture, at: Self.t1)
        let o = try Self.throttling(
            resolution, fixture, cpu: CPUWindowSamples(start: .success(first), end: .success(last)).window)
        #expect(o.evidence["counters_reset"] == .bool(true), "\(o.evidence)")
        #expect(o.summary.contains("The cgroup was recreated during the window"), "\(o.summary)")
        // t0's own counters, all of them since the (new) cgroup appeared.
        #expect(o.evidence["periods"] == .int(last.periods ?? -1))
        #expect(o.severity != .unavailable, "\(o.summary)")
    }

    @Test("the cgroup gone before the end of the window: unavailable at the end, not a trap")
    func removed() throws {
        let fixture = try Self.host()
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        let first = CPUFactsReader.sample(resolution, host: fixture.host)
        #expect((try? first.get()) != nil)
        for hierarchy in Self.hierarchies {
            try FileManager.default.removeItem(atPath: "\(fixture.root)/\(hierarchy)\(Self.path)")
        }
        let last = CPUFactsReader.sample(resolution, host: fixture.host)
        let samples = CPUWindowSamples(start: first, end: last)
        #expect(samples.endSample == nil)
        let o = try Self.throttling(resolution, fixture, cpu: samples.window)
        #expect(o.severity == .unavailable)
        let reason = o.evidence["reason"]?.stringValue ?? ""
        #expect(reason.hasPrefix("at the end of the window, cannot read the v1 cpu cgroup"), "\(reason)")
    }

    @Test("a FIFO in place of cpu.stat and an endless cpu.cfs_quota_us: refused or bounded, never blocking")
    func hostileFiles() throws {
        let fixture = try Self.host()
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        let cpu = "\(fixture.root)/sys/fs/cgroup/cpu\(Self.path)"
        try FileManager.default.removeItem(atPath: "\(cpu)/cpu.stat")
        try #require(mkfifo("\(cpu)/cpu.stat", 0o644) == 0)
        try String(repeating: "9", count: 1 << 20).write(
            toFile: "\(cpu)/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        let host = fixture.host
        let read = try HangGuard.run(
            "reading a FIFO cpu.stat", unblock: { HangGuard.releaseFIFOs(["\(cpu)/cpu.stat"]) }
        ) {
            CPUFactsReader.sample(resolution, host: host)
        }
        let sample = try read.get()
        #expect(sample.missing.contains("cpu.stat"), "\(sample.missing)")
        #expect(sample.bandwidth == nil && sample.periods == nil)
        let o = try Self.throttling(
            resolution, fixture, cpu: CPUWindowSamples(start: .success(sample), end: .success(sample)).window)
        #expect(o.severity == .unavailable)
    }

    @Test("a setting PostgreSQL refuses is listed, never computed with")
    func invalidSetting() throws {
        let fixture = try Self.host(autoConfig: "max_parallel_workers_per_gather = 'lots'\n")
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        let facts = CPUFactsReader.facts(resolution, window: .failure(CPUFactsReader.noWindow))
        guard case .failure(let invalid)? = facts.maxParallelWorkersPerGather else {
            Issue.record("not refused: \(String(describing: facts.maxParallelWorkersPerGather))")
            return
        }
        #expect(invalid.text == "lots" && invalid.name == "max_parallel_workers_per_gather")
        #expect(facts.maxWorkerProcesses == .success(SettingValue(8, source: "default")))
    }
}
