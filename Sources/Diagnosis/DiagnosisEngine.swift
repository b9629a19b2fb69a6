import Checks
import HostFacts
import Logging
import PGNodeModel
import ProbeObjects
import Probes
import Resolution

/// The diagnosis of this node: it owns the round, for `pgnode check` (one window of
/// `--duration`) and `pgnode agent` (windows for ever, the probes attached once) alike.
///
/// - Created, it gathers the kernel facts and plans the probes (`ProbePlan`: BTF, then features,
///   then which probes are blocked and why).
/// - `follow` (or `discover`, which first finds every PostgreSQL container on the node, on a
///   thread under three times the container deadline) gives each container a probe slot
///   (`TargetSlots`); the first call loads the probes and attaches them, later calls change only
///   their target map. Each followed container's `/dev/shm` is sampled meanwhile
///   (`ShmUsageSampler`), and its CPU cgroup read at the window's start and end
///   (`CPUWindowSampler`; the end of one window starts the next).
/// - `collect` ends the window: it reads what the probes saw since the previous one (counters as
///   differences, per-event entries drained; the last window detaches first and drains the ring
///   buffer), takes the samplers' peaks, and runs every check of each container on a thread of
///   its own under the container deadline (`ContainerDeadline`): past it, that container's checks
///   are `unavailable` ("timed out reading …") and the others go on. Then the next window begins.
/// - `nodeFindings`: `kernel.btf`, `kernel.headers`, `bpf.support`, then `kernel.thp`,
///   `kernel.clocksource`, `kernel.mitigations`, `cpu.llc` (their facts read, and the clock's
///   cost measured, once at creation with the kernel facts: no round reads the node's sysfs
///   again, and an unchanged node gives unchanged findings).
/// - `close` detaches and unloads everything and removes an extracted BTF.
///
/// Calls are not expected to overlap: `check` makes them in order, the agent's loop one after
/// the other.
public actor DiagnosisEngine {
    /// What the command line said.
    public nonisolated let configuration: DiagnosisConfiguration
    /// The node's kernel facts, gathered at creation.
    public nonisolated let facts: KernelFacts
    /// The probes' plan, made at creation.
    public nonisolated let plan: ProbePlan
    /// The node's tuning facts (`kernel.thp`, `kernel.clocksource`, `kernel.mitigations`,
    /// `cpu.llc`), gathered at creation.
    public nonisolated let tuning: NodeTuningFacts
    /// pgnode's own `clock_gettime` cost, measured at creation (nil when it could not be).
    public nonisolated let clockCost: ClockReadCost?

    private let logger: Logger
    /// Each container's diagnosis (and its `/dev/shm` sampler), under its deadline.
    private let deadlines: ContainerDeadline
    /// Discovery, under its deadline.
    private let discoveryThreads: DeadlineThreads
    /// The containers followed, in order.
    private var targets: [Resolution] = []
    private var slots = TargetSlots(capacity: Int(PGN_MAX_TARGETS))
    private var session: ProbeSession?
    /// How each probe fared when it was loaded and attached (empty until then).
    private var statuses: [ProbeStatus] = []
    /// When the probes' current window began.
    private var windowStart = Timestamp.now()
    /// Each followed container's `/dev/shm` sampler for the current window, by container id.
    private var samplers: [String: BackgroundWork<Int64?>] = [:]
    /// Each followed container's CPU cgroup sampler for the current window, by container id.
    private var cpuSamplers: [String: BackgroundWork<CPUWindowSamples>] = [:]
    /// The readings of each container's CPU cgroup and processes that ended the last window: the
    /// next one's start.
    private var cpuEndSamples: [String: CPUWindowSampler.Previous] = [:]
    /// Containers without a probe slot at the last `follow`.
    private var unfollowed = 0
    private var closed = false

    /// An engine for `configuration`: reads the kernel facts, resolves the BTF, probes the
    /// features. `logger` gets its warnings (containers beyond the probe slots, timeouts);
    /// `observer` is told of timeouts and stuck threads.
    public init(
        configuration: DiagnosisConfiguration, logger: Logger, observer: (any DeadlineObserver)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        deadlines = ContainerDeadline(
            threads: DeadlineThreads(deadline: configuration.containerDeadline, logger: logger, observer: observer))
        discoveryThreads = DeadlineThreads(
            deadline: 3 * configuration.containerDeadline, maxStuck: 1, what: "container discovery", logger: logger)
        let facts = KernelFacts.gather(host: configuration.host)
        self.facts = facts
        let tuning = NodeTuningFacts.gather(host: configuration.host)
        self.tuning = tuning
        clockCost = ClockReadCost.measure(clocksource: tuning.clocksource.current)
        plan = ProbePlan.make(
            host: configuration.host, facts: facts, btfOption: configuration.btfOption,
            btfArchive: configuration.btfArchive, probes: ProbeCatalog.probes(queryLatency: configuration.queryLatency))
    }

    /// How each probe fared when it was loaded and attached; empty before the first `follow`.
    public var probeStatuses: [ProbeStatus] { statuses }

    /// The node-level findings as of now: `kernel.btf` (for the BTF chosen), `kernel.headers`
    /// and `bpf.support` (which probes run, and why the others do not), then the tuning checks
    /// (`KernelChecks.tuning`).
    public func nodeFindings(start: Timestamp, end: Timestamp) -> [Finding] {
        let resource = ResourceAttributes(nodeName: configuration.nodeName, clusterName: configuration.clusterName)
        let observations =
            [
                KernelChecks.btf(
                    facts, override: configuration.btfOption, resolved: plan.btf.location, problem: plan.btf.problem),
                KernelChecks.headers(facts),
                BPFChecks.support(plan.environment, probes: statuses),
            ] + KernelChecks.tuning(tuning, architecture: facts.architecture, clockCost: clockCost)
        return observations.map { Finding(observation: $0, resource: resource, windowStart: start, time: end) }
    }

    /// Finds every PostgreSQL container on the node (of the configuration's namespaces, when it
    /// names any) and follows them (`follow`). The process
    /// scan, the resolution of every container and the C libraries they map run on one thread
    /// under three times the container deadline; past it, nothing changes and the error says
    /// where it was stuck; until that thread ends, no other discovery starts.
    public func discover() async throws(DiscoveryError) -> [Resolution] {
        let host = configuration.host
        let namespaces = configuration.namespaces
        let outcome = await discoveryThreads.run("discovery") { progress in
            progress.step("the node's containers (processes, cgroups, runtime state, PostgreSQL configuration)")
            let found = Result { () throws(ResolutionError) in
                namespaces.apply(try ContainerResolver.resolveAll(host: host))
            }
            progress.step("the C libraries the containers' processes map (the probes' targets)")
            return found.map { found in (found, found.map { ProbeTargets.target(for: $0, host: host) }) }
        }
        let found: [Resolution]
        let probeTargets: [ProbeTarget]
        switch outcome {
        case .finished(.success(let result)): (found, probeTargets) = result
        case .finished(.failure(let error)): throw .resolution(error)
        case .cancelled: throw .unfinished("stopping")
        case .timedOut(let step):
            throw .unfinished(
                "timed out reading \(step) after \(ContainerDeadline.seconds(discoveryThreads.deadline)) s")
        case .stillStuck(let step, let seconds):
            throw .unfinished(
                "timed out reading \(step): an earlier discovery has been stuck there for "
                    + "\(ContainerDeadline.seconds(seconds)) s")
        case .tooManyStuck, .notStarted:
            throw .unfinished("no thread for discovery: \(outcome)")
        }
        var byID: [String: ProbeTarget] = [:]
        for (resolution, target) in zip(found, probeTargets) { byID[resolution.container.id] = target }
        await apply(found) { byID[$0.container.id] }
        return found
    }

    /// Follows `containers` from now on, in order: the first ones get the probe slots when there
    /// are more containers than slots. The first call loads the probes (and attaches them when
    /// the engine observes).
    public func follow(_ containers: [Resolution]) async {
        let host = configuration.host
        await apply(containers) { ProbeTargets.target(for: $0, host: host) }
    }

    /// Assigns the slots, sets the probes' targets (`target` is asked for the containers with a
    /// slot), loads and attaches the probes the first time, and starts or stops the samplers.
    private func apply(_ found: [Resolution], target: (Resolution) -> ProbeTarget?) async {
        targets = found
        let assigned = slots.assign(found.map(\.container.id))
        var bySlot: [Int: ProbeTarget] = [:]
        for resolution in found {
            if let slot = assigned[resolution.container.id], let target = target(resolution) { bySlot[slot] = target }
        }
        if let session {
            do {
                try session.setTargets(slots: bySlot)
            } catch {
                logger.error("cannot update the probes' targets", metadata: ["error": "\(error)"])
            }
            // The files the uprobes could not attach to change with the targets.
            statuses = session.statuses
        } else if !closed {
            let session = ProbeSession(
                probes: plan.probes, environment: plan.environment, btfPath: plan.btf.customPath,
                blocked: plan.blocked)
            do {
                try session.setTargets(slots: bySlot)
            } catch {
                logger.error("cannot set the probes' targets", metadata: ["error": "\(error)"])
            }
            if configuration.observes { session.attach() }
            self.session = session
            windowStart = Timestamp.now()
            statuses = session.statuses
        }
        // Logged when the number of containers without a slot changes, not every window.
        if found.count - assigned.count != unfollowed, found.count > assigned.count {
            logger.warning(
                "more PostgreSQL containers than probe slots: the probes follow the first ones",
                metadata: ["containers": "\(found.count)", "slots": "\(PGN_MAX_TARGETS)"])
        }
        unfollowed = found.count - assigned.count
        // The samplers of containers no longer followed are stopped (and waited for: a stuck one
        // is counted); the newly followed ones get theirs.
        let gone = samplers.filter { assigned[$0.key] == nil }
        for id in gone.keys { samplers[id] = nil }
        // The CPU samplers follow every container, with a probe slot or not.
        let followed = Set(found.map(\.container.id))
        let cpuGone = cpuSamplers.filter { !followed.contains($0.key) }
        for id in cpuGone.keys { cpuSamplers[id] = nil }
        cpuEndSamples = cpuEndSamples.filter { followed.contains($0.key) }
        async let stopped = Self.finish(gone)
        async let cpuStopped = Self.finish(cpuGone)
        _ = await (stopped, cpuStopped)
        startSamplers()
    }

    /// Whether the containers' `/dev/shm` is sampled: only for `shm.enospc`, so only while the
    /// shm probe runs.
    private var samplesShm: Bool {
        configuration.observes && statuses.contains { $0.name == ShmProbe.name && $0.running }
    }

    /// Starts a `/dev/shm` sampler for each container with a probe slot that has none, and a CPU
    /// sampler for each followed container that has none (when the engine observes).
    private func startSamplers() {
        guard configuration.observes, !closed else { return }
        for resolution in targets where cpuSamplers[resolution.container.id] == nil {
            let id = resolution.container.id
            cpuSamplers[id] = CPUWindowSampler.start(
                resolution, host: configuration.host, threads: deadlines.threads,
                previous: cpuEndSamples[id] ?? CPUWindowSampler.Previous())
            cpuEndSamples[id] = nil
        }
        guard samplesShm else { return }
        for resolution in targets
        where slots.slots[resolution.container.id] != nil && samplers[resolution.container.id] == nil {
            if let sampler = ShmUsageSampler.start(
                resolution, host: configuration.host, threads: deadlines.threads)
            {
                samplers[resolution.container.id] = sampler
            }
        }
    }

    /// Tells the samplers to stop and waits for them together, each at most the deadline.
    private static func finish<Value: Sendable>(_ samplers: [String: BackgroundWork<Value>]) async
        -> [String: DeadlineOutcome<Value>]
    {
        await withTaskGroup(of: (String, DeadlineOutcome<Value>).self) { group in
            for (id, sampler) in samplers { group.addTask { (id, await sampler.finish()) } }
            var outcomes: [String: DeadlineOutcome<Value>] = [:]
            for await (id, outcome) in group { outcomes[id] = outcome }
            return outcomes
        }
    }

    /// Ends the window and diagnoses every followed container (those of `containers` only, when
    /// given); the findings cover `start…end`. The last window (`pgnode check`) detaches the
    /// probes first, drains their ring buffer and closes them; otherwise the next window begins.
    /// When the calling task is cancelled the round is abandoned (`abandoned`).
    public func collect(from start: Timestamp, to end: Timestamp, containers: Set<String>? = nil, last: Bool = false)
        async -> DiagnosisRound
    {
        var round = DiagnosisRound()
        var results = ProbeResults()
        if let session {
            results = last ? await session.finish() : session.collect()
            round.probeEvents = ProbeEvents.counts(results, probes: plan.probes)
            round.droppedEvents = session.droppedEvents
            if last {
                session.close()
                self.session = nil
            }
        }
        let now = Timestamp.now()
        let nanoseconds = now.nanoseconds - windowStart.nanoseconds
        windowStart = now
        // How full each container's /dev/shm got; a sampler stuck past the deadline (a statfs of
        // a hung mount) makes its container's checks unavailable, as its diagnosis would.
        // The CPU cgroups' end readings, at the same time (a stuck read, like a stuck statfs,
        // makes the container's checks unavailable).
        async let shmOutcomes = Self.finish(samplers)
        async let cpuOutcomes = Self.finish(cpuSamplers)
        let (sampled, cpuSampled) = await (shmOutcomes, cpuOutcomes)
        samplers = [:]
        cpuSamplers = [:]
        if !last {
            for (id, outcome) in cpuSampled {
                if case .finished(let samples) = outcome { cpuEndSamples[id] = samples.endSamples }
            }
        }
        var peaks: [Int: Int64] = [:]
        for (id, outcome) in sampled {
            if case .finished(let peak?) = outcome, let slot = slots.slots[id] { peaks[slot] = peak }
        }
        let window = ProbeWindow(
            results: results, statuses: statuses, nanoseconds: nanoseconds, shmUsedPeakBytes: peaks)
        let host = configuration.host
        let facts = WindowFacts(
            window: window, layout: self.facts.cgroups, known: targets, pageSize: self.facts.pageSize,
            clock: ProbeReports.Clock(), devices: BlockDevices.read(host: host), queryText: configuration.queryText)
        for resolution in targets where containers?.contains(resolution.container.id) ?? true {
            let id = resolution.container.id
            let slot = configuration.observes ? slots.slots[id] : nil
            let checks =
                ContainerDiagnosis.staticChecks + ContainerDiagnosis.windowChecks
                + (slot == nil ? [] : ContainerDiagnosis.probeChecks(statuses))
            let cpu = cpuSampled[id]
            var observations: [Observation]
            if let (reason, evidence) = Self.timedOut(sampled[id], deadline: deadlines.threads.deadline)
                ?? Self.timedOut(cpu, deadline: deadlines.threads.deadline)
            {
                observations = checks.map { .unavailable(check: $0, reason: reason, evidence: evidence) }
            } else if Self.isCancelled(sampled[id]) || Self.isCancelled(cpu) {
                round.abandoned = true
                return round
            } else {
                let cpuWindow = Self.cpuWindow(cpu, deadline: deadlines.threads.deadline)
                let schedWindow = Self.schedWindow(cpu, deadline: deadlines.threads.deadline)
                let diagnosed = await deadlines.observations(container: id, checks: checks) { progress in
                    ContainerDiagnosis.observations(
                        resolution, slot: slot, host: host, window: facts, cpu: cpuWindow, sched: schedWindow
                    ) {
                        progress.step($0)
                    }
                }
                // Cancelled: the agent is stopping and abandons the round.
                guard let diagnosed else {
                    round.abandoned = true
                    return round
                }
                observations = diagnosed
            }
            if configuration.observes && slot == nil {
                observations += ContainerDiagnosis.unfollowedObservations(
                    statuses: statuses, slots: Int(PGN_MAX_TARGETS))
            }
            let resource = resolution.resourceAttributes(
                nodeName: configuration.nodeName, clusterName: configuration.clusterName)
            round.findings += observations.map {
                Finding(observation: $0, resource: resource, windowStart: start, time: end)
            }
        }
        if !last { startSamplers() }
        return round
    }

    /// Why a sampler that timed out makes its container's checks unavailable; nil otherwise.
    private static func timedOut<Value>(_ outcome: DeadlineOutcome<Value>?, deadline: Double) -> (String, JSONObject)? {
        guard let outcome, case .timedOut = outcome else { return nil }
        return ContainerDeadline.reason(outcome, deadline: deadline)
    }

    /// Whether a sampler's wait was cancelled (the agent is stopping).
    private static func isCancelled<Value>(_ outcome: DeadlineOutcome<Value>?) -> Bool {
        guard let outcome, case .cancelled = outcome else { return false }
        return true
    }

    /// The CPU window a sampler's outcome gives: its two readings, why the sampler did not run
    /// (refused: a stuck earlier read), or no window when there was no sampler (the engine does
    /// not observe).
    private static func cpuWindow(_ outcome: DeadlineOutcome<CPUWindowSamples>?, deadline: Double)
        -> Result<CPUCgroupWindow, CheckUnavailable>
    {
        guard let outcome else { return .failure(CPUFactsReader.noWindow) }
        if case .finished(let samples) = outcome { return samples.window }
        let reason = ContainerDeadline.reason(outcome, deadline: deadline)?.0 ?? "the CPU cgroup was not sampled"
        return .failure(CheckUnavailable(reason))
    }

    /// The processes' window a sampler's outcome gives, as `cpuWindow` does for the cgroup.
    private static func schedWindow(_ outcome: DeadlineOutcome<CPUWindowSamples>?, deadline: Double)
        -> Result<SchedWindow, CheckUnavailable>
    {
        guard let outcome else { return .failure(CPUContentionFactsReader.noWindow) }
        if case .finished(let samples) = outcome { return samples.schedWindow }
        let reason = ContainerDeadline.reason(outcome, deadline: deadline)?.0 ?? "the processes were not sampled"
        return .failure(CheckUnavailable(reason))
    }

    /// Stops observing: samplers told to stop, probes detached and unloaded, an extracted BTF
    /// removed. Idempotent; the engine follows nothing afterwards.
    public func close() {
        for sampler in samplers.values { sampler.cancel() }
        samplers = [:]
        for sampler in cpuSamplers.values { sampler.cancel() }
        cpuSamplers = [:]
        cpuEndSamples = [:]
        session?.close()
        session = nil
        if !closed { plan.cleanup() }
        closed = true
    }
}
