import PGNodeModel

/// One reading of the scheduler statistics of a container's processes (each listed in its
/// cgroup's `cgroup.procs`) and of the node's CPU time, at a monotonic time, so that two
/// readings make a `SchedWindow` for `cpu.contention`.
public struct SchedSample: Sendable, Equatable {
    /// `CLOCK_MONOTONIC` when it was read, in nanoseconds.
    public var monotonicNanoseconds: Int64
    /// Each process read, by identity (pid and start time: a pid reused by a later process is
    /// another process).
    public var processes: [ProcessIdentity: SchedStat]
    /// Processes listed but not read: they exited between the listing and the read, or their
    /// files did not parse, or they were beyond `processLimit`.
    public var unread: Int
    /// The node's CPU time; nil when /proc/stat could not be read.
    public var node: NodeCPUTimes?

    /// A reading.
    public init(
        monotonicNanoseconds: Int64, processes: [ProcessIdentity: SchedStat], unread: Int = 0,
        node: NodeCPUTimes? = nil
    ) {
        self.monotonicNanoseconds = monotonicNanoseconds
        self.processes = processes
        self.unread = unread
        self.node = node
    }

    /// The most processes read per container: beyond, they are counted in `unread`.
    public static let processLimit = 4096
    /// The largest `cgroup.procs` read (4096 pids of up to 7 digits and a newline).
    static let procsLimit = 64 << 10

    /// Reads the processes listed in `cgroupDirectory/cgroup.procs` under `host` and the node's
    /// `/proc/stat`, stamped with `monotonicNanoseconds`. Only the listing failing throws.
    public static func read(
        host: HostRoot, cgroupDirectory: String, monotonicNanoseconds: Int64 = CPUCgroupSample.monotonicNow()
    ) throws(HostReadError) -> SchedSample {
        let text = try host.readText(cgroupDirectory + "/cgroup.procs", limit: procsLimit)
        var sample = SchedSample(monotonicNanoseconds: monotonicNanoseconds, processes: [:])
        let pids = text.split(separator: "\n").compactMap { Int32($0.trimmingWhitespace()) }.filter { $0 > 0 }
        for (index, pid) in pids.enumerated() {
            // The identity is read before and after the statistics: a pid that exited and was
            // reused by another process in between is not counted as either.
            guard index < processLimit,
                let identity = try? ProcessIdentity.read(host: host, pid: pid),
                let stat = try? SchedStat.read(host: host, pid: pid),
                (try? ProcessIdentity.read(host: host, pid: pid)) == identity
            else {
                sample.unread += 1
                continue
            }
            sample.processes[identity] = stat
        }
        sample.node = try? NodeCPUTimes.read(host: host)
        return sample
    }
}

/// One process's run and run-queue wait within a window, in nanoseconds.
public struct SchedDelta: Sendable, Equatable {
    /// Time on a CPU.
    public var run: Int64
    /// Time runnable, waiting for a CPU.
    public var wait: Int64

    /// A delta.
    public init(run: Int64, wait: Int64) {
        self.run = run
        self.wait = wait
    }
}

/// What a container's processes did between two `SchedSample`s: their run and run-queue wait,
/// and the node's steal. Computed without trapping whatever the samples hold.
///
/// A process in both readings counts its difference; one only in the later reading was born in
/// the window and counts everything it has; one only in the earlier reading exited, and its
/// last part is not seen — so the totals are a lower bound when processes exited (`exited`). A
/// counter that went backwards (not possible for one process) counts nothing.
public struct SchedWindow: Sendable, Equatable {
    /// Later − earlier monotonic time, in nanoseconds (≤ 0 when out of order).
    public var durationNanoseconds: Int64
    /// CPU time the processes ran in the window, in nanoseconds.
    public var runNanoseconds: Int64
    /// Time they were runnable but waited for a CPU, in nanoseconds (their own quota's
    /// throttling included).
    public var waitNanoseconds: Int64
    /// Each process's run and wait in the window, by identity.
    public var perProcess: [ProcessIdentity: SchedDelta]
    /// Processes read in both samples, or born in the window.
    public var processes: Int
    /// Processes born in the window (only in the later sample).
    public var born: Int
    /// Processes that exited in the window (only in the earlier sample): their last part is
    /// missing from the totals.
    public var exited: Int
    /// Processes listed but not read in either sample.
    public var unread: Int
    /// Node CPU ticks in the window; nil when either /proc/stat reading is missing or the
    /// counters went backwards.
    public var nodeTicks: Int64?
    /// The stolen ticks among them (nil likewise).
    public var stealTicks: Int64?

    /// The window from `earlier` to `later`.
    public init(from earlier: SchedSample, to later: SchedSample) {
        durationNanoseconds = later.monotonicNanoseconds.subtractingSaturating(earlier.monotonicNanoseconds)
        var run: Int64 = 0
        var wait: Int64 = 0
        var perProcess: [ProcessIdentity: SchedDelta] = [:]
        var born = 0
        for (identity, end) in later.processes {
            let delta: SchedDelta
            if let start = earlier.processes[identity] {
                delta = SchedDelta(
                    run: max(0, end.runNanoseconds.subtractingSaturating(start.runNanoseconds)),
                    wait: max(0, end.waitNanoseconds.subtractingSaturating(start.waitNanoseconds)))
            } else {
                born += 1
                delta = SchedDelta(run: max(0, end.runNanoseconds), wait: max(0, end.waitNanoseconds))
            }
            perProcess[identity] = delta
            run = run.addingSaturating(delta.run)
            wait = wait.addingSaturating(delta.wait)
        }
        runNanoseconds = run
        waitNanoseconds = wait
        self.perProcess = perProcess
        processes = later.processes.count
        self.born = born
        exited = earlier.processes.keys.filter { later.processes[$0] == nil }.count
        unread = earlier.unread.addingSaturating(later.unread)
        if let a = earlier.node, let b = later.node, b.totalTicks >= a.totalTicks, b.stealTicks >= a.stealTicks {
            nodeTicks = b.totalTicks.subtractingSaturating(a.totalTicks)
            stealTicks = b.stealTicks.subtractingSaturating(a.stealTicks)
        } else {
            nodeTicks = nil
            stealTicks = nil
        }
    }
}
