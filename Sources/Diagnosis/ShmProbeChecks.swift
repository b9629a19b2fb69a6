import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

/// `shm.enospc` from the shm probe's window.
extension ShmProbe: ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] {
        (results.shm[slot]?.failed ?? []).map { Int32(bitPattern: $0.tgid) }
    }

    /// With the size of the server's `/dev/shm` (read now) and how full it got during the window.
    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        let process = ShmUsageSampler.process(context.resolution)
        context.step("/dev/shm of process \(process.map { "\($0.pid)" } ?? "?") (shm.enospc)")
        let mount = process.flatMap {
            try? ShmFactsReader.readMount(process: $0, pid: $0.pid, host: context.host).get()
        }
        let result = context.window.results.shm[slot] ?? ShmResult()
        // The memory limit the remedy's larger /dev/shm counts against, as shm.size adds it up.
        let memoryLimit = context.resolution.postgres.first.flatMap { server in
            MemoryBudgetFactsReader.shmLimit(
                MemoryBudgetFactsReader.facts(
                    server: server, cgroup: MemoryFactsReader.read(resolution: context.resolution, host: context.host)))
        }
        return [
            ShmEnospcCheck.evaluate(
                ProbeReports.shm(
                    result, roles: context.processNames.roles,
                    namespacePIDs: ProbeReports.namespacePIDs(context.processNames), clock: context.clock,
                    shmUsedPeakBytes: context.window.shmUsedPeakBytes[slot]),
                shmSizeBytes: mount?.sizeBytes, shmKind: mount?.kind,
                runBy: context.resolution.postgres.first?.runBy ?? .none, memoryLimit: memoryLimit)
        ]
    }
}

extension ProbeReports {
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
}
