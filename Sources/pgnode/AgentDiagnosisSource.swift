import Agent
import Checks
import Diagnosis
import HostFacts
import PGNodeModel
import ProbeObjects
import Probes
import Resolution
import Shipping

/// The agent's view of the node: every PostgreSQL container, the kernel checks and the probes.
///
/// Each window: `discoverContainers` resolves every PostgreSQL container and opens a probe
/// session that filters on their cgroups; `containerFindings` reads the probes' maps, closes the
/// session and runs every check per container. The programs are loaded and attached once per
/// window (about 0.15 s to load, 0.5 s to detach on this machine), not kept attached across
/// windows; docs/agent.md says so.
actor AgentDiagnosisSource: DiagnosisSource {
    let host: HostRoot
    let nodeName: String
    let btfOption: String?
    let btfArchive: String?
    let metrics: MetricsRegistry

    private let facts: KernelFacts
    private let btf: BTFResolution
    private let environment: BPFEnvironment
    private let blocked: [String: String]
    /// The containers of the current window, in target-index order.
    private var targets: [Resolution] = []
    private var session: ProbeSession?
    private var sessionStart = Timestamp.now()
    private var statuses: [BPFProbeStatus] = []

    init(host: HostRoot, nodeName: String, btfOption: String?, btfArchive: String?, metrics: MetricsRegistry) {
        self.host = host
        self.nodeName = nodeName
        self.btfOption = btfOption
        self.btfArchive = btfArchive
        self.metrics = metrics
        let facts = KernelFacts.gather(host: host)
        self.facts = facts
        let btf = BTFResolver.resolve(host: host, facts: facts, option: btfOption, archive: btfArchive)
        self.btf = btf
        let environment = BPFFeatures.gather(host: host, facts: facts, btf: btf.location, btfProblem: btf.problem)
        self.environment = environment
        var blocked: [String: String] = [:]
        for probe in ProbeCatalog.all {
            if let reason = BPFChecks.blockingReason(probe.requirement, environment) { blocked[probe.name] = reason }
        }
        self.blocked = blocked
    }

    func discoverContainers() async throws -> Set<String> {
        let found = try ContainerResolver.resolveAll(host: host)
        targets = Array(found.prefix(Int(PGN_MAX_TARGETS)))
        closeSession()
        let session = ProbeSession(environment: environment, btfPath: btf.customPath, blocked: blocked)
        try? session.setTargets(targets.map { ProbeTargets.target(for: $0, host: host) })
        session.attach()
        self.session = session
        sessionStart = Timestamp.now()
        record(session.outcomes)
        return Set(targets.map(\.container.id))
    }

    func nodeFindings(window: DiagnosisWindow) async -> [Finding] {
        let resource = ResourceAttributes(nodeName: nodeName)
        let observations = [
            KernelChecks.btf(facts, override: btfOption, resolved: btf.location, problem: btf.problem),
            KernelChecks.headers(facts),
            BPFChecks.support(environment, probes: statuses),
        ]
        return observations.map {
            Finding(observation: $0, resource: resource, windowStart: window.start, time: window.end)
        }
    }

    func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding] {
        var results = ProbeResults()
        if let session {
            results = session.finishWithoutEvents()
            record(session.outcomes)
            for (name, count) in Self.eventCounts(results) {
                metrics.add(AgentMetric.probeEvents, [("probe", name)], Double(count))
            }
        }
        closeSession()
        let end = Timestamp.now()
        let probeWindow = ProbeWindow(
            results: results,
            statuses: statuses.map {
                ProbeStatus(
                    probe: $0.requirement.name, checks: $0.requirement.checks, running: $0.running, reason: $0.reason)
            },
            nanoseconds: end.nanoseconds - sessionStart.nanoseconds)
        let names = CgroupNames(host: host, layout: facts.cgroups, known: targets)
        let devices = BlockDevices.read(host: host)
        let clock = ProbeReports.Clock()
        var findings: [Finding] = []
        for (index, resolution) in targets.enumerated() where containers.contains(resolution.container.id) {
            var observations = ContainerDiagnosis.staticObservations(resolution, host: host)
            observations += ContainerDiagnosis.probeObservations(
                resolution, index: index, host: host, window: probeWindow, names: names, pageSize: facts.pageSize,
                clock: clock, devices: devices)
            let resource = resolution.resourceAttributes(nodeName: nodeName)
            findings += observations.map {
                Finding(observation: $0, resource: resource, windowStart: window.start, time: window.end)
            }
        }
        return findings
    }

    func stop() async {
        closeSession()
        btf.cleanup()
    }

    private func closeSession() {
        session?.close()
        session = nil
    }

    /// Keeps the probes' load status for `bpf.support` and the `pgnode_bpf_program_loaded` gauge.
    private func record(_ outcomes: [ProbeOutcome]) {
        statuses = outcomes.compactMap { outcome in
            guard let probe = ProbeCatalog.named(outcome.name) else { return nil }
            return BPFProbeStatus(
                requirement: probe.requirement, programs: outcome.programs, running: outcome.running,
                reason: outcome.reason, verifierLog: outcome.verifierLog)
        }
        for status in statuses {
            for program in status.programs {
                metrics.set(AgentMetric.bpfLoaded, [("program", program)], status.running ? 1 : 0)
            }
        }
    }

    /// What each probe counted in the window: shm calls, reclaim passes, block requests.
    static func eventCounts(_ results: ProbeResults) -> [(String, UInt64)] {
        let shm = results.shm.values.reduce(UInt64(0)) { $0 &+ $1.calls }
        let reclaim = results.reclaim.values.reduce(UInt64(0)) { total, entries in
            entries.reduce(total) { $0 &+ $1.memcgEvents &+ $1.directEvents }
        }
        let blkio = results.blkio.values.reduce(UInt64(0)) { $0 &+ $1.ownRequests &+ $1.noiseRequests }
        return [("shm", shm), ("reclaim", reclaim), ("blkio", blkio)]
    }
}
