import HostFacts
import ProbeObjects

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How one probe fared when it was opened, loaded and attached.
public struct ProbeOutcome: Sendable, Equatable {
    /// The probe's name.
    public var name: String
    /// The programs chosen (tp_btf or raw_tp variant).
    public var programs: [String]
    /// Whether it is loaded and attached.
    public var running: Bool
    /// Why not, when it is not: the precondition or libbpf's error.
    public var reason: String?
    /// The verifier log's tail when the kernel rejected a program.
    public var verifierLog: String?
    /// The kernel's program ids while it ran.
    public var programIDs: [String: UInt32] = [:]
}

/// The probes of one run: opened, loaded and attached together; read and closed together.
/// Not `Sendable`: it owns libbpf objects; one task drives it from `open` to `close`.
public final class ProbeSession {
    private var objects: [String: BPFObject] = [:]
    /// How each probe fared.
    public private(set) var outcomes: [ProbeOutcome] = []
    private var shmEvents: [Int: [ShmResult.Event]] = [:]
    private var shmEventTask: Task<[ShmResult.Event], Never>?
    /// The shm probe's uprobes, per C library file of the targets (while attached).
    private var uprobes: UprobeAttachments?
    private var libraries: [LibraryFile] = []
    /// The targets' library files that the shm uprobes could not be attached to, at the last
    /// `setTargets` or `attach`.
    public private(set) var uprobeFailures: [UprobeAttachments.Failure] = []

    /// Opens and loads every probe in `probes` whose preconditions hold (`blocked` gives the
    /// reasons of those that do not: they are reported, not tried).
    public init(
        probes: [ProbeDefinition] = ProbeCatalog.all, environment: BPFEnvironment, btfPath: String?,
        blocked: [String: String] = [:], preferRawTracepoints: Bool = false
    ) {
        for probe in probes {
            let sets = ProbeCatalog.programSets(
                for: probe, environment: environment, preferRawTracepoints: preferRawTracepoints)
            var outcome = ProbeOutcome(name: probe.name, programs: sets[0], running: false)
            if let reason = blocked[probe.name] {
                outcome.reason = reason
                outcomes.append(outcome)
                continue
            }
            guard let embedded = EmbeddedObject.named(probe.name) else {
                outcome.reason = "the binary carries no BPF object named \(probe.name)"
                outcomes.append(outcome)
                continue
            }
            for programs in sets {
                outcome.programs = programs
                do {
                    let object = try BPFObject(
                        embedded: embedded, options: BPFOpenOptions(btfPath: btfPath, programs: Set(programs)))
                    try object.load()
                    objects[probe.name] = object
                    outcome.running = true
                    outcome.reason = nil
                    outcome.verifierLog = nil
                    break
                } catch {
                    outcome.reason = error.description
                    if case .load(_, _, _, _, let log) = error, !log.isEmpty { outcome.verifierLog = log }
                    if programs != sets.last {
                        LibBPFLog.logger.debug(
                            "falling back", metadata: ["probe": "\(probe.name)", "error": "\(error)"])
                    }
                }
            }
            outcomes.append(outcome)
        }
    }

    deinit { close() }

    /// The loaded object of `probe`, if it loaded.
    public func object(_ probe: String) -> BPFObject? { objects[probe] }

    /// Fills every loaded probe's `targets` map (index i = targets[i]).
    public func setTargets(_ targets: [ProbeTarget]) throws(BPFError) {
        precondition(targets.count <= Int(PGN_MAX_TARGETS), "at most \(PGN_MAX_TARGETS) targets")
        for (name, object) in objects {
            let map = try object.map("targets")
            for (index, target) in targets.enumerated() {
                var keys: [pgn_target_key] = []
                if let v2 = target.v2 {
                    keys.append(pgn_target_key(cgroup_id: v2, kind: PGN_CGROUP_V2.rawValue, pad: 0))
                }
                let v1: UInt64? = name == "blkio" ? target.blkioV1 : target.memoryV1
                let kind = name == "blkio" ? PGN_CGROUP_V1_BLKIO : PGN_CGROUP_V1_MEMORY
                if let v1 { keys.append(pgn_target_key(cgroup_id: v1, kind: kind.rawValue, pad: 0)) }
                for key in keys { try map.update(key, UInt32(index)) }
            }
        }
        libraries = targets.flatMap(\.libraries)
        updateUprobes()
    }

    /// Attaches the shm uprobes to the targets' library files (once the probe is attached).
    private func updateUprobes() {
        guard let uprobes else { return }
        uprobeFailures = uprobes.update(libraries: libraries)
        for failure in uprobeFailures {
            LibBPFLog.logger.warning("shm uprobes not attached", metadata: ["library": "\(failure)"])
        }
    }

    /// Attaches every loaded probe; a probe that fails to attach is closed and reported.
    public func attach() {
        for index in outcomes.indices where outcomes[index].running {
            let name = outcomes[index].name
            guard let object = objects[name] else { continue }
            do {
                try object.attach()
                outcomes[index].programIDs = object.programIDs
                if name == "shm" {
                    startShmEvents(object)
                    uprobes = uprobes ?? UprobeAttachments(object: object)
                    updateUprobes()
                }
                if name == "blkio" { Self.armBlockRequests(object) }
            } catch {
                outcomes[index].running = false
                outcomes[index].reason = error.description
                object.close()
                objects[name] = nil
            }
        }
    }

    /// Tells the blkio programs that all of them are attached: they track requests allocated from
    /// now on (CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns()` and `rq->start_time_ns`).
    /// Without this they start from the first completion they see.
    static func armBlockRequests(_ object: BPFObject) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let ns = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        try? object.map("blk_state").update(UInt32(0), ns)
    }

    private func startShmEvents(_ object: BPFObject) {
        guard let events = try? object.ringBuffer("shm_events") else { return }
        shmEventTask = Task {
            var received: [ShmResult.Event] = []
            for await record in events {
                if let event = ShmDecoding.event(record) { received.append(event) }
            }
            return received
        }
    }

    /// Detaches (the maps stay readable), drains the ring buffers, and reads every map.
    public func finish() async -> ProbeResults {
        detachAll()
        var events: [ShmResult.Event] = []
        if let task = shmEventTask { events = await task.value }
        shmEventTask = nil
        return readMaps(shmEvents: events)
    }

    /// Detaches and reads every map at once, without waiting for ring-buffer events (the maps
    /// hold every failure too): for callers that cannot await, such as an actor that owns the session.
    public func finishWithoutEvents() -> ProbeResults {
        detachAll()
        shmEventTask?.cancel()
        shmEventTask = nil
        return readMaps(shmEvents: [])
    }

    private func readMaps(shmEvents: [ShmResult.Event]) -> ProbeResults {
        var results = ProbeResults()
        if let shm = objects["shm"] { results.shm = (try? ShmDecoding.read(shm, events: shmEvents)) ?? [:] }
        if let reclaim = objects["reclaim"] { results.reclaim = (try? ReclaimDecoding.read(reclaim)) ?? [:] }
        if let blkio = objects["blkio"] { results.blkio = (try? BlkioDecoding.read(blkio)) ?? [:] }
        return results
    }

    /// Detaches every probe at once (their links are destroyed in parallel).
    private func detachAll() {
        BPFObject.destroy(objects.values.flatMap { $0.releaseLinks() } + (uprobes?.releaseLinks() ?? []))
        uprobes = nil
    }

    /// Detaches and unloads everything. Idempotent.
    public func close() {
        shmEventTask?.cancel()
        detachAll()
        for object in objects.values { object.close() }
        objects.removeAll()
    }
}

/// Runs probes for a while: the API later checks use.
public enum ProbeRunner {
    /// Opens and loads the probes, sets `targets`, attaches, waits `seconds` (or until the task
    /// is cancelled, e.g. by SIGINT/SIGTERM), reads the maps, and closes everything.
    public static func run(
        targets: [ProbeTarget], seconds: Double, environment: BPFEnvironment, btfPath: String?,
        blocked: [String: String] = [:], probes: [ProbeDefinition] = ProbeCatalog.all
    ) async -> (outcomes: [ProbeOutcome], results: ProbeResults) {
        let session = ProbeSession(probes: probes, environment: environment, btfPath: btfPath, blocked: blocked)
        defer { session.close() }
        do {
            try session.setTargets(targets)
        } catch {
            LibBPFLog.logger.debug("setting targets failed", metadata: ["error": "\(error)"])
        }
        // A zero-length window only loads (which proves the probes can run) and attaches nothing.
        if seconds > 0 {
            session.attach()
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
        }
        let results = await session.finish()
        return (session.outcomes, results)
    }
}
