import Checks
import PGNodeModel
import Testing

@Suite("memory.reclaim")
struct MemoryReclaimCheckTests {
    let second: Int64 = 1_000_000_000

    @Test("no reclaim is ok")
    func none() {
        let o = MemoryReclaimCheck.evaluate(ReclaimReport(processes: [], windowNanoseconds: 10 * second))
        #expect(o.severity == .ok)
        #expect(o.evidence["by_pid"] == .array([]))
    }

    @Test("processes are ordered by reclaimed bytes; totals add up")
    func ordering() throws {
        let o = MemoryReclaimCheck.evaluate(
            ReclaimReport(
                processes: [
                    .init(pid: 7, role: "checkpointer", events: 2, reclaimedBytes: 1 << 20, stallNanoseconds: 1_000),
                    .init(
                        pid: 9, role: "client backend", events: 40, reclaimedBytes: 300 << 20,
                        stallNanoseconds: 5_000_000),
                ], windowNanoseconds: 10 * second))
        let byPid = try #require(o.evidence["by_pid"]?.arrayValue)
        #expect(byPid.map { $0["pid"] } == [.int(9), .int(7)])
        #expect(o.evidence["reclaimed_bytes"] == .int(301 << 20))
        #expect(o.evidence["events"] == .int(42))
        #expect(o.summary.contains("pid 9 (client backend)"))
        // 301 MiB in 10 s is above 1 MiB/s: a warning even though the stall is short.
        #expect(o.severity == .warning)
    }

    @Test("stall thresholds: 1 % warning, 10 % critical, little reclaim is info")
    func thresholds() {
        func severity(stall: Int64, bytes: Int64) -> Severity {
            MemoryReclaimCheck.evaluate(
                ReclaimReport(
                    processes: [.init(pid: 1, role: nil, events: 1, reclaimedBytes: bytes, stallNanoseconds: stall)],
                    windowNanoseconds: 10 * second)
            ).severity
        }
        #expect(severity(stall: 1_000_000, bytes: 4096) == .info)
        #expect(severity(stall: 100_000_000, bytes: 4096) == .warning)
        #expect(severity(stall: 1 * second, bytes: 4096) == .critical)
        // Volume alone: 5 MiB/s over the 10 s window is info, 12 MiB/s a warning.
        #expect(severity(stall: 1_000_000, bytes: 50 << 20) == .info)
        #expect(severity(stall: 1_000_000, bytes: 120 << 20) == .warning)
    }

    @Test("by_pid names each process: pid on the host and in the container, command, role")
    func naming() throws {
        let o = MemoryReclaimCheck.evaluate(
            ReclaimReport(
                processes: [
                    .init(
                        pid: 27627, role: "client backend", events: 322, reclaimedBytes: 663_031_808,
                        stallNanoseconds: 495_489_992, command: "postgres", namespacePID: 15),
                    .init(
                        pid: 27700, role: nil, events: 1, reclaimedBytes: 8192, stallNanoseconds: 1000, command: "sh",
                        namespacePID: nil),
                ], windowNanoseconds: 20 * second))
        let byPid = try #require(o.evidence["by_pid"]?.arrayValue)
        #expect(
            byPid.first
                == .object([
                    "pid": 27627, "ns_pid": 15, "command": "postgres", "role": "client backend",
                    "reclaimed_bytes": .int(663_031_808), "stall_ns": .int(495_489_992), "events": 322,
                ]))
        #expect(byPid.last?["role"] == .null && byPid.last?["ns_pid"] == .null && byPid.last?["command"] == "sh")
        // 2.4 % of the window stalled: a warning.
        #expect(o.severity == .warning)
        #expect(o.summary.contains("most in pid 27627 (client backend)"))
    }
}

@Suite("blkio.noise")
struct BlockNoiseCheckTests {
    func report(
        own: Int64, noise: Int64, ownHist: [UInt64], noiseHist: [UInt64], neighbours: [BlockNoiseReport.Neighbour] = []
    )
        -> BlockNoiseReport
    {
        BlockNoiseReport(
            devices: [.init(dev: "254:0", name: "vda", scheduler: "none", hardwareQueues: 2)], ownRequests: own,
            noiseRequests: noise, ownLatency: Log2Histogram(counts: ownHist),
            noiseLatency: Log2Histogram(counts: noiseHist), neighbours: neighbours)
    }

    @Test("median of a log2 histogram")
    func median() {
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [])) == nil)
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [0, 0, 0, 10])) == 8)
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [1, 1, 5, 1])) == 4)
    }

    @Test("noise outnumbering own requests with a higher p50 is a warning; neighbours by requests")
    func warning() throws {
        let o = BlockNoiseCheck.evaluate(
            report(
                own: 100, noise: 150, ownHist: [0, 0, 0, 0, 0, 0, 0, 100], noiseHist: [0, 0, 0, 0, 0, 0, 0, 0, 150],
                neighbours: [
                    .init(
                        cgroup: "/system.slice/backup.service", containerID: nil, podName: nil, namespace: nil,
                        requests: 20),
                    .init(
                        cgroup: "/kubepods/pod1/abc", containerID: "abc", podName: "loader", namespace: "etl",
                        requests: 130),
                ]))
        #expect(o.severity == .warning)
        let first = try #require(o.evidence["neighbours"]?.arrayValue?.first)
        #expect(first["k8s.pod.name"] == "loader")
        #expect(o.summary.contains("pod etl/loader"))
        #expect(o.evidence["devices"]?.arrayValue?.first?["scheduler"] == "none")
    }

    @Test("much more noise, much slower: critical")
    func critical() {
        let o = BlockNoiseCheck.evaluate(
            report(own: 10, noise: 100, ownHist: [0, 0, 0, 10], noiseHist: [0, 0, 0, 0, 0, 0, 100]))
        #expect(o.severity == .critical)
    }

    @Test("waiting out a neighbour's requests: own p50 in the noise p50's bucket; 4x the requests is critical")
    func sameBucket() {
        let hist: [UInt64] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10]
        #expect(
            BlockNoiseCheck.evaluate(report(own: 10, noise: 39, ownHist: hist, noiseHist: hist)).severity == .warning)
        #expect(
            BlockNoiseCheck.evaluate(report(own: 10, noise: 40, ownHist: hist, noiseHist: hist)).severity == .critical)
        // Fewer noise requests than own ones: ok, whatever their latency.
        #expect(BlockNoiseCheck.evaluate(report(own: 10, noise: 10, ownHist: hist, noiseHist: hist)).severity == .ok)
    }

    @Test("a dominating neighbour whose requests finish one bucket faster than ours still counts")
    func oneBucketFaster() {
        let o = BlockNoiseCheck.evaluate(
            report(
                own: 371, noise: 5914, ownHist: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 371],
                noiseHist: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5914]))
        #expect(o.severity == .critical)
    }

    @Test("a reader waiting behind a deep writer: its median several buckets above the writer's still counts")
    func severalBucketsSlower() {
        // A CI run here (reader: 4 KiB psync reads; loader: 1 MiB writes, iodepth 16, one queue):
        // 322 own requests at p50 16–32 ms behind 5,062 of the loader's at p50 4–8 ms. Each read
        // waited out about 16 writes; comparing the medians alone called this ok.
        let own: [UInt64] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8, 296, 11]
        let noise: [UInt64] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2910, 2068, 7, 1, 73]
        let o = BlockNoiseCheck.evaluate(report(own: 322, noise: 5062, ownHist: own, noiseHist: noise))
        #expect(o.evidence["own_p50_us"] == 16384)
        #expect(o.evidence["noise_p50_us"] == 4096)
        #expect(o.severity == .critical)
    }

    @Test("whether the noise ahead explains the wait: the bound, and extreme counters")
    func explainsWait() {
        // 10 requests at 16 µs: 80 µs is half their time; 20 noise requests at 4 µs make 80 µs.
        #expect(BlockNoiseCheck.noiseExplainsWait(ownRequests: 10, ownP50: 16, noiseRequests: 20, noiseP50: 4))
        #expect(!BlockNoiseCheck.noiseExplainsWait(ownRequests: 10, ownP50: 16, noiseRequests: 19, noiseP50: 4))
        #expect(!BlockNoiseCheck.noiseExplainsWait(ownRequests: 0, ownP50: 16, noiseRequests: 19, noiseP50: 4))
        #expect(!BlockNoiseCheck.noiseExplainsWait(ownRequests: 10, ownP50: 16, noiseRequests: -5, noiseP50: 4))
        #expect(
            BlockNoiseCheck.noiseExplainsWait(
                ownRequests: .max, ownP50: .max, noiseRequests: .max, noiseP50: .max))
    }

    @Test("alone on the disk: ok; no I/O at all: ok")
    func ok() {
        #expect(
            BlockNoiseCheck.evaluate(report(own: 500, noise: 0, ownHist: [0, 0, 500], noiseHist: [])).severity == .ok)
        #expect(BlockNoiseCheck.evaluate(report(own: 0, noise: 0, ownHist: [], noiseHist: [])).severity == .ok)
        // More neighbour requests than our own, but so much faster that all of them together
        // explain little of our wait (4 KiB reads at 64 µs ahead of 1 MiB writes at 8 ms): ok.
        var writes = [UInt64](repeating: 0, count: 14)
        writes[13] = 100
        var reads = [UInt64](repeating: 0, count: 7)
        reads[6] = 150
        #expect(
            BlockNoiseCheck.evaluate(report(own: 100, noise: 150, ownHist: writes, noiseHist: reads)).severity == .ok)
    }
}
