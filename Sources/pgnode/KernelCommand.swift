import ArgumentParser
import HostFacts
import PGNodeModel

/// `pgnode kernel`: the node's kernel facts.
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Print the node's kernel facts (version code, cgroups, BTF, headers) as one JSON object.",
        discussion: """
            version_code is computed as libbpf computes it: Ubuntu's /proc/version_signature first, \
            then a Debian 'uname -v', then the release; KERNEL_VERSION(a,b,c) = a*65536 + b*256 + min(c,255).

            Examples:
              pgnode kernel
              pgnode kernel --host-root /host
            """
    )

    @OptionGroup var hostOptions: HostOptions

    func run() throws {
        let facts = KernelFacts.gather(host: hostOptions.host)
        writeStandardOutput(JSONWriter.string(facts.json) + "\n")
    }
}
