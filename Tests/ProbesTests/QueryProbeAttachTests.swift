import Foundation
import HostFacts
import PGNodeModel
import Probes
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
            status.unattached.first?.contains("no USDT probe postgresql:query__start") == true, "\(status.unattached)")
        let results = await session.finish()
        session.close()
        let reason = try #require(results.unwatched[QueryProbe.name]?[0], "\(results.unwatched)")
        #expect(reason.contains("has no USDT probe postgresql:query__start"), "\(reason)")
        #expect(reason.contains("--enable-dtrace"), "\(reason)")
    }
}
