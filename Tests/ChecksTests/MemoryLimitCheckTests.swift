import Checks
import HostFacts
import PGNodeModel
import Testing

@Suite("memory.limit")
struct MemoryLimitCheckTests {
    static let mib: Int64 = 1 << 20

    func stats(limit: Int64?, usage: Int64, inactive: Int64 = 0, oom: Int64 = 0, version: Int = 1) -> MemoryCgroupStats
    {
        var s = MemoryCgroupStats(version: version, missing: [])
        s.limitBytes = limit
        s.usageBytes = usage
        s.inactiveFileBytes = inactive
        s.oomKills = oom
        return s
    }

    func evaluate(_ s: MemoryCgroupStats, shared: Int64? = 128 << 20, qos: String? = "burstable") -> Observation {
        MemoryLimitCheck.evaluate(
            MemoryLimitFacts(
                cgroup: .success(s), sharedBuffersBytes: shared, maxConnections: 100, workMemBytes: 4 << 20,
                qosClass: qos))
    }

    @Test("OOM kills are critical")
    func oom() {
        #expect(evaluate(stats(limit: 4096 * Self.mib, usage: 100 * Self.mib, oom: 2)).severity == .critical)
    }

    @Test("a limit at or below shared_buffers + 128 MiB is critical")
    func tightLimit() {
        let o = evaluate(stats(limit: 512 * Self.mib, usage: 100 * Self.mib), shared: 400 * Self.mib)
        #expect(o.severity == .critical)
        #expect(o.evidence["limit_bytes"] == .int(512 * Self.mib))
        #expect(o.evidence["shared_buffers_bytes"] == .int(400 * Self.mib))
        #expect(o.remedy.contains("resources.limits.memory"))
    }

    @Test("the working set (usage − inactive file) above 90 % of the limit is a warning")
    func workingSet() {
        let near = evaluate(stats(limit: 1024 * Self.mib, usage: 1000 * Self.mib, inactive: 10 * Self.mib))
        #expect(near.severity == .warning)
        #expect(near.evidence["working_set_bytes"] == .int(990 * Self.mib))
        // Mostly reclaimable cache: not a warning.
        let cache = evaluate(stats(limit: 1024 * Self.mib, usage: 1000 * Self.mib, inactive: 600 * Self.mib))
        #expect(cache.severity == .ok)
    }

    @Test("no limit: a warning on BestEffort, ok otherwise")
    func noLimit() {
        #expect(evaluate(stats(limit: nil, usage: 1), qos: "besteffort").severity == .warning)
        let ok = evaluate(stats(limit: nil, usage: 1), qos: "burstable")
        #expect(ok.severity == .ok)
        #expect(ok.evidence["limit_bytes"] == .null)
    }

    @Test("v2: memory.high events are a warning; PSI goes into evidence")
    func v2() {
        var s = stats(limit: 4096 * Self.mib, usage: 100 * Self.mib, version: 2)
        s.highBytes = 2048 * Self.mib
        s.highEvents = 7
        s.pressure = CgroupFiles.pressure("some avg10=3.50 avg60=1.00 avg300=0.10 total=1")
        let o = evaluate(s)
        #expect(o.severity == .warning)
        #expect(o.evidence["pressure_some_avg10"] == .double(3.5))
        #expect(o.evidence["high_bytes"] == .int(2048 * Self.mib))
    }

    @Test("an unreadable cgroup is unavailable")
    func unavailable() {
        let o = MemoryLimitCheck.evaluate(
            MemoryLimitFacts(
                cgroup: .failure(CheckUnavailable("cgroup gone")), sharedBuffersBytes: nil, maxConnections: nil,
                workMemBytes: nil, qosClass: nil))
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"] == "cgroup gone")
    }

    @Test("unknown settings leave shared_buffers null, not zero")
    func unknownSettings() {
        let o = evaluate(stats(limit: 200 * Self.mib, usage: 1), shared: nil)
        #expect(o.evidence["shared_buffers_bytes"] == .null)
        #expect(o.severity == .ok)
    }
}
