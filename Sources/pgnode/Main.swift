import Agent
import ArgumentParser
import Glibc
import PGNodeModel

/// The `pgnode` command: a per-node diagnostic agent for PostgreSQL in containers.
@main
struct PGNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgnode",
        abstract: "Diagnose PostgreSQL containers from below: cgroups, /proc and the kernel's tracepoints.",
        discussion: """
            pgnode resolves PostgreSQL containers on this node to their cgroups, pod and processes, \
            looks at what the kernel sees, and reports findings as JSON (one per line) or as text.

            Examples:
              pgnode --container 3f2a9c1b7d4e            # diagnose one container (check is the default)
              pgnode check --duration 0 --format text    # static checks only, for a person
              pgnode resolve 3f2a9c1b7d4e                # a container's pod, cgroups and PostgreSQL
              pgnode kernel                              # the node's kernel facts as JSON
              pgnode agent --listen :9560                # continuous diagnosis, NDJSON on stdout
            """,
        version: PGNodeVersion.current,
        subcommands: [
            CheckCommand.self, ResolveCommand.self, KernelCommand.self, AgentCommand.self, BPFStartupCommand.self,
        ],
        defaultSubcommand: CheckCommand.self
    )

    /// Parses the arguments; a usage error becomes one line on stderr naming the bad argument.
    static func main() async {
        var settings: EnvironmentSettings.Merged?
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            // `pgnode agent` also takes its flags from PGNODE_<FLAG> variables (EnvironmentSettings).
            if arguments.first == AgentCommand.configuration.commandName {
                let merged = try EnvironmentSettings(toolInfo: AgentCommand._dumpHelp()).merged(
                    commandLine: Array(arguments.dropFirst()), environment: environmentVariables())
                arguments = [arguments[0]] + merged.arguments
                settings = merged
            }
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as EnvironmentSettingsError {
            writeStandardError("pgnode: \(failure.message)\n")
            Glibc.exit(64)
        } catch let exit as PGNodeExit {
            Glibc.exit(exit.code)
        } catch let failure as ResolutionFailure {
            Glibc.exit(failure.report())
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version: ArgumentParser prints them.
                self.exit(withError: error)
            }
            let message = fullMessage(for: error)
            let first = message.split(separator: "\n").first.map(String.init) ?? "\(error)"
            var line = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
            if let variable = settings?.variable(blamedBy: line) { line += " (set by \(variable))" }
            writeStandardError("pgnode: \(line)\n")
            Glibc.exit(code.rawValue)
        }
    }
}

/// Ends the process with `code` after the command has said what it needed to.
struct PGNodeExit: Error {
    let code: Int32
}

/// Writes to stderr, unbuffered.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes to stdout and flushes.
func writeStandardOutput(_ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n <= 0 {
            if n < 0 && errno == EINTR { continue }
            return
        }
        offset += n
    }
}
