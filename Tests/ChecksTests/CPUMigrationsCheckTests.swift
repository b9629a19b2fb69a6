import PGNodeModel
import Testing

@testable import Checks

@Suite("cpu.migrations: severity from backends' moves across caches and nodes, evidence, cpuset")
struct CPUMigrationsCheckTests {
    static let tenSeconds: Int64 = 10_000_000_000

    static func report(
        migrations: Int64 = 0, withinLLC: Int64 = 0, crossLLC: Int64 = 0, crossNUMA: Int64 = 0,
        roles: [MigrationsReport.Role] = [], window: Int64 = tenSeconds,
        cpuset: Result<MigrationsReport.CPUSet, CheckUnavailable> = .success(
            .init(cpus: "0-7", count: 8, lastLevelCaches: 2, nodes: 2))
    ) -> MigrationsReport {
        MigrationsReport(
            migrations: migrations, withinLLC: withinLLC, crossLLC: crossLLC, crossNUMA: crossNUMA,
            unknown: migrations - withinLLC - crossLLC - crossNUMA, roles: roles, windowNanoseconds: window,
            nodeLastLevelCaches: 2, nodeNUMANodes: 2, cpuset: cpuset)
    }

    @Test("no migration: ok, with the evidence names")
    func none() {
        let o = CPUMigrationsCheck.evaluate(Self.report())
        #expect(o.severity == .ok)
        for key in ["migrations", "migrations_per_second", "cross_llc", "cross_numa", "per_role", "cpuset"] {
            #expect(o.evidence[key] != nil, "\(key)")
        }
        #expect(o.evidence["cpuset"]?["cpus"] == "0-7" && o.evidence["cpuset"]?["numa_nodes"] == .int(2))
    }

    @Test("moves within one LLC, however many: ok, counted")
    func withinLLC() {
        let backends = MigrationsReport.Role(
            role: "client backend", processes: 8, migrations: 100_000, crossLLC: 0, crossNUMA: 0)
        let o = CPUMigrationsCheck.evaluate(Self.report(migrations: 100_000, withinLLC: 100_000, roles: [backends]))
        #expect(o.severity == .ok)
        #expect(o.evidence["migrations_per_second"] == .double(10_000))
        #expect(o.evidence["per_role"]?.arrayValue?.first?["role"] == "client backend")
        // A few left the cache: info, with the remedy.
        let few = MigrationsReport.Role(
            role: "client backend", processes: 8, migrations: 100, crossLLC: 3, crossNUMA: 0)
        let info = CPUMigrationsCheck.evaluate(Self.report(migrations: 100, withinLLC: 97, crossLLC: 3, roles: [few]))
        #expect(info.severity == .info)
        #expect(info.remedy.contains("full-pcpus-only") && info.remedy.contains("single-numa-node"))
        #expect(info.remedy.contains("sched_migration_cost_ns"))
    }

    @Test("backends across LLCs: warning at the threshold, info just below; other roles do not count")
    func crossLLC() {
        let perSecond = Int64(CPUMigrationsCheck.warningCrossLLCPerSecond)
        func with(_ role: String, _ crossLLC: Int64) -> Observation {
            let r = MigrationsReport.Role(
                role: role, processes: 4, migrations: crossLLC, crossLLC: crossLLC, crossNUMA: 0)
            return CPUMigrationsCheck.evaluate(Self.report(migrations: crossLLC, crossLLC: crossLLC, roles: [r]))
        }
        #expect(with("client backend", perSecond * 10).severity == .warning)
        #expect(with("parallel worker", perSecond * 10).severity == .warning)
        #expect(with("client backend", perSecond * 10 - 1).severity == .info)
        #expect(with("autovacuum worker", perSecond * 100).severity == .info)
        #expect(with("other", perSecond * 100).severity == .info)
        #expect(with("client backend", perSecond * 10).evidence["cross_llc"] == .int(perSecond * 10))
    }

    @Test("backends across NUMA nodes: a lower threshold")
    func crossNUMA() {
        let count = Int64(CPUMigrationsCheck.warningCrossNUMAPerSecond) * 10
        let r = MigrationsReport.Role(
            role: "client backend", processes: 2, migrations: count, crossLLC: 0, crossNUMA: count)
        let o = CPUMigrationsCheck.evaluate(Self.report(migrations: count, crossNUMA: count, roles: [r]))
        #expect(o.severity == .warning)
        #expect(o.evidence["cross_numa"] == .int(count))
        #expect(o.summary.contains("spans 2 last-level cache(s) and 2 NUMA node(s)"), "\(o.summary)")
        let fewer = MigrationsReport.Role(
            role: "client backend", processes: 2, migrations: count - 1, crossLLC: 0, crossNUMA: count - 1)
        #expect(
            CPUMigrationsCheck.evaluate(Self.report(migrations: count - 1, crossNUMA: count - 1, roles: [fewer]))
                .severity
                == .info)
    }

    @Test("roles sorted by migrations; an unreadable cpuset gives its reason; no window: unavailable")
    func evidence() {
        let roles: [MigrationsReport.Role] = [
            .init(role: "checkpointer", processes: 1, migrations: 3, crossLLC: 0, crossNUMA: 0),
            .init(role: "client backend", processes: 5, migrations: 40, crossLLC: 2, crossNUMA: 1),
        ]
        let o = CPUMigrationsCheck.evaluate(
            Self.report(
                migrations: 43, withinLLC: 40, crossLLC: 2, crossNUMA: 1, roles: roles,
                cpuset: .failure(CheckUnavailable("no cpuset"))))
        #expect(
            o.evidence["per_role"]?.arrayValue?.compactMap { $0["role"]?.stringValue } == [
                "client backend", "checkpointer",
            ])
        #expect(o.evidence["per_role"]?.arrayValue?.first?["processes"] == .int(5))
        #expect(o.evidence["cpuset"]?["reason"] == "no cpuset")
        #expect(o.summary.contains("43 time(s)"), "\(o.summary)")
        #expect(CPUMigrationsCheck.evaluate(Self.report(migrations: 1, window: 0)).severity == .unavailable)
    }
}
