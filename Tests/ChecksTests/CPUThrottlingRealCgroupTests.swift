import Checks
import Foundation
import HostFacts
import PGNodeModel
import TestSupport
import Testing

/// A v1 cpu cgroup of this test's own (in the `cpu` and `cpuacct` hierarchies, and in the unified
/// one on a hybrid node so that PSI is read too), removed on `remove()` after its processes end.
final class TestCPUCgroup {
    let directories: [String]
    let location: CPUCgroupLocation
    var processes: [Subprocess] = []

    /// The v1 layout of this machine, from its mount table; nil without a v1 cpu controller.
    static func layout() -> (cpu: String, cpuacct: String?, unified: String?)? {
        guard let text = try? HostRoot("/").readText("proc/self/mountinfo") else { return nil }
        let layout = CgroupLayout.detect(host: HostRoot("/"), mounts: MountInfo.parse(text).entries)
        guard let cpu = layout.v1Controllers["cpu"] else { return nil }
        return (cpu, layout.v1Controllers["cpuacct"], layout.mode == .hybrid ? layout.v2MountPoint : nil)
    }

    init(name: String, layout: (cpu: String, cpuacct: String?, unified: String?)) throws {
        var mounts = [layout.cpu]
        for mount in [layout.cpuacct, layout.unified].compactMap({ $0 }) where !mounts.contains(mount) {
            mounts.append(mount)
        }
        directories = mounts.map { "\($0)/\(name)" }
        location = .v1(
            cpu: "\(layout.cpu)/\(name)", cpuacct: layout.cpuacct.map { "\($0)/\(name)" },
            unified: layout.unified.map { "\($0)/\(name)" })
        var created: [String] = []
        do {
            for directory in directories {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
                created.append(directory)
            }
        } catch {
            for directory in created.reversed() { rmdir(directory) }
            throw error
        }
    }

    /// Writes `value` to the cpu controller's `file`.
    func set(_ file: String, _ value: String) throws {
        try value.write(toFile: "\(directories[0])/\(file)", atomically: false, encoding: .utf8)
    }

    /// Starts `arguments` and moves it into the cgroup in every hierarchy.
    func run(_ arguments: [String]) throws {
        let child = try Subprocess(arguments, stdout: .discard, stderr: .discard)
        processes.append(child)
        for directory in directories {
            try "\(child.pid)".write(toFile: "\(directory)/cgroup.procs", atomically: false, encoding: .utf8)
        }
    }

    /// Ends the processes, then removes the directories (a cgroup with tasks cannot be removed;
    /// a reaped task may take a moment to leave it, hence the retries, bounded).
    func remove() {
        for child in processes { child.stop() }
        for directory in directories.reversed() {
            var attempts = 0
            while rmdir(directory) != 0 && errno == EBUSY && attempts < 100 {
                attempts += 1
                usleep(20_000)
            }
        }
    }

    func sample() throws -> CPUCgroupSample {
        try CPUCgroupSample.read(host: HostRoot("/"), location: location)
    }
}

@Suite("cpu.throttling on real v1 cpu cgroups of this machine", .serialized)
struct CPUThrottlingRealCgroupTests {
    /// Facts with PostgreSQL 15's defaults, for the check.
    static func facts(_ window: CPUCgroupWindow) -> CPUThrottlingFacts {
        CPUThrottlingFacts(
            window: .success(window), qosClass: "burstable", maxParallelWorkers: CPUFacts.setting(8),
            maxParallelWorkersPerGather: CPUFacts.setting(2), maxWorkerProcesses: CPUFacts.setting(8))
    }

    static func layout() -> (cpu: String, cpuacct: String?, unified: String?)? {
        guard TestEnvironment.requireRoot() else { return nil }
        let layout = TestCPUCgroup.layout()
        guard TestEnvironment.require(layout != nil, "a v1 cpu controller (cgroup v1 or hybrid)") else { return nil }
        return layout
    }

    @Test(
        "a busy loop under a fifth of a CPU is throttled in most periods: warning or critical",
        .enabled(if: TestEnvironment.privilegedTestsEnabled))
    func throttled() throws {
        guard let layout = Self.layout() else { return }
        let cgroup = try TestCPUCgroup(name: "pgnode-test-cpu-throttled-\(getpid())", layout: layout)
        defer { cgroup.remove() }
        try cgroup.set("cpu.cfs_period_us", "100000")
        try cgroup.set("cpu.cfs_quota_us", "20000")
        // The highest weight, so that other load on this shared machine cannot keep the loop
        // below its quota (then it would not be throttled): the quota, not the weight, binds.
        try cgroup.set("cpu.shares", "262144")
        try cgroup.run(["/bin/sh", "-c", "while :; do :; done"])

        let first = try cgroup.sample()
        #expect(first.bandwidth == CPUBandwidth(quotaMicroseconds: 20000, periodMicroseconds: 100_000))
        #expect(first.missing.isEmpty, "\(first.missing)")
        // Wait until at least 10 periods have passed (a hang guard, not a measure of speed).
        var last = first
        for _ in 0..<600 where (last.periods ?? 0) - (first.periods ?? 0) < 10 {
            usleep(100_000)
            last = try cgroup.sample()
        }
        let window = CPUCgroupWindow(from: first, to: last)
        let periods = try #require(window.periods)
        try #require(periods >= 10, "nr_periods advanced by \(periods) only")
        #expect(!window.countersReset)
        #expect((window.throttledNanoseconds ?? 0) > 0 && (window.usageNanoseconds ?? 0) > 0)

        let o = CPUThrottlingCheck.evaluate(Self.facts(window))
        #expect(o.severity == .warning || o.severity == .critical, "\(o.summary)")
        // The evidence is the window's counters, as read (the severity above is the check's
        // verdict on their share).
        let throttled = try #require(window.throttledPeriods)
        #expect(throttled > 0)
        #expect(o.evidence["throttled_periods"] == .int(throttled))
        #expect((o.evidence["throttled_periods_ratio"] ?? .null) != .null, "\(o.evidence)")
        #expect(o.evidence["quota_cores"] == .double(0.2) && o.evidence["period_us"] == .int(100_000))
        #expect(o.evidence["periods"] == .int(periods))
        #expect(o.evidence["cgroup_version"] == .int(1))
        if layout.unified != nil { #expect(o.evidence["pressure"] != nil, "PSI of the unified hierarchy") }
        #expect(o.remedy.contains("cpu.cfs_burst_us"))
    }

    @Test(
        "an idle process in a cgroup without a limit: ok",
        .enabled(if: TestEnvironment.privilegedTestsEnabled))
    func unlimited() throws {
        guard let layout = Self.layout() else { return }
        let cgroup = try TestCPUCgroup(name: "pgnode-test-cpu-unlimited-\(getpid())", layout: layout)
        defer { cgroup.remove() }
        try cgroup.run(["/bin/sleep", "600"])
        let first = try cgroup.sample()
        #expect(first.bandwidth == CPUBandwidth(quotaMicroseconds: nil, periodMicroseconds: 100_000))
        usleep(300_000)
        let window = CPUCgroupWindow(from: first, to: try cgroup.sample())
        #expect(window.periods == 0 && window.throttledPeriods == 0)
        let o = CPUThrottlingCheck.evaluate(Self.facts(window))
        #expect(o.severity == .ok, "\(o.summary)")
        #expect(o.summary.hasPrefix("No CPU limit"), "\(o.summary)")
        #expect(o.evidence["quota_cores"] == .null)
    }
}
