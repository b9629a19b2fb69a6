import Resolution
import Testing

@Suite("PostgreSQL process titles")
struct ProcessTitleTests {
    @Test(
        "auxiliary processes of 9.6 to 18",
        arguments: [
            ("postgres: checkpointer", PostgresRole.Kind.checkpointer),
            ("postgres: checkpointer process   ", .checkpointer),
            ("postgres: background writer", .backgroundWriter),
            ("postgres: writer process", .backgroundWriter),
            ("postgres: walwriter", .walWriter),
            ("postgres: wal writer process", .walWriter),
            ("postgres: autovacuum launcher", .autovacuumLauncher),
            ("postgres: autovacuum launcher process", .autovacuumLauncher),
            ("postgres: logical replication launcher", .logicalReplicationLauncher),
            ("postgres: bgworker: logical replication launcher", .logicalReplicationLauncher),
            ("postgres: logical replication worker for subscription 16394", .logicalReplicationWorker),
            ("postgres: logical replication apply worker for subscription 16394", .logicalReplicationWorker),
            (
                "postgres: logical replication tablesync worker for subscription 16394 sync 16385",
                .logicalReplicationWorker
            ),
            ("postgres: walreceiver streaming 0/3000148", .walReceiver),
            ("postgres: wal receiver process   streaming 0/3000148", .walReceiver),
            ("postgres: startup recovering 000000010000000000000003", .startup),
            ("postgres: startup process   recovering 000000010000000000000003", .startup),
            ("postgres: archiver last was 000000010000000000000002", .archiver),
            ("postgres: archiver", .archiver),
            ("postgres: stats collector", .statsCollector),
            ("postgres: stats collector process", .statsCollector),
            ("postgres: logger", .logger),
            ("postgres: walsummarizer", .walSummarizer),
            ("postgres: io worker 2", .ioWorker),
            ("postgres: slotsync worker", .slotSyncWorker),
        ])
    func auxiliary(_ title: String, _ kind: PostgresRole.Kind) throws {
        let role = try #require(ProcessTitle.parse(title))
        #expect(role.kind == kind)
        #expect(role.clusterName == nil)
    }

    @Test("autovacuum workers name their database")
    func autovacuumWorker() throws {
        let role = try #require(ProcessTitle.parse("postgres: autovacuum worker shop"))
        #expect(role.kind == .autovacuumWorker && role.database == "shop")
    }

    @Test("cluster_name prefixes")
    func clusterName() throws {
        let aux = try #require(ProcessTitle.parse("postgres: main: checkpointer"))
        #expect(aux.kind == .checkpointer && aux.clusterName == "main")
        let backend = try #require(ProcessTitle.parse("postgres: pg-cluster-1: alice shop 10.0.0.7(51234) idle"))
        #expect(backend.kind == .clientBackend && backend.clusterName == "pg-cluster-1" && backend.user == "alice")
        let worker = try #require(ProcessTitle.parse("postgres: main: parallel worker for PID 4242"))
        #expect(worker.kind == .parallelWorker && worker.leaderPID == 4242 && worker.clusterName == "main")
    }

    @Test("parallel workers carry their leader's pid")
    func parallelWorker() throws {
        let role = try #require(ProcessTitle.parse("postgres: parallel worker for PID 1234"))
        #expect(role.kind == .parallelWorker && role.leaderPID == 1234)
        let old = try #require(ProcessTitle.parse("postgres: bgworker: parallel worker for PID 77"))
        #expect(old.kind == .parallelWorker && old.leaderPID == 77)
        #expect(ProcessTitle.parse("postgres: parallel worker for PID x")?.kind != .parallelWorker)
    }

    @Test("client backends: user, database, client and state")
    func clientBackends() throws {
        let local = try #require(ProcessTitle.parse("postgres: postgres postgres [local] SELECT"))
        #expect(local.kind == .clientBackend)
        #expect(local.user == "postgres" && local.database == "postgres" && local.client == "[local]")
        #expect(local.state == "SELECT")
        let remote = try #require(ProcessTitle.parse("postgres: app shop 10.244.1.7(40312) idle in transaction"))
        #expect(remote.client == "10.244.1.7(40312)" && remote.state == "idle in transaction")
        let v6 = try #require(ProcessTitle.parse("postgres: app shop ::1(40312) UPDATE waiting"))
        #expect(v6.client == "::1(40312)" && v6.state == "UPDATE waiting")
        let fresh = try #require(ProcessTitle.parse("postgres: app shop [local]"))
        #expect(fresh.kind == .clientBackend && fresh.state == nil)
        // A user named like an auxiliary process is still a client backend.
        let named = try #require(ProcessTitle.parse("postgres: checkpointer shop [local] idle"))
        #expect(named.kind == .clientBackend && named.user == "checkpointer")
    }

    @Test("walsenders, physical and logical")
    func walsenders() throws {
        let physical = try #require(
            ProcessTitle.parse("postgres: walsender replicator 10.0.0.5(45678) streaming 0/3000148"))
        #expect(physical.kind == .walSender && physical.user == "replicator" && physical.database == nil)
        #expect(physical.client == "10.0.0.5(45678)" && physical.state == "streaming 0/3000148")
        let logical = try #require(ProcessTitle.parse("postgres: walsender repl shop 10.0.0.5(45678) idle"))
        #expect(logical.database == "shop" && logical.client == "10.0.0.5(45678)" && logical.state == "idle")
    }

    @Test("other background workers keep their name")
    func backgroundWorkers() throws {
        let role = try #require(ProcessTitle.parse("postgres: TimescaleDB Background Worker Scheduler"))
        #expect(role.kind == .backgroundWorker && role.detail == "TimescaleDB Background Worker Scheduler")
    }

    @Test(
        "titles that are not a server child's give nil",
        arguments: [
            "", "postgres", "postgres:", "postgres: ", "/usr/lib/postgresql/15/bin/postgres -D /data", "bash",
            "pgbouncer",
        ]
    )
    func notServer(_ title: String) {
        #expect(ProcessTitle.parse(title) == nil)
    }

    @Test("huge and binary titles do not crash")
    func hostile() {
        _ = ProcessTitle.parse("postgres: " + String(repeating: "x ", count: 100_000))
        _ = ProcessTitle.parse("postgres: a b c(\u{0}) \u{FFFD}")
        _ = ProcessTitle.parse("postgres: : : :")
        #expect(ProcessTitle.parse("postgres: parallel worker for PID 99999999999999")?.leaderPID == nil)
    }
}
