import Checks
import PGNodeModel
import Probes

/// `memory.reclaim` from the reclaim probe's window.
extension ReclaimProbe: ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] {
        (results.reclaim[slot] ?? []).map { Int32(bitPattern: $0.tgid) }
    }

    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        [
            MemoryReclaimCheck.evaluate(
                ProbeReports.reclaim(
                    context.window.results.reclaim[slot] ?? [], names: context.processNames,
                    pageSize: context.pageSize, windowNanoseconds: context.window.nanoseconds))
        ]
    }
}

extension ProbeReports {
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
}
