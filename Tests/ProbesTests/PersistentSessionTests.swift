import Diagnosis
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
        try #require(session.statuses.allSatisfy { $0.running }, "\(session.statuses)")
        let programs = Set(session.statuses.flatMap { $0.programIDs.values })
        let reads = "dd if=\(scratch)/data of=/dev/null bs=4k count=1000 iflag=direct status=none"
        // The kernel does not run BPF programs for every completion (see BlockCompletionWitness):
        // a witness counts the completions of the data file's sectors it did run them for, and
        // counts are held against what the kernel showed, never against the 1000 reads issued.
        try Command.run(["cat", "/usr/bin/dd"])  // dd's own pages cached: its faults read nothing
        let witness = try BlockCompletionWitness(counting: try FileSectors.of("\(scratch)/data"))
        defer { witness.close() }
        var witnessed: UInt64 = 0
        func shownSinceLastWindow() -> UInt64 {
            let now = witness.count
            defer { witnessed = now }
            return now - witnessed
        }
        /// Runs of the probe's programs the kernel skipped for recursion (the only allowance).
        func probeMisses() throws -> UInt64 {
            let blkio = session.statuses.first { $0.name == "blkio" }?.programIDs ?? [:]
            return try BPFProgramStats.counts(blkio).values.reduce(0) { $0 + $1.recursionMisses }
        }

        // Window 1: the first cgroup reads 1000 blocks: every one the kernel showed is counted.
        #expect(try first.run(reads).status == 0)
        let window1 = session.collect()
        let own1 = window1.blkio[0]?.ownRequests ?? 0
        let shown1 = shownSinceLastWindow()
        let misses1 = try probeMisses()
        #expect(shown1 > 0 && own1 + misses1 >= shown1, "own \(own1), witness \(shown1), misses \(misses1)")
        #expect(own1 < 2000)
        #expect(window1.blkio[0]?.ownLatencyUs.reduce(0, +) == own1)

        // Window 2: nothing in the target: nothing counted, though the maps still hold window 1.
        #expect(try Command.run(["sh", "-c", reads]).status == 0)
        let window2 = session.collect()
        _ = shownSinceLastWindow()
        #expect((window2.blkio[0]?.ownRequests ?? 0) == 0, "\(window2.blkio)")

        // Window 3: both slots; the first cgroup reads again, the second twice as much. Slot 0
        // counts its window only (not window 1's reads as well); between them the two slots count
        // every read of the file the kernel showed.
        try session.setTargets(slots: [0: try target(first), 1: try target(second)])
        #expect(try first.run(reads).status == 0)
        #expect(try second.run(reads + " && " + reads).status == 0)
        let window3 = session.collect()
        let own3 = window3.blkio[0]?.ownRequests ?? 0
        let own3b = window3.blkio[1]?.ownRequests ?? 0
        let shown3 = shownSinceLastWindow()
        #expect(own3 > 0 && own3 < 2000, "slot 0 counted \(own3): its window only")
        #expect(own3b > own3, "slot 1 counted \(own3b), slot 0 \(own3)")
        let misses3 = try probeMisses()
        #expect(own3 + own3b + misses3 >= shown3, "own \(own3) + \(own3b), witness \(shown3), misses \(misses3)")

        // Window 4: slot 0 goes to the second cgroup, slot 1 is dropped; the first cgroup's reads
        // no longer count anywhere.
        try session.setTargets(slots: [0: try target(second)])
        #expect(try first.run(reads).status == 0)
        #expect(try second.run(reads).status == 0)
        let window4 = session.collect()
        let own4 = window4.blkio[0]?.ownRequests ?? 0
        #expect(own4 > 0 && own4 < 2000, "slot 0 counted \(own4)")
        #expect(window4.blkio[1] == nil)

        // The same programs ran throughout: only the target map changed.
        #expect(Set(session.statuses.flatMap { $0.programIDs.values }) == programs)
        let loaded = Set((BPFSystem.loadedPrograms() ?? []).map(\.id))
        #expect(programs.isSubset(of: loaded))
    }

    @Test("shm across windows: bytes held carry over, each window has its own peak")
    func shmWindows() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let cgroup = try TestCgroup(["memory"])
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // Grows /dev/shm/<name> to <size> bytes as PostgreSQL does (ftruncate, posix_fallocate);
        // with a third argument, removes it again.
        let program = scratch + "/grow.py"
        try """
        import os, sys
        name, size = sys.argv[1], int(sys.argv[2])
        fd = os.open("/dev/shm/" + name, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, size)
        os.close(fd)
        if len(sys.argv) > 3:
            os.unlink("/dev/shm/" + name)
        """.write(toFile: program, atomically: true, encoding: .utf8)
        func grow(_ arguments: String) throws {
            // A private tmpfs at /dev/shm, as a container runtime mounts one.
            let result = try cgroup.run(
                "exec unshare -m sh -c 'mount -t tmpfs -o size=4m pgnode-test-shm /dev/shm && "
                    + "exec /usr/bin/python3 \(program) \(arguments)'")
            #expect(result.status == 0, "\(result.stderr)")
        }
        let session = ProbeSession(
            probes: [try #require(ProbeCatalog.named("shm"))], environment: ProbeTestSupport.environment(),
            btfPath: nil)
        defer { session.close() }
        let libraries = CLibraryFiles.files(pid: getpid(), host: HostRoot("/"))
        try session.setTargets(slots: [0: ProbeTarget(memoryV1: try cgroup.id("memory"), libraries: libraries)])
        session.attach()
        try #require(session.statuses.allSatisfy { $0.running }, "\(session.statuses)")
        try #require(session.uprobeFailures.isEmpty, "\(session.uprobeFailures)")

        // Window 1: a 256 KiB segment, kept.
        try grow("PostgreSQL.1 262144")
        let window1 = try #require(session.collect().shm[0])
        #expect(window1.heldBytes == 262_144)
        #expect(window1.peakBytes == 262_144)
        #expect(window1.calls >= 2)

        // Window 2: a 512 KiB segment grown and removed: held as before, the peak above it.
        try grow("PostgreSQL.2 524288 unlink")
        let window2 = try #require(session.collect().shm[0])
        #expect(window2.heldBytes == 262_144)
        #expect(window2.peakBytes == 786_432)

        // Window 3: nothing: the first segment is still held, and that is the whole peak.
        let window3 = try #require(session.collect().shm[0])
        #expect(window3.calls == 0)
        #expect(window3.heldBytes == 262_144)
        #expect(window3.peakBytes == 262_144)
    }

    @Test("a target whose server maps no C library, or whose library refuses the uprobes, is reported unwatched")
    func unwatched() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let watched = try TestCgroup(["memory"])
        let staticServer = try TestCgroup(["memory"])
        let impostor = try TestCgroup(["memory"])
        let libraries = CLibraryFiles.files(pid: getpid(), host: HostRoot("/"))
        let library = try #require(libraries.first)
        // The right path but another file's identity: opening it inside the root finds a
        // different inode, and the attach is refused.
        var wrong = library
        wrong.identity.inode &+= 1
        let session = ProbeSession(
            probes: [try #require(ProbeCatalog.named("shm"))], environment: ProbeTestSupport.environment(),
            btfPath: nil)
        defer { session.close() }
        try session.setTargets(slots: [
            0: ProbeTarget(memoryV1: try watched.id("memory"), libraries: libraries),
            1: ProbeTarget(memoryV1: try staticServer.id("memory"), libraries: []),
            2: ProbeTarget(memoryV1: try impostor.id("memory"), libraries: [wrong]),
        ])
        session.attach()
        let results = session.collect()
        #expect(results.shmUnwatched[0] == nil)
        #expect(results.shmUnwatched[1]?.contains("maps no C library") == true, "\(results.shmUnwatched)")
        #expect(results.shmUnwatched[2]?.contains("could not be attached") == true, "\(results.shmUnwatched)")
        #expect(session.uprobeFailures.map(\.library) == [wrong])
    }
}
