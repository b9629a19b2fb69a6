import Checks
import Diagnosis
import HostFacts
import PGNodeModel
import Testing

/// The probe plan's gating: why a probe is not tried here, from the BPF environment alone.
@Suite("which probes are blocked, and why")
struct ProbePlanTests {
    let requirement = BPFProbeRequirement(
        name: "shm", checks: ["shm.enospc"], programTypes: ["tracepoint"], mapTypes: ["ringbuf"],
        helpers: ["ringbuf_reserve"], tracepoints: ["syscalls/sys_enter_fallocate"], needsTracefs: true)

    var capable: BPFEnvironment {
        BPFEnvironment(
            effectiveCapabilities: 1 << 21, kernelVersion: KernelVersion(major: 6, minor: 1, patch: 0),
            btf: BTFLocation(path: "/sys/kernel/btf/vmlinux", origin: .kernel), kernelBTF: true, tracefs: true,
            programTypes: ["tracepoint": true], mapTypes: ["ringbuf": true], helpers: ["ringbuf_reserve": true],
            tracepoints: ["syscalls/sys_enter_fallocate": true])
    }

    @Test("reasons, most fundamental first")
    func reasons() {
        #expect(ProbePlan.blockingReason(requirement, capable) == nil)
        var env = capable
        env.effectiveCapabilities = 0
        env.unprivilegedBPFDisabled = 2
        env.btf = nil
        let reason = ProbePlan.blockingReason(requirement, env) ?? ""
        #expect(reason.hasPrefix("pgnode lacks CAP_BPF and CAP_PERFMON"))
        #expect(reason.contains("unprivileged_bpf_disabled=2"))
        env = capable
        env.lockdown = "confidentiality"
        #expect(ProbePlan.blockingReason(requirement, env)?.contains("lockdown=confidentiality") == true)
        env.lockdown = "integrity"
        #expect(ProbePlan.blockingReason(requirement, env) == nil)
        env.btf = nil
        env.btfProblem = "the kernel has no BTF"
        #expect(ProbePlan.blockingReason(requirement, env) == "no BTF for this kernel: the kernel has no BTF")
        env = capable
        env.tracefs = false
        #expect(ProbePlan.blockingReason(requirement, env)?.hasPrefix("tracefs is not mounted") == true)
        env = capable
        env.mapTypes["ringbuf"] = false
        #expect(ProbePlan.blockingReason(requirement, env) == "the kernel lacks BPF map type ringbuf")
        env = capable
        env.tracepoints["syscalls/sys_enter_fallocate"] = false
        #expect(
            ProbePlan.blockingReason(requirement, env) == "the kernel lacks tracepoint syscalls/sys_enter_fallocate")
    }

    @Test("uprobes: the perf uprobe PMU, else tracefs for libbpf's uprobe_events")
    func uprobes() {
        let uprobes = BPFProbeRequirement(
            name: "shm", checks: ["shm.enospc"], programTypes: ["kprobe"], mapTypes: ["ringbuf"],
            helpers: ["ringbuf_reserve"], tracepoints: [], needsTracefs: false, needsUprobes: true)
        var env = capable
        env.programTypes["kprobe"] = true
        env.uprobePMU = true
        env.tracefs = false
        #expect(ProbePlan.blockingReason(uprobes, env) == nil)
        env.uprobePMU = false
        #expect(ProbePlan.blockingReason(uprobes, env)?.hasPrefix("the kernel has no uprobe PMU") == true)
        env.tracefs = true
        #expect(ProbePlan.blockingReason(uprobes, env) == nil)
        env.programTypes["kprobe"] = false
        #expect(ProbePlan.blockingReason(uprobes, env) == "the kernel lacks BPF program type kprobe")
        #expect(BPFChecks.support(env, probes: []).evidence["uprobe_pmu"] == .bool(false))
    }

    @Test("extreme numbers in the environment: a reason, no trap")
    func extremes() {
        let int: [Int] = [.max, .min, -1, 0, 1]
        let uint64: [UInt64] = [.max, .max - 1, 1 << 63, 1 << 62, 0, 1]
        for caps in uint64 {
            for disabled in int {
                let env = BPFEnvironment(
                    effectiveCapabilities: caps, unprivilegedBPFDisabled: disabled,
                    kernelVersion: KernelVersion(major: .max, minor: .min, patch: .max),
                    programTypes: ["tracepoint": true, "kprobe": false], tracepoints: ["a/b": false])
                let requirement = BPFProbeRequirement(
                    name: "p", checks: ["c"], programTypes: ["kprobe"], mapTypes: [], helpers: [],
                    tracepoints: ["a/b"], needsTracefs: true)
                // No BTF in this environment: blocked whatever the capabilities.
                #expect(ProbePlan.blockingReason(requirement, env) != nil, "caps \(caps) disabled \(disabled)")
            }
        }
    }
}
