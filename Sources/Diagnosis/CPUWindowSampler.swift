import Checks
import HostFacts
import Resolution

/// The two readings of a container's CPU cgroup that bound one window, for `cpu.throttling`.
public struct CPUWindowSamples: Sendable {
    /// The reading at the window's start (or the previous window's end, which is the same moment).
    public var start: Result<CPUCgroupSample, CheckUnavailable>
    /// The reading at its end, taken when the window is collected.
    public var end: Result<CPUCgroupSample, CheckUnavailable>

    /// Two readings.
    public init(start: Result<CPUCgroupSample, CheckUnavailable>, end: Result<CPUCgroupSample, CheckUnavailable>) {
        self.start = start
        self.end = end
    }

    /// What the cgroup did between them, or why that is not known.
    public var window: Result<CPUCgroupWindow, CheckUnavailable> { CPUFactsReader.window(from: start, to: end) }

    /// The end reading, when it was taken: the next window's start.
    public var endSample: CPUCgroupSample? { try? end.get() }
}

/// Reads a container's CPU cgroup at both ends of a window (`cpu.throttling` counts what
/// `cpu.stat` says changed between the two), on a thread of its own as background work of the
/// container's diagnosis (`DeadlineThreads.start`, under the container's id), as
/// `ShmUsageSampler` does: a read of a hung cgroup file system holds that thread only, and the
/// container's diagnosis is not started again while it stays stuck.
///
/// The thread reads once at the start (unless it is given the previous window's end reading, so
/// that an agent's windows follow one another without a gap), sleeps until `finish()`, then
/// reads again. The end is read when the window is collected, not when the container's turn to
/// be diagnosed comes.
public enum CPUWindowSampler {
    /// Starts sampling the CPU cgroup of `resolution` on `threads`; `previous`, when given, is
    /// the reading that ended the previous window and starts this one.
    public static func start(
        _ resolution: Resolution, host: HostRoot, threads: DeadlineThreads, previous: CPUCgroupSample?
    ) -> BackgroundWork<CPUWindowSamples> {
        let step = "the container's CPU cgroup (sampled for cpu.throttling)"
        return threads.start(resolution.container.id) { progress, stop in
            progress.step(step)
            let start = previous.map { Result.success($0) } ?? CPUFactsReader.sample(resolution, host: host)
            progress.step("waiting for the end of the window (cpu.throttling)")
            // Woken by `finish()` (or `cancel()`); the pause is long only so that no timer runs.
            while stop.pause(3600) {}
            progress.step(step)
            return CPUWindowSamples(start: start, end: CPUFactsReader.sample(resolution, host: host))
        }
    }
}
