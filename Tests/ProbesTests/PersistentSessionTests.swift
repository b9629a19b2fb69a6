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
        try #require(session.outcomes.allSatisfy { $0.running }, "\(session.outcomes)")
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
