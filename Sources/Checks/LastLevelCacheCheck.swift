import HostFacts
import PGNodeModel

/// `cpu.llc`: last-level cache misses of the database's processes, which need the CPU's hardware
/// performance counters. pgnode reports it `unavailable` with the reason: "no hardware PMU" where
/// the kernel registered none (most virtual machines, this project's test machine among them), and
/// "not implemented" where there is one — no PMU code ships that could not be tested.
public enum LastLevelCacheCheck {
    /// The check id.
    public static let id = "cpu.llc"

    /// The observation for the node.
    public static func evaluate(_ facts: PerformanceMonitoringUnits) -> Observation {
        let path = "/" + PerformanceMonitoringUnits.directory
        guard let sources = facts.eventSources else {
            return .unavailable(
                check: id, reason: "cannot list the perf event sources: \(facts.problem ?? path)",
                evidence: ["path": .string(path)])
        }
        let evidence: JSONObject = [
            "event_sources": .array(sources.map { .string($0) }),
            "hardware_pmus": .array(facts.hardwarePMUs.map { .string($0) }),
            "path": .string(path),
        ]
        guard !facts.hardwarePMUs.isEmpty else {
            return .unavailable(check: id, reason: "no hardware PMU", evidence: evidence)
        }
        return .unavailable(check: id, reason: "not implemented", evidence: evidence)
    }
}
