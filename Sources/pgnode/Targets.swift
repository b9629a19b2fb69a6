import HostFacts
import PGNodeModel
import Resolution

/// The containers a `check` (or the agent) diagnoses, each with the resource attributes its
/// findings carry.
struct CheckTarget: Sendable {
    /// What the container is.
    let resolution: Resolution
    /// `container.id`, `k8s.pod.name`, … for findings about it.
    let resource: ResourceAttributes
}

/// Resolves `--container` and `--pod` arguments (already validated); with neither, every
/// PostgreSQL container on the node. A named container that cannot be resolved is an error
/// (`ResolutionFailure`): the user asked for it.
func resolveTargets(containers: [String], pods: [String], host: HostRoot, nodeName: String) throws -> [CheckTarget] {
    let resolver = ContainerResolver(host: host)
    var resolutions: [Resolution] = []
    do throws(ResolutionError) {
        for text in containers {
            resolutions.append(try resolver.resolve(try ContainerReference.parse(text)))
        }
        for text in pods {
            resolutions.append(contentsOf: try resolver.resolve(pod: try PodReference.parse(text)))
        }
        if containers.isEmpty && pods.isEmpty {
            resolutions = try ContainerResolver.resolveAll(host: host)
        }
    } catch {
        throw ResolutionFailure(error)
    }
    var seen = Set<String>()
    return resolutions.filter { seen.insert($0.container.id).inserted }.map {
        CheckTarget(resolution: $0, resource: $0.resourceAttributes(nodeName: nodeName))
    }
}

/// Validates `--container` and `--pod` values: a malformed one is a usage error naming it.
func validateTargets(containers: [String], pods: [String]) throws(ResolutionError) {
    for text in containers { _ = try ContainerReference.parse(text) }
    for text in pods { _ = try PodReference.parse(text) }
}
