import Agent
import PGNodeModel
import Shipping
import Testing

/// The per-container metrics from findings: severities, unavailable checks, evidence as gauges
/// and counters, series removal when a container goes.
@Suite("Per-container metrics")
struct ContainerMetricsTests {
    func resource(_ id: String, pod: String?, namespace: String? = "db", name: String? = "postgres")
        -> ResourceAttributes
    {
        ResourceAttributes(
            nodeName: "n1", containerID: id, containerRuntime: "containerd", podName: pod, podUID: nil,
            namespace: namespace, containerName: name)
    }

    func finding(
        _ id: String, pod: String?, _ check: String, _ severity: Severity, _ evidence: JSONObject = [:],
        name: String? = "postgres"
    ) -> Finding {
        Finding(
            observation: Observation(check: check, severity: severity, summary: "s", evidence: evidence),
            resource: resource(id, pod: pod, name: name), windowStart: Timestamp(nanoseconds: 1),
            time: Timestamp(nanoseconds: 2))
    }

    func labels(_ pod: String, _ check: String? = nil) -> [(String, String)] {
        (check.map { [("check", $0)] } ?? []) + [("namespace", "db"), ("pod", pod), ("container", "postgres")]
    }

    @Test("severity gauge 0–3, unavailable 1 with no severity series; node findings ignored")
    func severities() {
        let metrics = MetricsRegistry()
        let container = ContainerMetrics(metrics)
        container.record([
            finding("c1", pod: "p1", "shm.size", .ok), finding("c1", pod: "p1", "memory.limit", .critical),
            finding("c1", pod: "p1", "blkio.noise", .warning), finding("c1", pod: "p1", "memory.reclaim", .info),
            finding("c1", pod: "p1", "shm.enospc", .unavailable),
            Finding(
                observation: Observation(check: "kernel.btf", severity: .critical, summary: "x"),
                resource: ResourceAttributes(nodeName: "n1"), windowStart: Timestamp(nanoseconds: 1),
                time: Timestamp(nanoseconds: 2)),
        ])
        let s = ContainerMetrics.Name.severity
        #expect(metrics.value(s, labels("p1", "shm.size")) == 0)
        #expect(metrics.has(s, labels("p1", "shm.size")))
        #expect(metrics.value(s, labels("p1", "memory.reclaim")) == 1)
        #expect(metrics.value(s, labels("p1", "blkio.noise")) == 2)
        #expect(metrics.value(s, labels("p1", "memory.limit")) == 3)
        #expect(!metrics.has(s, labels("p1", "shm.enospc")))
        #expect(metrics.seriesCount(s) == 4)
        let u = ContainerMetrics.Name.unavailable
        #expect(metrics.value(u, labels("p1", "shm.enospc")) == 1)
        #expect(metrics.value(u, labels("p1", "shm.size")) == 0)
        #expect(metrics.seriesCount(u) == 5)

        // The check runs again: severity back, unavailable 0.
        container.record([finding("c1", pod: "p1", "shm.enospc", .warning)])
        #expect(metrics.value(s, labels("p1", "shm.enospc")) == 2)
        #expect(metrics.value(u, labels("p1", "shm.enospc")) == 0)
        // It goes unavailable: the stale severity goes.
        container.record([finding("c1", pod: "p1", "memory.limit", .unavailable)])
        #expect(!metrics.has(s, labels("p1", "memory.limit")))
    }

    @Test("evidence: gauges of the window (dropped when absent), counters summed over windows, units scaled")
    func evidence() {
        let metrics = MetricsRegistry()
        let container = ContainerMetrics(metrics)
        func window(stall: Int64, own: Int64, noise: Int64, limit: JSONValue) {
            container.record([
                finding(
                    "c1", pod: "p1", "shm.size", .ok, ["shm_size_bytes": .int(67_108_864), "shm_used_bytes": .int(10)]),
                finding("c1", pod: "p1", "shm.enospc", .ok, ["dsm_peak_bytes": .int(4096), "failures": .int(0)]),
                finding(
                    "c1", pod: "p1", "memory.reclaim", .info, ["stall_ns": .int(stall), "reclaimed_bytes": .int(8)]),
                finding(
                    "c1", pod: "p1", "blkio.noise", .ok,
                    ["own_requests": .int(own), "noise_requests": .int(noise), "noise_p50_us": .null]),
                finding("c1", pod: "p1", "memory.limit", .ok, ["limit_bytes": limit, "working_set_bytes": .int(99)]),
                finding(
                    "c1", pod: "p1", "cpu.migrations", .info,
                    [
                        "within_llc": .int(own), "cross_llc": .int(noise), "cross_numa": .int(1),
                        "unknown_topology": .int(0),
                    ]),
                finding("c1", pod: "p1", "cpu.contention", .warning, ["run_queue_wait_share": .double(0.25)]),
                finding(
                    "c1", pod: "p1", "writeback.throttle", .warning,
                    ["paused_ns": .int(stall), "pauses": .int(own)]),
            ])
        }
        window(stall: 1_500_000_000, own: 10, noise: 3, limit: .int(1 << 30))
        window(stall: 500_000_000, own: 5, noise: 0, limit: .null)
        let base = labels("p1")
        #expect(metrics.value("pgnode_shm_size_bytes", base) == 67_108_864)
        #expect(metrics.value("pgnode_shm_used_bytes", base) == 10)
        #expect(metrics.value("pgnode_dsm_peak_bytes", base) == 4096)
        #expect(metrics.value("pgnode_memory_reclaim_stall_seconds_total", base) == 2)
        #expect(metrics.value("pgnode_memory_reclaimed_bytes_total", base) == 16)
        #expect(metrics.value("pgnode_blkio_requests_total", base + [("kind", "own")]) == 15)
        #expect(metrics.value("pgnode_blkio_requests_total", base + [("kind", "noise")]) == 3)
        #expect(metrics.value("pgnode_cpu_migrations_total", base + [("kind", "within_llc")]) == 15)
        #expect(metrics.value("pgnode_cpu_migrations_total", base + [("kind", "cross_llc")]) == 3)
        #expect(metrics.value("pgnode_cpu_migrations_total", base + [("kind", "cross_numa")]) == 2)
        #expect(metrics.value("pgnode_cpu_migrations_total", base + [("kind", "unknown")]) == 0)
        #expect(metrics.has("pgnode_shm_enospc_failures_total", base))
        // No limit in the second window: the gauge of the first is gone.
        #expect(!metrics.has("pgnode_memory_limit_bytes", base))
        #expect(metrics.value("pgnode_memory_working_set_bytes", base) == 99)
        #expect(metrics.value("pgnode_cpu_run_queue_wait_ratio", base) == 0.25)
        #expect(metrics.value("pgnode_writeback_paused_seconds_total", base) == 2)
        #expect(metrics.value("pgnode_writeback_pauses_total", base) == 15)

        // A check that cannot run leaves the counters' totals and drops its gauges.
        container.record([finding("c1", pod: "p1", "shm.size", .unavailable)])
        #expect(!metrics.has("pgnode_shm_size_bytes", base))
        // A negative count (not from a real probe) is not added to a counter.
        container.record([finding("c1", pod: "p1", "memory.reclaim", .ok, ["stall_ns": .int(-5)])])
        #expect(metrics.value("pgnode_memory_reclaim_stall_seconds_total", base) == 2)
    }

    @Test("a container that has gone loses its series; a restarted one in the same pod keeps the pod's")
    func removal() {
        let metrics = MetricsRegistry()
        let container = ContainerMetrics(metrics)
        container.record([
            finding("c1", pod: "p1", "shm.size", .ok, ["shm_size_bytes": .int(1)]),
            finding("c2", pod: "p2", "shm.size", .warning, ["shm_size_bytes": .int(2)]),
            finding("c2", pod: "p2", "memory.reclaim", .ok, ["stall_ns": .int(1)]),
        ])
        container.forget(allBut: ["c1", "c2"])
        #expect(metrics.seriesCount(ContainerMetrics.Name.severity) == 3)
        container.forget(allBut: ["c1"])
        let text = metrics.render()
        #expect(!text.contains("pod=\"p2\""), "\(text)")
        #expect(
            text.contains(
                "pgnode_finding_severity{check=\"shm.size\",namespace=\"db\",pod=\"p1\",container=\"postgres\"} 0\n"))

        // c1's container restarts as c3 in the same pod: the new id writes the same series; c1
        // going later removes nothing of c3's.
        container.record([finding("c3", pod: "p1", "shm.size", .critical, ["shm_size_bytes": .int(3)])])
        container.forget(allBut: ["c3"])
        #expect(metrics.value(ContainerMetrics.Name.severity, labels("p1", "shm.size")) == 3)
        #expect(metrics.value("pgnode_shm_size_bytes", labels("p1")) == 3)
        container.forget(allBut: [])
        #expect(metrics.seriesCount(ContainerMetrics.Name.severity) == 0)
        #expect(metrics.seriesCount("pgnode_shm_size_bytes") == 0)
    }

    @Test("labels: unknown metadata is empty, the container label then the short id; hostile names escaped")
    func labelsOfResources() {
        let unknown = ContainerMetrics.labels(
            resource(String(repeating: "ab", count: 32), pod: nil, namespace: nil, name: nil))
        #expect(unknown.map(\.1) == ["", "", "abababababab"])
        let metrics = MetricsRegistry()
        let container = ContainerMetrics(metrics)
        container.record([finding("c1", pod: "we\"ird\npod\\", "shm.size", .ok)])
        #expect(metrics.render().contains("pod=\"we\\\"ird\\npod\\\\\""))
    }
}
