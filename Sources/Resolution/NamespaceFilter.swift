/// `--namespace`: the Kubernetes namespaces whose containers are diagnosed. A container's
/// namespace is its pod's, from the runtime's CRI annotations or labels (`RuntimeState`); a
/// container without one (not run by Kubernetes) is in none, so a filter leaves it out. The
/// empty filter admits every container.
public struct NamespaceFilter: Sendable, Equatable {
    /// The namespaces admitted; empty: every container.
    public let namespaces: Set<String>

    /// Admits the containers of `namespaces` (every container when it is empty).
    public init(_ namespaces: [String] = []) {
        self.namespaces = Set(namespaces)
    }

    /// Whether every container is admitted.
    public var admitsEverything: Bool { namespaces.isEmpty }

    /// Whether `resolution`'s pod namespace is one of the filter's (always, for the empty filter).
    public func admits(_ resolution: Resolution) -> Bool {
        guard !namespaces.isEmpty else { return true }
        guard let namespace = resolution.pod.namespace else { return false }
        return namespaces.contains(namespace)
    }

    /// The resolutions admitted, in their order.
    public func apply(_ resolutions: [Resolution]) -> [Resolution] {
        namespaces.isEmpty ? resolutions : resolutions.filter(admits)
    }

    /// Parses the values of `--namespace`: each a Kubernetes namespace name (an RFC 1123 label:
    /// 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit), so
    /// that a typo is a usage error rather than a filter that silently matches nothing.
    public static func parse(_ texts: [String]) throws(NamespaceFilterError) -> NamespaceFilter {
        for text in texts where !isNamespaceName(text) {
            throw NamespaceFilterError(value: text)
        }
        return NamespaceFilter(texts)
    }

    static func isNamespaceName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
        let alphanumeric: (UInt8) -> Bool = { (97...122).contains($0) || (48...57).contains($0) }
        return alphanumeric(first) && alphanumeric(last) && bytes.allSatisfy { alphanumeric($0) || $0 == 45 }
    }
}

/// A `--namespace` value that cannot be a Kubernetes namespace name.
public struct NamespaceFilterError: Error, Equatable, CustomStringConvertible {
    /// The value given.
    public let value: String

    /// The error for `value`.
    public init(value: String) { self.value = value }

    public var description: String {
        "--namespace '\(value)' is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)"
    }
}
