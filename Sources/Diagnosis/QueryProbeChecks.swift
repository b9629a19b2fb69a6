import Checks
import PGNodeModel
import Probes
import Resolution

/// `query.latency` from the query probe's window, with the client backends' dirty-page pauses
/// from the writeback probe's window when it runs (they sleep in I/O wait: which of
/// `writeback.throttle` and `blkio.noise` explains that share).
extension QueryProbe: ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] {
        (results.query[slot]?.slowest ?? []).map { Int32(bitPattern: $0.tgid) }
    }

    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        let results = context.window.results
        let writebackRuns = context.window.statuses.contains { $0.name == WritebackProbe.name && $0.running }
        var report = ProbeReports.query(
            results.query[slot] ?? QueryResult(), names: context.processNames,
            windowNanoseconds: context.window.nanoseconds, showText: context.queryText)
        if let cpu = context.cpu, cpu.bandwidth?.quotaMicroseconds != nil {
            report.quotaPeriods = cpu.periods
            report.quotaThrottledPeriods = cpu.throttledPeriods
        }
        if writebackRuns {
            let paused = ProbeReports.writeback(
                results.writeback[slot] ?? WritebackResult(), names: context.processNames, pageSize: context.pageSize,
                windowNanoseconds: context.window.nanoseconds
            ).processes.filter { $0.role == WritebackThrottleCheck.clientBackend }.map(\.pausedNanoseconds)
            report.writebackPausedNanoseconds = paused.saturatingSum()
        }
        return [QueryLatencyCheck.evaluate(report)]
    }
}

extension ProbeReports {
    /// The query probe's result as the `query.latency` report, its slowest statements' backends
    /// named by `names`, else (a session that has ended) by the process title and container pid
    /// the probe read at the statement's end.
    public static func query(
        _ result: QueryResult, names: ProcessNames, windowNanoseconds: Int64, showText: Bool
    ) -> QueryLatencyReport {
        func ns(_ value: UInt64) -> Int64 { Int64(clamping: value) }
        let slowest = result.slowest.map { s in
            let pid = Int32(bitPattern: s.tgid)
            let name = names.byPID[pid]
            return QueryLatencyReport.Statement(
                durationNanoseconds: ns(s.durationNs), pid: pid,
                containerPID: name?.namespacePID ?? (s.namespaceTGID == 0 ? nil : Int32(bitPattern: s.namespaceTGID)),
                role: name?.role ?? ProcessTitle.parse(s.title)?.kind.rawValue,
                protocolName: s.protocol.rawValue, stateNanoseconds: s.stateNs.map(ns),
                reclaimNanoseconds: ns(s.reclaimNs),
                text: s.text)
        }
        return QueryLatencyReport(
            simple: ns(result.simple), extended: ns(result.extended), stateNanoseconds: result.stateNs.map(ns),
            throttledNanoseconds: ns(result.throttledNs), reclaimNanoseconds: ns(result.reclaimNs),
            latencyMicroseconds: result.latencyMicroseconds, slowest: slowest, showText: showText,
            untracked: ns(result.untracked), slowLost: ns(result.slowLost),
            windowNanoseconds: windowNanoseconds)
    }
}
