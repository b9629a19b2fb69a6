import Glibc
import HostFacts
import PGNodeModel
import ProbeObjects

/// The probes of one run: opened, loaded and attached together; read and closed together. It
/// drives each probe through `Probe` and never asks which one it is.
/// Not `Sendable`: it owns libbpf objects; one task drives it from `open` to `close`.
public final class ProbeSession {
    /// The loaded probes, in load order.
    private var probes: [any Probe] = []
    /// How each probe fared, in load order.
    public private(set) var statuses: [ProbeStatus] = []
    /// Slot → target, as last set.
    private var assigned: [Int: ProbeTarget] = [:]
    /// The previous window's cumulative readings (`collect`).
    private var baseline: WindowBaseline

    /// The loaded probes' uprobe attachments that failed, at the last `setTargets` or `attach`.
    public var uprobeFailures: [UprobeAttachments.Failure] { probes.flatMap(\.uprobeFailures) }

    /// Opens and loads every probe in `probes` whose preconditions hold (`blocked` gives the
    /// reasons of those that do not, by name: they are reported, not tried).
    public init(
        probes: [any Probe.Type] = ProbeCatalog.probes, environment: BPFEnvironment, btfPath: String?,
        blocked: [String: String] = [:], preferRawTracepoints: Bool = false
    ) {
        baseline = WindowBaseline(probes: probes)
        for probe in probes {
            load(
                probe, environment: environment, btfPath: btfPath, blocked: blocked[probe.name],
                preferRawTracepoints: preferRawTracepoints)
        }
    }

    /// Loads `probe` with its first program set the kernel accepts.
    private func load<P: Probe>(
        _ probe: P.Type, environment: BPFEnvironment, btfPath: String?, blocked: String?, preferRawTracepoints: Bool
    ) {
        let sets = ProbeCatalog.programSets(
            for: P.definition, environment: environment, preferRawTracepoints: preferRawTracepoints)
        var outcome = ProbeStatus(name: P.name, checks: P.checks, programs: sets[0], running: false)
        defer { statuses.append(outcome) }
        if let blocked {
            outcome.reason = blocked
            return
        }
        guard let embedded = EmbeddedObject.named(P.name) else {
            outcome.reason = "the binary carries no BPF object named \(P.name)"
            return
        }
        for programs in sets {
            outcome.programs = programs
            do {
                let object = try BPFObject(
                    embedded: embedded, options: BPFOpenOptions(btfPath: btfPath, programs: Set(programs)))
                try object.load()
                probes.append(P(object: object))
                outcome.running = true
                outcome.reason = nil
                outcome.verifierLog = nil
                break
            } catch {
                outcome.reason = error.description
                if case .load(_, _, _, _, let log) = error, !log.isEmpty { outcome.verifierLog = log }
                if programs != sets.last {
                    LibBPFLog.logger.debug("falling back", metadata: ["probe": "\(P.name)", "error": "\(error)"])
                }
            }
        }
    }

    deinit { close() }

    /// Fills every loaded probe's `targets` map (index i = targets[i]); targets past
    /// `PGN_MAX_TARGETS` are not followed (callers report them as such).
    public func setTargets(_ targets: [ProbeTarget]) throws(BPFError) {
        let followed = targets.prefix(Int(PGN_MAX_TARGETS)).enumerated().map { ($0.offset, $0.element) }
        try setTargets(slots: Dictionary(uniqueKeysWithValues: followed))
    }

    /// Makes every loaded probe filter on exactly `slots` (slot → target; results come back by
    /// slot), while attached: keys of targets no longer wanted are removed, new ones added. A slot
    /// given to a different target than before has its state cleared first (`Probe.clear`: the
    /// shm bytes held, segments and failures of the previous one), so nothing of that one is
    /// counted for this one. Slots run from 0 to `PGN_MAX_TARGETS` − 1.
    public func setTargets(slots: [Int: ProbeTarget]) throws(BPFError) {
        precondition(
            slots.keys.allSatisfy { (0..<Int(PGN_MAX_TARGETS)).contains($0) }, "slots are 0..<\(PGN_MAX_TARGETS)")
        // Another cgroup in a slot (not merely another C library for the same one).
        let reassigned = slots.filter { slot, target in
            guard let before = assigned[slot] else { return false }
            return (before.v2, before.memoryV1, before.blkioV1) != (target.v2, target.memoryV1, target.blkioV1)
        }.keys
        for probe in probes {
            var wanted: [TargetKey: UInt32] = [:]
            let kind = type(of: probe).v1Controller
            for (slot, target) in slots {
                if let v2 = target.v2 { wanted[TargetKey(id: v2, kind: PGN_CGROUP_V2.rawValue)] = UInt32(slot) }
                let v1 = kind == .blkioV1 ? target.blkioV1 : target.memoryV1
                if let v1 { wanted[TargetKey(id: v1, kind: kind.rawValue)] = UInt32(slot) }
            }
            let map = try probe.object.map(ProbeCommonMap.targets)
            for key in try map.keys(pgn_target_key.self)
            where wanted[TargetKey(id: key.cgroup_id, kind: key.kind)] == nil {
                try map.delete(key)
            }
            for slot in reassigned { try probe.clear(slot: slot) }
            for (key, slot) in wanted {
                try map.update(pgn_target_key(cgroup_id: key.id, kind: key.kind, pad: 0), slot)
            }
        }
        for slot in reassigned { baseline.forget(slot: slot) }
        assigned = slots
        for probe in probes { probe.targetsChanged(slots) }
        recordUnattached()
    }

    /// Copies each probe's failed uprobe attachments into its status (`bpf.support` lists them).
    private func recordUnattached() {
        for probe in probes {
            guard let index = statuses.firstIndex(where: { $0.name == type(of: probe).name }) else { continue }
            statuses[index].unattached = probe.uprobeFailures.map(\.description)
        }
    }

    /// A key of the `targets` map.
    private struct TargetKey: Hashable {
        var id: UInt64
        var kind: UInt32
    }

    /// Attaches every loaded probe; a probe that fails to attach is closed and reported.
    public func attach() {
        probes = probes.filter { probe in
            guard let index = statuses.firstIndex(where: { $0.name == type(of: probe).name }) else { return true }
            do throws(BPFError) {
                try probe.object.attach()
                statuses[index].programIDs = probe.object.programIDs
                probe.attached()
                return true
            } catch {
                statuses[index].running = false
                statuses[index].reason = error.description
                probe.stop()
                BPFObject.destroy(probe.releaseLinks())
                probe.object.close()
                return false
            }
        }
        recordUnattached()
    }

    /// Detaches (the maps stay readable), drains the ring buffers, and reads every map. Runs on
    /// the caller's actor (`isolation`), which owns the session.
    public func finish(isolation: isolated (any Actor)? = #isolation) async -> ProbeResults {
        detachAll()
        for task in probes.compactMap(\.receiving) { await task.value }
        var results = ProbeResults()
        for probe in probes { probe.read(drain: false, slots: assigned, into: &results) }
        return results
    }

    /// What the probes saw since the previous call (or since they were attached), while they stay
    /// attached: counters as differences, failures, reclaiming threads and neighbours drained from
    /// their maps, the ring buffer's failures received so far. For an agent that keeps one session.
    public func collect() -> ProbeResults {
        var cumulative = ProbeResults()
        for probe in probes { probe.read(drain: true, slots: assigned, into: &cumulative) }
        return baseline.window(cumulative)
    }

    /// Ring-buffer events dropped because nobody collected them in time, since the session began.
    public var droppedEvents: UInt64 { probes.reduce(0) { $0 &+ $1.droppedEvents } }

    /// Detaches every probe at once (their links are destroyed in parallel).
    private func detachAll() {
        BPFObject.destroy(probes.flatMap { $0.object.releaseLinks() + $0.releaseLinks() })
    }

    /// Detaches and unloads everything. Idempotent.
    public func close() {
        for probe in probes { probe.stop() }
        detachAll()
        for probe in probes { probe.object.close() }
        probes.removeAll()
    }
}
