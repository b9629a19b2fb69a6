import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Probes
import Resolution
import TestSupport
import Testing

/// The query probe's USDT probes on real server executables: PostgreSQL 15 as Debian builds it
/// (with `--enable-dtrace`) takes every one; the same executable stripped of its `.note.stapsdt`
/// notes, as a server built without dtrace is, takes none, and the probe says so for the target
/// (its `query.latency` is then `unavailable`) and in its status (`bpf.support`).
@Suite("query probe USDT attachment", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct QueryProbeAttachTests {
    static let postgres = "/usr/lib/postgresql/15/bin/postgres"

    /// `path` as a file to attach to, resolved in the host's root.
    func file(_ path: String) throws -> LibraryFile {
        var st = stat()
        try #require(stat(path, &st) == 0, "stat \(path): \(String(cString: strerror(errno)))")
        let dev = UInt64(st.st_dev)
        let identity = LibraryFile.Identity(
            major: UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)),
            minor: UInt32((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)), inode: UInt64(st.st_ino))
        return LibraryFile(identity: identity, rootPath: "/", path: path)
    }

    /// A session of the query probe alone, its one target (an unused cgroup id) running `server`.
    func session(server: LibraryFile) throws -> ProbeSession {
        let session = ProbeSession(probes: [QueryProbe.self], environment: ProbeTestSupport.environment(), btfPath: nil)
        try session.setTargets([ProbeTarget(v2: 1 << 40, memoryV1: 1 << 40, servers: [server])])
        session.attach()
        return session
    }

    @Test("PostgreSQL 15's executable takes every USDT probe the query probe uses")
    func realServer() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        try #require(FileManager.default.fileExists(atPath: Self.postgres), "PostgreSQL 15 (scripts/setup)")
        let session = try session(server: try file(Self.postgres))
        let status = try #require(session.statuses.first { $0.name == QueryProbe.name })
        #expect(status.running, "\(status)")
        #expect(status.unattached.isEmpty, "\(status.unattached)")
        #expect(session.uprobeFailures.isEmpty)
        let results = await session.finish()
        session.close()
        #expect(results.unwatched[QueryProbe.name] == nil, "\(results.unwatched)")
    }

    @Test("the executable stripped of its USDT notes: unattached with the reason, its target unwatched")
    func withoutUSDT() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        try #require(FileManager.default.fileExists(atPath: Self.postgres), "PostgreSQL 15 (scripts/setup)")
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let stripped = scratch + "/postgres"
        let objcopy = try Command.run(
            [
                "objcopy", "--remove-section", ".note.stapsdt", "--remove-section", ".stapsdt.base", Self.postgres,
                stripped,
            ])
        try #require(objcopy.status == 0, "objcopy: \(objcopy.stderr)")
        let notes = try Command.run(["readelf", "-n", stripped])
        try #require(!notes.stdout.contains("stapsdt"), "the copy still has USDT notes")

        let session = try session(server: try file(stripped))
        let status = try #require(session.statuses.first { $0.name == QueryProbe.name })
        // The probe runs (other servers may have probes); this file is listed with the reason.
        #expect(status.running, "\(status)")
        #expect(status.unattached.count == 1, "\(status.unattached)")
        #expect(
            status.unattached.first?.contains("no USDT probe postgresql:query__done") == true, "\(status.unattached)")
        let results = await session.finish()
        session.close()
        let reason = try #require(results.unwatched[QueryProbe.name]?[0], "\(results.unwatched)")
        #expect(reason.contains("has no USDT probe postgresql:query__done"), "\(reason)")
        #expect(reason.contains("--enable-dtrace"), "\(reason)")
    }

    @Test(
        "a real server's simple-protocol statements, each counted once, with either program set",
        arguments: [false, true])
    func countsStatements(rawTracepoints: Bool) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF"), Containers.available()
        else { return }
        var options = PostgresContainerOptions()
        options.podName = "query-probe-\(rawTracepoints ? "raw" : "btf")"
        let container = try Containers.start("query-probe", options: options)
        defer { Containers.remove(container.name) }
        try Containers.waitUntilReady(container)
        let resolution = try #require(
            try ContainerResolver.resolveAll(host: HostRoot("/")).first { $0.container.id == container.id },
            "\(container.id) not resolved")
        let target = ProbeTargets.target(for: resolution, host: HostRoot("/"))
        try #require(target.servers.count == 1, "\(target.servers)")

        let session = ProbeSession(
            probes: [QueryProbe.self], environment: ProbeTestSupport.environment(), btfPath: nil,
            preferRawTracepoints: rawTracepoints)
        defer { session.close() }
        try session.setTargets([target])
        session.attach()
        let status = try #require(session.statuses.first)
        try #require(status.running, "\(status)")
        #expect(status.programs.contains(rawTracepoints ? "pgn_q_sw_raw" : "pgn_q_sw_btf"), "\(status.programs)")
        // One session, 25 Query messages (psql sends each -c as one); psql sends nothing else.
        let statements = 25
        let psql = try Command.run(
            [Containers.script, "psql", container.name, "-At"]
                + (0..<statements).flatMap { ["-c", "SELECT \($0)"] })
        try #require(psql.status == 0, "\(psql.stderr)")
        let results = await session.finish()
        let counted = try #require(results.query[0], "nothing counted: \(results)")
        #expect(counted.simple == UInt64(statements))
        #expect(counted.extended == 0)
        #expect(counted.latencyMicroseconds.reduce(0, +) == UInt64(statements))
        #expect(counted.stateNs.reduce(0, +) == counted.totalNs, "the states partition each statement's time")
        #expect(counted.untracked == 0)
        // Every statement of the window entered its CPU's slowest while it had fewer than five.
        #expect(!counted.slowest.isEmpty && counted.slowest.count <= QueryProbe.slowestLimit)
        #expect(
            counted.slowest.allSatisfy {
                ($0.text.map { String(decoding: $0, as: UTF8.self) } ?? "").hasPrefix("SELECT ")
            })
        #expect(counted.slowest.allSatisfy { $0.title.hasPrefix("postgres: ") }, "\(counted.slowest.map(\.title))")
    }
}
