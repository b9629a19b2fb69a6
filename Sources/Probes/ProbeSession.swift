import HostFacts
import ProbeObjects
import Synchronization

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
    private var shmEventTask: Task<Void, Never>?
    /// Failures received through the ring buffer and not yet collected (bounded).
    private let shmEvents = EventSink()
    /// Slot → target, as last set.
    private var assigned: [Int: ProbeTarget] = [:]
    /// The previous window's cumulative readings (`collect`).
    private var baseline = WindowBaseline()
    /// The number of the window `collect` reads next (the shm probe's `shm_window`).
    private var window: UInt64 = 0
    /// The shm probe's uprobes, per C library file of the targets (while attached).
    private var uprobes: UprobeAttachments?
    private var libraries: [LibraryFile] = []
    /// The targets' library files that the shm uprobes could not be attached to, at the last
    /// `setTargets` or `attach`.
    public private(set) var uprobeFailures: [UprobeAttachments.Failure] = []

    /// Shared between the task that receives ring-buffer events and the session that takes them.
    final class EventSink: Sendable {
        let state = Mutex(EventBuffer())
    }

    /// Ring-buffer events waiting to be read; the oldest beyond `capacity` are dropped and counted.
    struct EventBuffer {
        static let capacity = 4096
        var events: [ShmResult.Event] = []
        var dropped: UInt64 = 0

        mutating func append(_ event: ShmResult.Event) {
            if events.count >= Self.capacity {
                events.removeFirst()
                dropped += 1
            }
            events.append(event)
        }
    }

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

    /// Fills every loaded probe's `targets` map (index i = targets[i]); targets past
    /// `PGN_MAX_TARGETS` are not followed (callers report them as such).
    public func setTargets(_ targets: [ProbeTarget]) throws(BPFError) {
        let followed = targets.prefix(Int(PGN_MAX_TARGETS)).enumerated().map { ($0.offset, $0.element) }
        try setTargets(slots: Dictionary(uniqueKeysWithValues: followed))
    }

    /// Makes every loaded probe filter on exactly `slots` (slot → target; results come back by
    /// slot), while attached: keys of targets no longer wanted are removed, new ones added. A slot
    /// given to a different target than before has its state cleared first (the shm bytes held,
    /// segments and failures of the previous one), so nothing of that one is counted for this
    /// one. Slots run from 0 to `PGN_MAX_TARGETS` − 1.
    public func setTargets(slots: [Int: ProbeTarget]) throws(BPFError) {
        precondition(
            slots.keys.allSatisfy { (0..<Int(PGN_MAX_TARGETS)).contains($0) }, "slots are 0..<\(PGN_MAX_TARGETS)")
        // Another cgroup in a slot (not merely another C library for the same one).
        let reassigned = slots.filter { slot, target in
            guard let before = assigned[slot] else { return false }
            return (before.v2, before.memoryV1, before.blkioV1) != (target.v2, target.memoryV1, target.blkioV1)
        }.keys
        for (name, object) in objects {
            var wanted: [TargetKey: UInt32] = [:]
            for (slot, target) in slots {
                if let v2 = target.v2 { wanted[TargetKey(id: v2, kind: PGN_CGROUP_V2.rawValue)] = UInt32(slot) }
                let v1: UInt64? = name == "blkio" ? target.blkioV1 : target.memoryV1
                let kind = name == "blkio" ? PGN_CGROUP_V1_BLKIO : PGN_CGROUP_V1_MEMORY
                if let v1 { wanted[TargetKey(id: v1, kind: kind.rawValue)] = UInt32(slot) }
            }
            let map = try object.map("targets")
            for key in try map.keys(pgn_target_key.self)
            where wanted[TargetKey(id: key.cgroup_id, kind: key.kind)] == nil {
                try map.delete(key)
            }
            for slot in reassigned { try Self.clearSlot(slot, probe: name, object: object) }
            for (key, slot) in wanted {
                try map.update(pgn_target_key(cgroup_id: key.id, kind: key.kind, pad: 0), slot)
            }
        }
        for slot in reassigned { baseline.forgetShm(slot: slot) }
        assigned = slots
        libraries = slots.sorted { $0.key < $1.key }.flatMap { $0.value.libraries }
        updateUprobes()
    }

    /// A key of the `targets` map.
    private struct TargetKey: Hashable {
        var id: UInt64
        var kind: UInt32
    }

    /// Clears what `probe` keeps for the target in `slot` beyond counters (which windows subtract).
    private static func clearSlot(_ slot: Int, probe: String, object: BPFObject) throws(BPFError) {
        switch probe {
        case "shm":
            try object.map("shm_stats").update(UInt32(slot), pgn_shm_stats())
            let segments = try object.map("shm_segments")
            for key in try segments.keys(pgn_shm_segment_key.self) where key.target == UInt32(slot) {
                try segments.delete(key)
            }
            let failures = try object.map("shm_failures")
            for key in try failures.keys(pgn_shm_failure_key.self) where key.target == UInt32(slot) {
                try failures.delete(key)
            }
        case "reclaim":
            let entries = try object.map("reclaim_by_pid")
            for key in try entries.keys(pgn_reclaim_key.self) where key.target == UInt32(slot) {
                try entries.delete(key)
            }
        case "blkio":
            let neighbours = try object.map("blk_neighbours")
            for key in try neighbours.keys(pgn_blk_neighbour_key.self) where key.target == UInt32(slot) {
                try neighbours.delete(key)
            }
        default:
            break
        }
    }

    /// Attaches the shm uprobes to the targets' library files (once the probe is attached).
    private func updateUprobes() {
        guard let uprobes else { return }
        let before = Set(uprobeFailures.map(\.description))
        uprobeFailures = uprobes.update(libraries: libraries)
        // A library that keeps failing is tried again every window, and logged once.
        for failure in uprobeFailures where !before.contains(failure.description) {
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
        let buffer = shmEvents
        shmEventTask = Task {
            for await record in events {
                if let event = ShmDecoding.event(record) { buffer.state.withLock { $0.append(event) } }
            }
        }
    }

    /// Detaches (the maps stay readable), drains the ring buffers, and reads every map. Runs on
    /// the caller's actor (`isolation`), which owns the session.
    public func finish(isolation: isolated (any Actor)? = #isolation) async -> ProbeResults {
        detachAll()
        if let task = shmEventTask { await task.value }
        shmEventTask = nil
        return readMaps(shmEvents: takeEvents())
    }

    /// What the probes saw since the previous call (or since they were attached), while they stay
    /// attached: counters as differences, failures, reclaiming threads and neighbours drained from
    /// their maps, the ring buffer's failures received so far. For an agent that keeps one session.
    public func collect() -> ProbeResults {
        var cumulative = ProbeResults()
        if let shm = objects["shm"] {
            cumulative.shm = (try? ShmDecoding.read(shm, events: takeEvents(), drain: true, window: window)) ?? [:]
            // The next window's peaks start from here.
            window += 1
            try? shm.map("shm_window").update(UInt32(0), window)
        }
        if let reclaim = objects["reclaim"] {
            cumulative.reclaim = (try? ReclaimDecoding.read(reclaim, drain: true)) ?? [:]
        }
        if let blkio = objects["blkio"] { cumulative.blkio = (try? BlkioDecoding.read(blkio, drain: true)) ?? [:] }
        var results = baseline.window(cumulative)
        results.shmUnwatched = unwatchedTargets()
        return results
    }

    /// The targets the shm uprobes do not cover, and why (see `ProbeResults.shmUnwatched`).
    private func unwatchedTargets() -> [Int: String] {
        guard objects["shm"] != nil else { return [:] }
        var unwatched: [Int: String] = [:]
        for (slot, target) in assigned {
            if target.libraries.isEmpty {
                unwatched[slot] =
                    "the shm probe watches the C library's posix_fallocate, ftruncate and unlink, and the "
                    + "server maps no C library (statically linked, or its maps could not be read)"
                continue
            }
            // Attachments are shared by file (device and inode) between targets that map the same one.
            let identities = Set(target.libraries.map(\.identity))
            let failed = uprobeFailures.filter { identities.contains($0.library.identity) }
            if Set(failed.map(\.library.identity)) == identities {
                unwatched[slot] =
                    "the shm probe's uprobes could not be attached to the server's C library: "
                    + failed.map(\.description).joined(separator: "; ")
            }
        }
        return unwatched
    }

    /// Ring-buffer events dropped because nobody collected them in time, since the session began.
    public var droppedEvents: UInt64 { shmEvents.state.withLock { $0.dropped } }

    private func takeEvents() -> [ShmResult.Event] {
        shmEvents.state.withLock { buffer in
            defer { buffer.events.removeAll() }
            return buffer.events
        }
    }

    private func readMaps(shmEvents: [ShmResult.Event]) -> ProbeResults {
        var results = ProbeResults()
        if let shm = objects["shm"] { results.shm = (try? ShmDecoding.read(shm, events: shmEvents)) ?? [:] }
        if let reclaim = objects["reclaim"] { results.reclaim = (try? ReclaimDecoding.read(reclaim)) ?? [:] }
        if let blkio = objects["blkio"] { results.blkio = (try? BlkioDecoding.read(blkio)) ?? [:] }
        results.shmUnwatched = unwatchedTargets()
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
