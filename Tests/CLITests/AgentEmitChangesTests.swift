import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `--emit changes` against `--emit all` with twenty real, idle PostgreSQL containers: what
/// issue 19 asks of a quiet log stream, counted on real findings rather than on the policy's facts.
@Suite(
    "pgnode agent --emit with twenty idle containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled)
)
struct AgentEmitChangesTests {
    static let containerCount = 20
    static let heartbeat = 4

    /// One emitted container finding: its pod, check, severity and summary.
    struct Emitted: Hashable {
        var pod: String
        var check: String
        var severity: String
        var summary: String
    }

    /// The container findings on `stdout` of the pods named `prefix…`, in the order emitted.
    func emitted(_ stdout: String, prefix: String) -> [Emitted] {
        stdout.split(separator: "\n").compactMap { line in
            guard let finding = try? JSONParser.parse(String(line)),
                let pod = finding["resource"]?["k8s.pod.name"]?.stringValue, pod.hasPrefix(prefix),
                let check = finding["check"]?.stringValue, let severity = finding["severity"]?.stringValue,
                let summary = finding["summary"]?.stringValue
            else { return nil }
            return Emitted(pod: pod, check: check, severity: severity, summary: summary)
        }
    }

    /// `pgnode_diagnosis_runs_total` from the agent's /metrics.
    func windows(port: Int) -> Int? {
        guard let metrics = try? curl("http://127.0.0.1:\(port)/metrics"), metrics.status == "200" else { return nil }
        for line in metrics.body.split(separator: "\n") where line.hasPrefix("pgnode_diagnosis_runs_total ") {
            return Int(line.split(separator: " ").last.map(String.init) ?? "")
        }
        return nil
    }

    /// Runs an agent with `emit` arguments until it has completed `count` windows; returns its
    /// stdout and the windows completed (at least `count`: one more may end before SIGTERM lands).
    func run(_ emit: [String], windows count: Int) throws -> (stdout: String, windows: Int) {
        let directory = try Fixtures.temporaryDirectory("pgnode-agent-emit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = Receiver.freePort()
        let agent = try AgentProcess(
            ["--interval", "3", "--listen", "127.0.0.1:\(port)", "--node-name", "emit-test-node"] + emit,
            directory: directory)
        defer { _ = agent.stop(SIGKILL) }
        var done = 0
        // A hang guard, not a measurement: 20 containers' windows at 3 s take well under this.
        let deadline = Date().addingTimeInterval(Double(count) * 3 + 300)
        while done < count, Date() < deadline, agent.process.isRunning {
            usleep(500_000)
            done = windows(port: port) ?? done
        }
        #expect(done >= count, "the agent completed \(done) of \(count) windows: \(agent.stderr.suffix(2000))")
        #expect(agent.stop(SIGTERM) == 0)
        return (agent.stdout, max(done, windows(port: port) ?? done))
    }

    @Test("--emit changes emits an unchanged finding at appearance and once per heartbeat; --emit all every window")
    func quietWithTwentyContainers() throws {
        guard TestEnvironment.requireRoot(), Containers.available() else { return }
        let prefix = "emit-\(UUID().uuidString.prefix(6).lowercased())-"
        var names: [String] = []
        defer { for name in names { Containers.remove(name) } }
        for n in 0..<Self.containerCount {
            var options = PostgresContainerOptions()
            options.podName = "\(prefix)\(n)"
            names.append(try Containers.start("emit-\(n)", options: options).name)
        }
        let pods = Set((0..<Self.containerCount).map { "\(prefix)\($0)" })

        // --emit all: every container's every check, every window.
        let all = try run(["--emit", "all"], windows: 3)
        let allFindings = emitted(all.stdout, prefix: prefix)
        #expect(Set(allFindings.map(\.pod)) == pods)
        let checks = Set(allFindings.map(\.check))
        var perPair: [String: Int] = [:]
        for finding in allFindings { perPair["\(finding.pod) \(finding.check)", default: 0] += 1 }
        #expect(perPair.count == pods.count * checks.count)
        // Each pair once per window (the first window may end before a container is resolved,
        // hence at least the windows minus one).
        #expect(perPair.values.allSatisfy { $0 >= all.windows - 1 && $0 <= all.windows }, "\(perPair)")

        // --emit changes with a heartbeat of 4 windows over 3 heartbeats.
        let windowCount = 3 * Self.heartbeat
        let changes = try run(["--emit", "changes", "--heartbeat", String(Self.heartbeat)], windows: windowCount)
        let changed = emitted(changes.stdout, prefix: prefix)
        #expect(Set(changed.map(\.pod)) == pods, "every container appears")
        var byPair: [String: [Emitted]] = [:]
        for finding in changed { byPair["\(finding.pod) \(finding.check)", default: []].append(finding) }
        #expect(byPair.count == pods.count * checks.count, "every check of every container at appearance")
        // A finding whose severity did not change: at appearance, then at most once per heartbeat
        // (an `ok` summary carries the window's own numbers, which are no news, so the heartbeat
        // may carry another one); at least one heartbeat in 12 windows (so it is the heartbeat, not
        // a filter that drops everything).
        let most = 1 + (changes.windows + Self.heartbeat - 1) / Self.heartbeat
        var steadyPairs = 0
        var changedPairs: [String] = []
        for (pair, findings) in byPair {
            let severities = findings.map(\.severity)
            if Set(severities).count == 1 {
                steadyPairs += 1
                #expect(findings.count <= most, "\(pair) emitted \(findings.count) times in \(changes.windows) windows")
                #expect(findings.count >= 2, "\(pair): no heartbeat in \(changes.windows) windows")
            } else {
                let firstChange = findings.first { $0.severity != findings[0].severity }
                changedPairs.append(
                    "\(pair): \(severities); first \(findings[0].severity): \(findings[0].summary); then "
                        + "\(firstChange?.severity ?? ""): \(firstChange?.summary ?? "")")
            }
        }
        // Idle containers: the severity of their findings does not change from window to window.
        #expect(changedPairs.isEmpty, "findings of idle containers changed severity: \(changedPairs.prefix(3))")
        #expect(steadyPairs == byPair.count)

        // The record (docs/agent.md): findings and bytes per window in each mode.
        let allBytes = all.stdout.split(separator: "\n").filter { $0.contains(prefix) }.reduce(0) {
            $0 + $1.utf8.count + 1
        }
        let changedBytes = changes.stdout.split(separator: "\n").filter { $0.contains(prefix) }.reduce(0) {
            $0 + $1.utf8.count + 1
        }
        print(
            "emit record: \(pods.count) containers × \(checks.count) checks; --emit all \(allFindings.count) findings "
                + "(\(allBytes) bytes) in \(all.windows) windows; --emit changes --heartbeat \(Self.heartbeat) "
                + "\(changed.count) findings (\(changedBytes) bytes) in \(changes.windows) windows")
    }
}
