import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `cpu.migrations` end to end: a real PostgreSQL container in containerd whose backends run
/// CPU-bound queries from pgbench (8 clients: more runnable backends than this machine's CPUs,
/// so the scheduler moves them), observed by the real `pgnode check`, its counts held against
/// the kernel's own (`se.nr_migrations` of every task of the container, read with the
/// container stopped (SIGSTOP) before the probe is attached and at the end of the window).
@Suite("cpu.migrations end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct CPUMigrationsEndToEndTests {
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

    /// The container's tasks, in its v1 memory cgroup (`/kubepods/<qos>/pod<uid>/<id>`, as for
    /// every v1 controller), stopped and continued with SIGSTOP and SIGCONT: stopped and off
    /// their run queues, they cannot move. Not the cgroup freezer: moves around its freezing and
    /// thawing are counted by `se.nr_migrations` and not always by the probe (seen on 6.18, not
    /// explained yet), while stops and continues keep the two equal.
    struct ContainerTasks {
        let path: String

        init(_ container: PostgresContainer, qos: String) throws {
            path = "/sys/fs/cgroup/memory/kubepods/\(qos)/pod\(container.podUID)/\(container.id)"
            try #require(FileManager.default.fileExists(atPath: path + "/tasks"), "no memory cgroup \(path)")
        }

        private func list(_ file: String) -> Set<Int32> {
            let text = (try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? ""
            return Set(text.split(separator: "\n").compactMap { Int32($0) })
        }

        /// The cgroup's threads.
        var tasks: Set<Int32> { list("tasks") }

        /// Stops every process (SIGSTOP: PostgreSQL's init included, from the host's pid
        /// namespace) and waits until each thread is stopped and off its run queue (hang guard 60 s).
        func stop() throws {
            for pid in list("cgroup.procs") { kill(pid, SIGSTOP) }
            let running = TaskScheduling.waitUntilStopped(Array(tasks))
            let described = running.map { tid in
                let wchan = (try? String(contentsOfFile: "/proc/\(tid)/task/\(tid)/wchan", encoding: .utf8)) ?? "?"
                let cmdline = (try? String(contentsOfFile: "/proc/\(tid)/cmdline", encoding: .utf8)) ?? "?"
                return "\(tid) \(TaskScheduling.state(pid: tid).map(String.init) ?? "gone") \(wchan) \(cmdline)"
            }
            try #require(running.isEmpty, "not stopped: \(described)")
        }

        /// Continues every process.
        func resume() {
            for pid in list("cgroup.procs") { kill(pid, SIGCONT) }
        }
    }

    /// The host pids of the container's backends running pgbench's query (their pids in the
    /// container's namespace from pg_stat_activity, matched to `tasks` by `NSpid`).
    func backends(_ container: PostgresContainer, among tasks: Set<Int32>) throws -> [Int32] {
        let query = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM generate_series%'"
        let inner = Set(try Containers.psql(container, query).stdout.split(separator: "\n").compactMap { Int32($0) })
        return tasks.filter { tid in
            let status = (try? String(contentsOfFile: "/proc/\(tid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") } ?? ""
            return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).last.flatMap { Int32($0) }.map(
                inner.contains)
                ?? false
        }.sorted()
    }

    /// The container's client backends other than `backends` (psql's, on its way out).
    func otherClientBackends(among tasks: Set<Int32>, _ backends: [Int32]) -> [Int32] {
        tasks.subtracting(backends).filter { tid in
            let cmdline = (try? String(contentsOfFile: "/proc/\(tid)/cmdline", encoding: .utf8)) ?? ""
            return cmdline.contains("[local]")
        }.sorted()
    }

    @Test("pgnode check: each backend's migrations as the kernel counted them, per role; one LLC: ok")
    func check() throws {
        guard canRun else { return }
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs")
        var options = PostgresContainerOptions()
        options.podName = "cpu-migrations-0"
        // No autovacuum: its workers are processes that come and go, whose moves no reading of
        // the kernel's counters after the window could witness. The other processes stay.
        options.postgresArguments = ["-c", "autovacuum=off"]
        try Containers.withPostgres([("cpu-migrations", options)]) { containers in
            let busy = containers[0]
            let container = try ContainerTasks(busy, qos: options.qos)
            let (load, script) = try startLoad(busy)
            defer {
                container.resume()
                load.stop()
                try? FileManager.default.removeItem(atPath: script)
            }
            let backends = try backends(busy, among: container.tasks)
            try #require(backends.count == Self.clients, "backends \(backends)")
            // psql's backend gone, and reaped by the postmaster (an exited backend stays a zombie,
            // still among the cgroup's tasks, until then; stopped with the postmaster it would
            // stay one, and go when the postmaster resumes) (hang guard 60 s): from here the
            // container's tasks stay.
            func settled() -> Bool {
                let tasks = container.tasks
                return otherClientBackends(among: tasks, backends).isEmpty
                    && !tasks.contains { TaskScheduling.state(pid: $0) == "Z" }
            }
            let deadline = Date().addingTimeInterval(60)
            while !settled() && Date() < deadline { usleep(20_000) }
            try #require(settled(), "\(container.tasks.map { "\($0) \(TaskScheduling.state(pid: $0) ?? "-")" })")

            // Stopped from before pgnode attaches its probe to after the kernel's counters are
            // read at the end: the moves between are the ones both count.
            try container.stop()
            let tasks = container.tasks
            var baseline: [Int32: UInt64] = [:]
            for tid in tasks {
                // Bound first: assigned to the subscript, #require would take the optional as it is.
                let migrations = try #require(TaskScheduling.migrations(pid: tid), "\(tid)")
                baseline[tid] = migrations
            }
            // One move each that the test forces: pinned away from the CPU it stopped on, a
            // backend is moved when it is continued.
            var affinities: [Int32: String] = [:]
            for pid in backends { affinities[pid] = try TaskScheduling.pinAway(pid) }
            let pgnode = try Subprocess([
                TestEnvironment.pgnodeBinary, "check", "--container", busy.id, "--duration", "600", "--format", "json",
            ])
            defer { pgnode.stop() }
            let attached = Date().addingTimeInterval(120)
            while bpfLinkedProgramNames(ofProcess: pgnode.pid).isDisjoint(with: ["pgn_mig_btf", "pgn_mig_raw"])
                && pgnode.isRunning && Date() < attached
            {
                usleep(50_000)
            }
            try #require(
                !bpfLinkedProgramNames(ofProcess: pgnode.pid).isDisjoint(with: ["pgn_mig_btf", "pgn_mig_raw"]),
                "pgnode did not attach its migrations probe: \(pgnode.standardError)")
            container.resume()
            for pid in backends {
                try #require(TaskScheduling.waitForMigration(of: pid, past: baseline[pid]!), "\(pid) not moved")
                try TaskScheduling.setAffinity(of: pid, to: affinities[pid]!)
            }
            // A fixed amount of work, not of time: every backend waits for its next query at
            // least 3 more times (3 queries done), on more runnable backends than CPUs.
            var switches: [Int32: UInt64] = [:]
            for pid in backends {
                let voluntary = try #require(TaskScheduling.voluntarySwitches(pid: pid), "\(pid)")
                switches[pid] = voluntary
            }
            let worked = Date().addingTimeInterval(120)
            while Date() < worked,
                backends.contains(where: { (TaskScheduling.voluntarySwitches(pid: $0) ?? 0) < switches[$0]! + 3 })
            {
                usleep(20_000)
            }
            try container.stop()
            try #require(container.tasks == tasks, "tasks came or went: \(tasks) then \(container.tasks)")
            var moved: [Int32: UInt64] = [:]
            for tid in tasks { moved[tid] = try #require(TaskScheduling.migrations(pid: tid)) - baseline[tid]! }
            // The window ends on SIGINT, with the tasks still stopped as the kernel's counters were read.
            pgnode.signal(SIGINT)
            let (status, _) = pgnode.wait(timeout: 120)
            #expect(status == 128 + SIGINT, "\(pgnode.standardError)")
            let finding = try #require(
                pgnode.standardOutput.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.first {
                    $0["check"] == "cpu.migrations" && $0["resource"]?["container.id"]?.stringValue == busy.id
                }, "\(pgnode.standardOutput)")
            let evidence = finding["evidence"] ?? .null
            // What was observed, for the log (the assertions below do not depend on its value).
            print(
                "CPUMigrationsEndToEndTests: \(finding["severity"]?.stringValue ?? "?"), "
                    + "\(evidence["migrations"]?.intValue ?? -1) migrations")
            // Every move of the container's tasks in the window, as the kernel counted them.
            let migrations = evidence["migrations"]?.intValue ?? -1
            #expect(migrations == Int64(moved.values.reduce(0, +)), "\(evidence) against \(moved)")
            // This machine has one last-level cache and one NUMA node: moves, but none across.
            #expect(finding["severity"] == "ok", "\(finding)")
            #expect(evidence["cross_llc"] == .int(0) && evidence["cross_numa"] == .int(0))
            #expect(evidence["within_llc"] == .int(migrations) && evidence["unknown_topology"] == .int(0))
            #expect(evidence["node_llcs"] == .int(1) && evidence["node_numa_nodes"] == .int(1))
            let roles = evidence["per_role"]?.arrayValue ?? []
            let clients = try #require(roles.first { $0["role"] == "client backend" }, "\(roles)")
            // The backends' moves as the kernel counted them; each moved (the forced move).
            #expect(clients["migrations"]?.intValue == Int64(backends.reduce(0) { $0 + moved[$1]! }), "\(clients)")
            #expect(clients["processes"]?.intValue == Int64(Self.clients), "\(clients)")
            #expect(roles.reduce(0) { $0 + ($1["migrations"]?.intValue ?? 0) } == migrations)
            // Processes that moved: those the kernel counted a move of (single-threaded, PostgreSQL's).
            let processesMoved = Set(
                moved.filter { $0.value > 0 }.keys.compactMap { TaskScheduling.threadGroup(of: $0) })
            #expect(
                roles.reduce(0) { $0 + ($1["processes"]?.intValue ?? 0) } == Int64(processesMoved.count), "\(roles)")
            // An unlimited container gets the whole node's CPUs in its v1 cpuset.
            let online = try String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(evidence["cpuset"]?["cpus"]?.stringValue == online, "\(evidence["cpuset"] ?? .null)")
            // Nothing to do about moves within one cache: no remedy.
            #expect(finding["remedy"] == "", "\(finding)")
        }
    }
}
