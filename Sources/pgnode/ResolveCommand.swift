import ArgumentParser
import HostFacts
import PGNodeModel
import Resolution

/// `pgnode resolve`: what a container id (or a pod) means on this node, as one JSON object.
struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract:
            "Resolve a container to its runtime, pod, cgroups, processes and PostgreSQL servers (one JSON object).",
        discussion: """
            ID is a full 64-hex container id, a unique prefix of at least 12 hex digits, or the form \
            kubectl shows (containerd://ID, cri-o://ID, docker://ID). With --pod, every container of \
            the pod is resolved and printed as {"namespace","name","containers":[...]}. The keys are \
            documented in docs/resolution.md.

            Exit status:
              0   resolved
              1   a prefix is ambiguous (the candidates are on stderr), the id is a
                  pod sandbox's, or the process table cannot be read
              2   no running container matches the id, or none belongs to the pod
              64  usage error

            Examples:
              pgnode resolve 3f2a9c1b7d4e
              pgnode resolve containerd://3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8
              pgnode resolve --pod shop/postgres-0 --host-root /host
            """
    )

    @Argument(help: ArgumentHelp("The container: full id, 12+ hex digit prefix, or containerd://ID.", valueName: "id"))
    var id: String?

    @Option(help: ArgumentHelp("Resolve every container of this pod instead.", valueName: "namespace/name"))
    var pod: String?

    @OptionGroup var hostOptions: HostOptions

    func validate() throws {
        switch (id, pod) {
        case (nil, nil): throw ValidationError("give a container id or --pod NAMESPACE/NAME")
        case (.some, .some): throw ValidationError("give either a container id or --pod, not both")
        case (let id?, nil):
            do { _ = try ContainerReference.parse(id) } catch { throw ValidationError(error.description) }
        case (nil, let pod?):
            do { _ = try PodReference.parse(pod) } catch { throw ValidationError(error.description) }
        }
    }

    func run() throws {
        let resolver = ContainerResolver(host: hostOptions.host)
        do throws(ResolutionError) {
            if let id {
                let resolution = try resolver.resolve(try ContainerReference.parse(id))
                writeStandardOutput(JSONWriter.string(resolution.json) + "\n")
            } else if let pod {
                let reference = try PodReference.parse(pod)
                let resolutions = try resolver.resolve(pod: reference)
                let object: JSONValue = [
                    "namespace": .string(reference.namespace), "name": .string(reference.name),
                    "containers": .array(resolutions.map(\.json)),
                ]
                writeStandardOutput(JSONWriter.string(object) + "\n")
            }
        } catch {
            throw ResolutionFailure(error)
        }
    }
}

/// A resolution error as the command line reports it: one line on stderr (candidates of an
/// ambiguous prefix one per line after it); exit 2 when no container or pod matched, 64 for a
/// malformed reference (a usage error), 1 otherwise.
struct ResolutionFailure: Error {
    let error: ResolutionError

    init(_ error: ResolutionError) { self.error = error }

    /// Writes the message and returns the exit code.
    func report() -> Int32 {
        switch error {
        case .ambiguous(let prefix, let candidates):
            writeStandardError("pgnode: '\(prefix)' matches \(candidates.count) containers; give more digits:\n")
            for candidate in candidates { writeStandardError("  \(candidate)\n") }
        default:
            writeStandardError("pgnode: \(error.description)\n")
        }
        if error.isUsageError { return 64 }
        switch error {
        case .notFound, .podNotFound: return 2  // no container or pod matched
        default: return 1
        }
    }
}
