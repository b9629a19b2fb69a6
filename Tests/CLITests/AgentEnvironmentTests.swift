import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode agent` configured by PGNODE_<FLAG> variables, as the DaemonSet's ConfigMap does it.
@Suite("pgnode agent from environment variables", .serialized)
struct AgentEnvironmentTests {
    /// The long flags of `pgnode agent --help` that take a variable (not --help, --version, --no-X).
    func helpFlags() throws -> [String] {
        let help = try Command.pgnode(["agent", "--help"]).stdout
        let options = help.components(separatedBy: "OPTIONS:").last ?? ""
        let pattern = try NSRegularExpression(pattern: "(?<![\\w-])--([a-z][a-z0-9-]*)")
        let range = NSRange(options.startIndex..., in: options)
        var names: [String] = []
        for match in pattern.matches(in: options, range: range) {
            let name = String(options[Range(match.range(at: 1), in: options)!])
            if ["help", "version"].contains(name) || name.hasPrefix("no-") || names.contains(name) { continue }
            names.append(name)
        }
        return names
    }

    func variable(_ flag: String) -> String { "PGNODE_" + flag.uppercased().replacingOccurrences(of: "-", with: "_") }

    @Test("every flag's variable is listed in --help and in docs/agent.md")
    func listed() throws {
        let flags = try helpFlags()
        #expect(flags.contains("endpoint-token-file") && flags.contains("gzip") && flags.contains("host-root"))
        let help = try Command.pgnode(["agent", "--help"]).stdout
        let docs = try String(
            contentsOfFile: TestEnvironment.packageRoot.appendingPathComponent("docs/agent.md").path, encoding: .utf8)
        for flag in flags {
            #expect(help.contains(variable(flag)), "--help does not list \(variable(flag))")
            #expect(docs.contains("`\(variable(flag))`"), "docs/agent.md does not list \(variable(flag))")
        }
    }

    @Test("the DaemonSet's case: settings from variables, an empty PGNODE_ENDPOINT is stdout, the flag wins")
    func configMapSettings() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            ["--interval", "0.5", "--endpoint-token-file", "/nonexistent/token"], directory: dir,
            environment: [
                "PGNODE_INTERVAL": "0", "PGNODE_ENDPOINT": "", "PGNODE_ENDPOINT_FORMAT": "ndjson",
                "PGNODE_HOST_ROOT": quietHost, "PGNODE_NODE_NAME": "env-node", "PGNODE_LISTEN": "127.0.0.1:0",
                "PGNODE_LOG_LEVEL": "info", "PGNODE_NOT_A_FLAG": "x",
            ])
        let serving = try #require(agent.waitForLog("serving /healthz /readyz /metrics"))
        #expect(serving["address"] == "127.0.0.1")
        let started = try #require(agent.waitForLog("agent started"))
        #expect(started["interval_s"] == "0.5")  // --interval 0.5 won over PGNODE_INTERVAL=0
        #expect(
            agent.logs.contains {
                $0["message"] == "environment variable names no agent flag; ignored"
                    && $0["variable"] == "PGNODE_NOT_A_FLAG"
            })
        #expect(agent.stop(SIGTERM) == 0)
        let findings = agent.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        #expect(findings.count == quietHostNodeChecks.count)
        #expect(findings.allSatisfy { $0["resource"]?["k8s.node.name"] == "env-node" })
    }

    @Test("with an endpoint, an absent token file means no token, said once; findings are delivered")
    func absentTokenFile() throws {
        let receiver = try Receiver(mode: "ndjson")
        defer { receiver.stop() }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            [], directory: dir,
            environment: [
                "PGNODE_ENDPOINT": receiver.url(), "PGNODE_ENDPOINT_TOKEN_FILE": "\(dir)/secret/token",
                "PGNODE_SPOOL_DIR": "\(dir)/spool", "PGNODE_INTERVAL": "0.5", "PGNODE_HOST_ROOT": quietHost,
                "PGNODE_BATCH_WAIT": "0.1", "PGNODE_GZIP": "false",
            ])
        let requests = receiver.wait { !$0.isEmpty }
        let request = try #require(requests.first)
        #expect(request.headers["authorization"] == nil)
        #expect(!request.gzip)  // PGNODE_GZIP=false is --no-gzip
        #expect(agent.stop(SIGTERM) == 0)
        let said = agent.logs.filter { $0["message"] == "endpoint token file absent; requests carry no token" }
        #expect(said.count == 1)
        #expect(said.first?["path"]?.stringValue == "\(dir)/secret/token")
    }

    @Test(
        "a bad value in a variable: a usage error naming the variable, exit 64",
        arguments: [
            (
                ["PGNODE_INTERVAL": "0"],
                "--interval must be between 0.1 and 86400.0 seconds, not 0.0 (set by PGNODE_INTERVAL)"
            ),
            (["PGNODE_INTERVAL": "soon"], "(set by PGNODE_INTERVAL)"),
            (["PGNODE_GZIP": "maybe"], "PGNODE_GZIP must be true or false (or 1/0, yes/no, on/off), not 'maybe'"),
            (
                ["PGNODE_ENDPOINT": "ftp://x"],
                "--endpoint must be an http:// or https:// URL, not 'ftp://x' (set by PGNODE_ENDPOINT)"
            ),
        ])
    func badValues(environment: [String: String], message: String) throws {
        let result = try Command.pgnode(["agent", "--host-root", quietHost], environment: environment)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("pgnode: "))
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test("other subcommands do not read PGNODE_ variables")
    func onlyAgent() throws {
        let result = try Command.pgnode(["kernel"], environment: ["PGNODE_INTERVAL": "0", "PGNODE_GZIP": "maybe"])
        #expect(result.status == 0)
    }
}
