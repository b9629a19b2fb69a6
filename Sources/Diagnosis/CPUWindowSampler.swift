import Checks
import HostFacts
import Resolution

/// The two readings of a container's CPU cgroup that bound one window, for `cpu.throttling`,
/// and of its processes' schedstat and the node's /proc/stat, for `cpu.contention`.
public struct CPUWindowSamples: Sendable {
    /// The reading at the window's start (or the previous window's end, which is the same moment).
    public var start: Result<CPUCgroupSample, CheckUnavailable>
    /// The reading at its end, taken when the window is collected.
    public var end: Result<CPUCgroupSample, CheckUnavailable>
    /// The processes' scheduler statistics at the window's start (or the previous window's end).
    public var schedStart: Result<SchedSample, CheckUnavailable>
    /// And at its end, read right after the cgroup's end reading.
    public var schedEnd: Result<SchedSample, CheckUnavailable>

    /// Two readings of each.
    public init(
        start: Result<CPUCgroupSample, CheckUnavailable>, end: Result<CPUCgroupSample, CheckUnavailable>,
        schedStart: Result<SchedSample, CheckUnavailable> = .failure(CPUContentionFactsReader.noWindow),
        schedEnd: Result<SchedSample, CheckUnavailable> = .failure(CPUContentionFactsReader.noWindow)
    ) {
        self.start = start
        self.end = end
        self.schedStart = schedStart
        self.schedEnd = schedEnd
    }

    /// What the cgroup did between them, or why that is not known.
    public var window: Result<CPUCgroupWindow, CheckUnavailable> { CPUFactsReader.window(from: start, to: end) }

    /// What the processes did between them, or why that is not known.
    public var schedWindow: Result<SchedWindow, CheckUnavailable> {
        CPUContentionFactsReader.window(from: schedStart, to: schedEnd)
    }

    /// The cgroup's end reading, when it was taken.
    public var endSample: CPUCgroupSample? { try? end.get() }

    /// The end readings, when they were taken: the next window's start.
    public var endSamples: CPUWindowSampler.Previous {
        CPUWindowSampler.Previous(cpu: try? end.get(), sched: try? schedEnd.get())
    }
}

/// Reads a container's CPU cgroup at both ends of a window (`cpu.throttling` counts what
/// `cpu.stat` says changed between the two), and its processes' schedstat with the node's
/// /proc/stat (`cpu.contention`: run-queue wait and steal), on a thread of its own as background work of the
/// container's diagnosis (`DeadlineThreads.start`, under the container's id), as
/// `ShmUsageSampler` does: a read of a hung cgroup file system holds that thread only, and the
/// container's diagnosis is not started again while it stays stuck.
///
/// The thread reads once at the start (unless it is given the previous window's end reading, so
/// that an agent's windows follow one another without a gap), sleeps until `finish()`, then
/// reads again. The end is read when the window is collected, not when the container's turn to
/// be diagnosed comes.
public enum CPUWindowSampler {
    /// The readings that ended the previous window, which start the next one.
    public struct Previous: Sendable {
        /// The CPU cgroup's.
        public var cpu: CPUCgroupSample?
        /// The processes' schedstat.
        public var sched: SchedSample?

        /// Readings (nil: read anew at the start).
        public init(cpu: CPUCgroupSample? = nil, sched: SchedSample? = nil) {
            self.cpu = cpu
            self.sched = sched
        }
    }

    /// Starts sampling the CPU cgroup and the processes of `resolution` on `threads`;
    /// `previous` holds the readings that ended the previous window and start this one.
    public static func start(
        _ resolution: Resolution, host: HostRoot, threads: DeadlineThreads, previous: Previous = Previous()
    ) -> BackgroundWork<CPUWindowSamples> {
        let step = "the container's CPU cgroup (sampled for cpu.throttling)"
        let schedStep = "the container's processes' /proc/<pid>/schedstat (sampled for cpu.contention)"
        return threads.start(resolution.container.id) { progress, stop in
            progress.step(step)
            let start = previous.cpu.map { Result.success($0) } ?? CPUFactsReader.sample(resolution, host: host)
            progress.step(schedStep)
            let schedStart =
                previous.sched.map { Result.success($0) } ?? CPUContentionFactsReader.sample(resolution, host: host)
            progress.step("waiting for the end of the window (cpu.throttling, cpu.contention)")
            // Woken by `finish()` (or `cancel()`); the pause is long only so that no timer runs.
            while stop.pause(3600) {}
            progress.step(step)
            let end = CPUFactsReader.sample(resolution, host: host)
            progress.step(schedStep)
            return CPUWindowSamples(
                start: start, end: end, schedStart: schedStart,
                schedEnd: CPUContentionFactsReader.sample(resolution, host: host))
        }
    }
}
