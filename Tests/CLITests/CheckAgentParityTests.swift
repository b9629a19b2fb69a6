import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode check` and `pgnode agent` on the same real PostgreSQL containers: one diagnosis
/// engine, so the same checks with the same evidence keys per container (the values belong to
/// each window).
@Suite("pgnode check and pgnode agent agree", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct CheckAgentParityTests {
    /// Every check a PostgreSQL container gets when the probes run.
    static let containerChecks: Set<String> = [
        "shm.size", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling", "cpu.contention",
        "shm.enospc", "memory.reclaim", "blkio.noise", "cpu.migrations", "writeback.throttle",
    ]

    var canRun: Bool {
        // The reclaim probe attaches through tracefs.
        if TestEnvironment.isRoot && !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") {
            _ = try? Command.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
        return TestEnvironment.requireRoot() && Containers.available()
            && TestEnvironment.require(
                FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"), "kernel BTF")
    }

    /// The findings on `stdout` (NDJSON) about container `id`, in order.
    func findings(_ stdout: String, container id: String) -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.filter {
            $0["resource"]?["container.id"]?.stringValue == id
        }
    }

    /// Check → the sorted top-level evidence keys of its first finding.
    func evidenceKeys(_ findings: [JSONValue]) -> [String: [String]] {
        var keys: [String: [String]] = [:]
        for finding in findings {
            guard let check = finding["check"]?.stringValue, keys[check] == nil else { continue }
            keys[check] = finding["evidence"]?.objectValue.map { $0.keys.sorted() } ?? []
        }
        return keys
    }

    /// Runs the agent until each of `containers` has a finding of every container check (hang
    /// guard 120 s), stops it, and returns its stdout.
    func agentWindow(_ containers: [PostgresContainer], interval: String) throws -> String {
        let directory = try Fixtures.temporaryDirectory("pgnode-parity")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = try AgentProcess(["--interval", interval, "--node-name", "parity-node"], directory: directory)
        defer { _ = agent.stop(SIGKILL) }
        let limit = Date().addingTimeInterval(120)
        func complete() -> Bool {
            let stdout = agent.stdout
            return containers.allSatisfy { container in
                Set(findings(stdout, container: container.id).compactMap { $0["check"]?.stringValue })
                    .isSuperset(of: Self.containerChecks)
            }
        }
        while !complete() && agent.process.isRunning && Date() < limit { usleep(200_000) }
        #expect(complete(), "the agent gave no complete window: \(agent.stderr)")
        #expect(agent.stop(SIGTERM) == 0, "\(agent.stderr)")
        return agent.stdout
    }

    @Test("agent mode: shm.enospc has shm_used_peak_bytes, sampled during the window as pgnode check does")
    func agentSamplesShm() throws {
        guard canRun else { return }
        try Containers.withPostgres([("parity-shm", PostgresContainerOptions())]) { containers in
            let container = containers[0]
            let stdout = try agentWindow([container], interval: "2")
            let enospc = try #require(
                findings(stdout, container: container.id).first { $0["check"] == "shm.enospc" },
                "no shm.enospc finding")
            #expect(enospc["severity"] == "ok", "\(enospc)")
            let evidence = try #require(enospc["evidence"])
            let used = try #require(evidence["shm_used_peak_bytes"]?.intValue, "no shm_used_peak_bytes: \(evidence)")
            let size = try #require(evidence["shm_size_bytes"]?.intValue)
            #expect(used >= 0 && used <= size, "shm_used_peak_bytes \(used), shm_size_bytes \(size)")
        }
    }

    @Test("the same containers: the same checks per container, each with the same evidence keys")
    func sameChecksAndEvidenceKeys() throws {
        guard canRun else { return }
        var large = PostgresContainerOptions()
        large.shmSize = "1g"
        try Containers.withPostgres([("parity-a", PostgresContainerOptions()), ("parity-b", large)]) { containers in
            let check = try Command.pgnode(
                ["check", "--duration", "2", "--format", "json", "--node-name", "parity-node"]
                    + containers.flatMap { ["--container", $0.id] })
            #expect(check.status == 0, "\(check.stderr)")
            let agent = try agentWindow(containers, interval: "2")

            for container in containers {
                let checked = evidenceKeys(findings(check.stdout, container: container.id))
                let watched = evidenceKeys(findings(agent, container: container.id))
                #expect(Set(checked.keys) == Self.containerChecks, "check: \(checked.keys.sorted())")
                #expect(Set(watched.keys) == Self.containerChecks, "agent: \(watched.keys.sorted())")
                for name in Self.containerChecks.sorted() {
                    #expect(
                        checked[name] == watched[name],
                        "\(name): check \(checked[name] ?? []), agent \(watched[name] ?? [])")
                }
                // The probes ran in both (not two sets of `unavailable` with the same keys).
                let severities =
                    findings(check.stdout, container: container.id) + findings(agent, container: container.id)
                #expect(severities.allSatisfy { $0["severity"] != "unavailable" }, "\(severities)")
            }
        }
    }
}
