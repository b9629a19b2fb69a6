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
    /// `--query-latency`: whether the query probe runs (`query.latency`: USDT probes at every
    /// statement of the followed servers, a cost the database pays).
    public var queryLatency: Bool
    /// `--query-text`: whether `query.latency` shows the first 200 bytes of the slowest statements'
    /// text (else a hash of it).
    public var queryText: Bool

    /// A configuration.
    public init(
        host: HostRoot, nodeName: String, btfOption: String? = nil, btfArchive: String? = nil,
        containerDeadline: Double = 10, observes: Bool = true, namespaces: NamespaceFilter = NamespaceFilter(),
        clusterName: String? = nil, queryLatency: Bool = false, queryText: Bool = false
    ) {
        self.queryLatency = queryLatency
        self.queryText = queryText
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
