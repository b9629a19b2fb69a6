import Checks
import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import TestSupport
import Testing

/// `memory.limit` on cgroup v2 end to end on fixture host roots: a container resolved from its
/// processes and cgroup tree, its memory files (from the faithful v2 fixtures of the HostFacts
/// tests) read by MemoryFactsReader, the server's settings from its configuration, then the check.
/// And the naming of processes born after resolution, for `memory.reclaim`'s `by_pid`.
@Suite("memory diagnosis on fixture host roots")
struct MemoryDiagnosisFixtureTests {
    static let cgroup2Fixtures = TestEnvironment.packageRoot.appendingPathComponent(
        "Tests/HostFactsTests/Fixtures/cgroup2"
    ).path

    /// A v2 host with a four-process server in `id`'s cgroup at `path`, whose memory files are
    /// those of `Fixtures/cgroup2/<kernel>`.
    static func host(kernel: String, id: String, path: String, autoConfig: String) throws -> FixtureHost {
        let fixture = try FixtureHost(mounts: "v2")
        try FixtureHostTests.addServer(fixture, id: id, cgroup: "0::\(path)\n")
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", autoConfig: autoConfig)
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242, 4243, 4244, 4245, 4246])
        let source = "\(cgroup2Fixtures)/\(kernel)/sys/fs/cgroup\(path)"
        for file in try FileManager.default.contentsOfDirectory(atPath: source) {
            try fixture.write(
                "sys/fs/cgroup\(path)/\(file)", try String(contentsOfFile: "\(source)/\(file)", encoding: .utf8))
        }
        return fixture
    }

    @Test("6.8, no PSI: a Burstable container whose processes the OOM killer ended at once is critical")
    func kernel68() throws {
        let id = FixtureIDs.container
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e3b2a_5d4f_4e8a_9b6c_1d2e3f4a5b6c.slice/cri-containerd-\(id).scope"
        let fixture = try Self.host(
            kernel: "kernel-6.8", id: id, path: path, autoConfig: "shared_buffers = '512MB'\nwork_mem = '16MB'\n")
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id))
        #expect(resolution.cgroup.mode == "v2")
        #expect(resolution.container.qosClass == .burstable)

        let facts = MemoryFactsReader.facts(resolution: resolution, host: fixture.host)
        #expect(facts.sharedBuffersBytes == 512 << 20)
        #expect(facts.workMemBytes == 8 << 20)  // `-c work_mem=8MB` on the command line beats postgresql.auto.conf
        #expect(facts.maxConnections == 100)
        #expect(facts.qosClass == "burstable")
        let stats = try facts.cgroup.get()
        #expect(stats.version == 2 && stats.limitBytes == 805_306_368 && stats.oomGroupKills == 1)

        let o = MemoryLimitCheck.evaluate(facts)
        #expect(o.severity == .critical)
        #expect(o.summary.contains("ended 5 process(es)"), "\(o.summary)")
        #expect(o.summary.contains("memory.oom.group"), "\(o.summary)")
        #expect(o.evidence["limit_bytes"] == .int(805_306_368))
        #expect(o.evidence["shared_buffers_bytes"] == .int(512 << 20))
        #expect(o.evidence["shmem_bytes"] == .int(570_425_344))
        #expect(o.evidence["oom_kills"] == .int(5) && o.evidence["oom_group_kills"] == .int(1))
        #expect(o.evidence["pressure_some_avg10"] == .null)
        #expect(o.evidence["missing_files"] == .array(["memory.pressure"]))
        #expect(o.evidence["cgroup_version"] == .int(2))
    }

    @Test("5.10: usage over memory.high (MemoryQoS) is a warning; PSI is reported")
    func kernel510() throws {
        let id = "b7e2d9c4a1f8063e5d2c9b7a4f1e8d3c6b9a2f5e8d1c4b7a0f3e6d9c2b5a8f1e"
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e8d2b6a_1c3f_4a7e_9d0b_2f4e6a8c0d1e.slice/cri-containerd-\(id).scope"
        let fixture = try Self.host(kernel: "kernel-5.10", id: id, path: path, autoConfig: "")
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id))
        let facts = MemoryFactsReader.facts(resolution: resolution, host: fixture.host)
        #expect(facts.sharedBuffersBytes == 128 << 20)  // initdb's postgresql.conf
        let o = MemoryLimitCheck.evaluate(facts)
        #expect(o.severity == .warning)
        #expect(o.summary.contains("memory.high 4821 time(s)"), "\(o.summary)")
        #expect(o.evidence["high_bytes"] == .int(483_180_544))
        #expect(o.evidence["pressure_some_avg10"] == .double(3.21))
        #expect(o.evidence["oom_group_kills"] == .null)
        #expect(o.evidence["working_set_bytes"] == .int(509_214_720 - 241_459_200))
    }

    @Test("a v2 container without memory files (controller not enabled) is unavailable, with the reason")
    func noController() throws {
        let fixture = try FixtureHost(mounts: "v2")
        let id = FixtureIDs.container
        let path = "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-\(id).scope"
        try FixtureHostTests.addServer(fixture, id: id, cgroup: "0::\(path)\n")
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242])
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id))
        let o = MemoryLimitCheck.evaluate(MemoryFactsReader.facts(resolution: resolution, host: fixture.host))
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"]?.stringValue?.contains("no memory cgroup") == true, "\(o.evidence)")
    }

    @Test("processes born after resolution are named from /proc: a new backend by its title, others by command")
    func namesLearnedAfterResolution() throws {
        let fixture = try FixtureHost(mounts: "v2")
        let id = FixtureIDs.container
        let path = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-\(id).scope"
        let cgroup = "0::\(path)\n"
        try FixtureHostTests.addServer(fixture, id: id, cgroup: cgroup)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242, 4243, 4244, 4245, 4246])
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id))
        var names = ProcessNames(resolution)
        #expect(names.byPID[4242]?.role == "postmaster")
        #expect(names.byPID[4243]?.role == "checkpointer" && names.byPID[4243]?.namespacePID == 2)
        #expect(names.byPID[4300] == nil)

        // Born during the window: a client backend, a shell in the container, a process elsewhere
        // that got a pid the probe saw (reuse), and one that has already exited.
        try fixture.process(
            4300, parent: 4242, cgroup: cgroup, arguments: ["postgres: app shop 10.1.2.3(51234) SELECT   "],
            namespacePID: 40)
        try fixture.process(
            4301, parent: 4200, cgroup: cgroup, arguments: ["sh", "-c", "true"], command: "sh", namespacePID: 41)
        try fixture.process(
            4302, parent: 1, cgroup: "0::/system.slice/cron.service\n", arguments: ["cron"], command: "cron",
            pidNamespace: 4_026_531_836)
        names.learn([4300, 4301, 4302, 4303, 4242], host: fixture.host)
        #expect(names.byPID[4300] == ProcessNames.Name(command: "postgres", role: "client backend", namespacePID: 40))
        #expect(names.byPID[4301] == ProcessNames.Name(command: "sh", role: nil, namespacePID: 41))
        #expect(names.byPID[4302] == nil)
        #expect(names.byPID[4303] == nil)
        #expect(names.byPID[4242]?.role == "postmaster")
        #expect(names.roles[4300] == "client backend" && names.roles[4301] == "sh")
    }
}
