/// Whether one BPF probe runs, and why not when it does not: the one status the probe session
/// records when it loads and attaches the probes, the diagnosis engine passes on, `bpf.support`
/// reports, and the probe checks read (a probe that does not run makes its checks
/// `unavailable` with `reason`). Here, in the model, so that checks and diagnosis share it
/// without linking libbpf.
public struct ProbeStatus: Sendable, Equatable {
    /// The probe's name (its embedded object's, `bpf/<name>.bpf.c`).
    public var name: String
    /// The checks it feeds.
    public var checks: [String]
    /// The programs chosen for this kernel (tp_btf or raw_tp variant).
    public var programs: [String]
    /// Whether it is loaded and attached.
    public var running: Bool
    /// Why it is not running: what the plan found blocking it, or libbpf's error.
    public var reason: String?
    /// The tail of the verifier log when the kernel rejected a program.
    public var verifierLog: String?
    /// The kernel's program ids, by program name, while it runs.
    public var programIDs: [String: UInt32]
    /// The files its uprobes or USDT probes could not be attached to, each with the reason (a
    /// server built without USDT probes, a C library that could not be opened in its container).
    public var unattached: [String] = []

    /// A status.
    public init(
        name: String, checks: [String], programs: [String] = [], running: Bool, reason: String? = nil,
        verifierLog: String? = nil, programIDs: [String: UInt32] = [:]
    ) {
        self.name = name
        self.checks = checks
        self.programs = programs
        self.running = running
        self.reason = reason
        self.verifierLog = verifierLog
        self.programIDs = programIDs
    }
}
