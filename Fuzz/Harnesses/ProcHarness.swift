import HostFacts
import Resolution

extension Harness {
    /// `/proc/<pid>/stat`, `status`, `cmdline` and `environ`: a process's name, title and
    /// environment are the tenant's to choose.
    static let proc = Harness(
        name: "proc", maxLength: 4096, summary: "/proc/<pid>/stat, status (NSpid, CapEff), cmdline and environ"
    ) { bytes in
        let input = text(bytes)
        consume(ProcStat.parse(input))
        consume(ProcStatus.innermostNamespacePID(input))
        consume(BPFEnvironment.parseEffectiveCapabilities(status: input))
        consume(Cmdline.parse(bytes))
        consume(Cmdline.environment(bytes))
    }
}
