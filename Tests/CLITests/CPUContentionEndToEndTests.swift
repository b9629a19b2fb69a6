import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `cpu.contention` end to end: a real PostgreSQL container in containerd without a CPU limit,
/// kept busy by pgbench with one client whose every transaction is CPU-bound in its backend (a
/// short query at a fixed rate: about a quarter of one CPU), observed by the real `pgnode check`
/// — once while a neighbour container (another pod) runs a busy loop on every CPU of the node,
/// once without it. The load leaves the CPUs room: on a machine shared with other work (this
/// one's builds), a backend that wants a whole CPU would wait behind that work too, and the test
/// is about the neighbour pod.
@Suite("cpu.contention end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct CPUContentionEndToEndTests {
    /// How long pgnode observes.
    static let window = 6
    /// One client: its backend alone never has to wait for another of the container's processes
    /// on a node with two CPUs or more, so whatever it waits is the neighbour's doing.
    static let clients = 1
    /// Transactions per second (pgbench -R), each a query of some 25 ms of CPU.
    static let rate = 10
    static let pgbench = "/usr/lib/postgresql/15/bin/pgbench"

    var canRun: Bool {
        Containers.available()
            && TestEnvironment.require(FileManager.default.isExecutableFile(atPath: Self.pgbench), "pgbench")
            && TestEnvironment.require(ProcessInfo.processInfo.activeProcessorCount >= 2, "two CPUs")
    }

    func options() -> [(String, PostgresContainerOptions)] {
        var database = PostgresContainerOptions()
        database.podName = "cpu-contended-0"
        return [("cpu-contended", database)]
    }

    /// The neighbour: one busy shell loop per CPU of the node, in a pod of its own that requests
    /// every CPU of the node: its pod cgroup gets the weight the kubelet gives such a request
    /// (`cpu.shares` 1024 per CPU; scripts/containers leaves the default, 1024, that of one CPU).
    /// On this machine other sessions' processes outside `kubepods` compete too; with the weight
    /// of its request the neighbour, not they, is the one that takes the most from the database.
    func startNeighbour() throws -> PostgresContainer {
        var options = CommandContainerOptions()
        options.podName = "cpu-hog-0"
        options.containerName = "hog"
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let hog = try Containers.run(
            "cpu-hog", options: options,
            command: [
                "/usr/bin/sh", "-c", "for i in $(seq \(cpus)); do (while :; do :; done) & done; wait",
            ])
        let shares = "/sys/fs/cgroup/cpu/kubepods/burstable/pod\(options.podUID)/cpu.shares"
        if FileManager.default.fileExists(atPath: shares) {
            try String(1024 * cpus).write(toFile: shares, atomically: false, encoding: .utf8)
        }
        return hog
    }

    /// Starts pgbench against `container` through its socket, a CPU-bound query `rate` times a
    /// second, until stopped; returns once the session has run it (hang guard 60 s).
    func startLoad(_ container: PostgresContainer) throws -> (Subprocess, String) {
        let script = "/tmp/pgnode-contention-load-\(UUID().uuidString.prefix(8)).sql"
        try "SELECT count(*) FROM generate_series(1, 200000);\n".write(
            toFile: script, atomically: false, encoding: .utf8)
        let socket =
            (ProcessInfo.processInfo.environment["PGNODE_CONTAINERS_DIR"] ?? "/var/tmp/pgnode-containers")
            + "/\(container.name)/socket"
        let load = try Subprocess(
            [
                Self.pgbench, "-h", socket, "-U", "postgres", "-n", "-c", String(Self.clients), "-j", "1", "-R",
                String(Self.rate), "-T", "600", "-f", script, "postgres",
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

    /// `pgnode check` of `container` over the window: its `cpu.contention` finding (JSON), and
    /// the text output's line.
    func observe(_ container: PostgresContainer) throws -> JSONValue {
        let result = try Command.pgnode([
            "check", "--container", container.id, "--duration", String(Self.window), "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        var found: JSONValue?
        for line in result.stdout.split(separator: "\n") where !line.isEmpty {
            let value = try JSONParser.parse(String(line))
            if value["check"] == "cpu.contention", value["resource"]?["container.id"]?.stringValue == container.id {
                found = value
            }
        }
        return try #require(found, "no cpu.contention finding: \(result.stdout)")
    }

    /// What was observed, for the log (the assertions bound it; its values vary).
    func log(_ finding: JSONValue, _ label: String) {
        print("CPUContentionEndToEndTests [\(label)]: \(JSONWriter.string(finding))")
    }

    @Test("pgnode check: a neighbour busy on every CPU makes cpu.contention a warning or worse, the neighbour first")
    func contended() throws {
        guard canRun else { return }
        try Containers.withPostgres(options()) { containers in
            let database = containers[0]
            let (load, script) = try startLoad(database)
            defer {
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let hog = try startNeighbour()
            defer { Containers.remove(hog.name) }
            let finding = try observe(database)
            log(finding, "neighbour")
            #expect(load.isRunning, "pgbench stopped during the window")
            #expect(["warning", "critical"].contains(finding["severity"]?.stringValue ?? ""), "\(finding)")
            let evidence = finding["evidence"] ?? .null
            #expect((evidence["run_queue_wait_ns"]?.intValue ?? 0) > 0, "\(evidence)")
            #expect(evidence["throttled_periods"] == .int(0), "\(evidence)")
            // The backend's role is named and waits.
            guard case .array(let roles)? = evidence["per_role"] else {
                Issue.record("no per_role: \(evidence)")
                return
            }
            #expect(roles.contains { $0["role"] == "client backend" }, "\(roles)")
            // The sched probe: the neighbour's pod took the most CPU from the database.
            guard case .array(let neighbours)? = evidence["neighbours"] else {
                Issue.record("no neighbours: \(evidence)")
                return
            }
            let first = try #require(neighbours.first, "\(evidence)")
            #expect(first["container.id"]?.stringValue == hog.id, "\(neighbours)")
            #expect(first["k8s.pod.name"] == "cpu-hog-0", "\(neighbours)")
            #expect(first["k8s.namespace.name"] == "pgnode-test", "\(neighbours)")
            #expect(first["cgroup"]?.stringValue?.contains(hog.id) == true, "\(first)")
            #expect(!neighbours.contains { $0["container.id"]?.stringValue == database.id }, "\(neighbours)")
            #expect(finding["summary"]?.stringValue?.contains("pod pgnode-test/cpu-hog-0") == true, "\(finding)")
            #expect(finding["remedy"]?.stringValue?.contains("static CPU manager") == true)

            // The text output says the same.
            let text = try Command.pgnode([
                "check", "--container", database.id, "--duration", "2", "--format", "text",
            ])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("cpu.contention: The container's processes waited"), "\(text.stdout)")
        }
    }

    @Test("pgnode check: the same load without the neighbour is ok")
    func alone() throws {
        guard canRun else { return }
        try Containers.withPostgres(options()) { containers in
            let database = containers[0]
            let (load, script) = try startLoad(database)
            defer {
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let finding = try observe(database)
            log(finding, "alone")
            #expect(load.isRunning, "pgbench stopped during the window")
            #expect(finding["severity"] == "ok", "\(finding)")
            let evidence = finding["evidence"] ?? .null
            #expect((evidence["run_ns"]?.intValue ?? 0) > 0, "\(evidence)")
            #expect(evidence["neighbours"]?.arrayValue != nil, "the sched probe ran: \(evidence)")
        }
    }
}
