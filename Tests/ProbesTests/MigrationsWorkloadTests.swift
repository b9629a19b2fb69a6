import Foundation
import HostFacts
import ProbeObjects
import Probes
import TestSupport
import Testing

/// The migrations probe on real tasks in cgroups this test creates: migrations of a cgroup with
/// more runnable tasks than CPUs are counted for it, thread by thread as the kernel's own
/// `se.nr_migrations` counted them, and none for an idle one; and the kernel's
/// split by topology, given topologies this machine (one LLC, one node) does not have, puts every
/// forced move between two CPUs in the class the topology says.
@Suite("migrations probe on real tasks", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct MigrationsWorkloadTests {
    /// The pids in `cgroup`'s `cgroup.procs` of `hierarchy`.
    static func members(_ cgroup: TestCgroup, _ hierarchy: String) -> Set<Int32> {
        let text = (try? String(contentsOfFile: cgroup.paths[hierarchy]! + "/cgroup.procs", encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { Int32($0) })
    }

    /// Starts `script` inside `cgroup` and returns once its shell has joined the cgroup and exec'd
    /// into `command` (its `comm`), so that nothing of its start falls in the window.
    static func start(_ script: String, in cgroup: TestCgroup, hierarchy: String, command: String) throws -> Subprocess
    {
        let child = try Subprocess(["sh", "-c", "\(cgroup.enterCommand) && exec \(script)"])
        for _ in 0..<500 {
            let comm = (try? String(contentsOfFile: "/proc/\(child.pid)/comm", encoding: .utf8)) ?? ""
            if members(cgroup, hierarchy).contains(child.pid), comm.hasPrefix(command) { return child }
            usleep(10_000)
        }
        child.stop()
        throw CocoaError(.fileReadUnknown)
    }

    /// A worker: bash (its loops and `read -t`, a sleep without a child process, are builtins:
    /// no process comes and goes in the cgroup) that stops itself, then computes in 10 bursts
    /// with a sleep between them (`read -t` on the FIFO `$1/idle`, never written), writes `done`
    /// into `$1/<its pid>` and stops itself again. A fixed amount of work, not of time.
    static let worker =
        "bash -c 'exec 3<>\"$1/idle\"; kill -STOP $$; "
        + "for ((b = 0; b < 10; b++)); do for ((i = 0; i < 20000; i++)); do :; done; read -t 0.01 -u 3; done; "
        + "echo done > \"$1/$$\"; kill -STOP $$' worker"

    @Test(
        "more runnable tasks than CPUs in a cgroup: each thread's migrations as the kernel counted them; none for an idle cgroup",
        arguments: ["memory", "unified"])
    func busyAndIdle(hierarchy: String) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs")
        let busy = try TestCgroup([hierarchy])
        let idle = try TestCgroup([hierarchy])
        let target: (TestCgroup) throws -> ProbeTarget = { cgroup in
            hierarchy == "memory"
                ? ProbeTarget(memoryV1: try cgroup.id("memory")) : ProbeTarget(v2: try cgroup.id("unified"))
        }
        let directory = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #require(mkfifo(directory + "/idle", 0o600) == 0)
        let sleeper = try Self.start("sleep 3600", in: idle, hierarchy: hierarchy, command: "sleep")
        defer { sleeper.stop() }
        // Twice as many workers as CPUs, plus one: runnable tasks queue on every CPU, wake up on
        // other ones and are balanced. Each is the only thread of its process, and the cgroup
        // holds nothing else.
        let count = ProcessInfo.processInfo.activeProcessorCount * 2 + 1
        var workers: [Subprocess] = []
        defer { for worker in workers { worker.stop() } }
        for _ in 0..<count {
            workers.append(
                try Self.start("\(Self.worker) \(directory)", in: busy, hierarchy: hierarchy, command: "bash"))
        }
        let pids = workers.map(\.pid)
        try #require(TaskScheduling.waitUntilStopped(pids).isEmpty, "workers not stopped")
        let session = ProbeSession(
            probes: [MigrationsProbe.self], environment: ProbeTestSupport.environment(), btfPath: nil)
        defer { session.close() }
        try session.setTargets([try target(busy), try target(idle)])
        session.attach()
        try #require(session.statuses.allSatisfy { $0.running }, "\(session.statuses)")
        // Stopped, off every run queue, the workers cannot move: what the kernel counted of them
        // so far (before the probe was attached) is their baseline.
        var baseline: [Int32: UInt64] = [:]
        for pid in pids {
            // Bound first: assigned to the subscript, #require would take the optional as it is.
            let migrations = try #require(TaskScheduling.migrations(pid: pid), "\(pid)")
            baseline[pid] = migrations
        }
        // One move each that the test forces: pinned away from the CPU it stopped on, a worker
        // is moved by its wakeup (SIGCONT); its affinity is given back once the kernel counted it.
        for pid in pids {
            let affinity = try TaskScheduling.pinAway(pid)
            #expect(kill(pid, SIGCONT) == 0)
            try #require(TaskScheduling.waitForMigration(of: pid, past: baseline[pid]!), "\(pid) not moved")
            try TaskScheduling.setAffinity(of: pid, to: affinity)
        }
        // Until each has done its work and stopped again (a hang guard, not a measure).
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline,
            pids.contains(where: { (try? String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8)) != "done\n" })
        {
            usleep(20_000)
        }
        try #require(TaskScheduling.waitUntilStopped(pids).isEmpty, "workers did not finish")
        var moved: [Int32: UInt64] = [:]
        for pid in pids { moved[pid] = try #require(TaskScheduling.migrations(pid: pid)) - baseline[pid]! }
        let results = await session.finish()
        let counted = try #require(results.migrations[0], "no migrations: \(results.migrations)")
        // What was observed, for the log (the assertions below hold whatever the scheduler did).
        print("MigrationsWorkloadTests (\(hierarchy)): \(counted.counts.migrations) migrations; the kernel's: \(moved)")
        // Each worker's moves, exactly as the kernel counted them (every move of a task, by the
        // balancer, a wakeup elsewhere or its affinity, passes the tracepoint where the kernel
        // counts it); each moved at least once (the forced move), nothing else in the cgroup did.
        #expect(Set(counted.threads.map(\.pid)) == Set(pids.map { UInt32($0) }), "\(counted.threads)")
        for pid in pids {
            let thread = try #require(counted.threads.first { $0.pid == UInt32(pid) }, "\(pid): \(counted.threads)")
            #expect(thread.migrations == moved[pid]!, "\(thread) against the kernel's \(moved[pid]!)")
            #expect(thread.tgid == UInt32(pid) && thread.comm == "bash", "\(thread)")
        }
        #expect(counted.counts.migrations == moved.values.reduce(0, +), "\(counted.counts) against \(moved)")
        // This machine has one LLC and one node, which the probe read from sysfs: every move is within it.
        #expect(counted.counts.withinLLC == counted.counts.migrations, "\(counted.counts)")
        #expect(counted.counts.crossLLC == 0 && counted.counts.crossNUMA == 0 && counted.counts.unknown == 0)
        #expect(counted.counts.unattributed == 0)
        #expect(counted.threads.reduce(0) { $0 + $1.migrations } == counted.counts.migrations)
        #expect(results.migrations[1] == nil, "the idle cgroup: \(results.migrations[1].map { "\($0)" } ?? "")")
    }

    /// Topologies for the two CPUs this test moves a task between: another NUMA node, another
    /// LLC of the same node, the same LLC.
    enum Split: String, CaseIterable, CustomStringConvertible {
        case crossNUMA, crossLLC, withinLLC
        var description: String { rawValue }

        var topology: CPUTopology {
            switch self {
            case .crossNUMA: CPUTopology(cpus: [0, 1], lastLevelCache: [0: 0, 1: 1], node: [0: 0, 1: 1])
            case .crossLLC: CPUTopology(cpus: [0, 1], lastLevelCache: [0: 0, 1: 1], node: [0: 0, 1: 0])
            case .withinLLC: CPUTopology(cpus: [0, 1], lastLevelCache: [0: 7, 1: 7], node: [0: 0, 1: 0])
            }
        }
    }

    @Test(
        "a busy task moved between CPU 0 and 1 by its affinity: each move counted in the class the topology gives",
        arguments: Split.allCases, [false, true])
    func split(_ split: Split, rawTracepoints: Bool) throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs")
        let cgroup = try TestCgroup(["memory"])
        let spinner = try Self.start("sh -c 'while :; do :; done'", in: cgroup, hierarchy: "memory", command: "sh")
        defer { spinner.stop() }
        try Command.run(["taskset", "-p", "-c", "0", "\(spinner.pid)"])

        let embedded = try #require(EmbeddedObject.named(MigrationsProbe.name))
        let programs =
            rawTracepoints ? MigrationsProbe.definition.rawTracepointPrograms! : MigrationsProbe.definition.programs
        let object = try BPFObject(embedded: embedded, options: BPFOpenOptions(btfPath: nil, programs: Set(programs)))
        defer { object.close() }
        try object.load()
        let probe = MigrationsProbe(object: object)
        try probe.setTopology(split.topology)
        try object.map(ProbeCommonMap.targets).update(
            pgn_target_key(cgroup_id: try cgroup.id("memory"), kind: PGN_CGROUP_V1_MEMORY.rawValue, pad: 0), UInt32(0))
        try object.attach()
        let moves = 20
        for move in 1...moves {
            let result = try Command.run(["taskset", "-p", "-c", "\(move % 2)", "\(spinner.pid)"])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let results = try probe.read(drain: true)
        let counts = try #require(results[0]?.counts, "nothing counted: \(results)")
        let thread = try #require(results[0]?.threads.first { $0.pid == UInt32(spinner.pid) }, "\(results)")
        // Every change of affinity to the other CPU moves the task (it is running or runnable on a
        // CPU it may no longer use); nothing else moves it, pinned.
        #expect(thread.migrations == UInt64(moves), "\(thread)")
        #expect(thread.comm == "sh")
        #expect(counts.withinLLC + counts.crossLLC + counts.crossNUMA + counts.unknown == counts.migrations)
        switch split {
        case .crossNUMA:
            #expect(thread.crossNUMA == thread.migrations && thread.crossLLC == 0)
            #expect(counts.crossNUMA >= UInt64(moves))
        case .crossLLC:
            #expect(thread.crossLLC == thread.migrations && thread.crossNUMA == 0)
            #expect(counts.crossLLC >= UInt64(moves))
        case .withinLLC:
            #expect(thread.crossLLC == 0 && thread.crossNUMA == 0)
            #expect(counts.withinLLC >= UInt64(moves))
        }
        // Drained: the next reading has the counts but no threads.
        #expect(try probe.read(drain: true)[0]?.threads.isEmpty == true)
    }
}
