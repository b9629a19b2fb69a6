import Foundation
import HostFacts
import ProbeObjects
import Probes
import TestSupport
import Testing

/// The migrations probe on real tasks in cgroups this test creates: migrations of a cgroup with
/// more runnable tasks than CPUs are counted for it and none for an idle one, and the kernel's
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

    @Test(
        "more runnable tasks than CPUs in a cgroup: migrations counted for it, per thread; none for an idle cgroup",
        arguments: ["memory", "unified"])
    func busyAndIdle(hierarchy: String) async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let busy = try TestCgroup([hierarchy])
        let idle = try TestCgroup([hierarchy])
        let target: (TestCgroup) throws -> ProbeTarget = { cgroup in
            hierarchy == "memory"
                ? ProbeTarget(memoryV1: try cgroup.id("memory")) : ProbeTarget(v2: try cgroup.id("unified"))
        }
        let sleeper = try Self.start("sleep 3600", in: idle, hierarchy: hierarchy, command: "sleep")
        defer { sleeper.stop() }
        let session = ProbeSession(
            probes: [MigrationsProbe.self], environment: ProbeTestSupport.environment(), btfPath: nil)
        defer { session.close() }
        try session.setTargets([try target(busy), try target(idle)])
        session.attach()
        try #require(session.statuses.allSatisfy { $0.running }, "\(session.statuses)")
        // Twice as many workers as CPUs, plus one, each computing in bursts and sleeping between
        // them (a `sleep` child each time): runnable tasks queue on every CPU, wake up on other
        // ones and are balanced. A fixed amount of work, not of time.
        let workers = ProcessInfo.processInfo.activeProcessorCount * 2 + 1
        let run = try busy.run(
            "for w in $(seq \(workers)); do (for b in $(seq 10); do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                + "sleep 0.01; done) & done; wait")
        #expect(run.status == 0, "\(run.stderr)")
        let results = await session.finish()
        let counted = try #require(results.migrations[0], "no migrations: \(results.migrations)")
        #expect(counted.counts.migrations > 0)
        // This machine has one LLC and one node, which the probe read from sysfs: every move is within it.
        #expect(counted.counts.withinLLC == counted.counts.migrations, "\(counted.counts)")
        #expect(counted.counts.crossLLC == 0 && counted.counts.crossNUMA == 0 && counted.counts.unknown == 0)
        #expect(counted.counts.unattributed == 0)
        #expect(counted.threads.reduce(0) { $0 + $1.migrations } == counted.counts.migrations)
        #expect(counted.threads.contains { $0.comm == "sh" }, "\(counted.threads.prefix(5))")
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
