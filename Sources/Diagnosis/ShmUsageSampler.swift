import HostFacts
import Resolution

/// Samples how full a container's `/dev/shm` is while the probes observe (for `shm.enospc`'s
/// `shm_used_peak_bytes`): statfs through the container's root every `interval`, keeping the
/// highest `used`. It sees every file there (whoever wrote it, mmap-touched pages included) but may
/// miss a peak shorter than the interval; the shm probe's fallocate accounting (`dsm_peak_bytes`)
/// is exact for PostgreSQL's segments.
///
/// Each container is sampled on a thread of its own, as background work of the container's
/// diagnosis (`DeadlineThreads.start`, under the container's id): a statfs of a hung mount holds
/// that thread only, and once it is past the deadline the container's diagnosis is not started
/// again while it stays stuck, so a stalled `/dev/shm` is asked once, not twice per window.
public enum ShmUsageSampler {
    /// Milliseconds between two samples.
    public static let intervalMilliseconds = 100

    /// The process whose `/dev/shm` stands for a container, as discovered: its server's
    /// postmaster, else its init.
    public static func process(_ resolution: Resolution) -> ProcessIdentity? {
        if let server = resolution.postgres.first { return server.postmasterIdentity }
        return resolution.container.pid.flatMap { resolution.identity(ofProcess: $0) }
    }

    /// Starts sampling the `/dev/shm` of `resolution` on `threads`, until `finish()`: its value is
    /// the highest `used` bytes, nil when the mount could never be read (a process that exited or
    /// whose pid went to another process is not read). Nil when the container has no process to
    /// read it through.
    public static func start(_ resolution: Resolution, host: HostRoot, threads: DeadlineThreads)
        -> BackgroundWork<Int64?>?
    {
        guard let process = process(resolution) else { return nil }
        let root = ContainerRoot(host: host, process: process)
        let step = "/dev/shm of process \(process.pid) (sampled for shm.enospc)"
        let pause = Double(intervalMilliseconds) / 1000
        return threads.start(resolution.container.id) { progress, stop in
            var peak: Int64?
            repeat {
                progress.step(step)
                if let usage = try? root.fileSystem("/dev/shm") {
                    peak = max(peak ?? 0, Int64(clamping: usage.usedBytes))
                }
            } while stop.pause(pause)
            return peak
        }
    }
}
