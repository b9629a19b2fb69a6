import ArgumentParser
import HostFacts
import PGNodeModel

/// Options shared by every subcommand that reads the node.
struct HostOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The directory that holds the node's root file system (/host in the DaemonSet).",
            valueName: "path"))
    var hostRoot: String = "/"

    var host: HostRoot { HostRoot(hostRoot) }

    func validate() throws {
        guard hostRoot.hasPrefix("/") else {
            throw ValidationError("--host-root must be an absolute path, not '\(hostRoot)'")
        }
        guard HostRoot(hostRoot).isDirectory("/") else {
            throw ValidationError("--host-root '\(hostRoot)' is not a directory")
        }
    }
}

/// How findings are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case json
    case text
}

extension Severity: ExpressibleByArgument {
    public static var allValueStrings: [String] { ["info", "warning", "critical"] }
}
