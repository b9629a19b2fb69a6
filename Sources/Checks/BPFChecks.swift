import HostFacts
import PGNodeModel

/// Node-level BPF checks: pure functions of the BPF environment and the probes' outcomes.
public enum BPFChecks {
    /// `bpf.support`: which probes run here, and for each that does not, why.
    public static func support(_ env: BPFEnvironment, probes: [ProbeStatus]) -> Observation {
        observeSupport(env, probes: probes).flaggingSaturatedValues()
    }

    static func observeSupport(_ env: BPFEnvironment, probes: [ProbeStatus]) -> Observation {
        let probeEvidence: [JSONValue] = probes.map { probe in
            var object: JSONObject = [
                "name": .string(probe.name),
                "checks": .array(probe.checks.map { .string($0) }),
                "available": .bool(probe.running),
                "programs": .array(probe.programs.map { .string($0) }),
                "reason": .from(probe.reason),
            ]
            if let log = probe.verifierLog { object["verifier_log_tail"] = .string(log) }
            if !probe.unattached.isEmpty { object["unattached"] = .array(probe.unattached.map { .string($0) }) }
            return .object(object)
        }
        let caps: JSONObject = [
            "effective": env.effectiveCapabilities.map { .string(String($0, radix: 16)) } ?? .null,
            "cap_bpf": .bool(env.has(.bpf)),
            "cap_perfmon": .bool(env.has(.perfmon)),
            "cap_sys_admin": .bool(env.has(.sysAdmin)),
        ]
        func flags(_ values: [String: Bool]) -> JSONValue {
            var object: JSONObject = [:]
            for (key, value) in values.sorted(by: { $0.key < $1.key }) { object[key] = .bool(value) }
            return .object(object)
        }
        let evidence: JSONObject = [
            "probes": .array(probeEvidence),
            "capabilities": .object(caps),
            "unprivileged_bpf_disabled": env.unprivilegedBPFDisabled.map { .int(Int64($0)) } ?? .null,
            "lockdown": .from(env.lockdown),
            "btf": env.btf.map {
                .object(["path": .string($0.path), "origin": .string($0.origin.rawValue), "source": .from($0.source)])
            } ?? .null,
            "btf_problem": .from(env.btfProblem),
            "kernel_btf": .bool(env.kernelBTF),
            "tracefs": .bool(env.tracefs),
            "uprobe_pmu": .bool(env.uprobePMU),
            "program_types": flags(env.programTypes),
            "map_types": flags(env.mapTypes),
            "helpers": flags(env.helpers),
            "tracepoints": flags(env.tracepoints),
            "probe_problems": .array(env.probeProblems.map { .string($0) }),
        ]
        let running = probes.filter(\.running).map(\.name)
        let stopped = probes.filter { !$0.running }
        // A probe that runs but could not attach to some files (a server without USDT probes)
        // watches fewer containers: said in the summary, not a warning of the node.
        let partial = probes.filter { $0.running && !$0.unattached.isEmpty }
        let unattached = partial.map { "the \($0.name) probe could not attach to \($0.unattached[0])" }
        if stopped.isEmpty {
            var summary = "All \(probes.count) BPF probes run here (\(running.joined(separator: ", "))."
            if !unattached.isEmpty { summary += " But " + unattached.joined(separator: "; ") + "." }
            return Observation(
                check: "bpf.support", severity: partial.isEmpty ? .ok : .info, summary: summary, evidence: evidence)
        }
        let first = stopped[0]
        let summary =
            running.isEmpty
            ? "No BPF probe can run here: \(first.reason ?? "unknown reason"). Static checks still run."
            : "BPF probes \(stopped.map(\.name).joined(separator: ", ")) cannot run here "
                + "(\(first.reason ?? "unknown reason")); \(running.joined(separator: ", ")) run."
        return Observation(
            check: "bpf.support", severity: .warning, summary: summary, evidence: evidence,
            remedy:
                "Run pgnode privileged, or with CAP_BPF, CAP_PERFMON (and CAP_SYS_ADMIN on kernels before 5.8) in its "
                + "container's securityContext; give it the node's BTF (/sys/kernel/btf/vmlinux, --btf or "
                + "--btf-archive) and tracefs. The checks of the probes that cannot run report 'unavailable'.")
    }
}
