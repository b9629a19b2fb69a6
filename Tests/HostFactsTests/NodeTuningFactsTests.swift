import Foundation
import HostFacts
import TestSupport
import Testing

@Suite("Node tuning facts: THP, clocksource, CPU vulnerabilities, PMUs")
struct NodeTuningFactsTests {
    func facts(_ name: String) -> NodeTuningFacts { NodeTuningFacts.gather(host: HostRoot(Fixtures.node(name))) }

    @Test(
        "sysfs choices: the bracketed word is the one in force",
        arguments: [
            ("always [madvise] never\n", "madvise", 3),
            ("[always] defer defer+madvise madvise never\n", "always", 5),
            ("always within_size advise [never] deny force\n", "never", 6),
            ("[always] madvise never", "always", 3),
        ])
    func choices(text: String, selected: String, count: Int) throws {
        let choice = try #require(SysfsChoice.parse(text))
        #expect(choice.selected == selected)
        #expect(choice.choices.count == count)
        #expect(choice.choices.contains(selected))
    }

    @Test(
        "sysfs choices: no guess without exactly one bracketed word",
        arguments: [
            "", "\n", "always madvise never", "[always] [madvise] never", "[] always", "al[ways] never", "[always",
            "[[always]] never", String(repeating: "a ", count: 40) + "[b]",
        ])
    func badChoices(text: String) {
        #expect(SysfsChoice.parse(text) == nil)
    }

    @Test("the kernel command line: the last mitigations= wins, quotes are removed, nothing after --")
    func commandLine() {
        let real = try! String(contentsOfFile: Fixtures.node("vm-6.18") + "/proc/cmdline", encoding: .utf8)
        #expect(KernelCommandLine(real).value(of: "mitigations") == "auto,no_guest_host,no_guest_guest")
        #expect(KernelCommandLine(real).value(of: "quiet") == nil)
        #expect(KernelCommandLine("mitigations=auto ro mitigations=off\n").value(of: "mitigations") == "off")
        #expect(KernelCommandLine("ro -- mitigations=off").value(of: "mitigations") == nil)
        #expect(
            KernelCommandLine("dyndbg=\"file a.c +p\" mitigations=\"auto,nosmt\"").value(of: "mitigations")
                == "auto,nosmt")
        #expect(KernelCommandLine("dyndbg=\"file a.c +p\"").parameters.count == 1)
        #expect(KernelCommandLine("").parameters.isEmpty)
        #expect(KernelCommandLine("\"\" = ==").parameters.map(\.name) == ["", ""])
    }

    @Test("this machine's files (copied): madvise, tsc, 19 vulnerabilities, no hardware PMU")
    func thisMachine() {
        let f = facts("vm-6.18")
        #expect(f.transparentHugePages.configured == true)
        #expect(f.transparentHugePages.enabled?.selected == "madvise")
        #expect(f.transparentHugePages.defrag?.selected == "madvise")
        #expect(f.transparentHugePages.shmemEnabled?.selected == "never")
        #expect(f.transparentHugePages.problems.isEmpty)
        #expect(f.clocksource == Clocksource(current: "tsc", available: ["tsc", "kvm-clock"]))
        #expect(f.vulnerabilities.present)
        #expect(f.vulnerabilities.entries.count == 19)
        #expect(f.vulnerabilities.state("spec_rstack_overflow") == "Vulnerable: Safe RET, no microcode")
        #expect(f.vulnerabilities.mitigationsParameter == "auto,no_guest_host,no_guest_guest")
        #expect(f.vulnerabilities.problems.isEmpty)
        #expect(f.performanceMonitoring.eventSources == ["breakpoint", "msr", "software", "tracepoint", "uprobe"])
        #expect(f.performanceMonitoring.hardwarePMUs.isEmpty)
    }

    @Test("the bad cases on fixtures")
    func badCases() {
        let always = facts("thp-always").transparentHugePages
        #expect(always.enabled?.selected == "always" && always.defrag?.selected == "always")
        let rhel7 = facts("rhel7-3.10").transparentHugePages
        #expect(rhel7.defrag?.choices == ["always", "madvise", "never"])
        #expect(rhel7.shmemEnabled == nil && rhel7.problems.isEmpty)
        #expect(facts("no-thp").transparentHugePages.configured == false)
        #expect(
            facts("xen-aws").clocksource == Clocksource(current: "xen", available: ["xen", "tsc", "hpet", "acpi_pm"]))
        #expect(facts("tsc-unstable-hpet").clocksource.current == "hpet")
        #expect(facts("acpi-pm").clocksource.available == ["acpi_pm"])
        let skylake = facts("skylake-guest-6.8").vulnerabilities
        #expect(skylake.state("meltdown") == "Mitigation: PTI")
        #expect(skylake.mitigationsParameter == nil && skylake.commandLineRead)
        #expect(facts("mitigations-off").vulnerabilities.mitigationsParameter == "off")
        #expect(facts("cpu-pmu").performanceMonitoring.hardwarePMUs == ["cpu"])
    }

    @Test("an empty host root: nothing known, problems said, no crash")
    func emptyHost() {
        let f = NodeTuningFacts.gather(host: HostRoot(Fixtures.host("empty")))
        #expect(f.transparentHugePages.configured == nil)
        #expect(f.clocksource.current == nil && !f.clocksource.problems.isEmpty)
        #expect(!f.vulnerabilities.present && !f.vulnerabilities.commandLineRead)
        #expect(f.performanceMonitoring.eventSources == nil)
    }

    @Test("hostile files: FIFOs are refused without blocking, huge and garbled files are problems")
    func hostile() throws {
        let root = try Fixtures.temporaryDirectory("pgnode-tuning")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        let thp = root + "/sys/kernel/mm/transparent_hugepage"
        let clock = root + "/sys/devices/system/clocksource/clocksource0"
        let vulns = root + "/sys/devices/system/cpu/vulnerabilities"
        for dir in [thp, clock, vulns, root + "/proc"] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        try #require(mkfifo(thp + "/enabled", 0o644) == 0)
        try String(repeating: "[always] ", count: 1000).write(
            toFile: thp + "/defrag", atomically: true, encoding: .utf8)
        try "tsc kvm-clock\n".write(toFile: clock + "/current_clocksource", atomically: true, encoding: .utf8)
        try #require(mkfifo(clock + "/available_clocksource", 0o644) == 0)
        try #require(mkfifo(vulns + "/mds", 0o644) == 0)
        try "Mitigation: PTI\n".write(toFile: vulns + "/meltdown", atomically: true, encoding: .utf8)
        try "x".write(toFile: vulns + "/Bad Name", atomically: true, encoding: .utf8)
        try #require(mkfifo(root + "/proc/cmdline", 0o644) == 0)

        let f = NodeTuningFacts.gather(host: HostRoot(root))
        #expect(f.transparentHugePages.enabled == nil && f.transparentHugePages.defrag == nil)
        #expect(f.transparentHugePages.problems.contains { $0.contains("not a regular file") })
        #expect(f.transparentHugePages.problems.contains { $0.contains("larger than 4096 bytes") })
        #expect(f.clocksource.current == nil)  // two names where one belongs
        #expect(f.clocksource.problems.count == 2)
        #expect(f.vulnerabilities.entries == [CPUVulnerabilities.Entry(name: "meltdown", state: "Mitigation: PTI")])
        #expect(f.vulnerabilities.problems.count == 3)  // the command line, mds, the odd name
        #expect(!f.vulnerabilities.commandLineRead)
    }

    @Test("this machine, read live: every part readable, and a clock read measured as present and positive")
    func live() throws {
        let f = NodeTuningFacts.gather(host: HostRoot("/"))
        #expect(f.transparentHugePages.problems.isEmpty)
        let current = try #require(f.clocksource.current)
        #expect(f.clocksource.available.contains(current))
        #expect(f.vulnerabilities.present && f.vulnerabilities.commandLineRead)
        #expect(f.performanceMonitoring.eventSources != nil)
        let cost = try #require(ClockReadCost.measure(clocksource: current))
        // The measurement's shape (its value is for the finding, not for a test to bound).
        #expect(cost.nanosecondsPerCall.isFinite)
        #expect(cost.batches == 5 && cost.callsPerBatch == 1000 && cost.clocksource == current)
    }
}
