import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Turns what the probes aggregated for one target into the reports the checks take.
public enum ProbeReports {
    /// Converts `bpf_ktime_get_ns()` times (CLOCK_MONOTONIC) to wall-clock timestamps.
    public struct Clock: Sendable {
        let offset: Int64

        /// A clock sampled now.
        public init() {
            var mono = timespec()
            clock_gettime(CLOCK_MONOTONIC, &mono)
            let monoNs = Int64(mono.tv_sec) * 1_000_000_000 + Int64(mono.tv_nsec)
            offset = Timestamp.now().nanoseconds - monoNs
        }

        /// The wall-clock time of a kernel timestamp (saturating: a time from a BPF map beyond
        /// 2262 stays at the end of `Timestamp`'s range).
        public func wall(_ kernelNanoseconds: UInt64) -> Timestamp {
            Timestamp(nanoseconds: Int64(clamping: kernelNanoseconds).addingSaturating(offset))
        }
    }

    /// PostgreSQL roles of the container's processes: host pid → role, or the command for
    /// processes that are not PostgreSQL's (as the resolution knows them; see `ProcessNames` for
    /// processes born during the window).
    public static func roles(_ resolution: Resolution) -> [Int32: String] {
        ProcessNames(resolution).roles
    }

    /// Host pids by their pid in the container's pid namespace, for the processes `names` knows
    /// (resolved before the window, or learned right after it).
    public static func namespacePIDs(_ names: ProcessNames) -> [Int32: Int32] {
        var pids: [Int32: Int32] = [:]
        for (pid, name) in names.byPID {
            if let inner = name.namespacePID { pids[inner] = pid }
        }
        return pids
    }

    /// The shm probe's result as the `shm.enospc` report. Each failure's role comes from the
    /// process title the probe read at the failure (parallel workers are gone by the time the
    /// window ends); a parallel worker's leader, named by its pid in the container, is mapped to
    /// a host pid through the other failing processes and `namespacePIDs`.
    public static func shm(
        _ result: ShmResult, roles: [Int32: String], namespacePIDs: [Int32: Int32] = [:], clock: Clock,
        shmUsedPeakBytes: Int64? = nil
    ) -> ShmProbeReport {
        var hostPIDs = namespacePIDs
        for failure in result.failed where failure.namespaceTGID != 0 {
            hostPIDs[Int32(bitPattern: failure.namespaceTGID)] = Int32(bitPattern: failure.tgid)
        }
        let failures = result.failed.map { failed in
            let role = ProcessTitle.parse(failed.title)
            let leader = role?.leaderPID
            return ShmProbeReport.Failure(
                pid: Int32(bitPattern: failed.tgid), requestedBytes: Int64(clamping: failed.sizeBytes),
                count: Int64(clamping: failed.count), firstSeen: clock.wall(failed.firstNs),
                lastSeen: clock.wall(failed.lastNs),
                containerPID: failed.namespaceTGID == 0 ? nil : Int32(bitPattern: failed.namespaceTGID),
                role: role?.kind.rawValue, leaderContainerPID: leader, leaderPID: leader.flatMap { hostPIDs[$0] })
        }
        return ShmProbeReport(
            failures: failures, dsmPeakBytes: max(0, result.peakBytes), roles: roles,
            shmUsedPeakBytes: shmUsedPeakBytes)
    }

    /// The reclaim probe's per-thread entries as the `memory.reclaim` report, per process, named
    /// by `names` (falling back on the command name the probe recorded).
    public static func reclaim(
        _ entries: [ReclaimEntry], names: ProcessNames, pageSize: Int, windowNanoseconds: Int64
    ) -> ReclaimReport {
        var byProcess: [Int32: ReclaimReport.Process] = [:]
        for entry in entries {
            let pid = Int32(bitPattern: entry.tgid)
            let name = names.byPID[pid]
            var p =
                byProcess[pid]
                ?? ReclaimReport.Process(
                    pid: pid, role: name?.role, events: 0, reclaimedBytes: 0, stallNanoseconds: 0,
                    command: name?.command ?? (entry.comm.isEmpty ? nil : entry.comm),
                    namespacePID: name?.namespacePID)
            // Per-thread counters from a BPF map, summed saturating (flagged in the evidence if one
            // reaches Int64.max) rather than wrapping or trapping.
            p.events = p.events.addingSaturating(
                Int64(clamping: entry.memcgEvents.addingSaturating(entry.directEvents)))
            p.reclaimedBytes = p.reclaimedBytes.addingSaturating(
                Int64(clamping: entry.reclaimedPages).multipliedSaturating(by: Int64(pageSize)))
            p.stallNanoseconds = p.stallNanoseconds.addingSaturating(Int64(clamping: entry.stallNs))
            byProcess[pid] = p
        }
        return ReclaimReport(processes: Array(byProcess.values), windowNanoseconds: windowNanoseconds)
    }

    /// The blkio probe's result as the `blkio.noise` report, naming neighbours with `names`.
    /// `devices` are the node's disks (sysfs); the report keeps those the target's requests went
    /// to, with their request counts (a device sysfs does not list keeps only its number).
    public static func blkio(
        _ result: BlkioResult, devices: [BlockNoiseReport.Device], names: CgroupNames
    ) -> BlockNoiseReport {
        BlockNoiseReport(
            devices: usedDevices(result.devices, known: devices), ownRequests: Int64(clamping: result.ownRequests),
            noiseRequests: Int64(clamping: result.noiseRequests),
            ownLatency: Log2Histogram(counts: result.ownLatencyUs),
            noiseLatency: Log2Histogram(counts: result.noiseLatencyUs),
            neighbours: result.neighbours.map { names.neighbour($0.cgroup, requests: Int64(clamping: $0.requests)) })
    }

    /// The devices of `used` (what the probe recorded), described by the matching `known` one.
    public static func usedDevices(_ used: [BlkioResult.Device], known: [BlockNoiseReport.Device])
        -> [BlockNoiseReport.Device]
    {
        used.map { device in
            var described =
                known.first { $0.dev == device.majorMinor }
                ?? BlockNoiseReport.Device(dev: device.majorMinor, name: nil, scheduler: nil, hardwareQueues: nil)
            described.requests = Int64(clamping: device.ownRequests)
            described.noiseRequests = Int64(clamping: device.noiseRequests)
            return described
        }
    }
}
