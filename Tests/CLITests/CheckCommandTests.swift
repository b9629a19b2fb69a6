import Foundation
import PGNodeModel
import TestSupport
import Testing

@Suite("pgnode check: the command-line contract")
struct CheckCommandTests {
    func findings(_ stdout: String) throws -> [JSONValue] {
        try stdout.split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }

    @Test("--duration 0 on this machine prints NDJSON that validates against the published schema")
    func staticRunValidates() throws {
        let result = try Command.pgnode(["check", "--duration", "0"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = try findings(result.stdout)
        let checks = lines.compactMap { $0["check"]?.stringValue }
        #expect(checks.contains("kernel.btf"))
        #expect(checks.contains("kernel.headers"))
        let btf = try #require(lines.first { $0["check"] == "kernel.btf" })
        #expect(btf["severity"] == "ok")
        let headers = try #require(lines.first { $0["check"] == "kernel.headers" })
        #expect(headers["severity"] == "info")  // this machine has no /lib/modules
        let validation = try Command.run(
            ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: result.stdout)
        #expect(validation.status == 0, "\(validation.stderr)")
        #expect(validation.stdout.contains("0 invalid"))
    }

    @Test("the node tuning checks on this machine: THP, the measured clock, mitigations, no PMU")
    func tuningChecks() throws {
        let result = try Command.pgnode(["check", "--duration", "0", "--format", "json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        var found: [String: JSONValue] = [:]
        for finding in try findings(result.stdout) where finding["resource"]?["container.id"] == nil {
            if let check = finding["check"]?.stringValue { found[check] = finding }
        }
        let thp = try #require(found["kernel.thp"])
        #expect(thp["severity"] != "unavailable", "\(JSONWriter.string(thp))")
        #expect(thp["evidence"]?["enabled"]?.stringValue != nil)
        let clock = try #require(found["kernel.clocksource"])
        let current = try #require(clock["evidence"]?["current"]?.stringValue)
        if current == "tsc" { #expect(clock["severity"] == "ok") }
        // The measurement is evidence: present and positive, its value never asserted.
        let ns: Double? =
            switch clock["evidence"]?["clock_gettime_ns"] {
            case .double(let value)?: value
            case .int(let value)?: Double(value)
            default: nil
            }
        #expect((ns ?? 0) > 0, "no positive clock_gettime_ns: \(JSONWriter.string(clock))")
        let mitigations = try #require(found["kernel.mitigations"])
        #expect(["ok", "info"].contains(mitigations["severity"]?.stringValue ?? ""))
        let llc = try #require(found["cpu.llc"])
        #expect(llc["severity"] == "unavailable")
        let pmu = FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/cpu")
        #expect(llc["evidence"]?["reason"]?.stringValue == (pmu ? "not implemented" : "no hardware PMU"))
    }

    @Test("the default subcommand is check")
    func defaultSubcommand() throws {
        let result = try Command.pgnode(["--duration", "0", "--format", "json"])
        #expect(result.status == 0)
        #expect(try findings(result.stdout).count >= 2)
    }

    @Test("--node-name, then NODE_NAME, then the host's hostname fill k8s.node.name")
    func nodeName() throws {
        let explicit = try Command.pgnode(
            ["--duration", "0", "--node-name", "node-x"], environment: ["NODE_NAME": "env-node"])
        #expect(try findings(explicit.stdout).allSatisfy { $0["resource"]?["k8s.node.name"] == "node-x" })
        let fromEnv = try Command.pgnode(["--duration", "0"], environment: ["NODE_NAME": "env-node"])
        #expect(try findings(fromEnv.stdout).allSatisfy { $0["resource"]?["k8s.node.name"] == "env-node" })
        let fromHost = try Command.pgnode(
            ["--duration", "0", "--host-root", Fixtures.host("rhel8")], environment: ["NODE_NAME": ""])
        #expect(try findings(fromHost.stdout).allSatisfy { $0["resource"]?["k8s.node.name"] == "node-rhel8" })
    }

    @Test("--fail-on: exit 1 when a finding reaches the severity, else 0")
    func failOn() throws {
        let noBTF = Fixtures.host("debian10")
        let critical = try Command.pgnode(["--duration", "0", "--host-root", noBTF, "--fail-on", "critical"])
        #expect(critical.status == 1)
        #expect(try findings(critical.stdout).contains { $0["severity"] == "critical" })
        let fine = Fixtures.host("rhel8")  // BTF and headers present: everything ok
        #expect(try Command.pgnode(["--duration", "0", "--host-root", fine, "--fail-on", "info"]).status == 0)
        let info = Fixtures.host("bottlerocket")  // no headers: info
        #expect(try Command.pgnode(["--duration", "0", "--host-root", info, "--fail-on", "info"]).status == 1)
        #expect(try Command.pgnode(["--duration", "0", "--host-root", info, "--fail-on", "warning"]).status == 0)
    }

    @Test(
        "usage errors: one line on stderr naming the bad argument, non-zero exit",
        arguments: [
            (["--bogus"], "--bogus"),
            (["--format", "yaml"], "yaml"),
            (["--duration", "abc"], "--duration"),
            (["--duration", "100000"], "--duration"),
            (["--fail-on", "ok"], "--fail-on"),
            (["--fail-on", "fatal"], "fatal"),
            (["--host-root", "relative/path"], "--host-root"),
            (["--host-root", "/nonexistent/pgnode"], "--host-root"),
            (["--btf", "/nonexistent.btf"], "--btf"),
            (["kernel", "--bogus"], "--bogus"),
        ] as [([String], String)]
    )
    func usageErrors(arguments: [String], named: String) throws {
        let result = try Command.pgnode(arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(named), "stderr: \(result.stderr)")
        #expect(result.stderr.hasPrefix("pgnode: "))
    }

    @Test("--version and --help with examples for every subcommand")
    func help() throws {
        let version = try Command.pgnode(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.trimmingWhitespaceForTest() == PGNodeVersion.current)
        for sub in [[], ["check"], ["kernel"]] {
            let help = try Command.pgnode(sub + ["--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("Examples:"), "help of \(sub)")
            if !sub.isEmpty { #expect(help.stdout.contains("--host-root"), "help of \(sub)") }
        }
    }

    @Test("text format groups node findings under a heading")
    func textFormat() throws {
        let result = try Command.pgnode(["--duration", "0", "--format", "text", "--node-name", "n7"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("node n7\n"))
        #expect(result.stdout.contains("kernel.btf"))
        #expect(!result.stdout.contains("\u{1B}["))  // not a terminal: no colour
    }
}

@Suite("pgnode kernel on fixture host roots")
struct KernelFixtureCommandTests {
    @Test(
        "version codes of real nodes",
        arguments: [("debian10", 267_263), ("ubuntu-focal-5.4", 328_712), ("rhel8", 266_752), ("flatcar", 394_806)])
    func versionCode(host: String, code: Int64) throws {
        let result = try Command.pgnode(["kernel", "--host-root", Fixtures.host(host)])
        #expect(result.status == 0)
        let json = try JSONParser.parse(result.stdout)
        #expect(json["version_code"]?.intValue == code)
    }

    @Test("this machine: hybrid cgroups, BTF present, no headers")
    func thisMachine() throws {
        let json = try JSONParser.parse(try Command.pgnode(["kernel"]).stdout)
        #expect(json["cgroup_mode"] == "hybrid")
        #expect(json["btf"]?["present"] == .bool(true))
        #expect(json["headers"]?["found"] == .array([]))
        #expect(json["cgroup"]?["v1_controllers"]?["memory"] == "/sys/fs/cgroup/memory")
        #expect(json["cgroup"]?["v2_mount_point"] == "/sys/fs/cgroup/unified")
    }
}

extension String {
    func trimmingWhitespaceForTest() -> String {
        var s = self
        while s.last?.isWhitespace == true { s.removeLast() }
        while s.first?.isWhitespace == true { s.removeFirst() }
        return s
    }
}
