import Foundation
import HostFacts
import PGNodeModel
import Resolution
import TestSupport
import Testing

/// Files a container's user controls, replaced by things that are not regular files: a FIFO (an
/// `open` of it blocks until a writer comes) and a character device (`/dev/null`'s numbers, which
/// an `open` would hand to the device's driver). Resolution must neither block nor read them, and
/// must say which file it refused.
@Suite("files in a container that are not regular files")
struct HostileFileTests {
    /// The container's files, by their path inside it, that pgnode reads.
    static let files = [
        "/var/lib/postgresql/data/postgresql.conf", "/var/lib/postgresql/data/PG_VERSION",
        "/var/lib/postgresql/data/postmaster.pid", "/var/lib/postgresql/data/postmaster.opts",
        "/var/lib/postgresql/data/extra.conf",
    ]

    /// What replaces the file.
    enum Kind: String, CaseIterable, Sendable {
        case fifo
        case characterDevice
    }

    static let rootfs = "containers/pg/rootfs"

    /// A server started without -D from its data directory (so that postmaster.opts is read too),
    /// whose postgresql.conf includes extra.conf; then `path` replaced by a `kind`.
    static func fixture(replacing path: String, with kind: Kind) throws -> FixtureHost {
        let fixture = try FixtureHost(mounts: "v2")
        try FixtureHostTests.addServer(
            fixture, cgroup: try cgroupFixture("docker-systemd-v2"), arguments: ["/usr/lib/postgresql/15/bin/postgres"])
        try fixture.dataDirectory(rootfs: rootfs, config: "include 'extra.conf'\nwork_mem = 8MB\n")
        let data = rootfs + "/var/lib/postgresql/data"
        try fixture.write(data + "/extra.conf", "huge_pages = off\n")
        try fixture.write(
            data + "/postmaster.opts", "/usr/lib/postgresql/15/bin/postgres \"-c\" \"max_connections=42\"\n")
        let full = fixture.path(rootfs + path)
        try FileManager.default.removeItem(atPath: full)
        switch kind {
        case .fifo:
            try #require(mkfifo(full, 0o644) == 0, "mkfifo \(full): \(String(cString: strerror(errno)))")
        case .characterDevice:
            // 1:3 is /dev/null; glibc's dev_t for small numbers is major << 8 | minor.
            try #require(
                mknod(full, mode_t(S_IFCHR) | 0o644, dev_t(1 << 8 | 3)) == 0,
                "mknod \(full): \(String(cString: strerror(errno)))")
        }
        return fixture
    }

    @Test(
        "resolution returns and says 'not a regular file: <path>'",
        arguments: files, Kind.allCases)
    func refused(path: String, kind: Kind) throws {
        if kind == .characterDevice, !TestEnvironment.requireRoot() { return }
        let fixture = try Self.fixture(replacing: path, with: kind)
        let host = fixture.host
        let fifo = fixture.path(Self.rootfs + path)
        let resolution = try HangGuard.run(
            "resolving with a \(kind) at \(path)", unblock: { HangGuard.releaseFIFOs([fifo]) }
        ) {
            try ContainerResolver(host: host).resolve(ContainerReference.parse(FixtureIDs.container))
        }
        let server = try #require(resolution.postgres.first)
        let message = "not a regular file: \(path)"
        #expect(server.problems.contains { $0.contains(message) }, "\(server.problems)")
        // The resolution as printed carries it too.
        #expect(JSONWriter.string(resolution.json).contains(message))
        switch path {
        case "/var/lib/postgresql/data/postgresql.conf":
            #expect(server.settings == nil)
            #expect(server.settingsUnavailableReason?.contains(message) == true)
        case "/var/lib/postgresql/data/extra.conf":
            // The main file was read: its settings stand, the refused include is a problem.
            #expect(server.setting("work_mem")?.value == "8MB")
            #expect(server.configFiles == ["/var/lib/postgresql/data/postgresql.conf"])
        case "/var/lib/postgresql/data/PG_VERSION":
            #expect(server.version == nil)
        case "/var/lib/postgresql/data/postmaster.pid":
            #expect(server.pidFileMatches == nil)
        default:
            // postmaster.opts refused: the command line's settings are not taken from it.
            #expect(server.setting("max_connections")?.source != "command line")
        }
    }

    @Test("an include_dir that is a FIFO is refused without blocking")
    func fifoIncludeDirectory() throws {
        let fixture = try FixtureHost(mounts: "v2")
        try FixtureHostTests.addServer(fixture, cgroup: try cgroupFixture("docker-systemd-v2"))
        try fixture.dataDirectory(rootfs: Self.rootfs, config: "include_dir 'conf.d'\nwork_mem = 8MB\n")
        let fifo = fixture.path(Self.rootfs + "/var/lib/postgresql/data/conf.d")
        try #require(mkfifo(fifo, 0o644) == 0)
        let host = fixture.host
        let resolution = try HangGuard.run("an include_dir FIFO", unblock: { HangGuard.releaseFIFOs([fifo]) }) {
            try ContainerResolver(host: host).resolve(ContainerReference.parse(FixtureIDs.container))
        }
        let server = try #require(resolution.postgres.first)
        #expect(server.problems.contains { $0.contains("not a directory: /var/lib/postgresql/data/conf.d") })
        #expect(server.setting("work_mem")?.value == "8MB")
    }
}
