import Checks
import HostFacts
import PGNodeModel
import TestSupport
import Testing

/// `kernel.thp`, `kernel.clocksource`, `kernel.mitigations`, `cpu.llc`: facts in (fixture host
/// roots, see Tests/HostFactsTests/Fixtures/node/README.md), observations out.
@Suite("Node tuning checks")
struct NodeTuningChecksTests {
    func facts(_ name: String) -> NodeTuningFacts { NodeTuningFacts.gather(host: HostRoot(Fixtures.node(name))) }
    func cost(_ ns: Double) -> ClockReadCost {
        ClockReadCost(nanosecondsPerCall: ns, batches: 5, callsPerBatch: 1000, clocksource: nil)
    }

    @Test("kernel.thp: madvise is ok, always with defrag always is a warning, missing files are unavailable")
    func thp() {
        let real = TransparentHugePageCheck.evaluate(facts("vm-6.18").transparentHugePages)
        #expect(real.severity == .ok)
        #expect(real.evidence["enabled"] == "madvise")
        #expect(real.evidence["defrag"] == "madvise")
        #expect(real.evidence["shmem_enabled"] == "never")
        #expect(real.remedy.isEmpty)

        for host in ["thp-always", "rhel7-3.10"] {
            let o = TransparentHugePageCheck.evaluate(facts(host).transparentHugePages)
            #expect(o.severity == .warning, "\(host)")
            #expect(o.remedy.contains("transparent_hugepage=madvise"))
            #expect(o.remedy.contains("defrag=defer+madvise"))
        }
        #expect(
            TransparentHugePageCheck.evaluate(facts("rhel7-3.10").transparentHugePages).evidence["shmem_enabled"]
                == .null)

        let alwaysMadvise = TransparentHugePages(
            configured: true, enabled: SysfsChoice.parse("[always] madvise never"),
            defrag: SysfsChoice.parse("always defer defer+madvise [madvise] never"), shmemEnabled: nil)
        #expect(TransparentHugePageCheck.evaluate(alwaysMadvise).severity == .ok)

        let none = TransparentHugePageCheck.evaluate(facts("no-thp").transparentHugePages)
        #expect(none.severity == .ok && none.evidence["configured"] == false)
        let empty = TransparentHugePageCheck.evaluate(facts("acpi-pm").transparentHugePages)
        #expect(empty.severity == .unavailable)
        let garbled = TransparentHugePages(
            configured: true, enabled: nil, defrag: nil, shmemEnabled: nil, problems: ["enabled: garbled"])
        #expect(TransparentHugePageCheck.evaluate(garbled).evidence["reason"] == "enabled: garbled")
    }

    @Test("kernel.clocksource: tsc is ok with the measured cost as evidence")
    func tsc() {
        let o = ClocksourceCheck.evaluate(facts("vm-6.18").clocksource, architecture: "x86_64", cost: cost(24.6))
        #expect(o.severity == .ok)
        #expect(o.evidence["current"] == "tsc")
        #expect(o.evidence["available"] == ["tsc", "kvm-clock"])
        #expect(o.evidence["vdso"] == "served")
        #expect(o.evidence["clock_gettime_ns"] == .double(24.6))
        #expect(o.summary.contains("24.6 ns"))
        // A served clocksource is ok whatever the measurement says (a loaded machine is slow, not a system call).
        let loaded = ClocksourceCheck.evaluate(facts("vm-6.18").clocksource, architecture: "x86_64", cost: cost(900))
        #expect(loaded.severity == .ok)
    }

    @Test(
        "kernel.clocksource: hpet and acpi_pm are warnings whatever was measured",
        arguments: ["tsc-unstable-hpet", "acpi-pm"])
    func notServed(host: String) {
        for measured in [cost(25), cost(1800), nil] {
            let o = ClocksourceCheck.evaluate(facts(host).clocksource, architecture: "x86_64", cost: measured)
            #expect(o.severity == .warning)
            #expect(o.evidence["vdso"] == "not_served")
            #expect(o.remedy.contains("track_io_timing"))
            #expect(o.remedy.contains("pg_stat_statements.track_planning"))
            #expect(o.remedy.contains("auto_explain.log_timing"))
            #expect(o.remedy.contains("track_wal_io_timing"))
        }
        let noBetter = ClocksourceCheck.evaluate(facts(host).clocksource, architecture: "x86_64", cost: nil)
        #expect(noBetter.remedy.contains("node type"))
    }

    @Test("kernel.clocksource: xen depends on the hypervisor, so the measured cost decides")
    func xen() {
        let clock = facts("xen-aws").clocksource
        let slow = ClocksourceCheck.evaluate(clock, architecture: "x86_64", cost: cost(620))
        #expect(slow.severity == .warning)
        #expect(slow.evidence["vdso"] == "depends")
        #expect(slow.remedy.contains("clocksource=tsc"))  // tsc is available on this node
        let fast = ClocksourceCheck.evaluate(clock, architecture: "x86_64", cost: cost(31))
        #expect(fast.severity == .ok)
        let unmeasured = ClocksourceCheck.evaluate(clock, architecture: "x86_64", cost: nil)
        #expect(unmeasured.severity == .info)
        #expect(unmeasured.evidence["clock_gettime_ns"] == .null)
    }

    @Test("kernel.clocksource: other architectures and unknown names")
    func otherArchitectures() {
        #expect(ClocksourceCheck.vdsoSupport("arch_sys_counter", architecture: "aarch64") == .served)
        #expect(ClocksourceCheck.vdsoSupport("tsc", architecture: "aarch64") == .unknown)
        #expect(ClocksourceCheck.vdsoSupport("kvm-clock", architecture: "x86_64") == .served)
        #expect(ClocksourceCheck.vdsoSupport("hyperv_clocksource_tsc_page", architecture: "x86_64") == .served)
        #expect(ClocksourceCheck.vdsoSupport("jiffies", architecture: "riscv64") == .notServed)
        let odd = Clocksource(current: "riscv_clocksource", available: ["riscv_clocksource"])
        #expect(ClocksourceCheck.evaluate(odd, architecture: "riscv64", cost: cost(400)).severity == .warning)
        #expect(ClocksourceCheck.evaluate(odd, architecture: "riscv64", cost: cost(40)).severity == .ok)
        let unreadable = Clocksource(current: nil, available: [], problems: ["no such file"])
        #expect(ClocksourceCheck.evaluate(unreadable, architecture: "x86_64", cost: cost(25)).severity == .unavailable)
        // A measurement no machine makes still gives a sentence, not a trap.
        let absurd = ClocksourceCheck.evaluate(odd, architecture: "riscv64", cost: cost(.infinity))
        #expect(absurd.severity == .warning)
    }

    @Test("kernel.mitigations: this machine's Safe RET return thunk is info")
    func mitigationsHere() {
        let o = MitigationsCheck.evaluate(facts("vm-6.18").vulnerabilities)
        #expect(o.severity == .info)
        #expect(o.evidence["per_entry"]?.arrayValue?.first?["vulnerability"] == "spec_rstack_overflow")
        #expect(o.evidence["per_entry"]?.arrayValue?.count == 1)
        #expect(o.evidence["mitigations_parameter"] == "auto,no_guest_host,no_guest_guest")
        #expect(o.evidence["vulnerable"] == ["spec_rstack_overflow", "spec_store_bypass"])
        #expect(o.evidence["vulnerabilities"]?.objectValue?.keys.count == 19)
        #expect(o.summary.contains("spec_rstack_overflow (Vulnerable: Safe RET, no microcode)"))
        #expect(o.remedy.contains("never advises disabling them"))
        #expect(!o.remedy.contains("mitigations=off"))
    }

    @Test("kernel.mitigations: a Skylake guest pays buffer clearing, PTI, IBRS and the BHI loop")
    func mitigationsSkylake() {
        let o = MitigationsCheck.evaluate(facts("skylake-guest-6.8").vulnerabilities)
        #expect(o.severity == .info)
        let names = o.evidence["per_entry"]?.arrayValue?.compactMap { $0["vulnerability"]?.stringValue }
        #expect(names == ["mds", "meltdown", "mmio_stale_data", "retbleed", "spectre_v2", "tsx_async_abort"])
        let v2 = o.evidence["per_entry"]?.arrayValue?.first { $0["vulnerability"] == "spectre_v2" }
        #expect(v2?["costs"]?.arrayValue?.count == 2)
        #expect(o.evidence["mitigations_parameter"] == .null)
        #expect(!o.remedy.contains("mitigations=off"))
    }

    @Test("kernel.mitigations: mitigations=off is said, as information, and nothing is advised")
    func mitigationsOff() {
        let o = MitigationsCheck.evaluate(facts("mitigations-off").vulnerabilities)
        #expect(o.severity == .info)
        #expect(o.summary.contains("mitigations=off"))
        #expect(o.evidence["per_entry"] == .array([]))
        #expect(o.remedy.contains("security decision"))
    }

    @Test(
        "kernel.mitigations: what costs every entry, in the kernel's words",
        arguments: [
            ("mds", "Mitigation: Clear CPU buffers; SMT vulnerable", 1),
            ("mds", "Vulnerable: Clear CPU buffers attempted, no microcode; SMT Host state unknown", 1),
            ("mds", "Vulnerable; SMT Host state unknown", 0),
            ("tsa", "Mitigation: Clear CPU buffers: VM", 0),
            ("tsa", "Mitigation: Clear CPU buffers: user/kernel boundary", 1),
            ("reg_file_data_sampling", "Mitigation: Clear Register File", 1),
            ("retbleed", "Mitigation: untrained return thunk; SMT vulnerable", 1),
            ("retbleed", "Mitigation: Enhanced IBRS", 0),
            ("retbleed", "Vulnerable: untrained return thunk / IBPB on non-AMD based uarch", 0),
            ("spec_rstack_overflow", "Mitigation: Safe RET", 1),
            ("spec_rstack_overflow", "Mitigation: IBPB on VMEXIT only", 0),
            ("spectre_v2", "Mitigation: Enhanced / Automatic IBRS; IBPB: conditional; RSB filling", 0),
            (
                "spectre_v2",
                "Mitigation: Retpolines; STIBP: disabled; RSB filling; PBRSB-eIBRS: Not affected; BHI: Not affected", 0
            ),
            ("meltdown", "Not affected", 0),
            ("l1tf", "Mitigation: PTE Inversion", 0),
        ])
    func entryCosts(name: String, state: String, count: Int) {
        #expect(MitigationsCheck.entryCosts(name: name, state: state).count == count)
    }

    @Test("kernel.mitigations: no vulnerabilities directory is unavailable")
    func mitigationsUnavailable() {
        let o = MitigationsCheck.evaluate(facts("thp-always").vulnerabilities)
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"]?.stringValue?.contains("4.15") == true)
    }

    @Test("cpu.llc: unavailable, no hardware PMU here, not implemented where there is one")
    func llc() {
        let here = LastLevelCacheCheck.evaluate(facts("vm-6.18").performanceMonitoring)
        #expect(here.severity == .unavailable)
        #expect(here.evidence["reason"] == "no hardware PMU")
        #expect(here.evidence["event_sources"]?.arrayValue?.count == 5)
        let pmu = LastLevelCacheCheck.evaluate(facts("cpu-pmu").performanceMonitoring)
        #expect(pmu.evidence["reason"] == "not implemented")
        #expect(pmu.evidence["hardware_pmus"] == ["cpu"])
        let hybrid = LastLevelCacheCheck.evaluate(PerformanceMonitoringUnits(eventSources: ["cpu_atom", "cpu_core"]))
        #expect(hybrid.evidence["reason"] == "not implemented")
        let unlisted = LastLevelCacheCheck.evaluate(facts("acpi-pm").performanceMonitoring)
        #expect(unlisted.evidence["reason"]?.stringValue?.hasPrefix("cannot list") == true)
    }

    @Test("the tuning checks, in order, for any host root")
    func tuning() {
        for host in ["vm-6.18", "acpi-pm"] {
            let all = KernelChecks.tuning(facts(host), architecture: "x86_64", clockCost: cost(25))
            #expect(all.map(\.check) == ["kernel.thp", "kernel.clocksource", "kernel.mitigations", "cpu.llc"])
        }
    }
}
