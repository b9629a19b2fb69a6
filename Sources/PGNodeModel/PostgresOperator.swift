/// The Kubernetes operator that runs a PostgreSQL server, as the node shows it (the postmaster's
/// environment, the runtime's labels and annotations). Remedies name what the user owns: an
/// operator reverts changes made to the pods it manages, so the change goes into its resource.
public struct PostgresOperator: Sendable, Equatable, Hashable {
    /// Which operator.
    public enum Kind: String, Sendable, Equatable, Hashable, CaseIterable {
        /// CloudNativePG (`Cluster` of `postgresql.cnpg.io`).
        case cloudNativePG = "cloudnativepg"
        /// Zalando's postgres-operator running Spilo (`postgresql` of `acid.zalan.do`).
        case zalando
        /// Crunchy Data's PGO v5 (`PostgresCluster` of `postgres-operator.crunchydata.com`).
        case crunchyPGO = "crunchy_pgo"
        /// StackGres (`SGCluster` of `stackgres.io`).
        case stackGres = "stackgres"
        /// None that pgnode recognises: a plain StatefulSet, a Deployment, a pod of its own.
        case none
    }

    /// Which operator.
    public var kind: Kind
    /// The name of the operator's cluster resource, when the node shows it.
    public var cluster: String?
    /// What told (e.g. `environment CLUSTER_NAME`, `label cnpg.io/cluster`); nil for `none`.
    public var detectedFrom: String?
    /// The namespace of the cluster resource (the pod's), when known: remedies name it.
    public var namespace: String?

    /// An operator.
    public init(kind: Kind, cluster: String? = nil, detectedFrom: String? = nil, namespace: String? = nil) {
        self.kind = kind
        self.cluster = cluster
        self.detectedFrom = detectedFrom
        self.namespace = namespace
    }

    /// No operator recognised.
    public static let none = PostgresOperator(kind: .none)

    /// The operator for evidence: `operator` (the kind) and `cluster` (the name, or null).
    public func addEvidence(to evidence: inout JSONObject) {
        evidence["operator"] = .string(kind.rawValue)
        evidence["cluster"] = .from(cluster)
    }
}
