import Foundation
import HostFacts
import PGNodeModel
import Resolution
import Testing

/// Whole host roots: processes, cgroup trees, runtime state and container roots.
@Suite("resolving on fixture host roots")
struct FixtureHostTests {
    static let id = FixtureIDs.container
    static let uid = FixtureIDs.podUID
    static let pgArgs = ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/data", "-c", "work_mem=8MB"]

    /// A PostgreSQL server of four processes in container `id` with cgroup file `cgroup`.
    static func addServer(
        _ fixture: FixtureHost, id: String = FixtureIDs.container, cgroup: String, firstPID: Int32 = 4242,
        rootfs: String = "containers/pg/rootfs", environment: [String] = ["HOSTNAME=db-0"],
        arguments: [String] = pgArgs,
        cwd: String? = "/var/lib/postgresql/data"
    ) throws {
        try fixture.process(
            firstPID, parent: 4200, cgroup: cgroup, arguments: arguments, namespacePID: 1, environment: environment,
            rootfs: rootfs, cwd: cwd)
        let children = [
            "postgres: checkpointer", "postgres: background writer", "postgres: postgres shop [local] idle",
            "postgres: parallel worker for PID 3",
        ]
        for (offset, title) in children.enumerated() {
            try fixture.process(
                firstPID + 1 + Int32(offset), parent: firstPID, cgroup: cgroup, arguments: [title + "   "],
                namespacePID: 2 + Int32(offset), rootfs: rootfs)
        }
    }

    @Test("hybrid node, containerd with the cgroupfs driver: the real file shapes from this machine")
    func hybridContainerd() throws {
        let fixture = try FixtureHost(mounts: "hybrid")
        let realID = "9b29f9763b96fab039718c271894db7d8b72183a641a9fa6c5d2eae4735e3637"
        let cgroup = try FixtureFiles.text("cgroup/containerd-cgroupfs-hybrid.txt")
        try Self.addServer(fixture, id: realID, cgroup: cgroup)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", autoConfig: "work_mem = '32MB'\nhuge_pages = off\n")
        try fixture.containerdBundle(
            id: realID, config: try FixtureFiles.text("state/containerd-config.json"), initPID: 4242)
        let path = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555555/\(realID)"
        try fixture.cgroupDirectories(
            path, hierarchies: ["sys/fs/cgroup/unified", "sys/fs/cgroup/memory", "sys/fs/cgroup/pids"],
            procs: [4242, 4243, 4244, 4245, 4246, 4250])
        // 4250 is listed by cgroup.procs but has exited: it must simply be absent.

        let resolution = try ContainerResolver(host: fixture.host).resolve(
            ContainerReference.parse(String(realID.prefix(12))))
        #expect(resolution.container.id == realID)
        #expect(resolution.container.runtime == .containerd)
        #expect(resolution.container.qosClass == .burstable)
        #expect(resolution.container.pid == 4242)
        #expect(resolution.pod.name == "web-0" && resolution.pod.namespace == "prod")
        #expect(resolution.pod.containerName == "postgres")
        #expect(resolution.pod.uid == "11111111-2222-3333-4444-555555555555")
        #expect(resolution.cgroup.mode == "hybrid")
        #expect(resolution.cgroup.v2?.path == path)
        #expect(resolution.cgroup.v2?.id == (try fixture.inode("sys/fs/cgroup/unified" + path)))
        #expect(resolution.cgroup.memoryV1Inode == (try fixture.inode("sys/fs/cgroup/memory" + path)))
        #expect(resolution.cgroup.v1.map(\.controller) == ["memory", "blkio", "cpu", "cpuacct", "pids", "cpuset"])
        #expect(resolution.processes.map(\.pid) == [4242, 4243, 4244, 4245, 4246])
        #expect(resolution.processes.first?.mountNamespace == 4_026_532_177)

        let server = try #require(resolution.postgres.first)
        #expect(resolution.postgres.count == 1)
        #expect(server.postmasterPID == 4242 && server.postmasterNamespacePID == 1)
        #expect(server.dataDirectory == "/var/lib/postgresql/data" && server.dataDirectorySource == "-D")
        #expect(server.pidFileMatches == true)
        #expect(server.version == "15")
        #expect(
            server.processes.map { $0.role?.kind } == [
                .postmaster, .checkpointer, .backgroundWriter, .clientBackend, .parallelWorker,
            ])
        #expect(server.processes[3].role?.database == "shop")
        #expect(server.processes[4].role?.leaderPID == 3)
        #expect(server.setting("work_mem")?.bytes == 8 << 20)  // the command line beats auto.conf
        #expect(server.setting("work_mem")?.source == "command line")
        #expect(server.setting("huge_pages")?.value == "off")
        #expect(server.setting("huge_pages")?.source == "/var/lib/postgresql/data/postgresql.auto.conf:2")
        #expect(server.setting("shared_buffers")?.bytes == 128 << 20)
        #expect(server.setting("shared_buffers")?.source == "/var/lib/postgresql/data/postgresql.conf:127")
        #expect(server.setting("hash_mem_multiplier")?.number == 2.0)

        let json = resolution.json
        #expect(json["container"]?["id"]?.stringValue == realID)
        #expect(json["postgres"]?.arrayValue?.first?["settings"]?["work_mem"]?["bytes"]?.intValue == 8 << 20)
        let attributes = resolution.resourceAttributes(nodeName: "node-1")
        #expect(
            attributes.containerID == realID && attributes.podName == "web-0"
                && attributes.containerRuntime == "containerd")
    }

    @Test("v1 node, CRI-O with the systemd driver: metadata from userdata/config.json, PGDATA from the environment")
    func crioV1() throws {
        let fixture = try FixtureHost(mounts: "v1")
        let cgroup = try cgroupFixture("crio-systemd-v1")
        try Self.addServer(
            fixture, cgroup: cgroup, environment: ["PGDATA=/var/lib/postgresql/data/pgdata"],
            arguments: ["postgres"], cwd: nil)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", at: "/var/lib/postgresql/data/pgdata", version: "16")
        try fixture.write(
            "run/containers/storage/overlay-containers/\(Self.id)/userdata/config.json",
            try FixtureFiles.text("state/crio-config.json"))
        try fixture.write("run/containers/storage/overlay-containers/\(Self.id)/userdata/pidfile", "4242")
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(Self.uid.replacingOccurrences(of: "-", with: "_")).slice/crio-\(Self.id).scope"
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup/memory", "sys/fs/cgroup/pids"])

        let resolution = try ContainerResolver(host: fixture.host).resolve(
            ContainerReference.parse("cri-o://\(Self.id)"))
        #expect(resolution.container.runtime == .crio)
        #expect(resolution.pod.name == "db-0" && resolution.pod.namespace == "shop" && resolution.pod.uid == Self.uid)
        #expect(resolution.cgroup.mode == "v1")
        #expect(resolution.cgroup.v2 == nil)
        #expect(resolution.cgroup.v1.first { $0.controller == "cpu" }?.path == path)
        #expect(resolution.cgroup.memoryV1Inode == (try fixture.inode("sys/fs/cgroup/memory" + path)))
        let server = try #require(resolution.postgres.first)
        #expect(server.dataDirectory == "/var/lib/postgresql/data/pgdata" && server.dataDirectorySource == "PGDATA")
        #expect(server.version == "16")
        #expect(server.setting("work_mem")?.source == "default")
    }

    @Test("v2 node, Docker via cri-dockerd, systemd driver: labels from config.v2.json; data directory from the cwd")
    func dockerV2() throws {
        let fixture = try FixtureHost(mounts: "v2")
        try Self.addServer(fixture, cgroup: try cgroupFixture("docker-systemd-v2"), arguments: ["postgres"])
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        try fixture.write(
            "var/lib/docker/containers/\(Self.id)/config.v2.json", try FixtureFiles.text("state/docker-config.v2.json"))
        let path =
            "/kubepods.slice/kubepods-pod\(Self.uid.replacingOccurrences(of: "-", with: "_")).slice/docker-\(Self.id).scope"
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"])

        let resolution = try ContainerResolver(host: fixture.host).resolve(
            ContainerReference.parse("docker://\(Self.id.prefix(16))"))
        #expect(resolution.container.runtime == .docker)
        #expect(resolution.container.qosClass == .guaranteed)
        #expect(resolution.pod.name == "db-0" && resolution.pod.containerName == "postgres")
        #expect(resolution.cgroup.mode == "v2")
        #expect(resolution.cgroup.v2?.id == (try fixture.inode("sys/fs/cgroup" + path)))
        #expect(resolution.cgroup.v1.isEmpty && resolution.cgroup.memoryV1Inode == nil)
        #expect(resolution.postgres.first?.dataDirectorySource == "cwd")
        #expect(resolution.postgres.first?.pidFileMatches == true)
    }

    @Test("crun's /container level: the container's cgroup is the scope, the processes' leaf is listed")
    func crunLevel() throws {
        let fixture = try FixtureHost(mounts: "v2")
        try Self.addServer(fixture, cgroup: try cgroupFixture("crio-crun-v2"))
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        let scope =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(Self.uid.replacingOccurrences(of: "-", with: "_")).slice/crio-\(Self.id).scope"
        try fixture.cgroupDirectories(scope + "/container", hierarchies: ["sys/fs/cgroup"], procs: [4242])
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        #expect(resolution.cgroup.v2?.path == scope)
        #expect(resolution.cgroup.v2Leaves.map(\.path) == [scope + "/container"])
        #expect(resolution.cgroup.v2Leaves.first?.id == (try fixture.inode("sys/fs/cgroup" + scope + "/container")))
        // No runtime state: the pod name comes from HOSTNAME, the uid from the cgroup path, and it says so.
        #expect(resolution.pod.name == "db-0" && resolution.pod.uid == Self.uid && resolution.pod.namespace == nil)
        #expect(resolution.pod.source?.contains("HOSTNAME") == true)
        #expect(resolution.problems.contains { $0.contains("no runtime state") })
    }

    @Test("a private cgroup namespace that cannot be left: paths stay relative and the resolution says so")
    func relativeNamespace() throws {
        let fixture = try FixtureHost(mounts: "v2", readerNamespace: 4_026_532_600)
        try Self.addServer(fixture, cgroup: try cgroupFixture("relative-ns-v2"))
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        #expect(resolution.cgroup.namespace.absolute == false)
        #expect(resolution.cgroup.namespace.note?.contains("could not be made absolute") == true)
        #expect(resolution.cgroup.v2?.path.hasPrefix("/../../") == true)
        #expect(resolution.cgroup.v2?.id == nil)
        #expect(resolution.container.podUID == Self.uid && resolution.container.qosClass == .burstable)
        #expect(resolution.problems.contains { $0.contains("could not be made absolute") })
        #expect(resolution.json["cgroup"]?["namespace"]?["absolute"] == .bool(false))
    }

    @Test("sandboxes, conmon, pod-level and host processes are not containers; vanished pids are skipped")
    func skipped() throws {
        let fixture = try FixtureHost(mounts: "v1")
        let sandbox = FixtureIDs.sandbox
        try fixture.process(
            100, cgroup: try cgroupFixture("containerd-cgroupfs-v1", id: sandbox), arguments: ["/pause"],
            command: "pause")
        try fixture.containerdBundle(
            id: sandbox, config: try FixtureFiles.text("state/containerd-sandbox-config.json"), initPID: 100)
        try fixture.process(
            101, cgroup: try cgroupFixture("crio-conmon-v2"), arguments: ["/usr/bin/conmon"], command: "conmon")
        try fixture.process(102, cgroup: try cgroupFixture("pod-level-v1"), arguments: ["sleep"], command: "sleep")
        try fixture.process(
            103, cgroup: try cgroupFixture("host-process-v2"), arguments: ["containerd"], command: "containerd")
        // A process that exits mid-scan: its directory is listed but its files are gone.
        try fixture.directory("proc/104")
        try fixture.write("proc/105/cgroup", "")  // an unreadable (empty) cgroup file
        try Self.addServer(fixture, cgroup: try cgroupFixture("containerd-cgroupfs-v1"))

        let scan = try ProcessScan.scan(host: fixture.host)
        #expect(scan.vanished == 1)
        #expect(scan.unreadable == 1)
        #expect(Set(scan.containers.keys) == [sandbox, Self.id])
        #expect(scan.monitors[Self.id] == [101])

        let resolver = ContainerResolver(host: fixture.host)
        #expect(throws: ResolutionError.sandbox(sandbox)) { try resolver.resolve(ContainerReference.parse(sandbox)) }
        let all = try resolver.resolveContainers()
        #expect(all.map(\.container.id) == [Self.id])
        #expect(try ContainerResolver.resolveAll(host: fixture.host).map(\.container.id) == [Self.id])
    }

    @Test("unknown ids, ambiguous prefixes and pods")
    func lookups() throws {
        let fixture = try FixtureHost(mounts: "v2")
        let second = "3f2a9c1b7d4e" + String(repeating: "0", count: 52)
        try Self.addServer(fixture, cgroup: try cgroupFixture("containerd-systemd-v2"))
        try fixture.containerdBundle(
            id: Self.id, config: try FixtureFiles.text("state/containerd-config.json"), initPID: 4242)
        try fixture.process(
            5000, cgroup: try cgroupFixture("containerd-systemd-v2", id: second), arguments: ["sleep", "1d"],
            command: "sleep")
        let resolver = ContainerResolver(host: fixture.host)
        #expect(throws: ResolutionError.ambiguous(prefix: "3f2a9c1b7d4e", candidates: [second, Self.id].sorted())) {
            try resolver.resolve(ContainerReference.parse("3f2a9c1b7d4e"))
        }
        #expect(throws: ResolutionError.notFound("ffffffffffff")) {
            try resolver.resolve(ContainerReference.parse("ffffffffffff"))
        }
        #expect(try resolver.resolve(ContainerReference.parse("3f2a9c1b7d4e0")).container.id == second)
        let pod = try resolver.resolve(pod: PodReference(namespace: "prod", name: "web-0"))
        #expect(pod.map(\.container.id) == [Self.id])
        #expect(throws: ResolutionError.podNotFound(namespace: "prod", name: "nope")) {
            try resolver.resolve(pod: PodReference(namespace: "prod", name: "nope"))
        }
        // The sleeping container runs no PostgreSQL: resolveAll leaves it out.
        #expect(try ContainerResolver.resolveAll(host: fixture.host).map(\.container.id) == [Self.id])
    }

    @Test("nested kind node: the node container's cgroup is reported as the prefix")
    func kindNode() throws {
        let fixture = try FixtureHost(mounts: "v1")
        try Self.addServer(fixture, cgroup: try cgroupFixture("kind-nested-v1"))
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        #expect(resolution.container.nodeCgroupPrefix?.hasPrefix("/docker/0d9f6c2b8e7a") == true)
        #expect(resolution.container.qosClass == .besteffort)
    }

    @Test("a symlink in the data directory cannot lead a read out of the container's root")
    func symlinkEscape() throws {
        let fixture = try FixtureHost(mounts: "v2")
        try Self.addServer(fixture, cgroup: try cgroupFixture("containerd-systemd-v2"))
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        // A file on the "host" with a marker, and links to it by absolute host path and by climbing.
        let marker = "PGNODE-MARKER-\(UUID().uuidString)"
        let secret = fixture.path("host-secret.conf")
        try "work_mem = '\(marker)'\n".write(toFile: secret, atomically: false, encoding: .utf8)
        let data = fixture.path("containers/pg/rootfs/var/lib/postgresql/data")
        try FileManager.default.createSymbolicLink(atPath: data + "/postgresql.auto.conf", withDestinationPath: secret)
        try "include '../../../../../../host-secret.conf'\ninclude_if_exists '\(secret)'\n".write(
            toFile: data + "/postgresql.conf", atomically: false, encoding: .utf8)
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(Self.id))
        let output = JSONWriter.string(resolution.json)
        #expect(!output.contains(marker))
        let server = try #require(resolution.postgres.first)
        #expect(server.setting("work_mem")?.value == "8MB")
        // Both includes were looked up inside the container's root, where no such file exists.
        #expect(server.problems.contains { $0.contains("/host-secret.conf") && $0.contains("no such file") })
        #expect(server.configFiles == ["/var/lib/postgresql/data/postgresql.conf"])
    }
}
