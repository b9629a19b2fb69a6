/// Turns what the probes' maps hold since they were created into what happened in one window,
/// for a session that stays attached across windows (the agent).
///
/// Counters and histograms in the kernel only grow (BPF programs increment them; user space never
/// writes them while a target holds the slot, which would race with those increments), so a
/// window's value is the difference from the previous reading. Hash-map entries (failures,
/// reclaiming threads, neighbours) are drained by the reader instead: they arrive here already
/// per window and pass through. State that is not a count passes through as it is: the bytes a
/// target holds in `/dev/shm` now.
struct WindowBaseline {
    private var shm: [Int: (calls: UInt64, failures: UInt64)] = [:]
    private var blkio: [Int: BlkioResult] = [:]
    private var evicted: UInt64 = 0

    /// The window since the previous call, from `cumulative`; remembers `cumulative` for the next.
    mutating func window(_ cumulative: ProbeResults) -> ProbeResults {
        var result = ProbeResults()
        result.reclaim = cumulative.reclaim
        for (slot, now) in cumulative.shm {
            let before = shm[slot] ?? (0, 0)
            var window = now
            window.calls = Self.delta(now.calls, before.calls)
            window.failures = Self.delta(now.failures, before.failures)
            // The first and last failure of this window are those of the entries drained for it.
            window.firstFailureNs = now.failed.map(\.firstNs).min()
            window.lastFailureNs = now.failed.map(\.lastNs).max()
            shm[slot] = (now.calls, now.failures)
            if window.calls > 0 || window.failures > 0 || window.heldBytes != 0 || !window.failed.isEmpty {
                result.shm[slot] = window
            }
        }
        var evictedNow = evicted
        for (slot, now) in cumulative.blkio {
            let before = blkio[slot] ?? BlkioResult()
            var window = now
            window.ownRequests = Self.delta(now.ownRequests, before.ownRequests)
            window.noiseRequests = Self.delta(now.noiseRequests, before.noiseRequests)
            window.ownLatencyUs = Self.delta(now.ownLatencyUs, before.ownLatencyUs)
            window.noiseLatencyUs = Self.delta(now.noiseLatencyUs, before.noiseLatencyUs)
            window.devices = now.devices.compactMap { device in
                let old = before.devices.first { $0.dev == device.dev }
                var changed = device
                changed.ownRequests = Self.delta(device.ownRequests, old?.ownRequests ?? 0)
                changed.noiseRequests = Self.delta(device.noiseRequests, old?.noiseRequests ?? 0)
                return changed.ownRequests > 0 || changed.noiseRequests > 0 ? changed : nil
            }
            window.evictedRequests = Self.delta(now.evictedRequests, evicted)
            evictedNow = max(evictedNow, now.evictedRequests)
            var remembered = now
            remembered.neighbours = []
            blkio[slot] = remembered
            if window.ownRequests > 0 || window.noiseRequests > 0 || !window.neighbours.isEmpty {
                result.blkio[slot] = window
            }
        }
        evicted = evictedNow
        return result
    }

    /// Forgets the shm counts of `slot`: its kernel counters were zeroed for a new target.
    mutating func forgetShm(slot: Int) {
        shm[slot] = nil
    }

    /// `now - before`; a counter below its baseline was reset, so all of it is new.
    static func delta(_ now: UInt64, _ before: UInt64) -> UInt64 {
        now >= before ? now - before : now
    }

    /// Slot by slot.
    static func delta(_ now: [UInt64], _ before: [UInt64]) -> [UInt64] {
        now.indices.map { delta(now[$0], $0 < before.count ? before[$0] : 0) }
    }
}
