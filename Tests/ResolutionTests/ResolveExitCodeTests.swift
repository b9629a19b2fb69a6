import Foundation
import Resolution
import TestSupport
import Testing

/// `pgnode resolve`'s exit status on a fixture host: the containers of `FixtureHostTests.lookups`
/// (a PostgreSQL container of pod prod/web-0 and a sleeping one whose id shares its first 12 digits).
@Suite("pgnode resolve: exit codes on a fixture host")
struct ResolveExitCodeTests {
    static let second = "3f2a9c1b7d4e" + String(repeating: "0", count: 52)

    static func host() throws -> FixtureHost {
        let fixture = try FixtureHost(mounts: "v2")
        try FixtureHostTests.addServer(fixture, cgroup: try cgroupFixture("containerd-systemd-v2"))
        try fixture.containerdBundle(
            id: FixtureIDs.container, config: try FixtureFiles.text("state/containerd-config.json"), initPID: 4242)
        try fixture.process(
            5000, cgroup: try cgroupFixture("containerd-systemd-v2", id: second), arguments: ["sleep", "1d"],
            command: "sleep")
        return fixture
    }

    @Test(
        "0 resolved, 1 ambiguous, 2 nothing matched, 64 usage error",
        arguments: [
            (["3f2a9c1b7d4e5"], 0), (["--pod", "prod/web-0"], 0), (["3f2a9c1b7d4e"], 1), (["ffffffffffff"], 2),
            (["--pod", "prod/nope"], 2), (["abc"], 64), ([], 64),
        ] as [([String], Int32)])
    func exitCodes(arguments: [String], status: Int32) throws {
        let fixture = try Self.host()
        let result = try Command.pgnode(["resolve", "--host-root", fixture.root] + arguments)
        #expect(result.status == status, "stdout: \(result.stdout) stderr: \(result.stderr)")
        if status != 0 {
            #expect(result.stdout.isEmpty && result.stderr.hasPrefix("pgnode: "), "\(result.stderr)")
        }
    }

    @Test("--help lists the exit codes")
    func help() throws {
        let help = try Command.pgnode(["resolve", "--help"]).stdout
        for line in [
            "0   resolved", "1   a prefix is ambiguous", "2   no running container matches", "64  usage error",
        ] {
            #expect(help.contains(line), "--help lacks '\(line)'")
        }
    }
}
