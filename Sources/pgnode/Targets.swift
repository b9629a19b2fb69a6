import ArgumentParser
import HostFacts
import Resolution

/// Resolves `--container` and `--pod` arguments (already validated); with neither, every
/// PostgreSQL container on the node that `namespaces` admits (`--namespace`, which does not
/// combine with the other two). A named container that cannot be resolved is an error
/// (`ResolutionFailure`): the user asked for it.
func resolveTargets(
    containers: [String], pods: [String], namespaces: NamespaceFilter = NamespaceFilter(), host: HostRoot
) throws -> [Resolution] {
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
            resolutions = namespaces.apply(try ContainerResolver.resolveAll(host: host))
        }
    } catch {
        throw ResolutionFailure(error)
    }
    var seen = Set<String>()
    return resolutions.filter { seen.insert($0.container.id).inserted }
}

/// Validates `--container` and `--pod` values: a malformed one is a usage error naming it.
func validateTargets(containers: [String], pods: [String]) throws(ResolutionError) {
    for text in containers { _ = try ContainerReference.parse(text) }
    for text in pods { _ = try PodReference.parse(text) }
}

/// Validates `--namespace` values; with `--container` or `--pod` they are a usage error (those
/// name their containers already). The message is the one line the command prints.
func validateNamespaces(_ namespaces: [String], containers: [String] = [], pods: [String] = []) throws
    -> NamespaceFilter
{
    if !namespaces.isEmpty && !(containers.isEmpty && pods.isEmpty) {
        throw ValidationError(
            "--namespace chooses among the node's containers; it does not combine with --container or --pod")
    }
    do { return try NamespaceFilter.parse(namespaces) } catch { throw ValidationError(error.description) }
}
