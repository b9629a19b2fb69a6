import HostFacts

/// What a probe is: which embedded object, which programs, and what it needs from the kernel.
public struct ProbeDefinition: Sendable, Equatable {
    /// The requirements `bpf.support` checks before loading.
    public var requirement: BPFProbeRequirement
    /// The programs attached normally.
    public var programs: [String]
    /// Programs used instead of `programs` when `tp_btf` is not possible (no kernel BTF, or a
    /// kernel before 5.5); nil when the probe has no alternative.
    public var rawTracepointPrograms: [String]?

    /// The probe's (and its embedded object's) name.
    public var name: String { requirement.name }

    /// A definition whose programs are names generated from its object (`ProbeObjectNames.swift`).
    public init<Program: BPFProgramName>(
        requirement: BPFProbeRequirement, programs: [Program], rawTracepointPrograms: [Program]? = nil
    ) {
        self.requirement = requirement
        self.programs = programs.map(\.rawValue)
        self.rawTracepointPrograms = rawTracepointPrograms?.map(\.rawValue)
    }
}

/// Every probe pgnode carries: the registration list. A new probe is one line here (its type,
/// in `<Name>Probe.swift` beside `bpf/<name>.bpf.c`).
public enum ProbeCatalog {
    /// Every probe, in the order they are loaded.
    public static let probes: [any Probe.Type] = [
        ShmProbe.self, ReclaimProbe.self, BlkioProbe.self, MigrationsProbe.self, SchedProbe.self,
        WritebackProbe.self,
    ]

    /// The probes that run only when asked for, after the others: their cost falls on the
    /// database itself (the query probe's USDT probes trap at every statement: `--query-latency`).
    public static let optIn: [any Probe.Type] = [QueryProbe.self]

    /// Every probe pgnode carries, the opt-in ones last: one per embedded object.
    public static let every: [any Probe.Type] = probes + optIn

    /// Every carried probe's definition, in the same order (the opt-in ones included).
    public static let all: [ProbeDefinition] = every.map { $0.definition }

    /// The probes to load: every default one, and the query probe when `queryLatency`.
    public static func probes(queryLatency: Bool) -> [any Probe.Type] {
        queryLatency ? probes + [QueryProbe.self] : probes
    }

    /// The probe named `name` (default or opt-in).
    public static func named(_ name: String) -> (any Probe.Type)? { every.first { $0.name == name } }

    /// The program sets to try for `probe` here, in order: tp_btf needs the kernel's own BTF
    /// (a custom BTF is not enough), so without it only the raw_tp fallback is tried; with it,
    /// tp_btf first and raw_tp when the kernel rejects tp_btf (before 5.5). libbpf's probe of
    /// the `tracing` program type cannot tell (it needs an attach target), so the load decides.
    public static func programSets(
        for probe: ProbeDefinition, environment: BPFEnvironment, preferRawTracepoints: Bool = false
    ) -> [[String]] {
        guard let raw = probe.rawTracepointPrograms else { return [probe.programs] }
        return (environment.kernelBTF && !preferRawTracepoints) ? [probe.programs, raw] : [raw]
    }
}
