/// What a PostgreSQL process is, from its process title (`postgres: checkpointer`,
/// `postgres: main: alice shop 10.0.0.7(51234) idle`, …).
public struct PostgresRole: Sendable, Equatable {
    /// The kinds of process a server runs, named as `pg_stat_activity.backend_type` names them.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case postmaster
        case checkpointer
        case backgroundWriter = "background writer"
        case walWriter = "walwriter"
        case autovacuumLauncher = "autovacuum launcher"
        case autovacuumWorker = "autovacuum worker"
        case logicalReplicationLauncher = "logical replication launcher"
        case logicalReplicationWorker = "logical replication worker"
        case walSender = "walsender"
        case walReceiver = "walreceiver"
        case walSummarizer = "walsummarizer"
        case startup
        case archiver
        case statsCollector = "stats collector"
        case logger
        case ioWorker = "io worker"
        case slotSyncWorker = "slotsync worker"
        case parallelWorker = "parallel worker"
        case clientBackend = "client backend"
        case backgroundWorker = "background worker"
    }

    /// The kind.
    public var kind: Kind
    /// The `cluster_name` the title starts with, if any.
    public var clusterName: String?
    /// For a parallel worker: its leader's pid (in the server's pid namespace).
    public var leaderPID: Int32?
    /// For client backends and walsenders: the user.
    public var user: String?
    /// For client backends (and logical walsenders, autovacuum workers): the database.
    public var database: String?
    /// For client backends and walsenders: `host(port)` or `[local]`.
    public var client: String?
    /// For client backends and walsenders: what it is doing (`idle`, `SELECT`, `idle in transaction`, …).
    public var state: String?
    /// Any further text of the title (a background worker's name, `streaming 0/3000148`, …).
    public var detail: String?

    /// A role of `kind` with nothing else known.
    public init(kind: Kind, clusterName: String? = nil) {
        self.kind = kind
        self.clusterName = clusterName
    }
}

/// Parses PostgreSQL process titles (ps_status.c), for every release from 9.6 to 18.
public enum ProcessTitle {
    /// The prefix every server child writes.
    public static let prefix = "postgres: "

    /// The role of a process whose title is `title`, or nil when it is not a server child's title.
    public static func parse(_ title: String) -> PostgresRole? {
        guard title.hasPrefix(prefix) else { return nil }
        var rest = Substring(title.dropFirst(prefix.count)).trimmingWhitespace()[...]
        var cluster: String? = nil
        if let role = parseRole(rest, cluster: nil) { return role }
        // `postgres: <cluster_name>: <role>`.
        if let separator = rest.firstRange(of: ": ") {
            cluster = String(rest[..<separator.lowerBound])
            rest = rest[separator.upperBound...]
            if let role = parseRole(rest, cluster: cluster) { return role }
        }
        guard !rest.isEmpty else { return nil }
        var role = PostgresRole(kind: .backgroundWorker, clusterName: cluster)
        role.detail = String(rest)
        return role
    }

    /// Auxiliary processes by title (current names first, then the `… process` names of 9.6 and 10).
    private static let fixed: [(String, PostgresRole.Kind)] = [
        ("checkpointer process", .checkpointer), ("checkpointer", .checkpointer),
        ("background writer", .backgroundWriter), ("writer process", .backgroundWriter),
        ("walwriter", .walWriter), ("wal writer process", .walWriter),
        ("autovacuum launcher process", .autovacuumLauncher), ("autovacuum launcher", .autovacuumLauncher),
        ("autovacuum worker process", .autovacuumWorker), ("autovacuum worker", .autovacuumWorker),
        ("bgworker: logical replication launcher", .logicalReplicationLauncher),
        ("logical replication launcher", .logicalReplicationLauncher),
        ("bgworker: logical replication worker", .logicalReplicationWorker),
        ("logical replication parallel apply worker", .logicalReplicationWorker),
        ("logical replication tablesync worker", .logicalReplicationWorker),
        ("logical replication apply worker", .logicalReplicationWorker),
        ("logical replication worker", .logicalReplicationWorker),
        ("wal receiver process", .walReceiver), ("walreceiver", .walReceiver),
        ("walsummarizer", .walSummarizer),
        ("startup process", .startup), ("startup", .startup),
        ("archiver process", .archiver), ("archiver", .archiver),
        ("stats collector process", .statsCollector), ("stats collector", .statsCollector),
        ("logger process", .logger), ("logger", .logger),
        ("io worker", .ioWorker), ("slotsync worker", .slotSyncWorker),
    ]

    private static func parseRole(_ text: Substring, cluster: String?) -> PostgresRole? {
        for name in ["walsender", "wal sender process"] where text == name || text.hasPrefix(name + " ") {
            let tokens = text.dropFirst(name.count).split(separator: " ", omittingEmptySubsequences: true)
            return walsender(tokens, cluster: cluster)
        }
        // A client backend first: `<user> <database> <client> [<state>]`, whatever the user is called.
        let tokens = text.split(separator: " ", omittingEmptySubsequences: true)
        if tokens.count >= 3, isClient(tokens[2]) {
            var role = PostgresRole(kind: .clientBackend, clusterName: cluster)
            role.user = String(tokens[0])
            role.database = String(tokens[1])
            role.client = String(tokens[2])
            let state = tokens.dropFirst(3).joined(separator: " ")
            role.state = state.isEmpty ? nil : state
            return role
        }
        for (name, kind) in fixed where text == name || text.hasPrefix(name + " ") {
            var role = PostgresRole(kind: kind, clusterName: cluster)
            let detail = text.dropFirst(name.count).trimmingWhitespace()
            if !detail.isEmpty {
                role.detail = detail
                if kind == .autovacuumWorker { role.database = detail }
            }
            return role
        }
        for name in ["parallel worker for PID ", "bgworker: parallel worker for PID "] where text.hasPrefix(name) {
            var role = PostgresRole(kind: .parallelWorker, clusterName: cluster)
            let tail = text.dropFirst(name.count).split(separator: " ", maxSplits: 1)
            guard let first = tail.first, let leader = Int32(first), leader > 0 else { return nil }
            role.leaderPID = leader
            if tail.count > 1 { role.detail = tail[1].trimmingWhitespace() }
            return role
        }
        if text.hasPrefix("bgworker: ") {
            var role = PostgresRole(kind: .backgroundWorker, clusterName: cluster)
            role.detail = String(text.dropFirst(10))
            return role
        }
        return nil
    }

    /// `walsender <user> [<database>] <client> <activity>`.
    private static func walsender(_ tokens: [Substring], cluster: String?) -> PostgresRole {
        var role = PostgresRole(kind: .walSender, clusterName: cluster)
        guard let user = tokens.first else { return role }
        role.user = String(user)
        var index = 1
        if tokens.count > 2, !isClient(tokens[1]), isClient(tokens[2]) {
            role.database = String(tokens[1])
            index = 2
        }
        if index < tokens.count, isClient(tokens[index]) {
            role.client = String(tokens[index])
            index += 1
        }
        let state = tokens.dropFirst(index).joined(separator: " ")
        role.state = state.isEmpty ? nil : state
        return role
    }

    /// `[local]`, or `host(port)` as the postmaster writes a remote client.
    static func isClient(_ token: Substring) -> Bool {
        if token == "[local]" { return true }
        guard token.hasSuffix(")"), let open = token.lastIndex(of: "("), open > token.startIndex else { return false }
        let port = token[token.index(after: open)..<token.index(before: token.endIndex)]
        return !port.isEmpty && port.allSatisfy(\.isASCIIDigit)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
