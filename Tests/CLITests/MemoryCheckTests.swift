import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `memory.limit` and `memory.reclaim` end to end: real PostgreSQL containers in containerd, the
/// real pgnode binary, BPF in this kernel.
@Suite("memory checks on real containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct MemoryCheckEndToEndTests {
    static let limit: Int64 = 256 << 20
    static let sharedBuffers: Int64 = 32 << 20
    /// How long pgnode observes.
    static let window = 20

    var canRun: Bool {
        // The reclaim probe attaches through tracefs (scripts/setup mounts it too).
        if TestEnvironment.isRoot && !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") {
            _ = try? Command.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
        return Containers.available()
            && TestEnvironment.require(FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"), "kernel BTF")
    }

    @Test(
        "a limited container scanning a table larger than its limit reclaims in its client backend; an idle unlimited neighbour does not"
    )
    func reclaimUnderLimit() throws {
        guard canRun else { return }
        var limited = PostgresContainerOptions()
        limited.memoryLimit = Self.limit
        limited.podName = "mem-limited-0"
        limited.postgresArguments = ["-c", "shared_buffers=32MB"]
        var idle = PostgresContainerOptions()
        idle.podName = "mem-idle-0"
        try Containers.withPostgres([("mem-limited", limited), ("mem-idle", idle)]) { containers in
            let (a, b) = (containers[0], containers[1])
            // 2.4 times the limit, unlogged (no WAL): while it is written the cgroup already
            // evicts its first pages, so the scan below has to read them back through the page cache.
            try sql(
                a,
                "CREATE UNLOGGED TABLE big AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 1200000) g",
                "CREATE TABLE workload (pid int)")
            let size = try sql(a, "SELECT pg_relation_size('big')")
            #expect((Int64(size) ?? 0) > 2 * Self.limit, "table size \(size)")

            let pgnode = try Subprocess([
                TestEnvironment.pgnodeBinary, "check", "--container", a.id, "--container", b.id, "--duration",
                String(Self.window), "--format", "json",
            ])
            defer { pgnode.stop() }
            try #require(
                waitForPrograms(["pgn_rcl_mcg_in", "pgn_rcl_mcg_out"], heldBy: pgnode.pid, seconds: 30),
                "pgnode did not attach the reclaim probe")

            // A client backend that connects *after* pgnode resolved the containers, records its
            // pid, scans the table sequentially (no parallel workers, so this backend reads every
            // page) and then stays connected until pgnode has named it.
            let workload = try Subprocess(
                [
                    Containers.script, "psql", a.name, "-At", "-c", "INSERT INTO workload VALUES (pg_backend_pid())",
                    "-c", "SET max_parallel_workers_per_gather = 0", "-c", "SELECT count(*) FROM big", "-c",
                    "SELECT pg_sleep(600)",
                ], stderr: .discard)
            defer { workload.stop() }

            let (pgnodeStatus, _) = pgnode.wait(timeout: Double(Self.window) + 120)
            #expect(pgnodeStatus == 0, "\(pgnode.standardError)")

            // The backend, while it still runs: its pid in the container and on the host.
            let namespacePID = try #require(Int32(try sql(a, "SELECT pid FROM workload")))
            let backendPID = hostPID(ofNamespacePID: namespacePID, inContainer: a.id)
            let hostPID = try #require(backendPID, "no host pid for \(namespacePID)")
            _ = try sql(a, "SELECT pg_cancel_backend(pid) FROM workload")
            workload.wait(timeout: 120)
            #expect(
                workload.standardOutput.contains("1200000"), "the scan did not complete: \(workload.standardOutput)")

            let found = try findingsByContainer(pgnode.standardOutput)
            let reclaimA = try #require(found[a.id]?["memory.reclaim"], "\(found.keys)")
            let reclaimB = try #require(found[b.id]?["memory.reclaim"], "\(found.keys)")
            let limitA = try #require(found[a.id]?["memory.limit"])
            let limitB = try #require(found[b.id]?["memory.limit"])

            // The limited container: reclaim, and the backend that scanned pays for it.
            let severityA = reclaimA["severity"]?.stringValue ?? ""
            #expect(["warning", "critical"].contains(severityA), "\(reclaimA)")
            let evidence = try #require(reclaimA["evidence"])
            #expect((evidence["reclaimed_bytes"]?.intValue ?? 0) > 0)
            #expect((evidence["events"]?.intValue ?? 0) > 0)
            #expect((evidence["stall_ns"]?.intValue ?? 0) > 0)
            let byPid = try #require(evidence["by_pid"]?.arrayValue)
            let backend = try #require(
                byPid.first { $0["pid"]?.intValue == Int64(hostPID) }, "backend \(hostPID) not in \(byPid)")
            #expect(backend["role"] == "client backend", "\(backend)")
            #expect(backend["command"] == "postgres")
            #expect(backend["ns_pid"]?.intValue == Int64(namespacePID))
            #expect((backend["reclaimed_bytes"]?.intValue ?? 0) > 0)
            // The scan read ~2.4 times the limit: the backend did most of the reclaiming.
            #expect(byPid.first?["pid"]?.intValue == Int64(hostPID), "\(byPid)")

            // The idle neighbour without a limit: nothing.
            #expect(reclaimB["severity"] == "ok", "\(reclaimB)")
            #expect(reclaimB["evidence"]?["events"] == .int(0))
            #expect(reclaimB["evidence"]?["by_pid"] == .array([]))

            // memory.limit: the limit and the shared_buffers each server was given.
            #expect(limitA["evidence"]?["limit_bytes"]?.intValue == Self.limit, "\(limitA)")
            #expect(limitA["evidence"]?["shared_buffers_bytes"]?.intValue == Self.sharedBuffers)
            #expect(limitA["evidence"]?["cgroup_version"] == .int(1))
            #expect((limitA["evidence"]?["page_cache_bytes"]?.intValue ?? 0) > 0)
            #expect((limitA["evidence"]?["usage_bytes"]?.intValue ?? Int64.max) <= Self.limit)
            #expect(limitB["evidence"]?["limit_bytes"] == .null, "\(limitB)")
            #expect(limitB["evidence"]?["shared_buffers_bytes"]?.intValue == 128 << 20)  // initdb's default
            #expect(limitB["severity"] == "ok")
        }
    }

    /// Runs SQL statements (one session) in `container`; the output, trimmed.
    @discardableResult
    func sql(_ container: PostgresContainer, _ statements: String...) throws -> String {
        let result = try Command.run(
            [Containers.script, "psql", container.name, "-At", "-v", "ON_ERROR_STOP=1"]
                + statements.flatMap { ["-c", $0] })
        guard result.status == 0 else { throw SQLError(message: result.stderr) }
        return result.stdout.trimmingWhitespaceForTest()
    }
}

/// psql failed.
private struct SQLError: Error, CustomStringConvertible {
    var message: String
    var description: String { "psql: \(message)" }
}

/// NDJSON findings by container id (`container.id`; "" for node findings), then by check.
private func findingsByContainer(_ stdout: String) throws -> [String: [String: JSONValue]] {
    var result: [String: [String: JSONValue]] = [:]
    for line in stdout.split(separator: "\n") where !line.isEmpty {
        let value = try JSONParser.parse(String(line))
        let container = value["resource"]?["container.id"]?.stringValue ?? ""
        if let check = value["check"]?.stringValue { result[container, default: [:]][check] = value }
    }
    return result
}

/// The host pid of the process that has pid `namespacePID` in the pid namespace of container `id`.
private func hostPID(ofNamespacePID namespacePID: Int32, inContainer id: String) -> Int32? {
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry),
            let cgroup = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8), cgroup.contains(id),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { continue }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            let pids = line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " })
            if pids.count >= 2, pids.last.flatMap({ Int32($0) }) == namespacePID { return pid }
        }
    }
    return nil
}

/// Waits until process `pid` holds BPF programs with all of `names` (from its fdinfo and bpftool).
private func waitForPrograms(_ names: Set<String>, heldBy pid: Int32, seconds: Double) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        var held: Set<Int64> = []
        let dir = "/proc/\(pid)/fdinfo"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let text = try? String(contentsOfFile: "\(dir)/\(entry)", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("prog_id:") {
                if let id = Int64(line.dropFirst("prog_id:".count).trimmingCharacters(in: .whitespaces)) {
                    held.insert(id)
                }
            }
        }
        if !held.isEmpty, let result = try? Command.run(["bpftool", "prog", "show", "--json"]), result.status == 0,
            let value = try? JSONParser.parse(result.stdout), let programs = value.arrayValue
        {
            let heldNames = Set(
                programs.filter { $0["id"]?.intValue.map(held.contains) ?? false }.compactMap {
                    $0["name"]?.stringValue
                })
            if names.isSubset(of: heldNames) { return true }
        }
        usleep(100_000)
    }
    return false
}
