import Foundation
import HostFacts
import PGNodeModel
import Resolution
import Testing

/// A pid is only a number: the process found at discovery may exit and its pid go to another
/// process (of another container) before pgnode reads the first one's files.
@Suite("a reused pid is noticed")
struct PidReuseTests {
    @Test(
        "a postmaster whose pid went to another process between discovery and the reads: nothing of the other is read")
    func postmasterReplaced() throws {
        let fixture = try FixtureHost(mounts: "v2")
        let cgroup = try cgroupFixture("docker-systemd-v2")
        try FixtureHostTests.addServer(fixture, cgroup: cgroup)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", config: "work_mem = 8MB\n")
        let discovered = (4242...4246).compactMap { ProcessRecord.read(host: fixture.host, pid: $0) }
        try #require(discovered.count == 5)

        // The postmaster exits; pid 4242 goes to a process of another container, started later,
        // whose root holds another configuration.
        let marker = "PGNODE-OTHER-\(UUID().uuidString)"
        try fixture.dataDirectory(rootfs: "containers/other/rootfs", config: "work_mem = '\(marker)'\n")
        try fixture.process(
            4242, parent: 4200, cgroup: cgroup, arguments: FixtureHostTests.pgArgs, namespacePID: 1,
            environment: ["PGDATA=/var/lib/postgresql/data"], rootfs: "containers/other/rootfs",
            cwd: "/var/lib/postgresql/data", startTime: 987_654)

        let server = try #require(PostgresDiscovery.servers(host: fixture.host, processes: discovered).first)
        #expect(!JSONWriter.string(server.json).contains(marker))
        #expect(server.settings == nil)
        #expect(server.problems.contains { $0.contains("process 4242 exited (pid reused)") }, "\(server.problems)")
        #expect(server.settingsUnavailableReason?.contains("pid reused") == true)
    }

    @Test("the same process read twice is the same: nothing is reported")
    func sameProcess() throws {
        let fixture = try FixtureHost(mounts: "v2")
        try FixtureHostTests.addServer(fixture, cgroup: try cgroupFixture("docker-systemd-v2"))
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", config: "work_mem = 8MB\n")
        let discovered = (4242...4246).compactMap { ProcessRecord.read(host: fixture.host, pid: $0) }
        let server = try #require(PostgresDiscovery.servers(host: fixture.host, processes: discovered).first)
        #expect(server.problems.isEmpty, "\(server.problems)")
        #expect(server.setting("work_mem")?.source == "command line")
    }
}
