import Testing

@testable import Probes

@Suite("Per-window results from cumulative maps")
struct WindowBaselineTests {
    static func blkio(own: UInt64, noise: UInt64, slots: [UInt64], dev: UInt32 = 0x80_0000) -> BlkioResult {
        var result = BlkioResult()
        result.ownRequests = own
        result.noiseRequests = noise
        result.ownLatencyUs = slots
        result.noiseLatencyUs = [noise]
        result.devices = [.init(dev: dev, ownRequests: own, noiseRequests: noise)]
        return result
    }

    @Test("counters and histograms become differences; drained entries and held bytes pass through")
    func differences() throws {
        var baseline = WindowBaseline()
        var first = ProbeResults()
        first.blkio[0] = Self.blkio(own: 10, noise: 2, slots: [4, 6])
        var shm = ShmResult()
        shm.calls = 5
        shm.heldBytes = 4096
        first.shm[3] = shm
        first.reclaim[1] = [
            ReclaimEntry(
                pid: 7, tgid: 7, comm: "postgres", memcgEvents: 1, directEvents: 0, reclaimedPages: 3, stallNs: 9)
        ]
        let window1 = baseline.window(first)
        #expect(window1 == first)

        var second = ProbeResults()
        second.blkio[0] = Self.blkio(own: 15, noise: 2, slots: [5, 10])
        shm.calls = 5
        second.shm[3] = shm
        let window2 = baseline.window(second)
        let blk = try #require(window2.blkio[0])
        #expect(blk.ownRequests == 5)
        #expect(blk.noiseRequests == 0)
        #expect(blk.ownLatencyUs == [1, 4])
        #expect(blk.devices.map(\.ownRequests) == [5])
        // No new calls, but the target still holds its segment: reported, with zero calls.
        #expect(window2.shm[3]?.calls == 0)
        #expect(window2.shm[3]?.heldBytes == 4096)
        #expect(window2.reclaim.isEmpty)
    }

    @Test("a counter below its baseline was reset: all of it counts")
    func reset() {
        var baseline = WindowBaseline()
        var results = ProbeResults()
        var shm = ShmResult()
        shm.calls = 8
        shm.failures = 2
        results.shm[0] = shm
        _ = baseline.window(results)
        baseline.forget(slot: 0)
        shm.calls = 3
        shm.failures = 0
        results.shm[0] = shm
        #expect(baseline.window(results).shm[0]?.calls == 3)
        #expect(WindowBaseline.delta(2, 5) == 2)
    }
}
