import PGNodeModel

/// A task's scheduler statistics, `/proc/<pid>/schedstat` (kernel/sched/stats.c, printed
/// whenever the kernel has `CONFIG_SCHED_INFO`, even with the `schedstats` sysctl off): time on a
/// CPU, time runnable but waiting for one (its run-queue delay), and the timeslices it ran.
public struct SchedStat: Sendable, Equatable {
    /// Time spent running on a CPU, in nanoseconds (`se.sum_exec_runtime`).
    public var runNanoseconds: Int64
    /// Time spent runnable on a run queue, waiting for a CPU, in nanoseconds (`run_delay`). It
    /// includes the time the task's cgroup was throttled by its CFS quota: its tasks stay queued.
    public var waitNanoseconds: Int64
    /// Timeslices run (`pcount`).
    public var timeslices: Int64

    /// Statistics as the kernel gives them.
    public init(runNanoseconds: Int64, waitNanoseconds: Int64, timeslices: Int64) {
        self.runNanoseconds = runNanoseconds
        self.waitNanoseconds = waitNanoseconds
        self.timeslices = timeslices
    }

    /// The largest schedstat file read (three numbers: under 64 bytes).
    static let fileLimit = 4096

    /// `run wait timeslices` (`%llu %llu %lu`); nil for anything else. A number above
    /// `Int64.max` is kept there (saturated), as `CgroupFiles.counter` does.
    public static func parse(_ text: String) -> SchedStat? {
        let fields = text.trimmingWhitespace().split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3, let run = CgroupFiles.counter(fields[0]), let wait = CgroupFiles.counter(fields[1]),
            let slices = CgroupFiles.counter(fields[2])
        else { return nil }
        return SchedStat(runNanoseconds: run, waitNanoseconds: wait, timeslices: slices)
    }

    /// The statistics of process `pid` (its main thread: PostgreSQL's processes have one); nil
    /// when the file does not hold three counters.
    public static func read(host: HostRoot, pid: Int32) throws(HostReadError) -> SchedStat? {
        parse(try host.readText("proc/\(pid)/schedstat", limit: fileLimit))
    }
}

/// The node's CPU time from the first line of `/proc/stat`, in clock ticks (`USER_HZ`).
public struct NodeCPUTimes: Sendable, Equatable {
    /// Every field of the `cpu` line from `user` to `steal` added (`guest` and `guest_nice` are
    /// already inside `user` and `nice`), saturating.
    public var totalTicks: Int64
    /// Time the hypervisor ran something else while this node's virtual CPUs wanted to run
    /// (`steal`, the eighth field; 0 on bare metal).
    public var stealTicks: Int64

    /// Times as read.
    public init(totalTicks: Int64, stealTicks: Int64) {
        self.totalTicks = totalTicks
        self.stealTicks = stealTicks
    }

    /// The first 64 KiB of /proc/stat hold the `cpu` line on any node.
    static let fileLimit = 64 << 10

    /// The aggregate `cpu` line of `/proc/stat`; nil when it is absent or has fewer than the
    /// eight fields up to `steal` (kernels before 2.6.11), or a field is not a counter.
    public static func parse(_ text: String) -> NodeCPUTimes? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst()
        let values = fields.prefix(8).compactMap { CgroupFiles.counter($0) }
        guard values.count == 8 else { return nil }
        return NodeCPUTimes(
            totalTicks: values.reduce(0) { $0.addingSaturating($1) }, stealTicks: values[7])
    }

    /// `/proc/stat` of the host; nil when it has no `cpu` line up to `steal`.
    public static func read(host: HostRoot) throws(HostReadError) -> NodeCPUTimes? {
        parse(try host.readText("proc/stat", limit: fileLimit))
    }
}
