import ArgumentParser
import HostFacts
import PGNodeModel

/// `pgnode kernel`: the node's kernel facts, and fixups for header-based BPF tools.
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Print the node's kernel facts (version code, cgroups, BTF, headers) as one JSON object.",
        discussion: """
            version_code is computed as libbpf computes it: Ubuntu's /proc/version_signature first, \
            then a Debian 'uname -v', then the release; KERNEL_VERSION(a,b,c) = a*65536 + b*256 + min(c,255).

            The fixups serve header-based BPF tools (BCC) running beside pgnode; pgnode itself needs \
            none of them (its probes are CO-RE).

            Examples:
              pgnode kernel
              pgnode kernel --host-root /host
              set -a; eval "$(pgnode kernel --host-root /host --bcc-env)"; set +a
              pgnode kernel --host-root /host --link-headers
              pgnode kernel --set-version legacy_probe.o
            """
    )

    @OptionGroup var hostOptions: HostOptions

    @Flag(
        name: .customLong("bcc-env"),
        help: "Print BCC_LINUX_VERSION_CODE and BCC_KERNEL_SOURCE for this node, ready to eval.")
    var bccEnv = false

    @Flag(
        name: .customLong("link-headers"),
        help: "Create /lib/modules/<node release>/build pointing at the node's headers under the host root.")
    var linkHeaders = false

    @Option(
        name: .customLong("set-version"),
        help: ArgumentHelp(
            "Rewrite the 'version' section of a legacy BPF object to this kernel's code (backup: FILE.orig).",
            valueName: "file.o"))
    var setVersion: String?

    /// Where --link-headers creates the link (tests point it elsewhere).
    @Option(name: .customLong("modules-dir"), help: .hidden)
    var modulesDir = "/lib/modules"

    func validate() throws {
        if [bccEnv, linkHeaders, setVersion != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--bcc-env, --link-headers and --set-version cannot be combined")
        }
    }

    func run() throws {
        let host = hostOptions.host
        let facts = KernelFacts.gather(host: host)
        if bccEnv {
            guard let version = facts.kernelVersion else {
                writeStandardError(
                    "pgnode: the node's kernel version is unknown (\(facts.problems.joined(separator: "; ")))\n")
                throw PGNodeExit(code: 1)
            }
            let headers = facts.headers.first.map { host.resolve($0) }
            if headers == nil {
                writeStandardError(
                    "pgnode: no kernel headers for \(facts.release ?? "this kernel") under \(host.path) (searched "
                        + "\(facts.headerCandidates.joined(separator: ", "))); BCC_KERNEL_SOURCE left unset\n")
            }
            writeStandardOutput(KernelFixups.bccEnvironment(versionCode: version.code, headersPath: headers))
            return
        }
        if linkHeaders {
            try runLinkHeaders(host: host, facts: facts)
            return
        }
        if let setVersion {
            guard let version = facts.kernelVersion else {
                writeStandardError("pgnode: the node's kernel version is unknown; nothing written\n")
                throw PGNodeExit(code: 1)
            }
            do {
                let result = try KernelFixups.setVersion(path: setVersion, code: UInt32(version.code))
                writeStandardOutput(
                    "\(setVersion): version \(result.previous) -> \(result.current) (\(version)); original kept in "
                        + "\(result.backup)\n")
            } catch {
                writeStandardError("pgnode: \(error.description); nothing written\n")
                throw PGNodeExit(code: 1)
            }
            return
        }
        writeStandardOutput(JSONWriter.string(facts.json) + "\n")
    }

    private func runLinkHeaders(host: HostRoot, facts: KernelFacts) throws {
        guard let release = facts.release else {
            writeStandardError("pgnode: \(KernelFixups.LinkError.noRelease)\n")
            throw PGNodeExit(code: 1)
        }
        let link = "\(modulesDir)/\(release)/build"
        // The node's headers, as seen from pgnode's file system; never the link itself.
        let target = facts.headers.map { host.resolve($0) }.first { $0 != link }
        do {
            guard let target else {
                throw KernelFixups.LinkError.noHeaders(
                    release: release, searched: facts.headerCandidates.map { host.resolve($0) })
            }
            switch try KernelFixups.linkHeaders(release: release, target: target, modulesDir: modulesDir) {
            case .created(let link, let target): writeStandardOutput("created \(link) -> \(target)\n")
            case .alreadyLinked(let link, let target): writeStandardOutput("\(link) already points at \(target)\n")
            }
        } catch {
            writeStandardError("pgnode: \(error)\n")
            throw PGNodeExit(code: 1)
        }
    }
}
