import HostFacts
import ProbeObjects

/// The reclaim probe (`bpf/reclaim.bpf.c`): the vmscan tracepoints of memcg and direct reclaim,
/// per thread of each target: passes, pages reclaimed, time stalled. Its entries are drained each
/// window. Feeds `memory.reclaim`.
public final class ReclaimProbe: Probe {
    public typealias Result = [ReclaimEntry]

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: ReclaimObject.name, checks: ["memory.reclaim"], programTypes: ["tracepoint"], mapTypes: ["hash"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel"],
            tracepoints: [
                "vmscan/mm_vmscan_memcg_reclaim_begin", "vmscan/mm_vmscan_memcg_reclaim_end",
                "vmscan/mm_vmscan_direct_reclaim_begin", "vmscan/mm_vmscan_direct_reclaim_end",
            ],
            needsTracefs: true),
        programs: [.pgnRclMcgIn, .pgnRclMcgOut, .pgnRclDirIn, .pgnRclDirOut] as [ReclaimObject.Program],
        rawTracepointPrograms: nil)
    public static let v1Controller = CgroupRef.Kind.memoryV1

    public let object: BPFObject

    public init(object: BPFObject) { self.object = object }

    public func clear(slot: Int) throws(BPFError) {
        let entries = try object.map(ReclaimObject.Map.reclaimByPid)
        for key in try entries.keys(pgn_reclaim_key.self) where key.target == UInt32(slot) {
            try entries.delete(key)
        }
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: [ReclaimEntry]] { try Self.read(object, drain: drain) }

    /// Nothing: the entries are drained, so each reading is already one window's.
    public struct Baseline: Sendable {}

    public static var initialBaseline: Baseline { Baseline() }

    /// The drained entries, as they are.
    public static func window(_ cumulative: [Int: [ReclaimEntry]], baseline: inout Baseline) -> [Int: [ReclaimEntry]] {
        cumulative
    }

    /// Reclaim passes (memcg and direct).
    public static func events(in results: [Int: [ReclaimEntry]]) -> UInt64 {
        results.values.reduce(UInt64(0)) { total, entries in
            entries.reduce(total) { $0 &+ $1.memcgEvents &+ $1.directEvents }
        }
    }

    /// The map as it is; `drain` takes the entries out (per-window reading).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: [ReclaimEntry]] {
        var results: [Int: [ReclaimEntry]] = [:]
        let map = try object.map(ReclaimObject.Map.reclaimByPid)
        for (key, value) in try drain
            ? map.drain(pgn_reclaim_key.self, pgn_reclaim_value.self)
            : map.entries(pgn_reclaim_key.self, pgn_reclaim_value.self)
        {
            results[Int(key.target), default: []].append(
                ReclaimEntry(
                    pid: key.pid, tgid: value.tgid, comm: cString(value.comm), memcgEvents: value.memcg_events,
                    directEvents: value.direct_events, reclaimedPages: value.reclaimed_pages, stallNs: value.stall_ns))
        }
        for index in results.keys { results[index]!.sort { ($0.reclaimedPages, $0.pid) > ($1.reclaimedPages, $1.pid) } }
        return results
    }
}

extension ProbeResults {
    /// The reclaim probe's threads by slot.
    public var reclaim: [Int: [ReclaimEntry]] {
        get { self[ReclaimProbe.self] }
        set { self[ReclaimProbe.self] = newValue }
    }
}

/// reclaim: one thread's reclaim in one target.
public struct ReclaimEntry: Sendable, Equatable {
    public var pid: UInt32
    public var tgid: UInt32
    public var comm: String
    public var memcgEvents: UInt64
    public var directEvents: UInt64
    public var reclaimedPages: UInt64
    public var stallNs: UInt64
}
