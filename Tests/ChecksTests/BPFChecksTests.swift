import Checks
import HostFacts
import PGNodeModel
import Testing

@Suite("bpf.support and kernel.btf")
struct BPFChecksTests {
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

    @Test("support: ok when all run, warning naming the first reason otherwise")
    func support() {
        let running = ProbeStatus(
            name: requirement.name, checks: requirement.checks, programs: ["a"], running: true)
        #expect(BPFChecks.support(capable, probes: [running]).severity == .ok)
        let stopped = ProbeStatus(
            name: "reclaim", checks: requirement.checks, programs: ["b"], running: false,
            reason: "pgnode lacks CAP_BPF")
        let observation = BPFChecks.support(capable, probes: [running, stopped])
        #expect(observation.severity == .warning)
        #expect(observation.summary.contains("reclaim") && observation.summary.contains("pgnode lacks CAP_BPF"))
        #expect(!observation.remedy.isEmpty)
    }

    @Test("support: a running probe that could not attach to a file (a server without USDT probes) is info, listed")
    func unattached() throws {
        var query = ProbeStatus(name: "query", checks: ["query.latency"], programs: ["q"], running: true)
        query.unattached = [
            "/usr/local/bin/postgres (8:1 42, in /proc/7/root): no USDT probe postgresql:query__start in this file "
                + "(built without --enable-dtrace)"
        ]
        let observation = BPFChecks.support(capable, probes: [query])
        #expect(observation.severity == .info)
        #expect(observation.summary.contains("the query probe could not attach to /usr/local/bin/postgres"))
        let probes = try #require(observation.evidence["probes"]?.arrayValue)
        #expect(probes.first?["unattached"]?.arrayValue?.count == 1)
        #expect(probes.first?["available"] == .bool(true))
    }

    @Test("kernel.btf: archive, unusable option, missing")
    func kernelBTF() {
        var facts = KernelFacts.gather(host: HostRoot("/"))
        facts.btf = nil
        let archive = BTFLocation(
            path: "/tmp/x/5.10.btf", origin: .archive, source: "/a/debian/11/x86_64/5.10.btf.tar.xz")
        #expect(KernelChecks.btf(facts, resolved: archive).severity == .ok)
        #expect(KernelChecks.btf(facts, resolved: archive).evidence["source"]?.stringValue == "archive")
        let option = BTFLocation(path: "/tmp/bogus", origin: .option)
        let bogus = KernelChecks.btf(facts, override: "/tmp/bogus", resolved: option, problem: "libbpf cannot parse")
        #expect(bogus.severity == .critical)
        #expect(KernelChecks.btf(facts).severity == .critical)
    }
}
