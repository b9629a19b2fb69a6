import Foundation
import HostFacts
import PGNodeModel
import TestSupport
import Testing

/// `/proc/<pid>/schedstat` and `/proc/stat` (`cpu.contention`'s procfs part): the parsers on the
/// shapes the kernel prints and on garbage, real reads on this machine, and windows that cannot
/// trap.
@Suite("schedstat and /proc/stat: parsers, real reads, windows")
struct SchedStatTests {
    @Test("schedstat: three counters; anything else is nil; a counter past Int64.max is kept there")
    func schedstat() {
        #expect(
            SchedStat.parse("576736 60810 1\n")
                == SchedStat(runNanoseconds: 576_736, waitNanoseconds: 60810, timeslices: 1))
        #expect(SchedStat.parse("18446744073709551615 0 0")?.runNanoseconds == Int64.max)
        for garbage in ["", "1 2", "1 2 3 4", "-1 2 3", "a b c", "1 2 3x", String(repeating: "9", count: 30) + " 1 1"] {
            #expect(SchedStat.parse(garbage) == nil, "\(garbage)")
        }
    }

    @Test("/proc/stat: the cpu line up to steal; total and steal in ticks")
    func procStat() {
        let text = "cpu  190093 40 19611 114961 5258 0 276 1023 0 0\ncpu0 95000 20 9800 57000 2600 0 138 511 0 0\n"
        #expect(NodeCPUTimes.parse(text) == NodeCPUTimes(totalTicks: 331_262, stealTicks: 1023))
        // 2.6.11 to 2.6.23 print no guest fields: eight are enough.
        #expect(NodeCPUTimes.parse("cpu 1 2 3 4 5 6 7 8\n") == NodeCPUTimes(totalTicks: 36, stealTicks: 8))
        #expect(NodeCPUTimes.parse("cpu 1 2 3 4 5 6 7\n") == nil)
        #expect(NodeCPUTimes.parse("cpu0 1 2 3 4 5 6 7 8\n") == nil)
        #expect(NodeCPUTimes.parse("cpu 1 2 3 4 5 6 7 -8\n") == nil)
        let huge = "cpu " + Array(repeating: "18446744073709551615", count: 10).joined(separator: " ")
        #expect(NodeCPUTimes.parse(huge) == NodeCPUTimes(totalTicks: .max, stealTicks: .max))
    }

    @Test("real reads: this process's schedstat and the node's /proc/stat")
    func realReads() throws {
        let host = HostRoot("/")
        let me = try #require(try SchedStat.read(host: host, pid: getpid()))
        // This process has been scheduled: it has time slices (a count, and its run time with them).
        #expect(me.timeslices != 0 && me.runNanoseconds != 0)
        let node = try #require(try NodeCPUTimes.read(host: host))
        #expect(node.totalTicks > 0 && node.stealTicks >= 0 && node.stealTicks <= node.totalTicks)
    }

    @Test("a real cgroup's processes: this one's own cgroup.procs lists this process, read with its identity")
    func realCgroup() throws {
        // The unified hierarchy's cgroup of this process (hybrid or v2): its cgroup.procs lists it.
        let line = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8).split(separator: "\n").first {
            $0.hasPrefix("0::")
        }
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let unified = mounts.split(separator: "\n").first { $0.contains(" - cgroup2 ") }.map {
            String($0.split(separator: " ")[4])
        }
        // This machine is hybrid: every process has a unified-hierarchy cgroup.
        let directory = try #require(unified) + String(try #require(line).dropFirst(3))
        let sample = try SchedSample.read(host: HostRoot("/"), cgroupDirectory: directory)
        let me = try ProcessIdentity.read(host: HostRoot("/"), pid: getpid())
        #expect(sample.processes[me] != nil, "\(sample.processes.keys.map(\.pid)) \(sample.unread)")
        #expect(sample.node != nil)
    }

    static func sample(
        _ at: Int64, _ processes: [(Int32, UInt64, Int64, Int64)], unread: Int = 0, node: NodeCPUTimes? = nil
    )
        -> SchedSample
    {
        var map: [ProcessIdentity: SchedStat] = [:]
        for (pid, start, run, wait) in processes {
            map[ProcessIdentity(pid: pid, startTime: start)] = SchedStat(
                runNanoseconds: run, waitNanoseconds: wait, timeslices: 1)
        }
        return SchedSample(monotonicNanoseconds: at, processes: map, unread: unread, node: node)
    }

    @Test("windows: differences, processes born and exited, a reused pid, counters backwards, steal")
    func windows() {
        let a = Self.sample(
            0, [(10, 1, 1_000, 100), (11, 1, 5_000, 5_000), (12, 1, 7, 7)], unread: 1,
            node: NodeCPUTimes(totalTicks: 1000, stealTicks: 10))
        let b = Self.sample(
            2_000_000_000, [(10, 1, 3_000, 600), (11, 1, 4_000, 4_000), (12, 99, 50, 20), (13, 5, 10, 1)],
            node: NodeCPUTimes(totalTicks: 1400, stealTicks: 50))
        let w = SchedWindow(from: a, to: b)
        #expect(w.durationNanoseconds == 2_000_000_000)
        // 10: +2000/+500; 11 went backwards: 0; 12 is a new process (pid reused): all of it; 13 born.
        #expect(w.perProcess[ProcessIdentity(pid: 10, startTime: 1)] == SchedDelta(run: 2000, wait: 500))
        #expect(w.perProcess[ProcessIdentity(pid: 11, startTime: 1)] == SchedDelta(run: 0, wait: 0))
        #expect(w.runNanoseconds == 2000 + 50 + 10 && w.waitNanoseconds == 500 + 20 + 1)
        #expect(w.processes == 4 && w.born == 2 && w.exited == 1 && w.unread == 1)
        #expect(w.nodeTicks == 400 && w.stealTicks == 40)
        // /proc/stat backwards (another node's reading, a restore): no steal rather than a wrong one.
        let c = SchedWindow(from: b, to: a)
        #expect(c.nodeTicks == nil && c.stealTicks == nil && c.durationNanoseconds == -2_000_000_000)
    }

    @Test("windows of extreme counters never trap", arguments: [Int64.max, .min, .max - 1, -1, 0, 1])
    func extremeWindows(_ value: Int64) {
        let a = Self.sample(
            value, [(1, 1, value, value), (2, 2, .min, .max)], unread: .max,
            node: NodeCPUTimes(totalTicks: value, stealTicks: value))
        let b = Self.sample(
            Int64.max.subtractingSaturating(value), [(1, 1, .max, .min), (2, 2, value, value), (3, 3, value, value)],
            unread: .max,
            node: NodeCPUTimes(totalTicks: .max, stealTicks: value))
        let same = SchedWindow(from: a, to: a)
        #expect(same.runNanoseconds == 0 && same.waitNanoseconds == 0)
        for w in [SchedWindow(from: a, to: b), SchedWindow(from: b, to: a), same] {
            // The totals are the per-process deltas (each a clamped difference) summed saturating.
            #expect(w.runNanoseconds == w.perProcess.values.map(\.run).saturatingSum())
            #expect(w.waitNanoseconds == w.perProcess.values.map(\.wait).saturatingSum())
            #expect(w.perProcess.values.allSatisfy { $0.run >= 0 && $0.wait >= 0 })
            #expect(w.unread == .max)
        }
    }
}
