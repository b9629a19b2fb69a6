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
    static let transactions = 3000
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
    static func findings(_ stdout: String, pod: String, check: String = "query.latency") -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { line in
            guard let finding = try? JSONParser.parse(String(line)), finding["check"]?.stringValue == check,
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

    /// A namespace of this test's own (the agent follows only it).
    static func namespace() -> String { "pgnode-query-\(UUID().uuidString.prefix(6).lowercased())" }

    /// A container of pod `pod` in `namespace`.
    static func options(pod: String, namespace: String) -> PostgresContainerOptions {
        var options = PostgresContainerOptions()
        options.namespace = namespace
        options.podName = pod
        return options
    }

    /// `pgnode agent --query-latency` on one namespace, windows of 2 s, every finding emitted.
    struct QueryAgent {
        let agent: AgentProcess
        let directory: String
        let pods: [String]

        /// Starts it with `extra` flags; returns once every pod of `pods` has a first window's
        /// `query.latency` (the probe is attached).
        init(namespace: String, pods: [String], extra: [String] = []) throws {
            directory = try Fixtures.temporaryDirectory("pgnode-query-latency")
            self.pods = pods
            agent = try AgentProcess(
                [
                    "--interval", "2", "--emit", "all", "--query-latency", "--namespace", namespace, "--node-name",
                    "query-node",
                ] + extra, directory: directory)
            let agent = agent
            let ready = QueryLatencyEndToEndTests.waitUntil(timeout: 60) {
                pods.allSatisfy { !QueryLatencyEndToEndTests.findings(agent.stdout, pod: $0).isEmpty }
            }
            guard ready else {
                let stderr = agent.stderr.suffix(2000)
                _ = agent.stop(SIGKILL)
                try? FileManager.default.removeItem(atPath: directory)
                Issue.record("no query.latency for \(pods): \(stderr)")
                throw CancellationError()
            }
        }

        func findings(_ pod: String) -> [JSONValue] { QueryLatencyEndToEndTests.findings(agent.stdout, pod: pod) }

        /// Waits for two more windows of every pod (the last statements' window has ended), then
        /// stops the agent with SIGTERM; its exit status.
        func finish() -> Int32? {
            let seen = pods.map { findings($0).count }
            let more = QueryLatencyEndToEndTests.waitUntil(timeout: 30) {
                zip(pods, seen).allSatisfy { findings($0).count >= $1 + 2 }
            }
            #expect(more, "the agent stopped reporting: \(agent.stderr.suffix(2000))")
            return agent.stop(SIGTERM)
        }

        /// Kills it (if still running) and removes its directory.
        func remove() {
            _ = agent.stop(SIGKILL)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test(
        "0.4 CPU under pgbench -S -M extended -c 8: every statement counted, the CPU wait named cpu.throttling; -M simple counted; an unlimited server with one client: no throttling"
    )
    func throttledAndAlone() throws {
        guard TestEnvironment.requireRoot(), canRun else { return }
        let namespace = Self.namespace()
        var limitedOptions = Self.options(pod: "query-limited-0", namespace: namespace)
        limitedOptions.cpuLimit = (Self.quota, Self.period)
        let aloneOptions = Self.options(pod: "query-alone-0", namespace: namespace)
        let limited = try Containers.start("query-limited", options: limitedOptions)
        defer { Containers.remove(limited.name) }
        let alone = try Containers.start("query-alone", options: aloneOptions)
        defer { Containers.remove(alone.name) }
        for container in [limited, alone] {
            try Containers.waitUntilReady(container)
            _ = try Self.pgbench(container, ["-i", "-q", "-s", "1"])
        }

        let observer = try QueryAgent(namespace: namespace, pods: [limitedOptions.podName, aloneOptions.podName])
        defer { observer.remove() }
        // The workloads, one after the other, each a fixed number of statements.
        _ = try Self.pgbench(
            limited, ["-n", "-S", "-M", "extended", "-c", "\(Self.clients)", "-j", "2", "-t", "\(Self.transactions)"])
        _ = try Self.pgbench(limited, ["-n", "-S", "-M", "simple", "-c", "2", "-t", "1000"])
        _ = try Self.pgbench(alone, ["-n", "-S", "-M", "extended", "-c", "1", "-t", "2000"])
        #expect(observer.finish() == 0)

        let limitedFindings = observer.findings(limitedOptions.podName)
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
        let throttling = Self.findings(observer.agent.stdout, pod: limitedOptions.podName, check: "cpu.throttling")
            .first { $0["time"] == busiest["time"] }
        print("QueryLatencyEndToEndTests [limited]: cpu.throttling of that window: \(throttling?["summary"] ?? .null)")
        #expect(evidence["explained_by"] == "cpu.throttling", "\(evidence)")
        // Over the whole run (every window with its statements): more than 30 % of statement
        // time waited for a CPU, and a window says so as a warning naming cpu.throttling.
        let withRun = limitedFindings.filter { ($0["evidence"]?["by_protocol"]?["extended"]?.intValue ?? 0) > 0 }
        let statementTime = withRun.map { Double($0["evidence"]?["statement_ns"]?.intValue ?? 0) }.reduce(0, +)
        let cpuWaitTime = withRun.map {
            Double($0["evidence"]?["statement_ns"]?.intValue ?? 0)
                * ($0["evidence"]?["time_share"]?["cpu_wait"]?.doubleValue ?? 0)
        }.reduce(0, +)
        let cpuWaitShare = statementTime > 0 ? cpuWaitTime / statementTime : 0
        print("QueryLatencyEndToEndTests [limited]: cpu_wait over the run \(cpuWaitShare) in \(withRun.count) windows")
        #expect(cpuWaitShare > 0.3)
        #expect(
            withRun.contains { $0["severity"] == "warning" && $0["evidence"]?["explained_by"] == "cpu.throttling" },
            "\(withRun.map { $0["summary"] ?? .null })")
        // What named it: the container's own quota throttled it in at least half of the window's
        // CFS periods (cpu.throttling's counters over the same window). The per-wait attribution
        // (`cpu_wait_throttled_ns`) is a lower bound that 6.18's per-task throttling can leave at 0.
        let periods = evidence["quota_periods"]?.intValue ?? 0
        let throttledPeriods = evidence["quota_throttled_periods"]?.intValue ?? 0
        #expect(periods > 0 && throttledPeriods * 2 >= periods, "\(evidence)")
        print(
            "QueryLatencyEndToEndTests [limited]: \(throttledPeriods) of \(periods) periods throttled; "
                + "cpu_wait_throttled_ns \(evidence["cpu_wait_throttled_ns"]?.intValue ?? -1)")
        let shareSum = Self.states.compactMap { evidence["time_share"]?[$0]?.doubleValue }.reduce(0, +)
        #expect(abs(shareSum - 1) < 1e-9, "\(evidence["time_share"] ?? .null)")

        let aloneFindings = observer.findings(aloneOptions.podName)
        #expect(Self.sum(aloneFindings, "extended") == 2000)
        // No quota: no CPU wait began throttled, and no window names cpu.throttling.
        #expect(aloneFindings.allSatisfy { $0["evidence"]?["cpu_wait_throttled_ns"] == .int(0) })
        #expect(aloneFindings.allSatisfy { $0["evidence"]?["quota_periods"] == .null })
        #expect(aloneFindings.allSatisfy { $0["evidence"]?["explained_by"] != "cpu.throttling" })
        let aloneBusiest = try #require(
            aloneFindings.max {
                ($0["evidence"]?["queries"]?.intValue ?? 0) < ($1["evidence"]?["queries"]?.intValue ?? 0)
            })
        print(
            "QueryLatencyEndToEndTests [alone]: \(aloneBusiest["severity"] ?? .null), time_share "
                + "\(aloneBusiest["evidence"]?["time_share"].map { "\($0)" } ?? "?")")
        #expect(aloneBusiest["severity"] == "info", "\(aloneBusiest)")
        // The issue's "cpu_wait near zero" for the unlimited server with one client: a tenth at
        // most (a third is the warning's line; seen here: 0 to 0.008).
        #expect((aloneBusiest["evidence"]?["time_share"]?["cpu_wait"]?.doubleValue ?? 1) < 0.1, "\(aloneBusiest)")

        let validation = try Command.run(
            ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: observer.agent.stdout)
        #expect(validation.status == 0, "\(validation.stderr)")
    }

    @Test(
        "a SELECT … FOR UPDATE waiting on another session's row lock: lock_wait dominates it in slowest, its text shown"
    )
    func rowLock() throws {
        guard TestEnvironment.requireRoot(), canRun else { return }
        let options = Self.options(pod: "query-lock-0", namespace: Self.namespace())
        let container = try Containers.start("query-lock", options: options)
        defer { Containers.remove(container.name) }
        try Containers.waitUntilReady(container)
        let setup = try Containers.psql(container, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        try #require(setup.status == 0, "\(setup.stderr)")
        let observer = try QueryAgent(namespace: options.namespace, pods: [options.podName], extra: ["--query-text"])
        defer { observer.remove() }

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
        #expect(observer.finish() == 0)

        let statements = observer.findings(options.podName).flatMap { $0["evidence"]?["slowest"]?.arrayValue ?? [] }
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
        var options = Self.options(pod: "query-reclaim-0", namespace: Self.namespace())
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

        let observer = try QueryAgent(namespace: options.namespace, pods: [options.podName], extra: ["--query-text"])
        defer { observer.remove() }
        let scan = try Command.run([
            TestEnvironment.scriptPath("containers"), "psql", container.name, "-At", "-c",
            "SET max_parallel_workers_per_gather = 0", "-c", "SELECT count(*) FROM big /* pgnode-reclaim-test */",
        ])
        #expect(scan.stdout.contains("1200000"), "\(scan.stdout) \(scan.stderr)")
        #expect(observer.finish() == 0)

        let findings = observer.findings(options.podName)
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
