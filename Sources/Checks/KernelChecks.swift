import HostFacts
import PGNodeModel

/// Node-level checks on the kernel: pure functions of `KernelFacts`.
public enum KernelChecks {
    /// `kernel.btf`: pgnode's CO-RE probes need the kernel's BTF; critical without it.
    /// `resolved` is the BTF the BTF resolver chose (an archive's, when the kernel has none),
    /// `problem` why none could be used.
    public static func btf(
        _ facts: KernelFacts, override: String? = nil, resolved: BTFLocation? = nil, problem: String? = nil
    ) -> Observation {
        observeBTF(facts, override: override, resolved: resolved, problem: problem).flaggingSaturatedValues()
    }

    static func observeBTF(
        _ facts: KernelFacts, override: String?, resolved: BTFLocation?, problem: String?
    ) -> Observation {
        let release = facts.release ?? "<release>"
        if let resolved, resolved.origin != .kernel, let problem {
            return Observation(
                check: "kernel.btf", severity: .critical,
                summary: "The BTF given (\(resolved.source ?? resolved.path)) is unusable: \(problem).",
                evidence: [
                    "path": .string(resolved.path), "source": .string(resolved.origin.rawValue),
                    "problem": .string(problem), "kernel_btf_present": .bool(facts.btf != nil),
                ],
                remedy:
                    "Give a BTF generated for exactly this kernel (\(release)): the distribution's debug package, "
                    + "BTFHub-archive, or the node's own /sys/kernel/btf/vmlinux when it has one.")
        }
        if let resolved, resolved.origin == .archive {
            return Observation(
                check: "kernel.btf", severity: .ok,
                summary:
                    "The kernel has no BTF of its own; pgnode uses \(resolved.source ?? resolved.path) from the BTF archive.",
                evidence: [
                    "path": .string(resolved.path), "archive_file": .from(resolved.source), "source": "archive",
                    "kernel_btf_present": .bool(facts.btf != nil),
                ])
        }
        if let override {
            return Observation(
                check: "kernel.btf", severity: .ok,
                summary: "Kernel BTF is taken from \(override) (given on the command line).",
                evidence: [
                    "path": .string(override), "source": "option", "kernel_btf_present": .bool(facts.btf != nil),
                ])
        }
        if let btf = facts.btf {
            return Observation(
                check: "kernel.btf", severity: .ok,
                summary: "The kernel exposes its BTF at \(btf.path) (\(btf.sizeBytes) bytes); CO-RE probes can load.",
                evidence: ["path": .string(btf.path), "size_bytes": .int(btf.sizeBytes), "source": "kernel"])
        }
        let osID = facts.os.id ?? "<os id>"
        let osVersion = facts.os.versionID ?? "<version id>"
        return Observation(
            check: "kernel.btf", severity: .critical,
            summary: "The kernel has no BTF at /sys/kernel/btf/vmlinux, so pgnode's BPF probes cannot load.",
            evidence: ["path": "/sys/kernel/btf/vmlinux", "release": .from(facts.release), "problem": .from(problem)],
            remedy:
                "Run a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020), or give pgnode "
                + "a BTF for this exact kernel: --btf FILE, or --btf-archive DIR holding BTFHub-archive's layout "
                + "(\(osID)/\(osVersion)/\(facts.architecture)/\(release).btf). Static checks run without it.")
    }

    /// `kernel.headers`: informational — pgnode needs no headers, header-based tools (BCC) do.
    public static func headers(_ facts: KernelFacts) -> Observation {
        observeHeaders(facts).flaggingSaturatedValues()
    }

    static func observeHeaders(_ facts: KernelFacts) -> Observation {
        let evidence: JSONObject = [
            "release": .from(facts.release),
            "found": .array(facts.headers.map { .string($0) }),
            "searched": .array(facts.headerCandidates.map { .string($0) }),
            "version_code": facts.kernelVersion.map { .int(Int64($0.code)) } ?? .null,
        ]
        if let first = facts.headers.first {
            return Observation(
                check: "kernel.headers", severity: .ok,
                summary: "Kernel headers for \(facts.release ?? "this kernel") are at \(first).", evidence: evidence)
        }
        let release = facts.release ?? "<release>"
        return Observation(
            check: "kernel.headers", severity: .info,
            summary: "No kernel headers for \(release) on the node; pgnode needs none (CO-RE), but BCC-style tools do.",
            evidence: evidence,
            remedy:
                "For header-based tools only: install the headers for \(release) on the node (e.g. the "
                + "linux-headers-\(release) package), or run `pgnode kernel --bcc-env` to get "
                + "BCC_LINUX_VERSION_CODE and BCC_KERNEL_SOURCE for this node.")
    }

    /// The node-level kernel checks of the kernel facts alone: `kernel.btf`, `kernel.headers`.
    public static func all(_ facts: KernelFacts, btfOverride: String? = nil) -> [Observation] {
        [btf(facts, override: btfOverride), headers(facts)]
    }

    /// The node's tuning checks, in this order: `kernel.thp`, `kernel.clocksource` (with pgnode's
    /// own measured `clock_gettime` cost, nil when not measured), `kernel.mitigations`, `cpu.llc`.
    /// `architecture` is the running kernel's machine (`KernelFacts.architecture`).
    public static func tuning(_ facts: NodeTuningFacts, architecture: String, clockCost: ClockReadCost?)
        -> [Observation]
    {
        [
            TransparentHugePageCheck.evaluate(facts.transparentHugePages),
            ClocksourceCheck.evaluate(facts.clocksource, architecture: architecture, cost: clockCost),
            MitigationsCheck.evaluate(facts.vulnerabilities),
            LastLevelCacheCheck.evaluate(facts.performanceMonitoring),
        ]
    }
}
