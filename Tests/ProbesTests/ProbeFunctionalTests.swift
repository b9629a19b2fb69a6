import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Probes
import TestSupport
import Testing

/// The probes observing real workloads in cgroups this test creates: the in-kernel filter must
/// match a process moved into the target cgroup (by its v1 controller cgroup or by its unified
/// cgroup), and must not count the same workload run outside it.
@Suite("probes on real workloads", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct ProbeFunctionalTests {
    /// What the kernel counted for the probe's programs, read after the workload and before they
    /// are unloaded.
    final class ProgramCounts {
        var byName: [String: BPFProgramStats.Counts] = [:]

        /// Runs the kernel skipped because the program was already running on that CPU (5.12+):
        /// the events of those runs were not counted.
        var recursionMisses: UInt64 { byName.values.reduce(0) { $0 + $1.recursionMisses } }
    }

    /// Runs `body` with only `probe` loaded and attached for `targets`, then reads the maps;
    /// `counts` gets the programs' counts from the kernel.
    func observe(
        _ probe: String, targets: [ProbeTarget], preferRawTracepoints: Bool = false, counts: ProgramCounts? = nil,
        _ body: () throws -> Void
    ) async throws -> (ProbeResults, [ProbeStatus]) {
        let definition = try #require(ProbeCatalog.named(probe))
        let session = ProbeSession(
            probes: [definition], environment: ProbeTestSupport.environment(), btfPath: nil,
            preferRawTracepoints: preferRawTracepoints)
        defer { session.close() }
        try session.setTargets(targets)
        session.attach()
        let outcomes = session.statuses
        try #require(outcomes.allSatisfy { $0.running }, "\(outcomes)")
        try #require(session.uprobeFailures.isEmpty, "\(session.uprobeFailures)")
        try body()
        if let counts {
            for outcome in outcomes { counts.byName.merge(try BPFProgramStats.counts(outcome.programIDs)) { $1 } }
        }
        let results = await session.finish()
        return (results, outcomes)
    }

    /// A program that grows segments the way PostgreSQL's dsm does, through the C library
    /// functions the shm uprobes watch: two with ftruncate and then posix_fallocate, a sparse size
    /// on a third that is never allocated, a fourth that fails to grow past the mount's size (the
    /// ftruncate succeeds, posix_fallocate returns ENOSPC); then it removes the failed one with
    /// unlink and the first with shm_unlink (which calls unlink inside the C library).
    static let shmProgram = """
        import errno, os, sys, _posixshmem
        def grow(name, size, allocate=True):
            fd = os.open("/dev/shm/" + name, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, size)
                if allocate:
                    os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        grow("PostgreSQL.4242", 262144)
        grow("PostgreSQL.4343", 131072)
        grow("PostgreSQL.5555", 524288, allocate=False)
        try:
            grow("PostgreSQL.77", int(sys.argv[1]))
            sys.exit("grew past the mount's size")
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            print(error, file=sys.stderr)
        os.unlink("/dev/shm/PostgreSQL.77")
        _posixshmem.shm_unlink("/PostgreSQL.4242")
        """

    /// A script that mounts a 1 MiB tmpfs at /dev/shm in a private mount namespace (as a
    /// container runtime does) and runs `program` (the host's python3) there.
    static func shmScript(program: String, failSize: Int) -> String {
        """
        exec unshare -m sh -c 'mount -t tmpfs -o size=1m pgnode-test-shm /dev/shm && \
        exec /usr/bin/python3 \(program) \(failSize)'
        """
    }

    /// The C library this test process maps: the host's, which /usr/bin/python3 maps too.
    static func hostCLibraries() throws -> [LibraryFile] {
        let libraries = CLibraryFiles.files(pid: getpid(), host: HostRoot("/"))
        try #require(!libraries.isEmpty, "no C library in /proc/self/maps")
        return libraries
    }

    @Test(
        "shm: ENOSPC with the exact requested size, through the map and the ring buffer, and the peak held",
        arguments: ["memory", "unified"])
    func shmEnospc(hierarchy: String) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let cgroup = try TestCgroup([hierarchy])
        let libraries = try Self.hostCLibraries()
        let target =
            hierarchy == "memory"
            ? ProbeTarget(memoryV1: try cgroup.id("memory"), libraries: libraries)
            : ProbeTarget(v2: try cgroup.id("unified"), libraries: libraries)
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let program = scratch + "/shm.py"
        try Self.shmProgram.write(toFile: program, atomically: true, encoding: .utf8)
        let failSize = 4_194_304 + 4096 * 3
        let outsideSize = 3_145_728
        var inside: CommandResult?
        var outside: CommandResult?
        let (results, outcomes) = try await observe("shm", targets: [target]) {
            inside = try cgroup.run(Self.shmScript(program: program, failSize: failSize))
            // The same workload outside the target must not be counted.
            outside = try Command.run(["sh", "-c", Self.shmScript(program: program, failSize: outsideSize)])
        }
        #expect(inside?.status == 0, "\(inside?.stderr ?? "")")
        #expect(outside?.status == 0, "\(outside?.stderr ?? "")")
        #expect(inside?.stderr.contains("No space left on device") == true)

        let shm = try #require(results.shm[0], "no shm result for the target: \(results)")
        #expect(results.shm.keys.sorted() == [0])
        #expect(shm.failures == 1)
        #expect(shm.failed.map(\.sizeBytes) == [UInt64(failSize)])
        #expect(shm.failed.first?.comm == "python3")
        #expect(shm.failed.first?.syscall == "fallocate")
        // The title is argv as the process left it (python does not rewrite it); the test runs
        // in the host's pid namespace, so the namespace pid is the host pid.
        #expect(shm.failed.first?.title == "/usr/bin/python3")
        #expect(shm.failed.first?.namespaceTGID == shm.failed.first?.tgid)
        #expect(shm.events.count == 1)
        let event = try #require(shm.events.first)
        #expect(event.sizeBytes == UInt64(failSize))
        #expect(event.ret == -ENOSPC)
        #expect(event.file == "PostgreSQL.77")
        #expect(event.comm == "python3")
        #expect(event.tgid == shm.failed.first?.tgid)
        #expect(event.title == "/usr/bin/python3")
        #expect(event.namespaceTGID == event.tgid)
        // 256 KiB + 128 KiB were allocated at once; the sparse sizes set by ftruncate (512 KiB,
        // and the failed segment's) hold nothing. The first was removed (shm_unlink), the second
        // kept.
        #expect(shm.peakBytes == 262_144 + 131_072)
        #expect(shm.heldBytes == 131_072)
        #expect(shm.calls >= 4)
        #expect(shm.firstFailureNs != nil && shm.firstFailureNs == shm.lastFailureNs)
        // Closing the session detached the uprobes too: a uprobe's perf event would keep its
        // program loaded.
        let ids = Set(outcomes.flatMap(\.programIDs.values))
        #expect(ids.count == 6)
        #expect(ProbeTestSupport.waitUntilUnloaded(ids).isEmpty, "still loaded after close")
    }

    @Test("reclaim: a reader in a memory cgroup with a small limit reclaims, per thread")
    func reclaim() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let cgroup = try TestCgroup(["memory"])
        try cgroup.set("memory", "memory.limit_in_bytes", "\(24 << 20)")
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let file = scratch + "/data"
        // Written outside the cgroup, flushed, and dropped from the page cache.
        try Command.run(["dd", "if=/dev/zero", "of=\(file)", "bs=1M", "count=96", "conv=fsync", "status=none"])
        try Command.run(["dd", "if=\(file)", "iflag=nocache", "count=0", "status=none"])
        var reader: CommandResult?
        let (results, _) = try await observe("reclaim", targets: [ProbeTarget(memoryV1: try cgroup.id("memory"))]) {
            reader = try cgroup.run("echo $$; exec cat \(file) > /dev/null")
        }
        #expect(reader?.status == 0, "\(reader?.stderr ?? "")")
        let pid = UInt32(reader?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        let entries = try #require(results.reclaim[0], "no reclaim recorded: \(results.reclaim)")
        let cat = try #require(entries.first { $0.tgid == pid }, "no entry for pid \(pid): \(entries)")
        #expect(cat.comm == "cat")
        #expect(cat.memcgEvents > 0)
        #expect(cat.reclaimedPages > 0)
        #expect(cat.stallNs > 0)
        // 96 MiB through a 24 MiB limit: at least ~72 MiB had to be reclaimed.
        let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        #expect(entries.reduce(0) { $0 + $1.reclaimedPages } * pageSize >= 48 << 20)
    }

    @Test(
        "blkio: own requests and latency of a target, and noise from a neighbour on the same queue",
        arguments: [false, true])
    func blkio(rawTracepoints: Bool) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let cgroup = try TestCgroup(["blkio"])
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Command.run([
            "dd", "if=/dev/zero", "of=\(scratch)/target", "bs=1M", "count=32", "conv=fsync", "status=none",
        ])
        // The kernel does not run BPF programs for every completion (see BlockCompletionWitness):
        // the witness counts the completions of the target file's sectors that it did run them for.
        let witness = try BlockCompletionWitness(counting: try FileSectors.of("\(scratch)/target"))
        defer { witness.close() }
        // The reader's only requests are its reads: dd's pages are in the page cache (a fault in
        // the target's cgroup would read them as its own).
        try Command.run(["cat", "/usr/bin/dd"])
        var reads: CommandResult?
        let counts = ProgramCounts()
        let (results, outcomes) = try await observe(
            "blkio", targets: [ProbeTarget(blkioV1: try cgroup.id("blkio"))], preferRawTracepoints: rawTracepoints,
            counts: counts
        ) {
            // The neighbour (this test's own cgroup) writes large direct blocks meanwhile.
            let neighbour = try Subprocess([
                "/usr/bin/dd", "if=/dev/zero", "of=\(scratch)/neighbour", "bs=1M", "count=400", "oflag=direct",
                "status=none",
            ])
            defer { neighbour.stop() }
            reads = try cgroup.run(
                "exec /usr/bin/dd if=\(scratch)/target of=/dev/null bs=4k count=3000 iflag=direct status=none")
            neighbour.wait(timeout: 300)
        }
        #expect(outcomes.first?.programs.first?.hasSuffix(rawTracepoints ? "_raw" : "_btf") == true)
        #expect(reads?.status == 0, "\(reads?.stderr ?? "")")
        let blk = try #require(results.blkio[0], "no blkio result: \(results.blkio)")
        // Every read the kernel showed BPF programs is counted, once, and nothing else: 3,000
        // direct 4 KiB reads, one request each, the only requests on the file's sectors and the
        // reader's only requests (a flush it happens to dispatch is not its own). Runs the kernel
        // skipped for recursion (counted per program) are the only allowance, on either side.
        let shown = witness.count
        let witnessMisses = try witness.stats().recursionMisses
        #expect(shown <= 3000)
        #expect(
            blk.ownRequests <= shown + witnessMisses && blk.ownRequests + counts.recursionMisses >= shown,
            "own \(blk.ownRequests), witness \(shown) of 3000 reads (recursion misses: probe \(counts.recursionMisses), witness \(witnessMisses)), evicted \(blk.evictedRequests)"
        )
        #expect(blk.ownLatencyUs.reduce(0, +) == blk.ownRequests)
        #expect(blk.noiseLatencyUs.reduce(0, +) == blk.noiseRequests)
        // The per-device counts (summed from the hardware queues' entries) account for every request.
        #expect(!blk.devices.isEmpty)
        #expect(blk.devices.reduce(0) { $0 + $1.ownRequests } == blk.ownRequests)
        #expect(blk.devices.reduce(0) { $0 + $1.noiseRequests } == blk.noiseRequests)
        #expect(blk.noiseRequests > 0, "the neighbour's writes completed while the target waited")
        let first = try #require(blk.neighbours.first)
        #expect(blk.neighbours.reduce(0) { $0 + $1.requests } == blk.noiseRequests)
        // The neighbour is this test process's blkio cgroup (v1 hierarchy), not the target.
        #expect(first.cgroup.id != (try cgroup.id("blkio")))
    }

    /// A shell loop of `iterations` steps: CPU-bound, never sleeping, ending by count.
    static func busyLoop(_ iterations: Int) -> String {
        "i=0; while [ $i -lt \(iterations) ]; do i=$((i+1)); done"
    }

    @Test(
        "sched: a competitor pinned to the target's CPU, in another cgroup, is charged for the time it took",
        arguments: [false, true])
    func sched(rawTracepoints: Bool) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let target = try TestCgroup(["memory"])
        let competitor = try TestCgroup(["memory"])
        let stats = try BPFProgramStats.Collection()
        defer { stats.close() }
        var busy: CommandResult?
        let counts = ProgramCounts()
        let (results, outcomes) = try await observe(
            "sched", targets: [ProbeTarget(memoryV1: try target.id("memory"))], preferRawTracepoints: rawTracepoints,
            counts: counts
        ) {
            // Both on CPU 0: the scheduler has to share it, preempting one for the other.
            let other = try Subprocess([
                "sh", "-c", "\(competitor.enterCommand) && exec taskset -c 0 sh -c '\(Self.busyLoop(1 << 40))'",
            ])
            defer { other.stop() }
            busy = try target.run("exec taskset -c 0 sh -c '\(Self.busyLoop(2_000_000))'")
        }
        #expect(outcomes.first?.programs.first?.hasSuffix(rawTracepoints ? "_raw" : "_btf") == true)
        #expect(busy?.status == 0, "\(busy?.stderr ?? "")")
        let runs = counts.byName.values.reduce(0) { $0 + $1.runs }
        #expect(runs > 0, "\(counts.byName)")
        let sched = try #require(results.sched[0], "no sched result: \(results.sched)")
        #expect(results.sched.keys.sorted() == [0])
        #expect(sched.waits > 0)
        #expect(sched.resumed > 0, "the busy task ran again on CPU 0 after being preempted")
        let competitorID = try competitor.id("memory")
        let taker = try #require(
            sched.neighbours.first { $0.cgroup.id == competitorID && $0.cgroup.kind == .memoryV1 },
            "the competitor's cgroup is not among the neighbours: \(sched.neighbours)")
        // Charged: the switches that ended its turns on the target's CPU are counted.
        #expect(taker.intervals > 0)
        // The target's own cgroup is never its own neighbour.
        #expect(!sched.neighbours.contains { $0.cgroup.id == (try? target.id("memory")) })
        #expect(sched.takenNs == sched.neighbours.reduce(0) { $0 + $1.nanoseconds })
    }

    @Test("writeback: a buffered writer in a memory cgroup, on a device with strict_limit, is paused")
    func writeback() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let fs = try ThrottledLoopFileSystem()
        defer { fs.close() }
        let cgroup = try TestCgroup(["memory"])
        // A writer outside the cgroup, on the same device, before and after: not counted.
        try Command.run(["dd", "if=/dev/zero", "of=\(fs.mountPoint)/outside", "bs=1M", "count=16", "status=none"])
        var writer: CommandResult?
        let stats = try BPFProgramStats.Collection()  // run_cnt counts only while this is held
        defer { stats.close() }
        let counts = ProgramCounts()
        let (results, _) = try await observe(
            "writeback", targets: [ProbeTarget(memoryV1: try cgroup.id("memory"))], counts: counts
        ) {
            writer = try cgroup.run(
                "echo $$; exec dd if=/dev/zero of=\(fs.mountPoint)/inside bs=1M count=64 status=none")
            try Command.run(["dd", "if=/dev/zero", "of=\(fs.mountPoint)/outside2", "bs=1M", "count=16", "status=none"])
        }
        #expect(writer?.status == 0, "\(writer?.stderr ?? "")")
        let pid = UInt32(writer?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        #expect(counts.byName.values.contains { $0.runs > 0 }, "\(counts.byName)")
        let result = try #require(results.writeback[0], "no pause recorded: \(results.writeback)")
        #expect(results.writeback.count == 1, "only the target's slot: \(results.writeback.keys)")
        let dd = try #require(result.threads.first { $0.tgid == pid }, "no entry for pid \(pid): \(result.threads)")
        #expect(dd.comm == "dd")
        #expect(dd.pauses > 0)
        #expect(dd.pausedNs > 0 && dd.maxPauseNs > 0 && dd.maxPauseNs <= dd.pausedNs)
        #expect(result.threads.allSatisfy { $0.tgid == pid }, "only the writer in the cgroup: \(result.threads)")
        let device = try #require(result.devices.first { $0.bdi == fs.bdi }, "\(result.devices)")
        // Each pause counted once per thread and once per device.
        #expect(result.devices.reduce(0) { $0 + $1.pauses } == result.threads.reduce(0) { $0 + $1.pauses })
        #expect(device.pauses > 0 && device.tgid == pid)
        #expect(device.limit > 0, "the dirty limit at the longest pause: \(device)")
    }
}
