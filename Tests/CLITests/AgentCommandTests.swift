import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode agent` run as a process, its stdout and stderr in files.
final class AgentProcess {
    let process: Subprocess
    let directory: String

    init(_ arguments: [String], directory: String, environment: [String: String]? = nil) throws {
        self.directory = directory
        _ = FileManager.default.createFile(atPath: "\(directory)/stdout", contents: nil)
        _ = FileManager.default.createFile(atPath: "\(directory)/stderr", contents: nil)
        process = try Subprocess(
            [TestEnvironment.pgnodeBinary, "agent"] + arguments, environment: environment,
            stdout: .file("\(directory)/stdout"), stderr: .file("\(directory)/stderr"))
    }

    var stdout: String { (try? String(contentsOfFile: "\(directory)/stdout", encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: "\(directory)/stderr", encoding: .utf8)) ?? "" }

    /// The agent's log lines, parsed (a line that is not JSON is kept as a string value).
    var logs: [JSONValue] {
        stderr.split(separator: "\n").map { (try? JSONParser.parse(String($0))) ?? .string(String($0)) }
    }

    /// Waits for a log line whose message is `message`.
    func waitForLog(_ message: String, timeout: Double = 20) -> JSONValue? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = logs.first(where: { $0["message"]?.stringValue == message }) { return line }
            if !process.isRunning { break }
            usleep(50_000)
        }
        return logs.first(where: { $0["message"]?.stringValue == message })
    }

    /// Sends `signal` and waits for the exit status (nil if it did not exit within `timeout`, a
    /// hang guard).
    func stop(_ signal: Int32 = SIGTERM, timeout: Double = 20) -> Int32? {
        process.signal(signal)
        let (status, timedOut) = process.wait(timeout: timeout)
        return timedOut ? nil : status
    }

    deinit {
        process.stop()
    }
}

/// The finding ids in a spool directory's segments, oldest segment first.
func spooledIDs(_ directory: String) throws -> [String] {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("segment-") }
        .sorted()
    return try names.flatMap { name in
        let text = try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
        return try text.split(separator: "\n").dropFirst().map {
            try JSONParser.parse(String($0))["id"]?.stringValue ?? ""
        }
    }
}

/// A copy of a real node's files with no containers on it (Bottlerocket, cgroup v2; its BTF is a
/// stub, so no probe loads): the node-level findings are exactly `quietHostNodeChecks`, whatever
/// runs on the machine that runs the tests (the tuning checks `unavailable`: the copy has none of
/// their sysfs files).
let quietHost = Fixtures.host("bottlerocket")

/// The node-level checks on `quietHost`, sorted.
let quietHostNodeChecks = [
    "bpf.support", "cpu.llc", "kernel.btf", "kernel.clocksource", "kernel.headers", "kernel.mitigations", "kernel.thp",
]

func curl(_ url: String) throws -> (status: String, body: String) {
    let result = try Command.run(["curl", "-s", "-m", "5", "-w", "\n%{http_code}", url])
    let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
}

@Suite("pgnode agent, end to end", .serialized)
struct AgentCommandTests {
    @Test("ships to a Loki receiver, answers /healthz /readyz /metrics, exits 0 on SIGTERM")
    func shipsToLoki() throws {
        let receiver = try Receiver(mode: "loki")
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            [
                "--interval", "1", "--listen", "127.0.0.1:0", "--endpoint", receiver.url(), "--endpoint-format", "loki",
                "--spool-dir", "\(dir)/spool", "--node-name", "e2e-node", "--batch-wait", "0.1",
                "--host-root", quietHost,
            ], directory: dir)
        let serving = try #require(agent.waitForLog("serving /healthz /readyz /metrics"))
        let port = try #require(serving["port"]?.stringValue)
        let base = "http://127.0.0.1:\(port)"
        #expect(agent.waitForLog("agent started") != nil)
        #expect(try curl("\(base)/healthz") == ("200", "ok\n"))
        #expect(try curl("\(base)/readyz") == ("200", "ready\n"))

        // The node-level kernel findings arrive as Loki streams labelled with the node.
        let requests = receiver.wait { !$0.isEmpty }
        let request = try #require(requests.first)
        #expect(request.path == "/loki/api/v1/push")
        #expect(request.gzip)
        let streams = try JSONParser.parse(request.body)["streams"]?.arrayValue ?? []
        let checks = streams.compactMap { $0["stream"]?["check"]?.stringValue }.sorted()
        #expect(checks == quietHostNodeChecks)
        #expect(streams.allSatisfy { $0["stream"]?["node"] == "e2e-node" })

        // Let a few windows pass (each loads and detaches the probes: about a second here):
        // unchanged node findings are not sent again.
        func runs() throws -> Int {
            let body = try curl("\(base)/metrics").body
            let line = body.split(separator: "\n").first { $0.hasPrefix("pgnode_diagnosis_runs_total ") }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        for _ in 0..<100 where try runs() < 2 { usleep(100_000) }
        #expect(try runs() >= 2)
        #expect(receiver.requests().count == 1)
        let metrics = try curl("\(base)/metrics")
        #expect(metrics.status == "200")
        #expect(metrics.body.contains("pgnode_deliveries_total 1\n"))
        #expect(metrics.body.contains("pgnode_delivered_findings_total \(quietHostNodeChecks.count)\n"))
        #expect(metrics.body.contains("pgnode_spool_findings 0\n"))
        #expect(metrics.body.contains("pgnode_findings_total{check=\"kernel.btf\",severity="))

        let stopped = try #require(agent.stop(SIGTERM))
        #expect(stopped == 0)
        #expect(agent.stdout.isEmpty)  // findings went to the receiver, logs to stderr
        #expect(agent.logs.allSatisfy { $0["time"] != nil && $0["level"] != nil && $0["message"] != nil })
        #expect(agent.logs.contains { $0["message"] == "signal received; stopping" && $0["signal"] == "SIGTERM" })
    }

    @Test("without --endpoint: findings as valid NDJSON on stdout, logs as JSON on stderr, SIGINT exits 0")
    func stdoutMode() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            ["--interval", "0.5", "--node-name", "n1", "--host-root", quietHost], directory: dir)
        #expect(agent.waitForLog("agent started") != nil)
        usleep(1_200_000)
        let stopped = try #require(agent.stop(SIGINT))
        #expect(stopped == 0)
        let lines = agent.stdout.split(separator: "\n")
        #expect(lines.count == quietHostNodeChecks.count)  // node findings once; unchanged afterwards
        let validation = try Command.run([TestEnvironment.scriptPath("validate-findings")], stdin: agent.stdout)
        #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
        for line in agent.stderr.split(separator: "\n") {
            #expect((try? JSONParser.parse(String(line)))?["schema"] == nil, "a finding on stderr: \(line)")
        }
    }

    @Test(
        "killed with findings in the spool (SIGKILL), and stopped while the receiver is down: the next run delivers all"
    )
    func spoolSurvivesKill() throws {
        let port = Receiver.freePort()
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = "\(dir)/spool"
        let common = [
            "--interval", "0.5", "--endpoint", "http://127.0.0.1:\(port)", "--spool-dir", spool, "--node-name", "n1",
            "--batch-wait", "0.1", "--connect-timeout", "0.5", "--host-root", quietHost,
        ]
        // Run 1: the receiver is down; wait until the findings are spooled, then kill -9.
        let first = try AgentProcess(common, directory: try Fixtures.temporaryDirectory())
        let n = quietHostNodeChecks.count
        for _ in 0..<200 where (try? spooledIDs(spool).count) ?? 0 < n { usleep(50_000) }
        #expect(try spooledIDs(spool).count == n)
        _ = first.stop(SIGKILL)
        // Run 2: the same, but SIGTERM with a short grace: it gives up delivering and exits 0.
        let second = try AgentProcess(common + ["--shutdown-grace", "1"], directory: try Fixtures.temporaryDirectory())
        #expect(second.waitForLog("spool holds findings from an earlier run; delivering them first") != nil)
        for _ in 0..<200 where (try? spooledIDs(spool).count) ?? 0 < 2 * n { usleep(50_000) }
        // The receiver never comes back during this run: exiting at all (stop's hang guard) means
        // it gave up after the 1 s grace, as it logs.
        let stopped = try #require(second.stop(SIGTERM))
        #expect(stopped == 0)
        #expect(second.logs.contains { $0["message"] == "shutting down with undelivered findings kept in the spool" })
        let waiting = try spooledIDs(spool)
        #expect(waiting.count == 2 * n)
        #expect(Set(waiting).count == 2 * n)

        // Run 3: the receiver is back: everything spooled arrives, in order, then run 3's own findings.
        let receiver = try Receiver(mode: "ndjson", port: port)
        let third = try AgentProcess(common, directory: try Fixtures.temporaryDirectory())
        let requests = receiver.wait {
            $0.flatMap { $0.body.split(separator: "\n") }.count >= 3 * n
        }
        let delivered = try requests.flatMap { request in
            try request.body.split(separator: "\n").map { try JSONParser.parse(String($0))["id"]?.stringValue ?? "" }
        }
        #expect(Array(delivered.prefix(2 * n)) == waiting)
        #expect(delivered.count == 3 * n)
        #expect(Set(delivered).count == 3 * n)
        #expect(third.stop(SIGTERM) == 0)
        #expect(try spooledIDs(spool).isEmpty)
    }

    @Test(
        "usage errors are one line on stderr, exit 64",
        arguments: [
            (["--endpoint", "ftp://x"], "--endpoint must be an http:// or https:// URL"),
            (["--endpoint", "http:///path"], "--endpoint must be an http:// or https:// URL"),
            (["--listen", "localhost:80"], "--listen takes ADDR:PORT"),
            (
                ["--endpoint", "http://x", "--endpoint-cert", "/etc/hostname"],
                "--endpoint-cert and --endpoint-key go together"
            ),
            (["--endpoint-ca", "/etc/hostname"], "--endpoint-ca needs --endpoint"),
            (["--endpoint", "http://x", "--endpoint-format", "splunk"], "endpoint-format"),
            (["--interval", "0"], "--interval must be between"),
            (["--container-deadline", "0"], "--container-deadline must be between"),
            (["--container-deadline", "nan"], "--container-deadline must be between"),
            (["--endpoint", "http://x", "--endpoint-index", "Bad Index"], "--endpoint-index must be"),
        ])
    func usageErrors(arguments: [String], message: String) throws {
        let result = try Command.pgnode(["agent"] + arguments)
        #expect(result.status == 64)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("pgnode: "))
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test("--help shows examples")
    func help() throws {
        let result = try Command.pgnode(["agent", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Examples:"))
        #expect(result.stdout.contains("--endpoint-format"))
        #expect(result.stdout.contains("--spool-dir"))
    }
}
