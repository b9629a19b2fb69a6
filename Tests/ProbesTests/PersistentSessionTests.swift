import Foundation
import HostFacts
import Probes
import TestSupport
import Testing

/// The agent's use of a probe session: attached once, targets changed between windows, each
/// window read with `collect()`. Real programs in this kernel, real I/O in cgroups made here.
@Suite("one session across windows", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct PersistentSessionTests {
    @Test("windows: counts per window, programs never reloaded, a slot given to another cgroup starts clean")
    func windows() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let first = try TestCgroup(["blkio", "memory"])
        let second = try TestCgroup(["blkio", "memory"])
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Command.run(["dd", "if=/dev/zero", "of=\(scratch)/data", "bs=1M", "count=16", "conv=fsync", "status=none"])
        let probes = ["blkio", "reclaim"].compactMap(ProbeCatalog.named)
        let session = ProbeSession(probes: probes, environment: ProbeTestSupport.environment(), btfPath: nil)
        defer { session.close() }
        func target(_ cgroup: TestCgroup) throws -> ProbeTarget {
            ProbeTarget(memoryV1: try cgroup.id("memory"), blkioV1: try cgroup.id("blkio"))
        }
        try session.setTargets(slots: [0: try target(first)])
        session.attach()
        try #require(session.outcomes.allSatisfy { $0.running }, "\(session.outcomes)")
        let programs = Set(session.outcomes.flatMap { $0.programIDs.values })
        let reads = "dd if=\(scratch)/data of=/dev/null bs=4k count=1000 iflag=direct status=none"

        // Window 1: the first cgroup reads 1000 blocks.
        #expect(try first.run(reads).status == 0)
        let window1 = session.collect()
        let own1 = window1.blkio[0]?.ownRequests ?? 0
        #expect(own1 >= 1000)
        #expect(window1.blkio[0]?.ownLatencyUs.reduce(0, +) == own1)

        // Window 2: nothing in the target: nothing counted, though the maps still hold window 1.
        #expect(try Command.run(["sh", "-c", reads]).status == 0)
        let window2 = session.collect()
        #expect((window2.blkio[0]?.ownRequests ?? 0) == 0, "\(window2.blkio)")

        // Window 3: both slots; the first cgroup reads again, the second twice as much.
        try session.setTargets(slots: [0: try target(first), 1: try target(second)])
        #expect(try first.run(reads).status == 0)
        #expect(try second.run(reads + " && " + reads).status == 0)
        let window3 = session.collect()
        let own3 = window3.blkio[0]?.ownRequests ?? 0
        #expect(own3 >= 1000 && own3 < 2000, "slot 0 counted \(own3): its window only")
        #expect((window3.blkio[1]?.ownRequests ?? 0) >= 2000)

        // Window 4: slot 0 goes to the second cgroup, slot 1 is dropped; the first cgroup's reads
        // no longer count anywhere.
        try session.setTargets(slots: [0: try target(second)])
        #expect(try first.run(reads).status == 0)
        #expect(try second.run(reads).status == 0)
        let window4 = session.collect()
        let own4 = window4.blkio[0]?.ownRequests ?? 0
        #expect(own4 >= 1000 && own4 < 2000, "slot 0 counted \(own4)")
        #expect(window4.blkio[1] == nil)

        // The same programs ran throughout: only the target map changed.
        #expect(Set(session.outcomes.flatMap { $0.programIDs.values }) == programs)
        let loaded = Set((BPFSystem.loadedPrograms() ?? []).map(\.id))
        #expect(programs.isSubset(of: loaded))
    }
}
