import Agent
import Checks
import Diagnosis
import HostFacts
import Logging
import PGNodeModel
import ProbeObjects
import Probes
import Resolution
import Shipping

/// The agent's view of the node: every PostgreSQL container, the kernel checks and the probes.
///
/// The probes are loaded and attached once, at the first discovery, and stay attached until the
/// agent stops. Each window: `discoverContainers` resolves every PostgreSQL container, gives each
/// a slot (`TargetSlots`) and changes only the probes' target map; `containerFindings` collects
/// what the probes saw since the previous window (`ProbeSession.collect`: counters as
/// differences, per-event entries drained) and runs every check per container.
///
/// Nothing a container holds can stall the round: each container's diagnosis runs on its own
/// thread with a deadline (`ContainerDeadline`; past it, its checks are `unavailable`, "timed out
/// reading …"), and so does discovery (three times that deadline; past it the previous set of
/// containers is kept).
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
    /// The containers of the current window, in discovery order.
    private var targets: [Resolution] = []
    private var slots = TargetSlots(capacity: Int(PGN_MAX_TARGETS))
    private var session: ProbeSession?
    private var windowStart = Timestamp.now()
    private var statuses: [BPFProbeStatus] = []
    private var droppedEvents: UInt64 = 0
    /// Containers without a probe slot at the last discovery.
    private var unfollowed = 0
    private let logger = Logger(label: "pgnode.agent")
    /// Each container's diagnosis, under its deadline.
    private let deadlines: ContainerDeadline
    /// Discovery, under its deadline.
    private let discoveryThreads: DeadlineThreads

    init(
        host: HostRoot, nodeName: String, btfOption: String?, btfArchive: String?, metrics: MetricsRegistry,
        containerDeadline: Double
    ) {
        self.host = host
        self.nodeName = nodeName
        self.btfOption = btfOption
        self.btfArchive = btfArchive
        self.metrics = metrics
        deadlines = ContainerDeadline(
            threads: DeadlineThreads(deadline: containerDeadline, logger: logger, metrics: metrics))
        discoveryThreads = DeadlineThreads(
            deadline: 3 * containerDeadline, maxStuck: 1, what: "container discovery", logger: logger)
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

    /// Discovery that did not finish: the loop keeps the previous containers.
    struct DiscoveryUnfinished: Error, CustomStringConvertible {
        var description: String
    }

    func discoverContainers() async throws -> Set<String> {
        let host = self.host
        let outcome = await discoveryThreads.run("discovery") { progress in
            progress.step("the node's containers (processes, cgroups, runtime state, PostgreSQL configuration)")
            let found = Result { () throws(ResolutionError) in try ContainerResolver.resolveAll(host: host) }
            progress.step("the C libraries the containers' processes map (the probes' targets)")
            return found.map { found in (found, found.map { ProbeTargets.target(for: $0, host: host) }) }
        }
        let found: [Resolution]
        let probeTargets: [ProbeTarget]
        switch outcome {
        case .finished(let result): (found, probeTargets) = try result.get()
        case .cancelled: throw DiscoveryUnfinished(description: "stopping")
        case .timedOut(let step):
            throw DiscoveryUnfinished(
                description: "timed out reading \(step) after \(ContainerDeadline.seconds(discoveryThreads.deadline)) s"
            )
        case .stillStuck(let step, let seconds):
            throw DiscoveryUnfinished(
                description:
                    "timed out reading \(step): an earlier discovery has been stuck there for "
                    + "\(ContainerDeadline.seconds(seconds)) s")
        case .tooManyStuck, .notStarted:
            throw DiscoveryUnfinished(description: "no thread for discovery: \(outcome)")
        }
        targets = found
        let assigned = slots.assign(found.map(\.container.id))
        var bySlot: [Int: ProbeTarget] = [:]
        for (resolution, target) in zip(found, probeTargets) {
            if let slot = assigned[resolution.container.id] { bySlot[slot] = target }
        }
        if let session {
            do {
                try session.setTargets(slots: bySlot)
            } catch {
                logger.error("cannot update the probes' targets", metadata: ["error": "\(error)"])
            }
        } else {
            let session = ProbeSession(environment: environment, btfPath: btf.customPath, blocked: blocked)
            do {
                try session.setTargets(slots: bySlot)
            } catch {
                logger.error("cannot set the probes' targets", metadata: ["error": "\(error)"])
            }
            session.attach()
            self.session = session
            windowStart = Timestamp.now()
            record(session.outcomes)
        }
        // Logged when the number of containers without a slot changes, not every window.
        if found.count - assigned.count != unfollowed, found.count > assigned.count {
            logger.warning(
                "more PostgreSQL containers than probe slots: the probes follow the first ones",
                metadata: ["containers": "\(found.count)", "slots": "\(PGN_MAX_TARGETS)"])
        }
        unfollowed = found.count - assigned.count
        return Set(found.map(\.container.id))
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
            results = session.collect()
            let dropped = session.droppedEvents
            if dropped > droppedEvents {
                metrics.add(AgentMetric.probeEventsDropped, [], Double(dropped - droppedEvents))
                droppedEvents = dropped
            }
            for (name, count) in Self.eventCounts(results) {
                metrics.add(AgentMetric.probeEvents, [("probe", name)], Double(count))
            }
        }
        let end = Timestamp.now()
        let probeStatuses = statuses.map {
            ProbeStatus(
                probe: $0.requirement.name, checks: $0.requirement.checks, running: $0.running, reason: $0.reason)
        }
        let probeWindow = ProbeWindow(
            results: results, statuses: probeStatuses, nanoseconds: end.nanoseconds - windowStart.nanoseconds)
        windowStart = end
        let layout = facts.cgroups
        let known = targets
        let devices = BlockDevices.read(host: host)
        let clock = ProbeReports.Clock()
        let host = self.host
        let pageSize = facts.pageSize
        var findings: [Finding] = []
        for resolution in targets where containers.contains(resolution.container.id) {
            let slot = slots.slots[resolution.container.id]
            let checks = ContainerDiagnosis.staticChecks + (slot == nil ? [] : probeStatuses.flatMap(\.checks))
            let diagnosed = await deadlines.observations(container: resolution.container.id, checks: checks) {
                progress in
                var observations = ContainerDiagnosis.staticObservations(resolution, host: host) { progress.step($0) }
                if let slot {
                    // Its own namer: a cache shared with another container's thread (one that
                    // may still run, abandoned) would be shared mutable state.
                    let names = CgroupNames(host: host, layout: layout, known: known)
                    observations += ContainerDiagnosis.probeObservations(
                        resolution, index: slot, host: host, window: probeWindow, names: names, pageSize: pageSize,
                        clock: clock, devices: devices
                    ) { progress.step($0) }
                }
                return observations
            }
            // Cancelled: the agent is stopping and abandons the round.
            guard var observations = diagnosed else { return findings }
            if slot == nil {
                observations += ContainerDiagnosis.unfollowedObservations(
                    statuses: probeStatuses, slots: Int(PGN_MAX_TARGETS))
            }
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
