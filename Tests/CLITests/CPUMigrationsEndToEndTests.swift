import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `cpu.migrations` end to end: a real PostgreSQL container in containerd whose backends run
/// CPU-bound queries from pgbench (8 clients: more runnable backends than this machine's CPUs,
/// so the scheduler moves them), observed by the real `pgnode check`.
@Suite("cpu.migrations end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct CPUMigrationsEndToEndTests {
    /// How long pgnode observes.
    static let window = 4
    /// pgbench's clients: backends that each want a CPU.
    static let clients = 8
    static let pgbench = "/usr/lib/postgresql/15/bin/pgbench"

    var canRun: Bool {
        Containers.available()
            && TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.pgbench), "pgbench")
    }

    /// Starts pgbench against `container` through its socket: `clients` sessions running a
    /// CPU-bound query over and over until stopped; returns once every session runs it (hang
    /// guard 60 s), so that the backends are known to the resolution before the window.
    func startLoad(_ container: PostgresContainer) throws -> (Subprocess, String) {
        let script = "/tmp/pgnode-migrations-load-\(UUID().uuidString.prefix(8)).sql"
        try "SELECT count(*) FROM generate_series(1, 2000000);\n".write(
            toFile: script, atomically: false, encoding: .utf8)
        let socket =
            (ProcessInfo.processInfo.environment["PGNODE_CONTAINERS_DIR"] ?? "/var/tmp/pgnode-containers")
            + "/\(container.name)/socket"
        let load = try Subprocess(
            [
                Self.pgbench, "-h", socket, "-U", "postgres", "-n", "-c", String(Self.clients), "-j", "2", "-T", "600",
                "-f", script, "postgres",
            ], stdout: .discard, stderr: .discard)
        let limit = Date().addingTimeInterval(60)
        let query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM generate_series%'"
        while Date() < limit && load.isRunning {
            let active = try Containers.psql(container, query).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if Int(active) ?? 0 >= Self.clients { break }
            usleep(100_000)
        }
        return (load, script)
    }

    @Test("pgnode check: backends busy on more CPUs than there are migrate, counted per role; one LLC: ok")
    func check() throws {
        guard canRun else { return }
        var options = PostgresContainerOptions()
        options.podName = "cpu-migrations-0"
        try Containers.withPostgres([("cpu-migrations", options)]) { containers in
            let busy = containers[0]
            let (load, script) = try startLoad(busy)
            defer {
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let result = try Command.pgnode([
                "check", "--container", busy.id, "--duration", String(Self.window), "--format", "json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(load.isRunning, "pgbench stopped during the window")
            let finding = try #require(
                result.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.first {
                    $0["check"] == "cpu.migrations" && $0["resource"]?["container.id"]?.stringValue == busy.id
                }, "\(result.stdout)")
            let evidence = finding["evidence"] ?? .null
            // What was observed, for the log (the assertions below do not depend on its value).
            print(
                "CPUMigrationsEndToEndTests: \(finding["severity"]?.stringValue ?? "?"), "
                    + "\(evidence["migrations"]?.intValue ?? -1) migrations")
            // This machine has one last-level cache and one NUMA node: moves, but none across.
            #expect(finding["severity"] == "ok", "\(finding)")
            let migrations = evidence["migrations"]?.intValue ?? 0
            #expect(migrations > 0, "\(evidence)")
            #expect(evidence["cross_llc"] == .int(0) && evidence["cross_numa"] == .int(0))
            #expect(evidence["within_llc"] == .int(migrations) && evidence["unknown_topology"] == .int(0))
            #expect(evidence["node_llcs"] == .int(1) && evidence["node_numa_nodes"] == .int(1))
            let roles = evidence["per_role"]?.arrayValue ?? []
            let backends = try #require(roles.first { $0["role"] == "client backend" }, "\(roles)")
            #expect((backends["migrations"]?.intValue ?? 0) > 0 && (backends["processes"]?.intValue ?? 0) > 0)
            #expect(roles.reduce(0) { $0 + ($1["migrations"]?.intValue ?? 0) } == migrations)
            // An unlimited container gets the whole node's CPUs in its v1 cpuset.
            let online = try String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(evidence["cpuset"]?["cpus"]?.stringValue == online, "\(evidence["cpuset"] ?? .null)")
            // Nothing to do about moves within one cache: no remedy.
            #expect(finding["remedy"] == "", "\(finding)")
        }
    }
}
