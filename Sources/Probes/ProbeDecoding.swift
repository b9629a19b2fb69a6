import ProbeObjects

/// A NUL-terminated C char array (imported as a tuple) as a String.
func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
}

func syscallName(_ value: UInt32) -> String {
    switch value {
    case UInt32(PGN_SHM_FALLOCATE.rawValue): "fallocate"
    case UInt32(PGN_SHM_FTRUNCATE.rawValue): "ftruncate"
    default: "unknown"
    }
}

enum ShmDecoding {
    static func event(_ bytes: [UInt8]) -> ShmResult.Event? {
        guard bytes.count >= MemoryLayout<pgn_shm_event>.size else { return nil }
        let e = bytes.withUnsafeBytes { $0.loadUnaligned(as: pgn_shm_event.self) }
        return ShmResult.Event(
            timeNs: e.time_ns, sizeBytes: e.size, cgroupID: e.cgroup_id, target: Int(e.target), tgid: e.tgid,
            pid: e.pid, syscall: syscallName(e.syscall), fd: e.fd, ret: e.ret, device: e.dev, comm: cString(e.comm),
            file: cString(e.file), namespaceTGID: e.ns_tgid, title: cString(e.title))
    }

    /// The maps as they are; `drain` takes the failure entries out (per-window reading), and
    /// `window` is the current window's number in `shm_window` (a target whose stats carry an
    /// older one has not changed this window: its peak is what it holds).
    static func read(_ object: BPFObject, events: [ShmResult.Event], drain: Bool = false, window: UInt64 = 0)
        throws(BPFError) -> [Int: ShmResult]
    {
        var results: [Int: ShmResult] = [:]
        let stats = try object.map("shm_stats")
        for index in 0..<Int(PGN_MAX_TARGETS) {
            guard let s = try stats.lookup(UInt32(index), as: pgn_shm_stats.self),
                s.calls > 0 || s.failures > 0 || s.current_bytes != 0
            else { continue }
            var result = ShmResult()
            result.calls = s.calls
            result.failures = s.failures
            result.firstFailureNs = s.first_fail_ns == 0 ? nil : s.first_fail_ns
            result.lastFailureNs = s.last_fail_ns == 0 ? nil : s.last_fail_ns
            result.heldBytes = s.current_bytes
            result.peakBytes = s.window == window ? s.peak_bytes : s.current_bytes
            results[index] = result
        }
        let failures = try object.map("shm_failures")
        for (key, value) in try drain
            ? failures.drain(pgn_shm_failure_key.self, pgn_shm_failure_value.self)
            : failures.entries(pgn_shm_failure_key.self, pgn_shm_failure_value.self)
        {
            let failure = ShmResult.Failure(
                tgid: key.tgid, pid: value.pid, comm: cString(value.comm), sizeBytes: key.size, count: value.count,
                syscall: syscallName(value.syscall), firstNs: value.first_ns, lastNs: value.last_ns,
                namespaceTGID: value.ns_tgid, title: cString(value.title))
            results[Int(key.target), default: ShmResult()].failed.append(failure)
        }
        for event in events { results[event.target, default: ShmResult()].events.append(event) }
        for index in results.keys {
            results[index]!.failed.sort { ($0.sizeBytes, $0.tgid) > ($1.sizeBytes, $1.tgid) }
            results[index]!.events.sort { $0.timeNs < $1.timeNs }
        }
        return results
    }
}

enum ReclaimDecoding {
    /// The map as it is; `drain` takes the entries out (per-window reading).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: [ReclaimEntry]] {
        var results: [Int: [ReclaimEntry]] = [:]
        let map = try object.map("reclaim_by_pid")
        for (key, value) in try drain
            ? map.drain(pgn_reclaim_key.self, pgn_reclaim_value.self)
            : map.entries(pgn_reclaim_key.self, pgn_reclaim_value.self)
        {
            results[Int(key.target), default: []].append(
                ReclaimEntry(
                    pid: key.pid, tgid: value.tgid, comm: cString(value.comm), memcgEvents: value.memcg_events,
                    directEvents: value.direct_events, reclaimedPages: value.reclaimed_pages, stallNs: value.stall_ns))
        }
        for index in results.keys { results[index]!.sort { ($0.reclaimedPages, $0.pid) > ($1.reclaimedPages, $1.pid) } }
        return results
    }
}

enum BlkioDecoding {
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
        let counts = try object.map("blk_counts")
        let own = try object.map("blk_own_hist")
        let noise = try object.map("blk_noise_hist")
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
        let neighbours = try object.map("blk_neighbours")
        for (key, count) in try drain
            ? neighbours.drain(pgn_blk_neighbour_key.self, UInt64.self)
            : neighbours.entries(pgn_blk_neighbour_key.self, UInt64.self)
        {
            let ref = CgroupRef(id: key.cgroup_id, kind: CgroupRef.Kind(rawValue: key.kind) ?? .v2)
            results[Int(key.target), default: BlkioResult()].neighbours.append(.init(cgroup: ref, requests: count))
        }
        // One entry per hardware queue: a device's counts are the sum of its queues'.
        var devices: [Int: [UInt32: (own: UInt64, noise: UInt64)]] = [:]
        for (_, queue) in try object.map("blk_queues").entries(UInt64.self, pgn_blk_queue.self) {
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
        let evicted = try object.map("blk_state").lookup(UInt32(1), as: UInt64.self) ?? 0
        for index in results.keys {
            results[index]!.neighbours.sort { $0.requests > $1.requests }
            results[index]!.devices.sort { ($0.ownRequests, $1.dev) > ($1.ownRequests, $0.dev) }
            results[index]!.evictedRequests = evicted
        }
        return results
    }
}
