/// What the running process and kernel allow for BPF: capabilities, sysctls, lockdown, BTF and
/// the kernel features libbpf probed. Gathered by the Probes target at start-up; the pure check
/// `bpf.support` (Checks) turns it into which probes can run and why the others cannot.
public struct BPFEnvironment: Sendable, Equatable {
    /// The effective capability set (`CapEff` of /proc/self/status); nil when unreadable.
    public var effectiveCapabilities: UInt64?
    /// `/proc/sys/kernel/unprivileged_bpf_disabled` (0, 1 or 2); nil when absent.
    public var unprivilegedBPFDisabled: Int?
    /// The active lockdown mode (`none`, `integrity`, `confidentiality`); nil when the kernel has
    /// no lockdown LSM (no /sys/kernel/security/lockdown).
    public var lockdown: String?
    /// The running kernel's version, for CAP_BPF (5.8+).
    public var kernelVersion: KernelVersion?
    /// The BTF that CO-RE relocations will use, when one was found.
    public var btf: BTFLocation?
    /// Why no BTF was found (or why the one given is unusable).
    public var btfProblem: String?
    /// Whether the kernel exposes its own BTF (`tp_btf` programs need it, a custom BTF is not enough).
    public var kernelBTF: Bool
    /// Whether tracefs is mounted (classic tracepoint programs are attached through it).
    public var tracefs: Bool
    /// Whether the kernel has the perf `uprobe` PMU (`/sys/bus/event_source/devices/uprobe`, 4.17+
    /// with CONFIG_UPROBE_EVENTS), through which libbpf attaches uprobes without tracefs.
    public var uprobePMU: Bool
    /// Program types the kernel accepts, by libbpf name (`kprobe`, `tracepoint`, `raw_tracepoint`,
    /// `tracing`); uprobes are `kprobe` programs.
    public var programTypes: [String: Bool]
    /// Map types the kernel accepts (`hash`, `array`, `percpu_array`, `lru_hash`, `ringbuf`).
    public var mapTypes: [String: Bool]
    /// Helpers available to tracepoint programs (`get_current_cgroup_id`, `ringbuf_reserve`, …).
    public var helpers: [String: Bool]
    /// Tracepoints (`category/name`) and whether this kernel has them.
    public var tracepoints: [String: Bool]
    /// Why feature probing itself could not run (e.g. no permission to call bpf()).
    public var probeProblems: [String]

    public init(
        effectiveCapabilities: UInt64? = nil, unprivilegedBPFDisabled: Int? = nil, lockdown: String? = nil,
        kernelVersion: KernelVersion? = nil, btf: BTFLocation? = nil, btfProblem: String? = nil,
        kernelBTF: Bool = false, tracefs: Bool = false, programTypes: [String: Bool] = [:],
        mapTypes: [String: Bool] = [:], helpers: [String: Bool] = [:], tracepoints: [String: Bool] = [:],
        probeProblems: [String] = [], uprobePMU: Bool = false
    ) {
        self.effectiveCapabilities = effectiveCapabilities
        self.unprivilegedBPFDisabled = unprivilegedBPFDisabled
        self.lockdown = lockdown
        self.kernelVersion = kernelVersion
        self.btf = btf
        self.btfProblem = btfProblem
        self.kernelBTF = kernelBTF
        self.tracefs = tracefs
        self.uprobePMU = uprobePMU
        self.programTypes = programTypes
        self.mapTypes = mapTypes
        self.helpers = helpers
        self.tracepoints = tracepoints
        self.probeProblems = probeProblems
    }

    /// Capability numbers from linux/capability.h.
    public enum Capability: Int, Sendable, CaseIterable {
        case sysAdmin = 21
        case perfmon = 38
        case bpf = 39

        /// The name people know (`CAP_SYS_ADMIN`).
        public var name: String {
            switch self {
            case .sysAdmin: "CAP_SYS_ADMIN"
            case .perfmon: "CAP_PERFMON"
            case .bpf: "CAP_BPF"
            }
        }
    }

    /// Whether the effective set holds `capability` (false when unknown).
    public func has(_ capability: Capability) -> Bool {
        guard let caps = effectiveCapabilities else { return false }
        return caps & (1 << UInt64(capability.rawValue)) != 0
    }

    /// The capabilities tracing programs still lack, empty when they may be loaded and attached:
    /// CAP_SYS_ADMIN alone suffices; from 5.8 on, CAP_BPF with CAP_PERFMON does too.
    public var missingCapabilities: [Capability] {
        if has(.sysAdmin) { return [] }
        let splitCapabilities = (kernelVersion.map { $0 >= KernelVersion(major: 5, minor: 8, patch: 0) } ?? true)
        if splitCapabilities {
            let missing = [Capability.bpf, .perfmon].filter { !has($0) }
            return missing.isEmpty ? [] : missing
        }
        return [.sysAdmin]
    }

    /// `CapEff:\t000001ffffffffff` from /proc/<pid>/status → the mask.
    public static func parseEffectiveCapabilities(status text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).trimmingWhitespace(), radix: 16)
        }
        return nil
    }

    /// `none [integrity] confidentiality` → `integrity` (the bracketed mode).
    public static func parseLockdown(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else {
            return nil
        }
        let mode = String(text[text.index(after: open)..<close])
        return mode.isEmpty ? nil : mode
    }

    /// Reads this process's capabilities (from its own /proc/self/status, whatever the host
    /// root) and the kernel's sysctl and lockdown state from `host`.
    public static func readProcessFacts(host: HostRoot, into env: inout BPFEnvironment) {
        if let status = try? FileIO.readText(path: "/proc/self/status") {
            env.effectiveCapabilities = parseEffectiveCapabilities(status: status)
        }
        if let text = try? host.readLine("proc/sys/kernel/unprivileged_bpf_disabled") {
            env.unprivilegedBPFDisabled = Int(text)
        }
        if let text = try? host.readLine("sys/kernel/security/lockdown") {
            env.lockdown = parseLockdown(text)
        }
    }
}

/// Where the BTF used for CO-RE relocations comes from.
public struct BTFLocation: Sendable, Equatable {
    /// How it was found.
    public enum Origin: String, Sendable {
        /// The running kernel's `/sys/kernel/btf/vmlinux` (under the host root).
        case kernel
        /// `--btf FILE`.
        case option
        /// `--btf-archive DIR` (BTFHub-archive layout).
        case archive
    }

    /// The absolute path libbpf reads (an extracted copy for a `.btf.tar.xz`).
    public var path: String
    /// How it was found.
    public var origin: Origin
    /// The file the user or the archive named, when it differs from `path` (a `.tar.xz`).
    public var source: String?

    public init(path: String, origin: Origin, source: String? = nil) {
        self.path = path
        self.origin = origin
        self.source = source
    }
}

/// What one probe needs from the kernel and the process; the Probes target lists its own.
public struct BPFProbeRequirement: Sendable, Equatable {
    /// The probe's name (`shm`, `reclaim`, `blkio`).
    public var name: String
    /// The checks whose data it gathers (`shm.enospc`, …).
    public var checks: [String]
    /// Program types, by libbpf name; a probe with alternatives lists the one it needs at least.
    public var programTypes: [String]
    /// Map types.
    public var mapTypes: [String]
    /// Helpers.
    public var helpers: [String]
    /// Tracepoints as `category/name`.
    public var tracepoints: [String]
    /// Whether it attaches classic tracepoints (through tracefs).
    public var needsTracefs: Bool
    /// Whether it attaches uprobes (through the perf `uprobe` PMU, else tracefs's `uprobe_events`).
    public var needsUprobes: Bool

    public init(
        name: String, checks: [String], programTypes: [String], mapTypes: [String], helpers: [String],
        tracepoints: [String], needsTracefs: Bool, needsUprobes: Bool = false
    ) {
        self.name = name
        self.checks = checks
        self.programTypes = programTypes
        self.mapTypes = mapTypes
        self.helpers = helpers
        self.tracepoints = tracepoints
        self.needsTracefs = needsTracefs
        self.needsUprobes = needsUprobes
    }
}
