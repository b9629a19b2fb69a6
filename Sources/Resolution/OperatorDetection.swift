import PGNodeModel

/// Tells which Kubernetes operator runs a PostgreSQL server from what the node shows: the
/// postmaster's environment (each operator sets its own variables in the database container, and
/// the postmaster inherits them; Patroni strips only `PATRONI_*`) and the labels or annotations
/// the container runtime's state carries. The markers are those each operator's source sets (see
/// Tests/ResolutionTests/Fixtures/operators/README.md for the files they come from).
public enum OperatorDetection {
    /// Environment variables detection looks at; the server keeps only these (and `SPILO_*`).
    public static let environmentKeys: Set<String> = [
        "CLUSTER_NAME", "PGDATA", "PGHOST", "PSQL_HISTORY", "SCOPE", "PGROOT", "KUBERNETES_SCOPE_LABEL",
        "KRB5_CONFIG", "PG_RELOCATED_BASE_PATH", "PG_EXTENSIONS_BASE_PATH",
    ]
    /// Labels and annotations detection looks at; the pod metadata keeps only these.
    public static let labelKeys: Set<String> = [
        cnpgClusterLabel, "application", "cluster-name", crunchyClusterLabel, stackGresClusterLabel, "app",
    ]
    /// CloudNativePG's label on its instance pods (`utils.ClusterLabelName`).
    static let cnpgClusterLabel = "cnpg.io/cluster"
    /// PGO v5's label on every object of a cluster (`naming.LabelCluster`).
    static let crunchyClusterLabel = "postgres-operator.crunchydata.com/cluster"
    /// StackGres's cluster-name label (`StackGresContext.STACKGRES_KEY_PREFIX + CLUSTER_NAME_KEY`).
    static let stackGresClusterLabel = "stackgres.io/cluster-name"
    /// The longest value kept of a variable or label (names are at most 253 bytes in Kubernetes).
    static let valueLimit = 1024

    /// Whether the server keeps variable `key` of the postmaster's environment.
    public static func keeps(environmentKey key: String) -> Bool {
        environmentKeys.contains(key) || key.hasPrefix("SPILO_")
    }

    /// The operator of a server whose postmaster has `environment` (only the keys above matter)
    /// in a container whose runtime state carries `labels`. Labels name the cluster when the
    /// environment does not.
    public static func detect(environment: [String: String], labels: [String: String]) -> PostgresOperator {
        let fromLabels = detect(labels: labels)
        let fromEnvironment = detect(environment: environment)
        switch (fromEnvironment, fromLabels) {
        case (let env?, let label?) where env.kind == label.kind:
            return PostgresOperator(
                kind: env.kind, cluster: env.cluster ?? label.cluster,
                detectedFrom: [env.detectedFrom, label.detectedFrom].compactMap { $0 }.joined(separator: ", "))
        case (_, let label?): return label
        case (let env?, nil): return env
        case (nil, nil): return .none
        }
    }

    /// The operator the environment names, if any.
    static func detect(environment env: [String: String]) -> PostgresOperator? {
        func value(_ key: String) -> String? {
            guard let v = env[key], !v.isEmpty else { return nil }
            return String(v.prefix(valueLimit))
        }
        // CloudNativePG's instance manager: CLUSTER_NAME with its fixed PGDATA or its socket directory.
        if let cluster = value("CLUSTER_NAME"),
            value("PGDATA") == "/var/lib/postgresql/data/pgdata" || value("PGHOST") == "/controller/run"
                || value("PSQL_HISTORY")?.hasPrefix("/controller/") == true
        {
            return PostgresOperator(kind: .cloudNativePG, cluster: cluster, detectedFrom: "environment CLUSTER_NAME")
        }
        // Spilo under the Zalando operator: SCOPE is the cluster's name.
        let spilo = env.keys.sorted().first(where: { $0.hasPrefix("SPILO_") })
        if spilo != nil || value("KUBERNETES_SCOPE_LABEL") != nil || (value("SCOPE") != nil && value("PGROOT") != nil) {
            let marker = spilo ?? (value("KUBERNETES_SCOPE_LABEL") != nil ? "KUBERNETES_SCOPE_LABEL" : "SCOPE, PGROOT")
            return PostgresOperator(kind: .zalando, cluster: value("SCOPE"), detectedFrom: "environment \(marker)")
        }
        // PGO v5: PGDATA /pgdata/pg<major> with its socket directory or its Kerberos configuration.
        if let pgdata = value("PGDATA"), isCrunchyDataDirectory(pgdata),
            value("PGHOST") == "/tmp/postgres" || value("KRB5_CONFIG") == "/etc/postgres/krb5.conf"
        {
            return PostgresOperator(kind: .crunchyPGO, detectedFrom: "environment PGDATA, PGHOST")
        }
        // StackGres: the path variables its patroni container gets for every ClusterPath.
        for key in ["PG_RELOCATED_BASE_PATH", "PG_EXTENSIONS_BASE_PATH"]
        where value(key)?.hasPrefix("/var/lib/postgresql/") == true {
            return PostgresOperator(kind: .stackGres, detectedFrom: "environment \(key)")
        }
        return nil
    }

    /// Whether `path` is `/pgdata/pg<digits>`, where PGO puts a cluster's data directory.
    static func isCrunchyDataDirectory(_ path: String) -> Bool {
        guard path.hasPrefix("/pgdata/pg") else { return false }
        let digits = path.dropFirst("/pgdata/pg".count)
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// The operator the labels or annotations name, if any.
    static func detect(labels: [String: String]) -> PostgresOperator? {
        func value(_ key: String) -> String? {
            guard let v = labels[key], !v.isEmpty else { return nil }
            return String(v.prefix(valueLimit))
        }
        if let cluster = value(cnpgClusterLabel) {
            return PostgresOperator(kind: .cloudNativePG, cluster: cluster, detectedFrom: "label \(cnpgClusterLabel)")
        }
        if value("application") == "spilo" {
            return PostgresOperator(
                kind: .zalando, cluster: value("cluster-name"), detectedFrom: "label application=spilo")
        }
        if let cluster = value(crunchyClusterLabel) {
            return PostgresOperator(kind: .crunchyPGO, cluster: cluster, detectedFrom: "label \(crunchyClusterLabel)")
        }
        if let cluster = value(stackGresClusterLabel) {
            return PostgresOperator(kind: .stackGres, cluster: cluster, detectedFrom: "label \(stackGresClusterLabel)")
        }
        if value("app") == "StackGresCluster" {
            return PostgresOperator(
                kind: .stackGres, cluster: value("cluster-name"), detectedFrom: "label app=StackGresCluster")
        }
        return nil
    }
}
