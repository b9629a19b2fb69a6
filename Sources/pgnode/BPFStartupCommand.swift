import ArgumentParser
import Glibc
import HostFacts
import OSSupport
import PGNodeModel
import Probes

/// `pgnode bpf-startup` (hidden): measures the BPF start-up cost — opening, loading and
/// attaching every embedded object — for scripts/bench-bpf-startup.
struct BPFStartupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bpf-startup",
        abstract: "Measure opening, loading and attaching every embedded BPF object (for benchmarks).",
        shouldDisplay: false
    )

    @Option(help: "How many times to measure.")
    var runs = 20

    func run() throws {
        let host = HostRoot("/")
        let facts = KernelFacts.gather(host: host)
        let resolution = BTFResolver.resolve(host: host, facts: facts, option: nil, archive: nil)
        defer { resolution.cleanup() }
        let probeStart = monotonicNanoseconds()
        let env = BPFFeatures.gather(host: host, facts: facts, btf: resolution.location, btfProblem: resolution.problem)
        let probing = monotonicNanoseconds() - probeStart
        var startups: [UInt64] = []
        var closes: [UInt64] = []
        for _ in 0..<max(runs, 1) {
            let start = monotonicNanoseconds()
            let session = ProbeSession(environment: env, btfPath: resolution.customPath)
            session.attach()
            let attached = monotonicNanoseconds()
            guard session.statuses.allSatisfy(\.running) else {
                let reasons = session.statuses.compactMap { $0.reason.map { "\($0)" } }
                writeStandardError("pgnode: not every probe runs here: \(reasons.joined(separator: "; "))\n")
                throw PGNodeExit(code: 1)
            }
            session.close()
            startups.append(attached - start)
            closes.append(monotonicNanoseconds() - attached)
        }
        func ms(_ ns: UInt64) -> JSONValue { .double(Double(ns) / 1e6) }
        func median(_ values: [UInt64]) -> UInt64 { values.sorted()[values.count / 2] }
        let result: JSONObject = [
            "runs": .int(Int64(startups.count)),
            "objects": .int(Int64(ProbeCatalog.probes.count)),
            "programs": .int(Int64(ProbeCatalog.probes.reduce(0) { $0 + $1.definition.programs.count })),
            "feature_probing_ms": ms(probing),
            "startup_median_ms": ms(median(startups)),
            "startup_min_ms": ms(startups.min()!),
            "startup_max_ms": ms(startups.max()!),
            "close_median_ms": ms(median(closes)),
        ]
        writeStandardOutput(JSONWriter.string(.object(result)) + "\n")
    }

    private func monotonicNanoseconds() -> UInt64 { MonotonicClock.nanoseconds() }
}
