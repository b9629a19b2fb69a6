import Checks
import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import Testing

/// Settings PostgreSQL would refuse, end to end on fixture host roots: a server's configuration
/// (or the command line of a process called `postgres`) sets `hash_mem_multiplier = 1e300`; the
/// resolution reports it invalid with PostgreSQL's message, `shm.size` says which setting and
/// why instead of computing with it (it used to trap on `max(…) + budget / 4`), and the other
/// checks still run.
@Suite("settings PostgreSQL refuses, on fixture host roots")
struct InvalidSettingsFixtureTests {
    static let message = "1e+300 is outside the valid range for parameter \"hash_mem_multiplier\" (1 .. 1000)"

    static func resolve(arguments: [String], config: String?) throws -> (FixtureHost, Resolution) {
        let fixture = try FixtureHost(mounts: "hybrid")
        let id = "9b29f9763b96fab039718c271894db7d8b72183a641a9fa6c5d2eae4735e3637"
        try FixtureHostTests.addServer(
            fixture, id: id, cgroup: try FixtureFiles.text("cgroup/containerd-cgroupfs-hybrid.txt"),
            arguments: arguments)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", config: config)
        try fixture.directory("containers/pg/rootfs/dev/shm")
        try fixture.containerdBundle(
            id: id, config: try FixtureFiles.text("state/containerd-config.json"), initPID: 4242)
        let path = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555555/\(id)"
        try fixture.cgroupDirectories(
            path, hierarchies: ["sys/fs/cgroup/unified", "sys/fs/cgroup/memory", "sys/fs/cgroup/pids"],
            procs: [4242, 4243, 4244, 4245, 4246])
        let resolution = try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id))
        return (fixture, resolution)
    }

    func expectInvalidMultiplier(
        _ fixture: FixtureHost, _ resolution: Resolution, source: String, text: String = "1e300"
    ) throws {
        let server = try #require(resolution.postgres.first)
        let setting = try #require(server.setting("hash_mem_multiplier"), "\(server.problems) \(server.configFiles)")
        #expect(setting.value == text && setting.source == source)
        #expect(setting.error == Self.message)
        #expect(setting.number == nil)
        let json = try #require(resolution.json["postgres"]?.arrayValue?.first?["settings"]?["hash_mem_multiplier"])
        #expect(json["error"]?.stringValue == Self.message && json["number"] == nil)

        let facts = ShmFactsReader.facts(server: server, host: fixture.host)
        #expect(
            facts.hashMemMultiplier
                == .failure(
                    InvalidSetting(name: "hash_mem_multiplier", text: text, source: source, reason: Self.message)))
        // The whole static diagnosis of the container: no trap, shm.size says why it cannot
        // estimate, memory.limit still runs.
        let observations = ContainerDiagnosis.staticObservations(resolution, host: fixture.host)
        let size = try #require(observations.first { $0.check == ShmSizeCheck.id })
        #expect(size.severity == .unavailable)
        let reason = try #require(size.evidence["reason"]?.stringValue)
        #expect(
            reason.contains("hash_mem_multiplier = '\(text)' (\(source)) is a value PostgreSQL refuses"), "\(reason)")
        #expect(reason.contains(Self.message), "\(reason)")
        let evidence = try #require(size.evidence["settings"]?["hash_mem_multiplier"])
        #expect(
            evidence == [
                "value": .null, "invalid_value": .string(text), "source": .string(source),
                "error": .string(Self.message),
            ])
        #expect(size.evidence["settings"]?["work_mem_bytes"]?["value"] == .int(8 << 20))
        #expect(size.evidence["dsm_estimate_bytes"] == nil)
        #expect(size.evidence["shm_size_bytes"]?.intValue != nil, "the mount was read: \(size.evidence)")
        #expect(observations.contains { $0.check == MemoryLimitCheck.id })
    }

    /// Unquoted, `1e300` is a syntax error in postgresql.conf (guc-file.l reads `1e` as an
    /// integer with a unit, then `300`), as it is for PostgreSQL; quoted, or as `1.0e300`, it is
    /// a value out of range.
    @Test("hash_mem_multiplier = '1e300' (and 1.0e300) in postgresql.conf", arguments: ["'1e300'", "1.0e300"])
    func inPostgresqlConf(_ written: String) throws {
        let config = "shared_buffers = 128MB\nhash_mem_multiplier = \(written)\n"
        let (fixture, resolution) = try Self.resolve(arguments: FixtureHostTests.pgArgs, config: config)
        try expectInvalidMultiplier(
            fixture, resolution, source: "/var/lib/postgresql/data/postgresql.conf:2",
            text: written.trimmingCharacters(in: ["'"]))
    }

    @Test("-c hash_mem_multiplier=1e300 on the command line of a process called postgres")
    func onTheCommandLine() throws {
        let (fixture, resolution) = try Self.resolve(
            arguments: FixtureHostTests.pgArgs + ["-c", "hash_mem_multiplier=1e300"], config: nil)
        try expectInvalidMultiplier(fixture, resolution, source: "command line")
    }

    @Test("shared_buffers PostgreSQL refuses: memory.limit lists it and does not use it")
    func sharedBuffers() throws {
        let (fixture, resolution) = try Self.resolve(
            arguments: FixtureHostTests.pgArgs + ["--shared-buffers=8TB"], config: nil)
        let facts = MemoryFactsReader.facts(resolution: resolution, host: fixture.host)
        #expect(facts.sharedBuffersBytes == nil)
        #expect(facts.invalidSettings.map(\.name) == ["shared_buffers"])
        #expect(
            facts.invalidSettings.first?.reason
                == "1073741824 8kB is outside the valid range for parameter \"shared_buffers\" (16 .. 1073741823)")
        let o = MemoryLimitCheck.evaluate(facts)
        #expect(o.evidence["invalid_settings"]?["shared_buffers"]?["invalid_value"] == "8TB")
        #expect(o.evidence["shared_buffers_bytes"] == .null)
    }
}
