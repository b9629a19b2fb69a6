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

/// Where the BTF for CO-RE relocations comes from when the kernel has none (or to override it).
struct BTFOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A BTF file for this kernel, instead of /sys/kernel/btf/vmlinux.", valueName: "path"))
    var btf: String?

    @Option(
        name: .customLong("btf-archive"),
        help: ArgumentHelp(
            "A BTFHub-archive directory (<os id>/<version id>/<arch>/<release>.btf[.tar.xz]), used when the kernel has no BTF.",
            valueName: "dir"))
    var btfArchive: String?

    func validate() throws {
        if let btf, !HostRoot("/").exists(btf) {
            throw ValidationError("--btf '\(btf)' does not exist")
        }
        if let btfArchive, !HostRoot("/").isDirectory(btfArchive) {
            throw ValidationError("--btf-archive '\(btfArchive)' is not a directory")
        }
    }
}

/// `query.latency`, opt-in on `check` and `agent`: the query probe's USDT probes trap at every
/// statement of the followed servers, a cost the database pays.
struct QueryLatencyOptions: ParsableArguments {
    @Flag(
        name: .customLong("query-latency"),
        help: ArgumentHelp(
            "Time every statement from below (PostgreSQL's USDT probes) and split its time by scheduler state "
                + "(query.latency). Costs the database microseconds per statement."))
    var queryLatency = false

    @Flag(
        name: .customLong("query-text"),
        help: "With --query-latency: show the first 200 bytes of the slowest statements' text instead of a hash.")
    var queryText = false

    func validate() throws {
        if queryText && !queryLatency { throw ValidationError("--query-text needs --query-latency") }
    }
}
