import Agent
import Logging
import PGNodeModel
import Shipping
import Testing

/// `--emit changes|all`, `--heartbeat`, `--min-severity`, with facts: findings in, findings out.
@Suite("The emit policy")
struct EmitPolicyTests {
    func finding(_ container: String?, _ severity: Severity, _ summary: String = "s") -> Finding {
        finding(container, "shm.size", severity, summary)
    }

    func finding(_ container: String?, _ check: String, _ severity: Severity, _ summary: String = "s") -> Finding {
        let resource =
            container.map {
                ResourceAttributes(
                    nodeName: "n1", containerID: $0, containerRuntime: "containerd", podName: "p-\($0)", podUID: nil,
                    namespace: "db", containerName: "postgres")
            } ?? ResourceAttributes(nodeName: "n1")
        return Finding(
            observation: Observation(check: check, severity: severity, summary: summary), resource: resource,
            windowStart: Timestamp(nanoseconds: 1), time: Timestamp(nanoseconds: 2))
    }

    /// The summaries of what `filter` lets through of `findings`.
    func emitted(_ filter: inout EmitFilter, _ findings: [Finding]) -> [String] {
        filter.select(findings).map {
            "\($0.resource.containerID ?? "node") \($0.check) \($0.severity.rawValue) \($0.observation.summary)"
        }
    }

    @Test("changes: a container appears → emitted; the same severity and summary → not until the heartbeat")
    func heartbeat() {
        var filter = EmitFilter(policy: EmitPolicy(mode: .changes, heartbeat: 3))
        let window = [finding("a", .ok), finding("a", "memory.limit", .warning, "near the limit")]
        #expect(emitted(&filter, window).count == 2)  // appears
        #expect(emitted(&filter, window).isEmpty)  // window 1 after
        #expect(emitted(&filter, window).isEmpty)  // window 2
        #expect(emitted(&filter, window).count == 2)  // window 3: heartbeat
        #expect(emitted(&filter, window).isEmpty)
        // A new container is emitted in a window where the known one is not.
        #expect(emitted(&filter, window + [finding("b", .ok)]) == ["b shm.size ok s"])
    }

    @Test(
        "changes: severity changed → emitted; summary changed at warning or above → emitted; ok and info numbers are no news"
    )
    func changes() {
        var filter = EmitFilter(policy: EmitPolicy(mode: .changes, heartbeat: 60))
        _ = filter.select([
            finding("a", .ok, "working set 10 MiB"), finding("a", "blkio.noise", .warning, "12 requests"),
        ])
        #expect(emitted(&filter, [finding("a", .ok, "working set 11 MiB")]).isEmpty)
        // info carries the window's numbers too (cpu.migrations' count): no news until it changes severity.
        #expect(emitted(&filter, [finding("a", "cpu.migrations", .info, "moved 12 times")]).count == 1)
        #expect(emitted(&filter, [finding("a", "cpu.migrations", .info, "moved 40 times")]).isEmpty)
        #expect(emitted(&filter, [finding("a", "cpu.migrations", .ok, "moved 3 times")]).count == 1)
        #expect(
            emitted(&filter, [finding("a", "blkio.noise", .warning, "40 requests")]) == [
                "a blkio.noise warning 40 requests"
            ])
        #expect(
            emitted(&filter, [finding("a", .critical, "working set 11 MiB")]) == [
                "a shm.size critical working set 11 MiB"
            ])
        #expect(emitted(&filter, [finding("a", .ok, "working set 11 MiB")]) == ["a shm.size ok working set 11 MiB"])
        #expect(emitted(&filter, [finding("a", .unavailable, "timed out")]) == ["a shm.size unavailable timed out"])
        #expect(emitted(&filter, [finding("a", .unavailable, "timed out")]).isEmpty)
    }

    @Test("all: every finding of every window, today's behaviour")
    func all() {
        var filter = EmitFilter(policy: .all)
        let window = [finding("a", .ok), finding("b", .warning)]
        for _ in 0..<5 { #expect(emitted(&filter, window).count == 2) }
    }

    @Test("min-severity: below it not emitted, but the recovery once; unavailable always; node findings untouched")
    func minimumSeverity() {
        var filter = EmitFilter(policy: EmitPolicy(mode: .changes, heartbeat: 2, minSeverity: .warning))
        #expect(
            emitted(&filter, [finding("a", .ok), finding("b", .info), finding("c", .unavailable, "no probe")]) == [
                "c shm.size unavailable no probe"
            ])
        #expect(emitted(&filter, [finding("a", .warning)]) == ["a shm.size warning s"])
        #expect(emitted(&filter, [finding("a", .ok)]) == ["a shm.size ok s"])  // recovery
        for _ in 0..<4 { #expect(emitted(&filter, [finding("a", .ok)]).isEmpty) }  // no heartbeat below the threshold
        #expect(emitted(&filter, [finding("a", .info)]).isEmpty)  // still below: no second recovery
        #expect(emitted(&filter, [finding(nil, "kernel.btf", .ok)]) == ["node kernel.btf ok s"])

        var all = EmitFilter(policy: EmitPolicy(mode: .all, minSeverity: .critical))
        #expect(emitted(&all, [finding("a", .warning), finding("b", .critical)]) == ["b shm.size critical s"])
    }

    @Test("a container that has gone and comes back is new again")
    func forget() {
        var filter = EmitFilter(policy: EmitPolicy())
        _ = filter.select([finding("a", .ok), finding("b", .ok)])
        #expect(filter.remembered == 2)
        filter.forget(allBut: ["b"])
        #expect(filter.remembered == 1)
        #expect(emitted(&filter, [finding("a", .ok), finding("b", .ok)]) == ["a shm.size ok s"])
    }

    @Test("20 idle containers × 7 checks for a day of 60 s windows: 3,360 findings with changes, 201,600 with all")
    func dayOfIdleContainers() {
        let checks = [
            "shm.size", "shm.enospc", "memory.limit", "memory.reclaim", "blkio.noise", "cpu.throttling", "x.other",
        ]
        let window = (0..<20).flatMap { container in checks.map { finding("c\(container)", $0, .ok) } }
        var changes = EmitFilter(policy: EmitPolicy())
        var all = EmitFilter(policy: .all)
        var emittedChanges = 0
        var emittedAll = 0
        for _ in 0..<1440 {
            emittedChanges += changes.select(window).count
            emittedAll += all.select(window).count
        }
        // Appearance, then a heartbeat every 60 windows: windows 0, 60, …, 1380.
        #expect(emittedChanges == 140 * 24)
        #expect(emittedAll == 140 * 1440)
    }

    @Test("the loop: with --emit changes an unchanged container finding goes out once; /metrics keeps every window")
    func loop() async throws {
        let source = ScriptedSource(containersByRound: [["a"], ["a", "b"], ["b"], ["b"], ["b"], ["b"], ["b"]])
        let sink = CollectingSink()
        let metrics = MetricsRegistry()
        let agent = AgentLoop(
            source: source, sink: sink, metrics: metrics,
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
            interval: 0.1, emit: EmitPolicy(mode: .changes, heartbeat: 1000))
        let task = Task { await agent.run() }
        // Hang guard only: the loop runs windows back to back; the assertions are on counts.
        for _ in 0..<3000 where metrics.value(AgentMetric.runs) < 4 { try await Task.sleep(nanoseconds: 20_000_000) }
        task.cancel()
        await task.value
        #expect(metrics.value(AgentMetric.runs) >= 4)
        let container = sink.all.filter { $0.resource.containerID != nil }
        #expect(container.map { $0.resource.containerID } == ["a", "b"])
        #expect(metrics.total(AgentMetric.findingsSuppressed) >= 2)
        // a has gone (discovered no more after round 2): its series are removed; b's stay.
        let text = metrics.render()
        #expect(!text.contains("pod=\"p-a\""), "\(text)")
        #expect(
            text.contains(
                "pgnode_finding_severity{check=\"shm.size\",namespace=\"ns\",pod=\"p-b\",container=\"postgres\"} 2\n"),
            "\(text)")
    }
}
