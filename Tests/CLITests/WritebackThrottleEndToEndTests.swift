import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `writeback.throttle` end to end: a PostgreSQL container whose tablespace is an ext4 file
/// system on a loop device with `strict_limit=1` and a 1 MiB `max_bytes` (`ThrottledLoopFileSystem`),
/// observed by `pgnode check --container` while a client backend runs `CREATE TABLE … AS` into it.
@Suite("writeback.throttle end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct WritebackThrottleEndToEndTests {
    /// How long pgnode observes; the load runs longer than that (it is stopped at the end).
    static let window = 8

    var canRun: Bool {
        guard
            TestEnvironment.require(
                TestEnvironment.isRoot && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"),
                "root and kernel BTF")
        else { return false }
        return Containers.available()
    }

    /// A server with the tablespace `slow` on `fs`.
    func start(_ fs: ThrottledLoopFileSystem) throws -> PostgresContainer {
        let location = try fs.directory("pg", owner: "postgres")
        var options = PostgresContainerOptions()
        options.podName = "wb-db-0"
        options.mounts = ["type=bind,src=\(location),dst=/tblspc,options=rbind:rw"]
        let container = try Containers.start("wb", options: options)
        let made = try Containers.psql(container, "CREATE TABLESPACE slow LOCATION '/tblspc'")
        guard made.status == 0 else {
            Containers.remove(container.name)
            throw EndToEndError("CREATE TABLESPACE: \(made.stderr)")
        }
        return container
    }

    /// Runs `pgnode check` on `container` and returns its `writeback.throttle` finding.
    func observe(_ container: PostgresContainer) throws -> JSONValue {
        let result = try Command.pgnode([
            "check", "--container", container.id, "--duration", String(Self.window), "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        for line in result.stdout.split(separator: "\n") {
            let finding = try JSONParser.parse(String(line))
            if finding["check"] == "writeback.throttle" { return finding }
        }
        throw EndToEndError("no writeback.throttle finding in: \(result.stdout)\n\(result.stderr)")
    }

    @Test("CREATE TABLE … AS into the throttled tablespace: the client backend paused, the device named")
    func createTableAs() throws {
        guard canRun else { return }
        let fs = try ThrottledLoopFileSystem()
        defer { fs.close() }
        let container = try start(fs)
        defer { Containers.remove(container.name) }
        // One client backend writes tables of ~90 MiB into the tablespace, one after another,
        // for longer than the window.
        let statements = (0..<20).map {
            "CREATE TABLE t\($0) TABLESPACE slow AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 400000) g; "
                + "DROP TABLE t\($0);"
        }
        let load = try Subprocess([Containers.script, "psql", container.name, "-At", "-c", statements.joined()])
        defer { load.stop() }
        let backendPID = try waitForBackend(container)
        let finding = try observe(container)
        let evidence = try #require(finding["evidence"])
        let severity = finding["severity"]?.stringValue
        #expect(severity == "warning" || severity == "critical", "\(finding)")
        #expect((evidence["pauses"]?.intValue ?? 0) > 0, "\(evidence)")
        let byPID = evidence["by_pid"]?.arrayValue ?? []
        let backend = try #require(
            byPID.first { $0["role"] == "client backend" }, "no client backend among \(byPID)")
        #expect(backend["container_pid"]?.intValue == backendPID, "\(byPID)")
        #expect((backend["pauses"]?.intValue ?? 0) > 0)
        let device = try #require(evidence["devices"]?.arrayValue?.first { $0["bdi"]?.stringValue == fs.bdi })
        #expect(device["name"]?.stringValue == fs.blockDevice, "\(device)")
        #expect(device["strict_limit"] == .int(1), "\(device)")
        // cgroup v1 (this machine): no cgroup writeback, the root memory cgroup's (inode 1).
        #expect(device["at_max_pause"]?["wb_cgroup_ino"] == .int(1), "\(device)")
        // The kernel keeps max_bytes as a ratio of the node's dirty limit and recomputes the bytes
        // as dirtyable memory changes: about the 1 MiB set, not exactly.
        #expect((1...(4 << 20)).contains(device["max_bytes"]?.intValue ?? 0), "\(device)")
        #expect(finding["summary"]?.stringValue?.contains(fs.blockDevice) == true, "\(finding)")
        #expect(finding["remedy"]?.stringValue?.contains("backend_flush_after") == true, "\(finding)")
        #expect(evidence["settings"]?["backend_flush_after"]?["value"] == .int(0), "\(evidence)")
        #expect(evidence["vm"]?["vm.dirty_ratio"]?.intValue != nil, "\(evidence)")
    }

    @Test("the same server idle: ok")
    func idle() throws {
        guard canRun else { return }
        let fs = try ThrottledLoopFileSystem()
        defer { fs.close() }
        let container = try start(fs)
        defer { Containers.remove(container.name) }
        let finding = try observe(container)
        #expect(finding["severity"] == "ok", "\(finding)")
        #expect(finding["evidence"]?["pauses"] == .int(0))
    }

    /// The container pid of the backend running the load, once it runs (by `pg_stat_activity`).
    func waitForBackend(_ container: PostgresContainer) throws -> Int64 {
        for _ in 0..<100 {
            let r = try Containers.psql(
                container, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE TABLE t0 %' LIMIT 1")
            if let pid = Int64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) { return pid }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw EndToEndError("the load did not start")
    }
}

private struct EndToEndError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
