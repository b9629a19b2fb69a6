import HostFacts
import Probes

/// What pgnode can probe on this node, decided before anything is loaded: the BTF that CO-RE
/// relocations use (the kernel's, `--btf`, or one from `--btf-archive`), the BPF features the
/// kernel and pgnode's privileges allow, and for each probe whether something forbids trying it,
/// and why. The probe session loads only the probes nothing forbids; the others are reported with
/// their reason (`bpf.support`, and their checks `unavailable`).
public struct ProbePlan: Sendable {
    /// The BTF chosen, or why there is none.
    public let btf: BTFResolution
    /// Capabilities, lockdown, BTF and kernel features.
    public let environment: BPFEnvironment
    /// The probes that are not tried, by name, with the reason.
    public let blocked: [String: String]
    /// The probes, in the order they are loaded.
    public let probes: [any Probe.Type]

    /// Resolves the BTF and probes the features on `host`; `btfOption` and `btfArchive` are
    /// `--btf` and `--btf-archive`. An archive member is extracted to a temporary directory that
    /// `cleanup()` removes.
    public static func make(
        host: HostRoot, facts: KernelFacts, btfOption: String?, btfArchive: String?,
        probes: [any Probe.Type] = ProbeCatalog.probes
    ) -> ProbePlan {
        let btf = BTFResolver.resolve(host: host, facts: facts, option: btfOption, archive: btfArchive)
        let environment = BPFFeatures.gather(
            host: host, facts: facts, btf: btf.location, btfProblem: btf.problem, probes: probes.map { $0.definition })
        var blocked: [String: String] = [:]
        for probe in probes {
            if let reason = blockingReason(probe.definition.requirement, environment) { blocked[probe.name] = reason }
        }
        return ProbePlan(btf: btf, environment: environment, blocked: blocked, probes: probes)
    }

    /// Removes the extracted BTF, if any.
    public func cleanup() { btf.cleanup() }

    /// Why `requirement` cannot run here, before anything is loaded; nil when nothing forbids
    /// trying. The most fundamental reason comes first: capabilities, lockdown, BTF, tracefs (or
    /// the uprobe PMU), then missing kernel features and tracepoints.
    public static func blockingReason(_ requirement: BPFProbeRequirement, _ env: BPFEnvironment) -> String? {
        let missing = env.missingCapabilities
        if !missing.isEmpty {
            let names = missing.map(\.name).joined(separator: " and ")
            var reason = "pgnode lacks \(names) (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
            if env.effectiveCapabilities == nil { reason += "; its capabilities could not be read" }
            if let disabled = env.unprivilegedBPFDisabled, disabled != 0 {
                reason += "; unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled=\(disabled))"
            }
            return reason
        }
        if env.lockdown == "confidentiality" {
            return "the kernel is locked down (lockdown=confidentiality), which forbids BPF reads of kernel memory"
        }
        guard env.btf != nil else {
            return "no BTF for this kernel: \(env.btfProblem ?? "none found")"
        }
        if requirement.needsTracefs && !env.tracefs {
            return "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"
        }
        if requirement.needsUprobes && !env.uprobePMU && !env.tracefs {
            return "the kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe: 4.17+ with "
                + "CONFIG_UPROBE_EVENTS) and tracefs is not mounted for libbpf's uprobe_events fallback"
        }
        let types = requirement.programTypes.filter { env.programTypes[$0] == false }
        if !types.isEmpty { return "the kernel lacks BPF program type \(types.joined(separator: ", "))" }
        let maps = requirement.mapTypes.filter { env.mapTypes[$0] == false }
        if !maps.isEmpty { return "the kernel lacks BPF map type \(maps.joined(separator: ", "))" }
        let helpers = requirement.helpers.filter { env.helpers[$0] == false }
        if !helpers.isEmpty { return "the kernel lacks BPF helper \(helpers.joined(separator: ", "))" }
        let tracepoints = requirement.tracepoints.filter { env.tracepoints[$0] == false }
        if !tracepoints.isEmpty { return "the kernel lacks tracepoint \(tracepoints.joined(separator: ", "))" }
        return nil
    }
}
