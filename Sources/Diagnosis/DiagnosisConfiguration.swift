import HostFacts
import Resolution

/// How a `DiagnosisEngine` diagnoses the node: what the command line says.
public struct DiagnosisConfiguration: Sendable {
    /// The node's root file system (`--host-root`).
    public var host: HostRoot
    /// `k8s.node.name` for the findings.
    public var nodeName: String
    /// `k8s.cluster.name` for the findings (`--cluster-name`), if given.
    public var clusterName: String?
    /// `--btf`: a BTF file for this kernel.
    public var btfOption: String?
    /// `--btf-archive`: a BTFHub-archive directory.
    public var btfArchive: String?
    /// Seconds one container's diagnosis may take (`--container-deadline`); discovery gets three
    /// times as long.
    public var containerDeadline: Double
    /// Whether the probes are attached and observe. Without, they are only loaded (which proves
    /// that they can run, for `bpf.support`), containers get their static checks only, and
    /// nothing is sampled: `pgnode check --duration 0`.
    public var observes: Bool
    /// `--namespace`: the Kubernetes namespaces whose containers `DiagnosisEngine.discover`
    /// follows (empty: every PostgreSQL container on the node).
    public var namespaces: NamespaceFilter

    /// A configuration.
    public init(
        host: HostRoot, nodeName: String, btfOption: String? = nil, btfArchive: String? = nil,
        containerDeadline: Double = 10, observes: Bool = true, namespaces: NamespaceFilter = NamespaceFilter(),
        clusterName: String? = nil
    ) {
        self.clusterName = clusterName
        self.host = host
        self.nodeName = nodeName
        self.btfOption = btfOption
        self.btfArchive = btfArchive
        self.containerDeadline = containerDeadline
        self.observes = observes
        self.namespaces = namespaces
    }
}
