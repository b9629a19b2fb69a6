import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `query.latency` end to end: real PostgreSQL containers in containerd, `pgnode agent
/// --query-latency` following them, pgbench and psql as the clients.
///
/// Statements are counted in the window they end in and the windows' counters are differences
/// of cumulative kernel counters, so the sum over every window of a container is every statement
/// that ran after the probe was attached: the first window's finding proves the attachment, and
/// the workloads start after it with a fixed number of transactions.
@Suite("query.latency end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct QueryLatencyEndToEndTests {
    static let pgbench = "/usr/lib/postgresql/15/bin/pgbench"
    /// The quota of the acceptance: 0.4 CPU in the kubelet's period.
    static let quota: Int64 = 40000
    static let period: Int64 = 100_000
    /// pgbench's select-only clients on the limited container, transactions each.
    static let clients = 8
    static let transactions = 1500
    /// pgbench sends a few statements of its own with the simple protocol (the scale lookup,
    /// `select count(*) from pgbench_branches`, once per run): at most this many per run.
    static let pgbenchOwnStatements = 5
    /// The names of `time_share`.
    static let states = ["on_cpu", "cpu_wait", "io_wait", "lock_wait", "other"]

    var canRun: Bool {
        Containers.available()
            && TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.pgbench), "pgbench")
    }

    static func socket(_ container: PostgresContainer) -> String {
        (ProcessInfo.processInfo.environment["PGNODE_CONTAINERS_DIR"] ?? "/var/tmp/pgnode-containers")
            + "/\(container.name)/socket"
    }

    /// Runs pgbench against `container` to its end.
    static func pgbench(_ container: PostgresContainer, _ arguments: [String]) throws -> CommandResult {
        let result = try Command.run(
            [Self.pgbench, "-h", socket(container), "-U", "postgres"] + arguments + ["postgres"])
        try #require(result.status == 0, "pgbench \(arguments): \(result.stderr)")
        return result
    }

    /// The `query.latency` findings of pod `pod` on the agent's stdout, in order.
    static func findings(_ stdout: String, pod: String) -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { line in
            guard let finding = try? JSONParser.parse(String(line)), finding["check"] == "query.latency",
                finding["resource"]?["k8s.pod.name"]?.stringValue == pod
            else { return nil }
            return finding
        }
    }

    static func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(200_000)
        }
        return condition()
    }

    static func sum(_ findings: [JSONValue], _ protocolName: String) -> Int64 {
        findings.compactMap { $0["evidence"]?["by_protocol"]?[protocolName]?.intValue }.reduce(0, +)
    }

    /// Starts the agent on `namespace` with `extra` flags; returns once both pods have a first
    /// window's `query.latency` (the probe is attached).
    static func startAgent(namespace: String, pods: [String], extra: [String] = [], directory: String) throws
        -> AgentProcess
    {
        let agent = try AgentProcess(
            [
                "--interval", "2", "--emit", "all", "--query-latency", "--namespace", namespace, "--node-name",
                "query-node",
            ]
                + extra, directory: directory)
        let ready = waitUntil(timeout: 60) { pods.allSatisfy { !findings(agent.stdout, pod: $0).isEmpty } }
        try #require(ready, "no query.latency for \(pods): \(agent.stderr.suffix(2000))")
        return agent
    }

    @Test(
        "0.4 CPU under pgbench -S -M extended -c 8: every statement counted, the CPU wait named cpu.throttling; -M simple counted; an unlimited server with one client: no throttling"
    )
    func throttledAndAlone() throws {
        guard TestEnvironment.requireRoot(), canRun else { return }
        let namespace = "pgnode-query-\(UUID().uuidString.prefix(6).lowercased())"
        var limitedOptions = PostgresContainerOptions()
        limitedOptions.namespace = namespace
        limitedOptions.podName = "query-limited-0"
        limitedOptions.cpuLimit = (Self.quota, Self.period)
        var aloneOptions = PostgresContainerOptions()
        aloneOptions.namespace = namespace
        aloneOptions.podName = "query-alone-0"
        let limited = try Containers.start("query-limited", options: limitedOptions)
        defer { Containers.remove(limited.name) }
        let alone = try Containers.start("query-alone", options: aloneOptions)
        defer { Containers.remove(alone.name) }
        for container in [limited, alone] {
            try Containers.waitUntilReady(container)
            _ = try Self.pgbench(container, ["-i", "-q", "-s", "1"])
        }

        let directory = try Fixtures.temporaryDirectory("pgnode-query-latency")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try Self.startAgent(
            namespace: namespace, pods: [limitedOptions.podName, aloneOptions.podName], directory: directory)
        defer { _ = agent.stop(SIGKILL) }

        // The workloads, one after the other, each a fixed number of statements.
        _ = try Self.pgbench(
            limited, ["-n", "-S", "-M", "extended", "-c", "\(Self.clients)", "-j", "2", "-t", "\(Self.transactions)"])
        _ = try Self.pgbench(limited, ["-n", "-S", "-M", "simple", "-c", "2", "-t", "1000"])
        _ = try Self.pgbench(alone, ["-n", "-S", "-M", "extended", "-c", "1", "-t", "2000"])
        // Two more windows for each pod: the last statements' window has ended.
        let seen = [limitedOptions.podName, aloneOptions.podName].map { Self.findings(agent.stdout, pod: $0).count }
        #expect(
            Self.waitUntil(timeout: 30) {
                zip([limitedOptions.podName, aloneOptions.podName], seen).allSatisfy {
                    Self.findings(agent.stdout, pod: $0).count >= $1 + 2
                }
            }, "the agent stopped reporting: \(agent.stderr.suffix(2000))")
        #expect(agent.stop(SIGTERM) == 0)

        let limitedFindings = Self.findings(agent.stdout, pod: limitedOptions.podName)
        // Every Execute of the extended run, exactly; the simple run's statements and pgbench's own.
        #expect(Self.sum(limitedFindings, "extended") == Int64(Self.clients * Self.transactions))
        let simple = Self.sum(limitedFindings, "simple")
        #expect(simple >= 2000 && simple <= 2000 + 2 * Int64(Self.pgbenchOwnStatements), "simple: \(simple)")
        #expect(limitedFindings.allSatisfy { $0["evidence"]?["untracked"] == .int(0) })

        // The window that holds most of the extended run: the CPU wait is the quota's.
        let busiest = try #require(
            limitedFindings.max {
                ($0["evidence"]?["by_protocol"]?["extended"]?.intValue ?? 0)
                    < ($1["evidence"]?["by_protocol"]?["extended"]?.intValue ?? 0)
            })
        let evidence = busiest["evidence"] ?? .null
        print(
            "QueryLatencyEndToEndTests [limited]: \(evidence["queries"]?.intValue ?? -1) statements, time_share "
                + "\(evidence["time_share"].map { "\($0)" } ?? "?"), p99 \(evidence["p99_us"]?.intValue ?? -1) µs")
        #expect(busiest["severity"] == "warning", "\(busiest)")
        #expect(evidence["explained_by"] == "cpu.throttling", "\(evidence)")
        #expect((evidence["cpu_wait_throttled_ns"]?.intValue ?? 0) > 0)
        #expect((busiest["summary"]?.stringValue ?? "").contains("cpu.throttling"))
        let shareSum = Self.states.compactMap { evidence["time_share"]?[$0]?.doubleValue }.reduce(0, +)
        #expect(abs(shareSum - 1) < 1e-9, "\(evidence["time_share"] ?? .null)")

        let aloneFindings = Self.findings(agent.stdout, pod: aloneOptions.podName)
        #expect(Self.sum(aloneFindings, "extended") == 2000)
        // No quota: no CPU wait began throttled, and no window names cpu.throttling.
        #expect(aloneFindings.allSatisfy { $0["evidence"]?["cpu_wait_throttled_ns"] == .int(0) })
        #expect(aloneFindings.allSatisfy { $0["evidence"]?["explained_by"] != "cpu.throttling" })
        let aloneBusiest = try #require(
            aloneFindings.max {
                ($0["evidence"]?["queries"]?.intValue ?? 0) < ($1["evidence"]?["queries"]?.intValue ?? 0)
            })
        print(
            "QueryLatencyEndToEndTests [alone]: \(aloneBusiest["severity"] ?? .null), time_share "
                + "\(aloneBusiest["evidence"]?["time_share"].map { "\($0)" } ?? "?")")
        #expect(aloneBusiest["severity"] == "info", "\(aloneBusiest)")

        let validation = try Command.run(
            ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: agent.stdout)
        #expect(validation.status == 0, "\(validation.stderr)")
    }

    @Test(
        "a SELECT … FOR UPDATE waiting on another session's row lock: lock_wait dominates it in slowest, its text shown"
    )
    func rowLock() throws {
        guard TestEnvironment.requireRoot(), canRun else { return }
        let namespace = "pgnode-query-\(UUID().uuidString.prefix(6).lowercased())"
        var options = PostgresContainerOptions()
        options.namespace = namespace
        options.podName = "query-lock-0"
        let container = try Containers.start("query-lock", options: options)
        defer { Containers.remove(container.name) }
        try Containers.waitUntilReady(container)
        let setup = try Containers.psql(container, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        try #require(setup.status == 0, "\(setup.stderr)")

        let directory = try Fixtures.temporaryDirectory("pgnode-query-lock")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try Self.startAgent(
            namespace: namespace, pods: [options.podName], extra: ["--query-text"], directory: directory)
        defer { _ = agent.stop(SIGKILL) }

        // Session A takes the row lock and holds it until session B waits for it (seen in
        // pg_stat_activity), then half a second more; B's statement waits all that time.
        let marker = "pgnode-lock-test"
        let holder = try Subprocess(
            [
                TestEnvironment.scriptPath("containers"), "psql", container.name, "-At",
                "-c", "BEGIN",
                "-c", "SELECT id FROM t WHERE id = 1 FOR UPDATE",
                "-c",
                "DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    + "AND query LIKE 'SELECT id FROM t%\(marker)%') LOOP PERFORM pg_sleep(0.05); "
                    + "PERFORM pg_stat_clear_snapshot(); END LOOP; PERFORM pg_sleep(0.5); END $$",
                "-c", "COMMIT",
            ], stdout: .discard, stderr: .discard)
        defer { holder.stop() }
        #expect(
            Self.waitUntil(timeout: 30) {
                (try? Containers.psql(
                    container,
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 't' "
                        + "AND l.granted AND l.mode = 'RowShareLock'"))?.stdout.trimmingWhitespaceForTest() == "1"
            }, "session A never took the lock")
        let waiter = try Containers.psql(container, "SELECT id FROM t WHERE id = 1 FOR UPDATE /* \(marker) */")
        #expect(waiter.status == 0, "\(waiter.stderr)")
        #expect(holder.wait(timeout: 60).status == 0)
        let seen = Self.findings(agent.stdout, pod: options.podName).count
        #expect(
            Self.waitUntil(timeout: 30) { Self.findings(agent.stdout, pod: options.podName).count >= seen + 2 },
            "the agent stopped reporting: \(agent.stderr.suffix(2000))")
        #expect(agent.stop(SIGTERM) == 0)

        let statements = Self.findings(agent.stdout, pod: options.podName).flatMap {
            $0["evidence"]?["slowest"]?.arrayValue ?? []
        }
        let waited = try #require(
            statements.first {
                let text = $0["text"]?.stringValue ?? ""
                return text.hasPrefix("SELECT id FROM t WHERE id = 1 FOR UPDATE") && text.contains(marker)
            }, "B's statement is not among the slowest: \(statements)")
        print("QueryLatencyEndToEndTests [lock]: \(waited)")
        let shares = try #require(waited["time_share"]?.objectValue)
        let lockWait = shares["lock_wait"]?.doubleValue ?? 0
        for (name, value) in shares.members where name != "lock_wait" {
            #expect(lockWait > (value.doubleValue ?? 1), "\(name) \(value) ≥ lock_wait \(lockWait)")
        }
        #expect(waited["protocol"] == "simple")
        #expect(waited["role"] == "client backend")
        #expect(waited["text_sha256"] == nil)
    }

    @Test("a scan of a table 2.4 times the memory limit: the memory cgroup's reclaim inside it is counted for it")
    func reclaimInside() throws {
        guard TestEnvironment.requireRoot(), canRun else { return }
        let namespace = "pgnode-query-\(UUID().uuidString.prefix(6).lowercased())"
        var options = PostgresContainerOptions()
        options.namespace = namespace
        options.podName = "query-reclaim-0"
        options.memoryLimit = 256 << 20
        options.postgresArguments = ["-c", "shared_buffers=32MB"]
        let container = try Containers.start("query-reclaim", options: options)
        defer { Containers.remove(container.name) }
        try Containers.waitUntilReady(container)
        // Unlogged (no WAL); written before the agent starts, so its reclaim is not in any window.
        let setup = try Command.run([
            TestEnvironment.scriptPath("containers"), "psql", container.name, "-At", "-v", "ON_ERROR_STOP=1", "-c",
            "CREATE UNLOGGED TABLE big AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 1200000) g",
        ])
        try #require(setup.status == 0, "\(setup.stderr)")

        let directory = try Fixtures.temporaryDirectory("pgnode-query-reclaim")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try Self.startAgent(
            namespace: namespace, pods: [options.podName], extra: ["--query-text"], directory: directory)
        defer { _ = agent.stop(SIGKILL) }
        let scan = try Command.run([
            TestEnvironment.scriptPath("containers"), "psql", container.name, "-At", "-c",
            "SET max_parallel_workers_per_gather = 0", "-c", "SELECT count(*) FROM big /* pgnode-reclaim-test */",
        ])
        #expect(scan.stdout.contains("1200000"), "\(scan.stdout) \(scan.stderr)")
        let seen = Self.findings(agent.stdout, pod: options.podName).count
        #expect(
            Self.waitUntil(timeout: 30) { Self.findings(agent.stdout, pod: options.podName).count >= seen + 2 },
            "the agent stopped reporting: \(agent.stderr.suffix(2000))")
        #expect(agent.stop(SIGTERM) == 0)

        let findings = Self.findings(agent.stdout, pod: options.podName)
        let statements = findings.flatMap { $0["evidence"]?["slowest"]?.arrayValue ?? [] }
        let scanned = try #require(
            statements.first { ($0["text"]?.stringValue ?? "").hasPrefix("SELECT count(*) FROM big") },
            "the scan is not among the slowest: \(statements)")
        print("QueryLatencyEndToEndTests [reclaim]: \(scanned)")
        // The memory cgroup reclaimed inside the statement, in the backend that ran it.
        #expect((scanned["reclaim_ns"]?.intValue ?? 0) > 0, "\(scanned)")
        #expect(findings.contains { ($0["evidence"]?["reclaim_ns"]?.intValue ?? 0) > 0 })
        #expect(scanned["role"] == "client backend")
    }
}
