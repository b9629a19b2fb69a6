import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `shm.size` and `shm.enospc` end to end: `pgnode check` against real PostgreSQL containers
/// (scripts/containers) while a parallel hash join runs in them.
@Suite("shm end to end on real containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct ShmEndToEndTests {
    /// 1M rows whose hash (id and a 32-character text) needs about 80 MB of dynamic shared memory:
    /// more than the runtime's 64 MiB /dev/shm, far less than 1 GiB. With work_mem=32MB one join
    /// may use 32 MB × 2 (hash_mem_multiplier) × 3 participants = 192 MiB, so it stays in one batch.
    static let postgresArguments = ["-c", "work_mem=32MB"]
    static let createTable =
        "CREATE TABLE t AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 1000000) i"
    /// A parallel hash join whatever the planner's costs say; prints the backend's pid (in the
    /// container's pid namespace) first.
    static let join = [
        "SELECT pg_backend_pid()", "SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0",
        "SET min_parallel_table_scan_size = 0", "SELECT count(*) FROM t a JOIN t b USING (id, v)",
    ]

    var canRun: Bool {
        // The reclaim probe attaches through tracefs (the shm probe's uprobes do not need it).
        if TestEnvironment.isRoot && !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") {
            _ = try? Command.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
        return Containers.available()
            && TestEnvironment.require(
                FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"), "kernel BTF")
    }

    /// Parses NDJSON findings into check → finding.
    func findings(_ stdout: String) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for line in stdout.split(separator: "\n") where !line.isEmpty {
            let value = try JSONParser.parse(String(line))
            if let check = value["check"]?.stringValue { result[check] = value }
        }
        return result
    }

    /// Runs `pgnode check --container <id> --duration <seconds>` and, once its probes are
    /// attached, `workload`; returns the findings and what the workload returned.
    func observe<T>(
        _ container: PostgresContainer, seconds: Int, _ workload: () throws -> T
    ) throws -> ([String: JSONValue], T) {
        let directory = try Fixtures.temporaryDirectory("pgnode-shm-e2e")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try Subprocess(
            [
                TestEnvironment.pgnodeBinary, "check", "--container", container.id, "--duration", String(seconds),
                "--format", "json",
            ])
        defer { process.stop() }
        // The shm probe attaches first: 8 uprobe links on the container's glibc (posix_fallocate,
        // posix_fallocate64, ftruncate and unlink, at entry and return); wait for them, and a
        // little for the others.
        let deadline = Date().addingTimeInterval(Double(seconds) / 2)
        while bpfLinkCount(ofProcess: process.pid) < 8 && Date() < deadline && process.isRunning {
            usleep(50_000)
        }
        try #require(
            bpfLinkCount(ofProcess: process.pid) >= 8, "pgnode did not attach its shm probe in time")
        usleep(200_000)
        let result = try workload()
        let (status, _) = process.wait(timeout: Double(seconds) + 120)
        #expect(status == 0, "pgnode: \(process.standardError)")
        return (try findings(process.standardOutput), result)
    }

    /// Runs the join through psql: (the backend's pid in the container, psql's result).
    func runJoin(_ container: PostgresContainer) throws -> (backendPID: Int64?, result: CommandResult) {
        let arguments = [Containers.script, "psql", container.name, "-At"] + Self.join.flatMap { ["-c", $0] }
        let result = try Command.run(arguments)
        let pid = result.stdout.split(separator: "\n").first.flatMap { Int64($0) }
        return (pid, result)
    }

    func prepare(_ container: PostgresContainer) throws {
        let created = try Containers.psql(container, Self.createTable)
        try #require(created.status == 0, "\(created.stderr)")
        let analyzed = try Containers.psql(container, "ANALYZE t")
        try #require(analyzed.status == 0, "\(analyzed.stderr)")
    }

    /// The size in `could not resize shared memory segment "/PostgreSQL.N" to SIZE bytes`.
    static func loggedSize(_ error: String) -> Int64? {
        guard
            let range = error.range(
                of: #"could not resize shared memory segment "[^"]*" to [0-9]+ bytes"#, options: .regularExpression)
        else { return nil }
        let words = error[range].split(separator: " ")
        return words.count >= 2 ? Int64(words[words.count - 2]) : nil
    }

    @Test("the runtime's 64 MiB /dev/shm: the parallel hash join fails, shm.enospc critical with its size and roles")
    func defaultShm() throws {
        guard canRun else { return }
        var options = PostgresContainerOptions()
        options.podName = "shm-default"
        options.postgresArguments = Self.postgresArguments
        try Containers.withPostgres([("shm-e2e-default", options)]) { containers in
            let container = containers[0]
            try prepare(container)
            let (found, join) = try observe(container, seconds: 10) { try runJoin(container) }

            #expect(join.result.status != 0, "the join succeeded: \(join.result.stdout)")
            let logged = try #require(
                Self.loggedSize(join.result.stderr), "no resize error from the server: \(join.result.stderr)")
            let backendPID = try #require(join.backendPID, "no backend pid in \(join.result.stdout)")

            let enospc = try #require(found["shm.enospc"], "no shm.enospc finding: \(found.keys.sorted())")
            #expect(enospc["severity"] == "critical")
            let evidence = try #require(enospc["evidence"])
            let sizes = evidence["failed_request_bytes"]?.arrayValue?.compactMap(\.intValue) ?? []
            #expect(sizes.contains(logged), "logged \(logged), observed \(sizes)")
            #expect(sizes == sizes.sorted(by: >))
            #expect((evidence["failures"]?.intValue ?? 0) >= 1)
            #expect(evidence["first_seen"]?.stringValue != nil)
            #expect(evidence["shm_size_bytes"] == .int(64 << 20))
            // Every failing process is named by the role its title had at the failure: the
            // client backend that ran the join, or one of its parallel workers.
            let pids = evidence["pids"]?.arrayValue ?? []
            #expect(!pids.isEmpty)
            for process in pids {
                let role = process["role"]?.stringValue
                #expect(role == "client backend" || role == "parallel worker", "\(process)")
                if role == "client backend" { #expect(process["container_pid"]?.intValue == backendPID) }
                if role == "parallel worker" {
                    #expect(process["leader_container_pid"]?.intValue == backendPID, "\(process)")
                    #expect(process["container_pid"]?.intValue != backendPID)
                }
            }
            // What was held is what was allocated: never more than the mount.
            let peak = evidence["dsm_peak_bytes"]?.intValue ?? -1
            #expect(peak > 0 && peak <= 64 << 20, "dsm_peak_bytes \(peak)")
            let used = evidence["shm_used_peak_bytes"]?.intValue ?? -1
            // statfs is sampled every 100 ms, so it may miss a short peak: only its bounds are sure.
            #expect(used > 0 && used <= 64 << 20, "shm_used_peak_bytes \(used), dsm_peak_bytes \(peak)")

            let size = try #require(found["shm.size"])
            #expect(size["severity"] == "critical")
            #expect(size["evidence"]?["shm_size_bytes"] == .int(64 << 20))
            #expect(size["evidence"]?["shm_kind"] == "runtime_default")
            #expect(size["evidence"]?["dsm_estimate_bytes"] == .int((32 << 20) * 2 * 3))
            #expect(size["remedy"]?.stringValue?.contains("medium: Memory") == true)
        }
    }

    @Test("a 1 GiB tmpfs on /dev/shm: the join succeeds, shm.enospc ok with the peak, shm.size ok")
    func largeShm() throws {
        guard canRun else { return }
        var options = PostgresContainerOptions()
        options.podName = "shm-large"
        options.shmSize = "1g"
        options.postgresArguments = Self.postgresArguments
        try Containers.withPostgres([("shm-e2e-large", options)]) { containers in
            let container = containers[0]
            try prepare(container)
            let (found, join) = try observe(container, seconds: 10) { try runJoin(container) }

            #expect(join.result.status == 0, "\(join.result.stderr)")
            #expect(join.result.stdout.split(separator: "\n").last == "1000000")
            let enospc = try #require(found["shm.enospc"])
            #expect(enospc["severity"] == "ok")
            #expect(enospc["evidence"]?["failures"] == .int(0))
            #expect(enospc["evidence"]?["failed_request_bytes"] == .array([]))
            // The hash table of 1M rows lived in /dev/shm: well above 64 MiB, well below 1 GiB.
            let peak = enospc["evidence"]?["dsm_peak_bytes"]?.intValue ?? 0
            #expect(peak > 64 << 20 && peak < 1 << 30, "dsm_peak_bytes \(peak)")
            #expect(enospc["evidence"]?["shm_size_bytes"] == .int(1 << 30))

            let size = try #require(found["shm.size"])
            #expect(size["severity"] == "ok", "\(size)")
            #expect(size["evidence"]?["shm_size_bytes"] == .int(1 << 30))
        }
    }

    @Test("dynamic_shared_memory_type = sysv: shm.size ok, saying /dev/shm does not limit parallel queries")
    func sysv() throws {
        guard canRun else { return }
        var options = PostgresContainerOptions()
        options.podName = "shm-sysv"
        options.postgresArguments = Self.postgresArguments + ["-c", "dynamic_shared_memory_type=sysv"]
        try Containers.withPostgres([("shm-e2e-sysv", options)]) { containers in
            let result = try Command.pgnode(["check", "--container", containers[0].id, "--duration", "0"])
            #expect(result.status == 0, "\(result.stderr)")
            let size = try #require(try findings(result.stdout)["shm.size"])
            #expect(size["severity"] == "ok")
            #expect(size["summary"]?.stringValue?.contains("dynamic_shared_memory_type is sysv") == true, "\(size)")
            #expect(size["summary"]?.stringValue?.contains("System V shared memory") == true)
            let setting = size["evidence"]?["settings"]?["dynamic_shared_memory_type"]
            #expect(setting?["value"] == "sysv")
            #expect(setting?["source"] == "command line")
            #expect(size["evidence"]?["dsm_estimate_bytes"] == .int(0))
            #expect(size["evidence"]?["shm_size_bytes"] == .int(64 << 20))
        }
    }
}
