import HostFacts
import OSSupport
import ProbeObjects

/// The blkio probe (`bpf/blkio.bpf.c`): the block layer's insert, issue and complete
/// tracepoints (tp_btf, or raw_tp where tp_btf cannot be used). Per target: its requests and
/// their latency, the other cgroups' requests that completed on the same queues while it waited
/// (noise), who those neighbours were, and the devices. Feeds `blkio.noise`.
public final class BlkioProbe: Probe {
    public typealias Result = BlkioResult

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: BlkioObject.name, checks: ["blkio.noise"], programTypes: ["raw_tracepoint"],
            mapTypes: ["hash", "array", "percpu_array", "lru_hash"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel"],
            tracepoints: ["block/block_rq_insert", "block/block_rq_issue", "block/block_rq_complete"],
            needsTracefs: false),
        programs: [.pgnBlkInsBtf, .pgnBlkIssBtf, .pgnBlkCmpBtf] as [BlkioObject.Program],
        rawTracepointPrograms: [.pgnBlkInsRaw, .pgnBlkIssRaw, .pgnBlkCmpRaw] as [BlkioObject.Program])
    public static let v1Controller = CgroupRef.Kind.blkioV1

    public let object: BPFObject

    public init(object: BPFObject) { self.object = object }

    public func clear(slot: Int) throws(BPFError) {
        let neighbours = try object.map(BlkioObject.Map.blkNeighbours)
        for key in try neighbours.keys(pgn_blk_neighbour_key.self) where key.target == UInt32(slot) {
            try neighbours.delete(key)
        }
    }

    /// Tells the programs that all of them are attached: they track requests allocated from now
    /// on (CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns()` and `rq->start_time_ns`). Without
    /// this they start from the first completion they see.
    public func attached() {
        try? object.map(BlkioObject.Map.blkState).update(UInt32(0), MonotonicClock.nanoseconds())
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: BlkioResult] { try Self.read(object, drain: drain) }

    // MARK: Windows

    /// Per slot: the counts and histograms of the previous reading; the evictions counted then.
    public struct Baseline: Sendable {
        var slots: [Int: BlkioResult] = [:]
        var evicted: UInt64 = 0
    }

    public static var initialBaseline: Baseline { Baseline() }

    /// Counts, histograms and devices' counts become differences; neighbours (drained) pass.
    public static func window(_ cumulative: [Int: BlkioResult], baseline: inout Baseline) -> [Int: BlkioResult] {
        var result: [Int: BlkioResult] = [:]
        var evictedNow = baseline.evicted
        for (slot, now) in cumulative {
            let before = baseline.slots[slot] ?? BlkioResult()
            var window = now
            window.ownRequests = WindowBaseline.delta(now.ownRequests, before.ownRequests)
            window.noiseRequests = WindowBaseline.delta(now.noiseRequests, before.noiseRequests)
            window.ownLatencyUs = WindowBaseline.delta(now.ownLatencyUs, before.ownLatencyUs)
            window.noiseLatencyUs = WindowBaseline.delta(now.noiseLatencyUs, before.noiseLatencyUs)
            window.devices = now.devices.compactMap { device in
                let old = before.devices.first { $0.dev == device.dev }
                var changed = device
                changed.ownRequests = WindowBaseline.delta(device.ownRequests, old?.ownRequests ?? 0)
                changed.noiseRequests = WindowBaseline.delta(device.noiseRequests, old?.noiseRequests ?? 0)
                return changed.ownRequests > 0 || changed.noiseRequests > 0 ? changed : nil
            }
            window.evictedRequests = WindowBaseline.delta(now.evictedRequests, baseline.evicted)
            evictedNow = max(evictedNow, now.evictedRequests)
            var remembered = now
            remembered.neighbours = []
            baseline.slots[slot] = remembered
            if window.ownRequests > 0 || window.noiseRequests > 0 || !window.neighbours.isEmpty {
                result[slot] = window
            }
        }
        baseline.evicted = evictedNow
        return result
    }

    /// Block requests, the target's and the noise.
    public static func events(in results: [Int: BlkioResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { $0 &+ $1.ownRequests &+ $1.noiseRequests }
    }

    // MARK: Decoding

    static func slots(_ hist: pgn_hist) -> [UInt64] {
        withUnsafeBytes(of: hist.slots) { Array($0.bindMemory(to: UInt64.self)) }
    }

    /// Sums a per-CPU histogram's slots over the CPUs. The kernel's counters are u64 that wrap;
    /// their sums wrap the same way (never trap), and windows are taken as wrapping differences.
    static func slots(_ perCPU: [pgn_hist]) -> [UInt64] {
        perCPU.map(slots).reduce(into: [UInt64]()) { sum, cpu in
            if sum.isEmpty { sum = cpu } else { for i in sum.indices { sum[i] &+= cpu[i] } }
        }
    }

    /// The maps as they are; `drain` takes the neighbour entries out (per-window reading).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: BlkioResult] {
        var results: [Int: BlkioResult] = [:]
        let counts = try object.map(BlkioObject.Map.blkCounts)
        let own = try object.map(BlkioObject.Map.blkOwnHist)
        let noise = try object.map(BlkioObject.Map.blkNoiseHist)
        for index in 0..<Int(PGN_MAX_TARGETS) {
            let perCPU = try counts.lookupPerCPU(UInt32(index), as: pgn_blk_counts.self) ?? []
            var result = BlkioResult()
            for c in perCPU {
                result.ownRequests &+= c.own_requests
                result.noiseRequests &+= c.noise_requests
            }
            result.ownLatencyUs = slots(try own.lookupPerCPU(UInt32(index), as: pgn_hist.self) ?? [])
            result.noiseLatencyUs = slots(try noise.lookupPerCPU(UInt32(index), as: pgn_hist.self) ?? [])
            if result.ownRequests > 0 || result.noiseRequests > 0 { results[index] = result }
        }
        let neighbours = try object.map(BlkioObject.Map.blkNeighbours)
        for (key, count) in try drain
            ? neighbours.drain(pgn_blk_neighbour_key.self, UInt64.self)
            : neighbours.entries(pgn_blk_neighbour_key.self, UInt64.self)
        {
            let ref = CgroupRef(id: key.cgroup_id, kind: CgroupRef.Kind(rawValue: key.kind) ?? .v2)
            results[Int(key.target), default: BlkioResult()].neighbours.append(.init(cgroup: ref, requests: count))
        }
        // One entry per hardware queue: a device's counts are the sum of its queues'.
        var devices: [Int: [UInt32: (own: UInt64, noise: UInt64)]] = [:]
        for (_, queue) in try object.map(BlkioObject.Map.blkQueues).entries(UInt64.self, pgn_blk_queue.self) {
            let own = withUnsafeBytes(of: queue.own_requests) { Array($0.bindMemory(to: UInt64.self)) }
            let noise = withUnsafeBytes(of: queue.noise_requests) { Array($0.bindMemory(to: UInt64.self)) }
            for target in own.indices where own[target] > 0 || noise[target] > 0 {
                devices[target, default: [:]][queue.dev, default: (0, 0)].own &+= own[target]
                devices[target, default: [:]][queue.dev, default: (0, 0)].noise &+= noise[target]
            }
        }
        for (target, byDevice) in devices {
            for (dev, counts) in byDevice {
                results[target, default: BlkioResult()].devices.append(
                    .init(dev: dev, ownRequests: counts.own, noiseRequests: counts.noise))
            }
        }
        let evicted = try object.map(BlkioObject.Map.blkState).lookup(UInt32(1), as: UInt64.self) ?? 0
        for index in results.keys {
            results[index]!.neighbours.sort { $0.requests > $1.requests }
            results[index]!.devices.sort { ($0.ownRequests, $1.dev) > ($1.ownRequests, $0.dev) }
            results[index]!.evictedRequests = evicted
        }
        return results
    }
}

extension ProbeResults {
    /// The blkio probe's results by slot.
    public var blkio: [Int: BlkioResult] {
        get { self[BlkioProbe.self] }
        set { self[BlkioProbe.self] = newValue }
    }
}

/// blkio: one target's result.
public struct BlkioResult: Sendable, Equatable {
    public struct Neighbour: Sendable, Equatable {
        public var cgroup: CgroupRef
        public var requests: UInt64
    }

    /// A device the target's requests went to.
    public struct Device: Sendable, Equatable {
        /// The kernel's encoding: `major << 20 | minor` (the disk's first minor).
        public var dev: UInt32
        /// The target's requests completed there.
        public var ownRequests: UInt64
        /// Other cgroups' requests that completed there while the target waited.
        public var noiseRequests: UInt64

        /// `MAJ:MIN`.
        public var majorMinor: String { "\(dev >> 20):\(dev & 0xF_FFFF)" }
    }

    public var ownRequests: UInt64 = 0
    public var noiseRequests: UInt64 = 0
    /// log2 µs slots: slot i counts latencies in [2^i, 2^(i+1)) µs (slot 0 includes 0).
    public var ownLatencyUs: [UInt64] = []
    public var noiseLatencyUs: [UInt64] = []
    /// By requests, most first.
    public var neighbours: [Neighbour] = []
    /// By own requests, most first.
    public var devices: [Device] = []
    /// Target requests (of every target) whose state the bounded per-request map evicted before
    /// they completed; their waiting counts were given back at completion. The same in every
    /// target's result.
    public var evictedRequests: UInt64 = 0

    /// An empty result: no requests.
    public init() {}
}
