import Foundation
import Testing

/// What the machine running the tests can do, and how tests that need more must behave.
///
/// Tests that need root, BPF or a container runtime are real tests: outside CI they are
/// skipped when the machine cannot run them; with `CI=true` they *fail* instead, so that a CI
/// run can never pass by skipping them.
public enum TestEnvironment {
    /// Whether the tests run in CI (`CI=true`).
    public static var isCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"]?.lowercased()
        return value == "true" || value == "1"
    }

    /// Whether the tests run as root.
    public static var isRoot: Bool { geteuid() == 0 }

    /// The package's root directory (the folder holding Package.swift).
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    /// The `pgnode` binary under test: `$PGNODE_BIN`, else the debug build of this package.
    public static var pgnodeBinary: String {
        if let path = ProcessInfo.processInfo.environment["PGNODE_BIN"], !path.isEmpty { return path }
        return packageRoot.appendingPathComponent(".build/debug/pgnode").path
    }

    /// The path of a script in the package's `scripts/` folder.
    public static func scriptPath(_ name: String) -> String {
        packageRoot.appendingPathComponent("scripts/\(name)").path
    }

    /// Whether a test needing `what` can run: true when `available`; otherwise false, and in CI
    /// the missing requirement is recorded as a test failure rather than a skip.
    public static func require(
        _ available: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Bool {
        if available { return true }
        if isCI {
            Issue.record("required in CI but unavailable: \(what)", sourceLocation: sourceLocation)
        }
        return false
    }

    /// `require(isRoot, "root")`.
    public static func requireRoot(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        require(isRoot, "root privileges", sourceLocation: sourceLocation)
    }

    /// Whether tests that need root may run: always in CI (where they then fail if not root),
    /// otherwise only as root. Use with `.enabled(if:)`.
    public static var privilegedTestsEnabled: Bool { isCI || isRoot }
}

/// The result of running a command.
public struct CommandResult: Sendable {
    /// The exit status (or 128 + signal).
    public var status: Int32
    /// What it wrote on stdout.
    public var stdout: String
    /// What it wrote on stderr.
    public var stderr: String
}

/// Runs commands for tests.
public enum Command {
    /// Runs `arguments` (the first is an absolute path or a name looked up in PATH) and waits,
    /// at most `timeout` seconds: past that its process group is killed, and the result has
    /// status 137 and says so on stderr (a hung child fails its test instead of hanging CI).
    @discardableResult
    public static func run(
        _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil, timeout: Double = 600
    ) throws -> CommandResult {
        let child = try Subprocess(arguments, environment: environment, stdin: stdin ?? "")
        let (status, timedOut) = child.wait(timeout: timeout)
        var stderr = child.standardError
        if timedOut { stderr += "\n[test support] \(arguments.joined(separator: " ")) killed after \(timeout) s" }
        return CommandResult(status: status, stdout: child.standardOutput, stderr: stderr)
    }

    /// Runs the `pgnode` binary under test with `arguments`.
    @discardableResult
    public static func pgnode(_ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
        try run([TestEnvironment.pgnodeBinary] + arguments, environment: environment)
    }
}

/// Fixture trees kept beside the tests.
public enum Fixtures {
    /// The `Fixtures/hosts/<name>` host root of the HostFacts tests.
    public static func host(_ name: String) -> String {
        TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/hosts/\(name)").path
    }

    /// The `Fixtures/node/<name>` host root of the node tuning checks (see its README).
    public static func node(_ name: String) -> String {
        TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/node/\(name)").path
    }

    /// A new empty temporary directory; the caller removes it.
    public static func temporaryDirectory(_ prefix: String = "pgnode-test") throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else {
            throw CocoaError(.fileWriteUnknown)
        }
        return String(cString: result)
    }
}

/// How many BPF links process `pid` holds open (a link's fdinfo has `link_type:`).
public func bpfLinkCount(ofProcess pid: Int32) -> Int {
    let dir = "/proc/\(pid)/fdinfo"
    var count = 0
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let text = try? String(contentsOfFile: "\(dir)/\(entry)", encoding: .utf8) else { continue }
        if text.contains("link_type:") { count += 1 }
    }
    return count
}

/// The names of the BPF programs that process `pid` holds attached through a link (the prog_id
/// of each link's fdinfo, named by `bpftool prog show`): a link exists once its program is
/// attached. Empty when it holds none or bpftool cannot tell.
public func bpfLinkedProgramNames(ofProcess pid: Int32) -> Set<String> {
    let dir = "/proc/\(pid)/fdinfo"
    var ids: Set<Int> = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let text = try? String(contentsOfFile: "\(dir)/\(entry)", encoding: .utf8), text.contains("link_type:")
        else { continue }
        for line in text.split(separator: "\n") where line.hasPrefix("prog_id:") {
            if let id = Int(line.dropFirst("prog_id:".count).trimmingCharacters(in: .whitespaces)) { ids.insert(id) }
        }
    }
    guard !ids.isEmpty, let result = try? Command.run(["bpftool", "prog", "show", "--json"]), result.status == 0,
        let programs = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
    else { return [] }
    return Set(
        programs.compactMap { program in
            guard let id = program["id"] as? Int, ids.contains(id) else { return nil }
            return program["name"] as? String
        })
}
