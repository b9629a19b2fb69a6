import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `cpu.throttling` end to end: a real PostgreSQL container in containerd with a CFS quota of
/// half a CPU (`ctr run --cpu-quota 50000 --cpu-period 100000`) kept busy by pgbench with 8
/// clients whose every transaction is CPU-bound in its backend, and an idle one without a limit,
/// both observed by the real `pgnode check` (and `pgnode agent`).
@Suite("cpu.throttling end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct CPUThrottlingEndToEndTests {
    /// How long pgnode observes.
    static let window = 6
    /// The quota: half a CPU in the kubelet's period.
    static let quota: Int64 = 50000
    static let period: Int64 = 100_000
    /// `CPUThrottlingCheck.warningThrottledRatio` (docs/findings.md): above it, a warning.
    static let warningRatio = 0.25
    /// pgbench's clients: backends that each want a CPU, 16 times the quota.
    static let clients = 8
    static let pgbench = "/usr/lib/postgresql/15/bin/pgbench"

    var canRun: Bool {
        Containers.available()
            && TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.pgbench), "pgbench")
    }

    /// The containers: one limited to half a CPU, one unlimited.
    func options() -> [(String, PostgresContainerOptions)] {
        var limited = PostgresContainerOptions()
        limited.cpuLimit = (Self.quota, Self.period)
        limited.podName = "cpu-limited-0"
        var idle = PostgresContainerOptions()
        idle.podName = "cpu-idle-0"
        return [("cpu-limited", limited), ("cpu-idle", idle)]
    }

    /// Starts pgbench against `container` through its socket: `clients` sessions, each running
    /// a CPU-bound query (no table, no I/O) over and over, until stopped; returns once every
    /// session is connected and running it (hang guard 60 s).
    func startLoad(_ container: PostgresContainer) throws -> (Subprocess, String) {
        let script = "/tmp/pgnode-cpu-load-\(UUID().uuidString.prefix(8)).sql"
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
            let active = try Containers.psql(container, query).stdout.trimmingWhitespaceForTest()
            if Int(active) ?? 0 >= Self.clients { break }
            usleep(100_000)
        }
        return (load, script)
    }

    /// The limited container's `cpu.throttling`: warning or worse, more than a quarter of its
    /// periods throttled, the quota as set.
    func expectThrottled(_ finding: JSONValue, _ label: String) {
        let severity = finding["severity"]?.stringValue ?? ""
        // What was observed, for the log (the assertions below bound it; its value varies).
        print(
            "CPUThrottlingEndToEndTests [\(label)]: \(severity), throttled_periods_ratio "
                + "\(number(finding["evidence"]?["throttled_periods_ratio"]).map { "\($0)" } ?? "null"), "
                + "\(finding["evidence"]?["throttled_periods"]?.intValue ?? -1) of "
                + "\(finding["evidence"]?["periods"]?.intValue ?? -1) periods")
        #expect(["warning", "critical"].contains(severity), "\(finding)")
        let evidence = finding["evidence"] ?? .null
        #expect(number(evidence["quota_cores"]) == 0.5, "\(evidence)")
        #expect(evidence["period_us"] == .int(Self.period))
        #expect(evidence["cgroup_version"] == .int(1))
        #expect(evidence["qos_class"] == "burstable")
        let periods = evidence["periods"]?.intValue ?? 0
        let throttled = evidence["throttled_periods"]?.intValue ?? 0
        #expect(periods > 0 && throttled > 0 && throttled <= periods, "\(evidence)")
        #expect((number(evidence["throttled_periods_ratio"]) ?? 0) > Self.warningRatio, "\(evidence)")
        #expect((evidence["throttled_ns"]?.intValue ?? 0) > 0)
        #expect((evidence["usage_ns"]?.intValue ?? 0) > 0)
        #expect(evidence["counters_reset"] == nil)
        // PostgreSQL 15's defaults: a parallel query may run 3 processes, more than half a CPU.
        #expect(evidence["settings"]?["max_parallel_workers_per_gather"]?["value"] == .int(2))
        #expect(evidence["parallel_query_processes"] == .int(3))
        #expect(finding["remedy"]?.stringValue?.contains("cpu.cfs_burst_us") == true)
    }

    /// The idle container without a limit: ok, no quota, nothing throttled.
    func expectUnlimited(_ finding: JSONValue) {
        #expect(finding["severity"] == "ok", "\(finding)")
        let evidence = finding["evidence"] ?? .null
        #expect(evidence["quota_cores"] == .null, "\(evidence)")
        #expect(evidence["period_us"] == .int(Self.period))
        #expect(evidence["throttled_periods"] == .int(0), "\(evidence)")
    }

    @Test(
        "pgnode check: half a CPU under 8 CPU-bound pgbench clients is throttled (warning or worse); idle unlimited ok")
    func check() throws {
        guard canRun else { return }
        try Containers.withPostgres(options()) { containers in
            let (limited, idle) = (containers[0], containers[1])
            let (load, script) = try startLoad(limited)
            defer {
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let result = try Command.pgnode([
                "check", "--container", limited.id, "--container", idle.id, "--duration", String(Self.window),
                "--format", "json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(load.isRunning, "pgbench stopped during the window")
            let found = try cpuFindings(result.stdout)
            expectThrottled(try #require(found[limited.id], "\(found.keys)"), "check")
            expectUnlimited(try #require(found[idle.id], "\(found.keys)"))

            // The text output says the same.
            let text = try Command.pgnode([
                "check", "--container", limited.id, "--duration", "2", "--format", "text",
            ])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(
                text.stdout.contains("cpu.throttling: Throttled in ")
                    && text.stdout.contains("under a quota of 0.50 CPUs"), "\(text.stdout)")
        }
    }

    @Test("pgnode agent: the same windows, one after the other, throttled while the load runs")
    func agent() throws {
        guard canRun else { return }
        try Containers.withPostgres(options()) { containers in
            let (limited, idle) = (containers[0], containers[1])
            let (load, script) = try startLoad(limited)
            defer {
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let directory = try Fixtures.temporaryDirectory("pgnode-cpu-agent")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // --emit all: the test counts windows, and the default (changes) emits the idle
            // container's unchanged `ok` once per heartbeat.
            let agent = try AgentProcess(
                ["--interval", "3", "--emit", "all", "--node-name", "cpu-node"], directory: directory)
            defer { _ = agent.stop(SIGKILL) }
            // Two windows of findings for both containers (hang guard 120 s): the second starts
            // where the first ended.
            func windows(_ id: String) -> [JSONValue] {
                agent.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.filter {
                    $0["check"] == "cpu.throttling" && $0["resource"]?["container.id"]?.stringValue == id
                }
            }
            let limit = Date().addingTimeInterval(120)
            while (windows(limited.id).count < 2 || windows(idle.id).count < 2) && agent.process.isRunning
                && Date() < limit
            {
                usleep(200_000)
            }
            #expect(agent.stop(SIGTERM) == 0, "\(agent.stderr)")
            #expect(load.isRunning, "pgbench stopped during the windows")
            let throttled = windows(limited.id)
            let unlimited = windows(idle.id)
            try #require(throttled.count >= 2 && unlimited.count >= 2, "\(agent.stderr)")
            for finding in throttled.prefix(2) { expectThrottled(finding, "agent") }
            for finding in unlimited.prefix(2) { expectUnlimited(finding) }
        }
    }
}

/// Each container's `cpu.throttling` finding in NDJSON `stdout`, by container id.
private func cpuFindings(_ stdout: String) throws -> [String: JSONValue] {
    var result: [String: JSONValue] = [:]
    for line in stdout.split(separator: "\n") where !line.isEmpty {
        let value = try JSONParser.parse(String(line))
        guard value["check"] == "cpu.throttling", let id = value["resource"]?["container.id"]?.stringValue else {
            continue
        }
        result[id] = value
    }
    return result
}

/// A JSON number as a double (a whole one may parse as an integer).
private func number(_ value: JSONValue?) -> Double? {
    switch value {
    case .double(let d)?: d
    case .int(let i)?: Double(i)
    default: nil
    }
}
