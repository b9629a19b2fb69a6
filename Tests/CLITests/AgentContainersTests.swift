import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode agent` on this node with real PostgreSQL containers coming and going.
@Suite("pgnode agent with PostgreSQL containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct AgentContainersTests {
    /// The pod names of the container findings on stdout, with the check ids seen for each.
    func containerChecks(_ stdout: String) -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for line in stdout.split(separator: "\n") {
            guard let finding = try? JSONParser.parse(String(line)),
                let pod = finding["resource"]?["k8s.pod.name"]?.stringValue,
                let check = finding["check"]?.stringValue
            else { continue }
            result[pod, default: []].insert(check)
        }
        return result
    }

    func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(200_000)
        }
        return condition()
    }

    @Test("findings appear for containers that start and stop for containers that go; /metrics and /healthz answer")
    func followsContainers() throws {
        guard TestEnvironment.requireRoot(), Containers.available() else { return }
        var first = PostgresContainerOptions()
        first.podName = "agent-first-\(UUID().uuidString.prefix(6).lowercased())"
        var second = PostgresContainerOptions()
        second.podName = "agent-second-\(UUID().uuidString.prefix(6).lowercased())"
        let a = try Containers.start("agent-a", options: first)
        var aRemoved = false
        defer { if !aRemoved { Containers.remove(a.name) } }

        let directory = try Fixtures.temporaryDirectory("pgnode-agent-containers")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = Receiver.freePort()
        let agent = try AgentProcess(
            ["--interval", "3", "--listen", "127.0.0.1:\(port)", "--node-name", "agent-test-node"],
            directory: directory)
        defer { _ = agent.stop(SIGKILL) }

        let every = [
            "shm.size", "memory.limit", "cpu.throttling", "cpu.contention", "shm.enospc", "memory.reclaim",
            "blkio.noise", "writeback.throttle",
        ]
        #expect(
            waitUntil(timeout: 30) { containerChecks(agent.stdout)[first.podName]?.isSuperset(of: every) == true },
            "no findings for \(first.podName): \(agent.stderr)")

        // A container started while the agent runs is picked up within one interval or two.
        let b = try Containers.start("agent-b", options: second)
        defer { Containers.remove(b.name) }
        #expect(
            waitUntil(timeout: 30) { containerChecks(agent.stdout)[second.podName]?.isSuperset(of: every) == true },
            "no findings for \(second.podName): \(agent.stderr)")

        // A removed container stops getting findings.
        Containers.remove(a.name)
        aRemoved = true
        _ = agent.waitForLog("containers changed", timeout: 1)
        #expect(
            waitUntil(timeout: 20) {
                agent.logs.contains {
                    $0["message"] == "containers changed" && $0["removed"]?.arrayValue?.contains(.string(a.id)) == true
                }
            }, "removal of \(a.id) not noticed: \(agent.stderr)")
        let countAfterRemoval = agent.stdout.components(separatedBy: first.podName).count
        usleep(7_000_000)  // two more windows
        #expect(agent.stdout.components(separatedBy: first.podName).count == countAfterRemoval)
        #expect(agent.stdout.components(separatedBy: second.podName).count > 1)

        let health = try curl("http://127.0.0.1:\(port)/healthz")
        #expect(health.status == "200")
        let metrics = try curl("http://127.0.0.1:\(port)/metrics")
        #expect(metrics.status == "200")
        #expect(metrics.body.contains("pgnode_bpf_program_loaded{program=\"pgn_shm_fa_in\"} 1"))
        #expect(metrics.body.contains("pgnode_findings_total{"))

        // Every line on stdout is a valid finding.
        let validation = try Command.run(
            ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: agent.stdout)
        #expect(validation.status == 0, "\(validation.stderr)")

        let stopped = agent.stop(SIGTERM)
        #expect(stopped == 0)
    }
}
