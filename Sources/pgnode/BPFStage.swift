import Checks
import Diagnosis
import Dispatch
import HostFacts
import PGNodeModel
import Probes
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The BPF part of `pgnode check`: feature probing, BTF, loading and running the probes for the
/// observation window, with SIGINT/SIGTERM ending the window early and still detaching
/// everything. Kept apart from CheckCommand so the command only calls `run`.
enum BPFStage {
    struct Outcome {
        /// `kernel.btf`, for the BTF actually chosen.
        var btf: Observation
        /// `bpf.support`.
        var observations: [Observation]
        /// Whether each probe ran, and why not (container checks report `unavailable` from these).
        var statuses: [ProbeStatus]
        /// What the probes gathered (for the checks of the shm, memory and blk-mq issues).
        var results: ProbeResults
        /// The signal that ended the window early, if one did.
        var signal: Int32?
    }

    static func run(
        host: HostRoot, facts: KernelFacts, btfOption: String?, btfArchive: String?, seconds: Double,
        targets: [ProbeTarget] = []
    ) async -> Outcome {
        let resolution = BTFResolver.resolve(host: host, facts: facts, option: btfOption, archive: btfArchive)
        defer { resolution.cleanup() }
        let env = BPFFeatures.gather(
            host: host, facts: facts, btf: resolution.location, btfProblem: resolution.problem)
        var blocked: [String: String] = [:]
        for probe in ProbeCatalog.all {
            if let reason = BPFChecks.blockingReason(probe.requirement, env) { blocked[probe.name] = reason }
        }

        let received = Mutex<Int32?>(nil)
        let btfPath = resolution.customPath
        let task = Task {
            await ProbeRunner.run(
                targets: targets, seconds: seconds, environment: env, btfPath: btfPath, blocked: blocked)
        }
        let sources = [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                received.withLock { $0 = $0 ?? signalNumber }
                task.cancel()
            }
            source.resume()
            return source
        }
        let (outcomes, results) = await task.value
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)

        var statuses: [BPFProbeStatus] = []
        var observations: [Observation] = []
        for outcome in outcomes {
            guard let probe = ProbeCatalog.named(outcome.name) else { continue }
            statuses.append(
                BPFProbeStatus(
                    requirement: probe.requirement, programs: outcome.programs, running: outcome.running,
                    reason: outcome.reason, verifierLog: outcome.verifierLog))
        }
        observations.append(BPFChecks.support(env, probes: statuses))
        return Outcome(
            btf: KernelChecks.btf(
                facts, override: btfOption, resolved: resolution.location, problem: resolution.problem),
            observations: observations,
            statuses: statuses.map {
                ProbeStatus(
                    probe: $0.requirement.name, checks: $0.requirement.checks, running: $0.running,
                    reason: $0.reason)
            }, results: results, signal: received.withLock { $0 })
    }
}
