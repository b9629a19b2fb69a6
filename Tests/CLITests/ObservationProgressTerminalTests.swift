import Foundation
import TestSupport
import Testing

/// `pgnode check`'s progress line through a real pseudo-terminal (`script` of util-linux runs
/// pgnode on a pty: stdout and stderr both a terminal), on a fixture host with no containers.
@Suite(
    "pgnode check's progress line on a terminal",
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script (util-linux)"))
struct ObservationProgressTerminalTests {
    static let line = "observing the node for 1 s… Ctrl-C to stop early"

    /// What the terminal received from `pgnode check --host-root quietHost --duration 1` + `arguments`.
    func onTerminal(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        let command =
            ([TestEnvironment.pgnodeBinary, "check", "--host-root", quietHost, "--duration", "1"] + arguments)
            .map { "'\($0)'" }.joined(separator: " ")
        return try Command.run(["/usr/bin/script", "-qec", command, "/dev/null"], environment: environment)
    }

    @Test("on a terminal: the line, dim, then erased before the findings")
    func shown() throws {
        let result = try onTerminal([], environment: ["NO_COLOR": ""])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("\u{1B}[2m\(Self.line)\u{1B}[0m\r\u{1B}[2K"), "\(result.stdout)")
        #expect(result.stdout.contains("kernel.btf"))
    }

    @Test("NO_COLOR: the line plain and ended with a newline; no escape sequence anywhere")
    func noColour() throws {
        let result = try onTerminal(["--format", "text"], environment: ["NO_COLOR": "1"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(Self.line + "\r\n"), "\(result.stdout)")  // the tty maps \n to \r\n
        #expect(!result.stdout.contains("\u{1B}"))
    }

    @Test("--format json on a terminal: no line")
    func json() throws {
        let result = try onTerminal(["--format", "json"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("\"kernel.btf\""))
        #expect(!result.stdout.contains("observing"))
    }

    @Test("not a terminal (pipes), even with --format text: no line")
    func notTerminal() throws {
        let result = try Command.pgnode(["check", "--host-root", quietHost, "--duration", "1", "--format", "text"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("kernel.btf"))
        #expect(!result.stderr.contains("observing") && !result.stdout.contains("observing"))
    }
}
