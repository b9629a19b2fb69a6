import HostFacts
import PGNodeModel

/// `kernel.clocksource`: is reading the clock cheap on this node? `clock_gettime` is a read of
/// the vDSO — no system call — only when the kernel's clocksource is one the vDSO can read from
/// user space (`tsc`, `kvm-clock`, the Hyper-V TSC page on x86; the architected timer on arm64).
/// With any other (`hpet`, `acpi_pm`, `xen` without its time page) every read is a system call,
/// often trapped by the hypervisor, and PostgreSQL's timing settings (`track_io_timing`,
/// `track_wal_io_timing`, `pg_stat_statements.track_planning`, `auto_explain.log_timing`, EXPLAIN
/// ANALYZE) read it around every I/O and every plan node.
public enum ClocksourceCheck {
    /// The check id.
    public static let id = "kernel.clocksource"

    /// Whether the vDSO serves a clocksource.
    public enum VDSOSupport: String, Sendable {
        /// It reads the clock in user space.
        case served
        /// Every `clock_gettime` is a system call.
        case notServed = "not_served"
        /// It depends on what the hypervisor offers (`xen`: its vCPU time page); the measured cost tells.
        case depends
        /// pgnode does not know this clocksource; the measured cost tells.
        case unknown
    }

    /// A measured call at or above this is a system call, not a vDSO read: vDSO reads take tens
    /// of nanoseconds, a system call's entry and exit alone take a few hundred (more with the
    /// CPU-vulnerability mitigations that work on every kernel entry).
    public static let systemCallNanoseconds = 150.0

    /// The clocksources the vDSO serves on x86 (`vclock_mode` set in the kernel's drivers).
    static let x86Served: Set<String> = ["tsc", "kvm-clock", "hyperv_clocksource_tsc_page"]
    /// The x86 clocksources it never serves: HPET (served before Linux 5.6, an HPET read costing
    /// as much as a system call anyway), the ACPI PM timer, the PIT, jiffies, Hyper-V's MSR clock.
    static let x86NotServed: Set<String> = [
        "hpet", "acpi_pm", "pit", "jiffies", "refined-jiffies", "tsc-early", "hyperv_clocksource_msr",
    ]

    /// Whether the vDSO of `architecture` (`uname -m`) serves the clocksource `name`.
    public static func vdsoSupport(_ name: String, architecture: String) -> VDSOSupport {
        switch architecture {
        case "x86_64", "i386", "i486", "i586", "i686":
            if x86Served.contains(name) { return .served }
            if x86NotServed.contains(name) { return .notServed }
            if name == "xen" { return .depends }
            return .unknown
        case "aarch64", "arm64":
            if name == "arch_sys_counter" || name == "arch_mem_counter" { return .served }
            if name == "jiffies" { return .notServed }
            return .unknown
        default:
            return name == "jiffies" ? .notServed : .unknown
        }
    }

    /// The observation for the node; `cost` is pgnode's own measurement (nil when it could not
    /// measure), `architecture` the running kernel's machine.
    public static func evaluate(_ facts: Clocksource, architecture: String, cost: ClockReadCost?) -> Observation {
        observe(facts, architecture: architecture, cost: cost).flaggingSaturatedValues()
    }

    static func observe(_ facts: Clocksource, architecture: String, cost: ClockReadCost?) -> Observation {
        guard let current = facts.current else {
            return .unavailable(
                check: id, reason: "cannot read the clocksource: \(facts.problems.joined(separator: "; "))",
                evidence: ["path": .string("/" + Clocksource.directory)])
        }
        let support = vdsoSupport(current, architecture: architecture)
        let served = facts.available.filter { $0 != current && vdsoSupport($0, architecture: architecture) == .served }
        let evidence: JSONObject = [
            "current": .string(current),
            "available": .array(facts.available.map { .string($0) }),
            "vdso": .string(support.rawValue),
            "clock_gettime_ns": cost.map { .double($0.nanosecondsPerCall) } ?? .null,
            "measurement": cost.map {
                .object(["batches": .int(Int64($0.batches)), "calls_per_batch": .int(Int64($0.callsPerBatch))])
            } ?? .null,
            "architecture": .string(architecture),
        ]
        let measured = cost.map { " (\(format($0.nanosecondsPerCall)) ns per clock_gettime, measured in pgnode)" } ?? ""
        let slow: Bool
        switch support {
        case .served:
            return Observation(
                check: id, severity: .ok,
                summary: "The clocksource is \(current), which the vDSO reads without a system call\(measured).",
                evidence: evidence)
        case .notServed:
            slow = true
        case .depends, .unknown:
            guard let cost else {
                return Observation(
                    check: id, severity: .info,
                    summary:
                        "The clocksource is \(current); whether the vDSO serves it depends on the "
                        + "\(support == .depends ? "hypervisor" : "kernel"), and pgnode could not measure a clock read.",
                    evidence: evidence,
                    remedy: remedy(current: current, served: served))
            }
            slow = cost.nanosecondsPerCall >= systemCallNanoseconds
            if !slow {
                return Observation(
                    check: id, severity: .ok,
                    summary: "The clocksource is \(current), and a clock read costs what a vDSO read does\(measured).",
                    evidence: evidence)
            }
        }
        let why = support == .notServed ? "which the vDSO cannot read" : "and a clock read costs a system call"
        return Observation(
            check: id, severity: .warning,
            summary:
                "The clocksource is \(current), \(why)\(measured): every timed I/O and plan node of PostgreSQL's "
                + "timing settings pays a system call.",
            evidence: evidence, remedy: remedy(current: current, served: served))
    }

    static func remedy(current: String, served: [String]) -> String {
        let path = "/" + Clocksource.directory + "/current_clocksource"
        let switchTo: String
        if let better = served.first {
            switchTo =
                "Switch the node pool to \(better), which this node offers: the boot parameter clocksource=\(better), "
                + "or `echo \(better) > \(path)` from a privileged DaemonSet (the kernel may have moved away from "
                + "it for a reason: check its log for 'clocksource' messages first)"
        } else {
            switchTo =
                "Run the database on a node type whose clocksource the vDSO reads (tsc, kvm-clock, the Hyper-V "
                + "TSC page on x86), or boot the node pool with clocksource=tsc where its TSC is stable"
        }
        return switchTo
            + ". Until then, keep PostgreSQL's clock-heavy settings off: track_io_timing, track_wal_io_timing, "
            + "pg_stat_statements.track_planning and auto_explain.log_timing (and EXPLAIN ANALYZE with TIMING on). "
            + "pgnode does not read these per container; check them in each server's configuration."
    }

    /// `n` with one decimal, without a trailing `.0`.
    static func format(_ n: Double) -> String {
        guard n.isFinite, n >= 0, n < 1e15 else { return "\(n)" }
        let tenths = Int64((n * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }
}
