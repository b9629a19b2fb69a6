import HostFacts
import Testing

@Suite("BPF environment parsing")
struct BPFEnvironmentTests {
    @Test("CapEff and the capabilities tracing needs")
    func capabilities() {
        let status = "Name:\tpgnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n"
        let all = BPFEnvironment.parseEffectiveCapabilities(status: status)
        #expect(all == 0x1ff_ffff_ffff)
        var env = BPFEnvironment(effectiveCapabilities: all, kernelVersion: KernelVersion(major: 6, minor: 1, patch: 0))
        #expect(env.missingCapabilities.isEmpty)
        env.effectiveCapabilities = (1 << 39) | (1 << 38)  // CAP_BPF + CAP_PERFMON
        #expect(env.missingCapabilities.isEmpty)
        env.effectiveCapabilities = 1 << 39
        #expect(env.missingCapabilities == [.perfmon])
        env.effectiveCapabilities = 0
        #expect(env.missingCapabilities == [.bpf, .perfmon])
        env.kernelVersion = KernelVersion(major: 5, minor: 4, patch: 0)  // before CAP_BPF existed
        env.effectiveCapabilities = (1 << 39) | (1 << 38)
        #expect(env.missingCapabilities == [.sysAdmin])
    }

    @Test("lockdown's bracketed mode")
    func lockdown() {
        #expect(BPFEnvironment.parseLockdown("none [integrity] confidentiality\n") == "integrity")
        #expect(BPFEnvironment.parseLockdown("[none] integrity confidentiality") == "none")
        #expect(BPFEnvironment.parseLockdown("garbage") == nil)
    }
}
