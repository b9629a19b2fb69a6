import HostFacts
import PGNodeModel

/// `kernel.mitigations`: which of the kernel's CPU-vulnerability mitigations cost the database
/// something on every kernel entry — every system call, page fault and interrupt its processes
/// cause: CPU buffer clearing (MDS, TAA, MMIO stale data, TSA, RFDS) on each return to user space,
/// return thunks (retbleed, SRSO) on each kernel function return, page-table isolation (PTI,
/// Meltdown) on each entry and exit, IBRS or IBPB on each entry. Information only: on a node
/// shared with other tenants these mitigations are what keeps them apart, and pgnode never
/// advises switching them off.
public enum MitigationsCheck {
    /// The check id.
    public static let id = "kernel.mitigations"

    /// One mitigation that costs every kernel entry.
    public struct EntryCost: Sendable, Equatable {
        /// The vulnerability file's name (`mds`).
        public var vulnerability: String
        /// Its text as the kernel wrote it.
        public var state: String
        /// What the kernel does on each entry because of it, for a person.
        public var costs: [String]
    }

    /// What the mitigation in `state` of the vulnerability `name` does on every kernel entry or
    /// exit, as the kernel's own wording shows it (arch/x86/kernel/cpu/bugs.c); empty for the
    /// ones that cost only on context switches, VM exits, or nothing.
    public static func entryCosts(name: String, state: String) -> [String] {
        let mitigated = state.hasPrefix("Mitigation")
        var costs: [String] = []
        switch name {
        case "mds", "tsx_async_abort", "mmio_stale_data", "tsa":
            // "Mitigation: Clear CPU buffers", or attempted without microcode (the VERW still runs);
            // TSA's "Clear CPU buffers: VM" clears only on VM entry.
            let clears =
                state.hasPrefix("Mitigation: Clear CPU buffers")
                || state.hasPrefix("Vulnerable: Clear CPU buffers attempted")
            if clears && !state.hasPrefix("Mitigation: Clear CPU buffers: VM") {
                costs.append("CPU buffers cleared (VERW) on every return to user space")
            }
        case "reg_file_data_sampling":
            if state.hasPrefix("Mitigation: Clear Register File") {
                costs.append("register file cleared (VERW) on every return to user space")
            }
        case "meltdown":
            if state.hasPrefix("Mitigation: PTI") {
                costs.append("page tables switched (PTI) on every kernel entry and exit")
            }
        case "retbleed":
            if mitigated && state.contains("untrained return thunk") {
                costs.append("every kernel function return goes through a return thunk")
            } else if state.hasPrefix("Mitigation: IBPB") {
                costs.append("a branch prediction barrier (IBPB) on every kernel entry")
            } else if state.hasPrefix("Mitigation: IBRS") {
                costs.append("IBRS set on every kernel entry and cleared on exit")
            } else if state.hasPrefix("Mitigation: Stuffing") {
                costs.append("call depth tracking on every kernel call and return")
            }
        case "spec_rstack_overflow":
            if state.hasPrefix("Mitigation: Safe RET") || state.hasPrefix("Vulnerable: Safe RET") {
                costs.append("every kernel function return goes through the safe-RET thunk")
            } else if state == "Mitigation: IBPB" {
                costs.append("a branch prediction barrier (IBPB) on every kernel entry")
            }
        case "spectre_v2":
            if state.hasPrefix("Mitigation: IBRS") {
                costs.append("IBRS set on every kernel entry and cleared on exit")
            }
            if state.contains("BHI: SW loop") {
                costs.append("branch history cleared by a software loop on every system call")
            }
        case "indirect_target_selection":
            if state.hasPrefix("Mitigation: Aligned branch/return thunks") {
                costs.append("every kernel function return goes through an aligned return thunk")
            }
        default:
            break
        }
        return costs
    }

    /// The observation for the node.
    public static func evaluate(_ facts: CPUVulnerabilities) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: CPUVulnerabilities) -> Observation {
        let path = "/" + CPUVulnerabilities.directory
        guard facts.present, !facts.entries.isEmpty else {
            let why =
                facts.present
                ? "\(path) lists nothing readable: \(facts.problems.joined(separator: "; "))"
                : "the kernel lists no CPU vulnerabilities (no \(path): a kernel before 4.15 or an architecture without it)"
            return .unavailable(
                check: id, reason: why, evidence: ["mitigations_parameter": .from(facts.mitigationsParameter)])
        }
        let perEntry = facts.entries.compactMap { entry -> EntryCost? in
            let costs = entryCosts(name: entry.name, state: entry.state)
            return costs.isEmpty ? nil : EntryCost(vulnerability: entry.name, state: entry.state, costs: costs)
        }
        var states: JSONObject = [:]
        for entry in facts.entries { states[entry.name] = .string(entry.state) }
        let evidence: JSONObject = [
            "mitigations_parameter": .from(facts.mitigationsParameter),
            "command_line_read": .bool(facts.commandLineRead),
            "per_entry": .array(
                perEntry.map {
                    .object([
                        "vulnerability": .string($0.vulnerability), "state": .string($0.state),
                        "costs": .array($0.costs.map { .string($0) }),
                    ])
                }),
            "vulnerable": .array(facts.entries.filter { $0.state.hasPrefix("Vulnerable") }.map { .string($0.name) }),
            "vulnerabilities": .object(states),
            "problems": .array(facts.problems.map { .string($0) }),
        ]
        let parameter = facts.mitigationsParameter.map { " (mitigations=\($0))" } ?? ""
        if facts.mitigationsParameter == "off" {
            return Observation(
                check: id, severity: .info,
                summary:
                    "The kernel was booted with mitigations=off: no CPU-vulnerability mitigation costs the database "
                    + "anything on kernel entry, and the CPU is open to the attacks they prevent.",
                evidence: evidence,
                remedy:
                    "Nothing for the database to change. Whether mitigations=off suits this node pool is a security "
                    + "decision for its operators; on nodes shared between tenants it should not be made for speed.")
        }
        guard !perEntry.isEmpty else {
            return Observation(
                check: id, severity: .ok,
                summary: "No CPU-vulnerability mitigation on this node costs every kernel entry\(parameter).",
                evidence: evidence)
        }
        let names = perEntry.map { "\($0.vulnerability) (\($0.state))" }.joined(separator: ", ")
        return Observation(
            check: id, severity: .info,
            summary:
                "\(perEntry.count) CPU-vulnerability mitigation\(perEntry.count == 1 ? " costs" : "s cost") every "
                + "kernel entry here\(parameter): \(names). The database pays \(perEntry.count == 1 ? "it" : "them") "
                + "on each system call, page fault and interrupt.",
            evidence: evidence,
            remedy:
                "Nothing to switch off: on nodes shared between tenants these mitigations keep them apart, and pgnode "
                + "never advises disabling them. The database pays less with fewer kernel entries: a connection "
                + "pooler instead of many short connections, shared_buffers large enough that reads are served "
                + "without a system call, larger batches from the application. Newer CPUs need fewer of them; count "
                + "the rest in capacity planning for the node type.")
    }
}
