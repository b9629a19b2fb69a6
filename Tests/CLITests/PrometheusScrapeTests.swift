import Foundation
import PGNodeModel
import TestSupport
import Testing

/// A real Prometheus server (Debian's `prometheus`, installed by scripts/setup) scraping a running
/// `pgnode agent` on this node with a real PostgreSQL container: the target is up, `promtool check
/// metrics` finds nothing in the scrape, PromQL returns the container's per-pod series, and they
/// go when the container goes. The example alert rules in docs/agent.md pass `promtool check
/// rules` and load into that server.
/// docs/agent.md lost its example rules.
struct MissingRules: Error, CustomStringConvertible {
    var description: String { "docs/agent.md has no ```yaml block after the line naming PrometheusScrapeTests" }
}

@Suite("A real Prometheus scrapes pgnode agent", .serialized)
struct PrometheusScrapeTests {
    static let prometheus = "/usr/bin/prometheus"
    static let promtool = "/usr/bin/promtool"

    /// Every check a PostgreSQL container gets.
    static let containerChecks: Set<String> = [
        "shm.size", "memory.limit", "shm.enospc", "memory.reclaim", "blkio.noise", "writeback.throttle",
    ]

    var toolsInstalled: Bool {
        TestEnvironment.require(
            FileManager.default.isExecutableFile(atPath: Self.prometheus)
                && FileManager.default.isExecutableFile(atPath: Self.promtool),
            "prometheus and promtool (scripts/setup installs Debian's prometheus)")
    }

    /// The first fenced YAML block after the line of docs/agent.md that names this suite: the
    /// example alert rules, taken from the doc so that the doc cannot drift from what is checked.
    static func documentedRules() throws -> String {
        let doc = try String(
            contentsOfFile: TestEnvironment.packageRoot.appendingPathComponent("docs/agent.md").path, encoding: .utf8)
        let lines = doc.components(separatedBy: "\n")
        guard let mention = lines.firstIndex(where: { $0.contains("PrometheusScrapeTests") }),
            let open = lines[mention...].firstIndex(of: "```yaml"),
            let close = lines[(open + 1)...].firstIndex(of: "```")
        else { throw MissingRules() }
        return lines[(open + 1)..<close].joined(separator: "\n") + "\n"
    }

    /// GET `url` with curl (`-G --data-urlencode` for each of `query`), as parsed JSON.
    func getJSON(_ url: String, query: [String] = []) throws -> [String: Any]? {
        var arguments = ["curl", "-s", "-m", "5", "-G", url]
        for item in query { arguments += ["--data-urlencode", item] }
        let result = try Command.run(arguments)
        guard result.status == 0, let data = result.stdout.data(using: .utf8) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// The series of an instant PromQL query: each one's labels.
    func query(_ base: String, _ promql: String) throws -> [[String: String]] {
        guard let answer = try getJSON("\(base)/api/v1/query", query: ["query=\(promql)"]),
            answer["status"] as? String == "success",
            let data = answer["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { return [] }
        return result.compactMap { $0["metric"] as? [String: String] }
    }

    /// Polls `condition` every 0.5 s; `timeout` is a hang guard, not a bound on speed.
    func waitUntil(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(500_000)
        }
        return try condition()
    }

    @Test("the alert rules in docs/agent.md pass promtool check rules")
    func documentedRulesAreValid() throws {
        guard toolsInstalled else { return }
        let directory = try Fixtures.temporaryDirectory("pgnode-rules")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rules = try Self.documentedRules()
        #expect(rules.contains("pgnode_finding_severity"))
        try rules.write(toFile: "\(directory)/rules.yml", atomically: true, encoding: .utf8)
        let result = try Command.run([Self.promtool, "check", "rules", "\(directory)/rules.yml"], timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("SUCCESS: 2 rules found"), "\(result.stdout)")
    }

    @Test("target up; promtool check metrics clean; PromQL returns the container's series, gone when it goes")
    func scrape() throws {
        guard TestEnvironment.requireRoot(), Containers.available(), toolsInstalled else { return }
        let directory = try Fixtures.temporaryDirectory("pgnode-prometheus")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = PostgresContainerOptions()
        options.podName = "prom-\(UUID().uuidString.prefix(8).lowercased())"
        let container = try Containers.start("prom", options: options)
        var removed = false
        defer { if !removed { Containers.remove(container.name) } }

        let agent = try AgentProcess(
            ["--interval", "2", "--listen", "127.0.0.1:0", "--node-name", "prometheus-node"], directory: directory)
        defer { _ = agent.stop(SIGKILL) }
        let serving = try #require(agent.waitForLog("serving /healthz /readyz /metrics"), "\(agent.stderr)")
        let agentPort = try #require(serving["port"]?.stringValue)
        let metricsURL = "http://127.0.0.1:\(agentPort)/metrics"
        let podSelector = "pod=\"\(options.podName)\""

        // The agent has diagnosed the container once (hang guard 120 s).
        #expect(
            try waitUntil(timeout: 120) {
                try curl(metricsURL).body.split(separator: "\n").contains {
                    $0.hasPrefix("pgnode_finding_severity{") && $0.contains(podSelector)
                }
            },
            "no per-pod series on /metrics: \(agent.stderr)")

        // promtool check metrics on a real scrape: exit 0 and not a word.
        let scrape = try curl(metricsURL)
        #expect(scrape.status == "200")
        #expect(scrape.body.contains(podSelector))
        let lint = try Command.run([Self.promtool, "check", "metrics"], stdin: scrape.body, timeout: 60)
        #expect(lint.status == 0, "\(lint.stdout)\(lint.stderr)")
        #expect(lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout)\(lint.stderr)")

        // A real Prometheus scraping the agent every second, with the documented rules loaded.
        let prometheusPort = Receiver.freePort()
        try Self.documentedRules().write(toFile: "\(directory)/rules.yml", atomically: true, encoding: .utf8)
        let config = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files:
              - \(directory)/rules.yml
            scrape_configs:
              - job_name: pgnode
                static_configs:
                  - targets: ['127.0.0.1:\(agentPort)']

            """
        try config.write(toFile: "\(directory)/prometheus.yml", atomically: true, encoding: .utf8)
        let check = try Command.run([Self.promtool, "check", "config", "\(directory)/prometheus.yml"], timeout: 60)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let server = try Subprocess(
            [
                Self.prometheus, "--config.file=\(directory)/prometheus.yml",
                "--storage.tsdb.path=\(directory)/data", "--web.listen-address=127.0.0.1:\(prometheusPort)",
            ], stdout: .file("\(directory)/prometheus.log"), stderr: .file("\(directory)/prometheus.log"))
        defer { server.stop() }
        let base = "http://127.0.0.1:\(prometheusPort)"
        func log() -> String { (try? String(contentsOfFile: "\(directory)/prometheus.log", encoding: .utf8)) ?? "" }

        // The target is up (hang guard 120 s).
        func targetHealth() throws -> [String] {
            guard let answer = try getJSON("\(base)/api/v1/targets"), let data = answer["data"] as? [String: Any],
                let targets = data["activeTargets"] as? [[String: Any]]
            else { return [] }
            return targets.compactMap { $0["health"] as? String }
        }
        #expect(
            try waitUntil(timeout: 120) { try targetHealth() == ["up"] },
            "target: \((try? targetHealth()) ?? []) \(log())")

        // The container's series, as PromQL returns them.
        let severityQuery = "pgnode_finding_severity{\(podSelector)}"
        let unavailableQuery = "pgnode_check_unavailable{\(podSelector)} == 1"
        func checksSeen() throws -> Set<String> {
            Set(try (query(base, severityQuery) + query(base, unavailableQuery)).compactMap { $0["check"] })
        }
        #expect(
            try waitUntil(timeout: 120) { try checksSeen().isSuperset(of: Self.containerChecks) },
            "checks: \((try? checksSeen()) ?? [])")
        let series = try query(base, severityQuery)
        #expect(series.contains { $0["check"] == "shm.size" } && series.contains { $0["check"] == "memory.limit" })
        for labels in series {
            #expect(labels["namespace"] == options.namespace, "\(labels)")
            #expect(labels["container"] == options.containerName, "\(labels)")
            #expect(labels["job"] == "pgnode", "\(labels)")
            #expect(labels["pid"] == nil)
        }
        #expect(try query(base, "pgnode_shm_size_bytes{\(podSelector)} > 0").count == 1)
        #expect(
            try query(base, "pgnode_blkio_requests_total{\(podSelector)}").compactMap { $0["kind"] }.sorted() == [
                "noise", "own",
            ])
        #expect(try query(base, "process_resident_memory_bytes{job=\"pgnode\"} > 0").count == 1)
        #expect(try query(base, "process_open_fds{job=\"pgnode\"} > 0").count == 1)
        // The documented rules were loaded by the server too.
        let rules = try getJSON("\(base)/api/v1/rules")
        #expect(rules?["status"] as? String == "success")
        #expect("\(rules ?? [:])".contains("PostgresPodFinding"))

        // The container goes: the agent removes its series, and Prometheus marks them stale.
        Containers.remove(container.name)
        removed = true
        #expect(
            try waitUntil(timeout: 120) { !(try curl(metricsURL).body.contains(podSelector)) },
            "the gone container's series are still on /metrics: \(agent.stderr)")
        #expect(
            try waitUntil(timeout: 120) { try query(base, severityQuery).isEmpty },
            "Prometheus still returns \((try? query(base, severityQuery)) ?? [])")
        #expect(try targetHealth() == ["up"])

        server.signal(SIGTERM)
        #expect(server.wait(timeout: 60).status == 0, "\(log())")
        #expect(agent.stop(SIGTERM) == 0, "\(agent.stderr)")
    }
}
