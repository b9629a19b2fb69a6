import HostFacts
import ProbeObjects

/// The writeback probe (`bpf/writeback.bpf.c`): the `writeback/balance_dirty_pages` tracepoint,
/// counting only the calls that paused a task of a target (dirty pages outran writeback), per
/// thread and per device (bdi): pauses, time paused, the longest pause, and at the longest pause
/// the dirty state the kernel throttled on. Its entries are drained each window. Feeds
/// `writeback.throttle`.
public final class WritebackProbe: Probe {
    public typealias Result = WritebackResult

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: WritebackObject.name, checks: ["writeback.throttle"], programTypes: ["tracepoint"],
            mapTypes: ["hash"], helpers: ["get_current_cgroup_id", "probe_read_kernel"],
            tracepoints: ["writeback/balance_dirty_pages"], needsTracefs: true),
        programs: [.pgnWbPause] as [WritebackObject.Program],
        rawTracepointPrograms: nil)
    /// Dirty throttling is accounted to the memory cgroup (cgroup writeback is v2's; on v1 the
    /// task is matched by its memory cgroup).
    public static let v1Controller = CgroupRef.Kind.memoryV1

    public let object: BPFObject

    public init(object: BPFObject) { self.object = object }

    public func clear(slot: Int) throws(BPFError) {
        let byPID = try object.map(WritebackObject.Map.writebackByPid)
        for key in try byPID.keys(pgn_writeback_pid_key.self) where key.target == UInt32(slot) {
            try byPID.delete(key)
        }
        let byBDI = try object.map(WritebackObject.Map.writebackByBdi)
        for key in try byBDI.keys(pgn_writeback_bdi_key.self) where key.target == UInt32(slot) {
            try byBDI.delete(key)
        }
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: WritebackResult] { try Self.read(object, drain: drain) }

    /// Nothing: the entries are drained, so each reading is already one window's.
    public struct Baseline: Sendable {}

    public static var initialBaseline: Baseline { Baseline() }

    /// The drained entries, as they are.
    public static func window(_ cumulative: [Int: WritebackResult], baseline: inout Baseline) -> [Int: WritebackResult]
    {
        cumulative
    }

    /// Pauses (counted per device: each pause once).
    public static func events(in results: [Int: WritebackResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { total, result in
            result.devices.reduce(total) { $0 &+ $1.pauses }
        }
    }

    /// The maps as they are; `drain` takes the entries out (per-window reading).
    static func read(_ object: BPFObject, drain: Bool = false) throws(BPFError) -> [Int: WritebackResult] {
        var results: [Int: WritebackResult] = [:]
        let byPID = try object.map(WritebackObject.Map.writebackByPid)
        for (key, value) in try drain
            ? byPID.drain(pgn_writeback_pid_key.self, pgn_writeback_pid_value.self)
            : byPID.entries(pgn_writeback_pid_key.self, pgn_writeback_pid_value.self)
        {
            results[Int(key.target), default: WritebackResult()].threads.append(
                WritebackThread(
                    pid: key.pid, tgid: value.tgid, comm: cString(value.comm), pauses: value.pauses,
                    pausedNs: value.paused_ns, maxPauseNs: value.max_pause_ns))
        }
        let byBDI = try object.map(WritebackObject.Map.writebackByBdi)
        for (key, value) in try drain
            ? byBDI.drain(pgn_writeback_bdi_key.self, pgn_writeback_bdi_value.self)
            : byBDI.entries(pgn_writeback_bdi_key.self, pgn_writeback_bdi_value.self)
        {
            results[Int(key.target), default: WritebackResult()].devices.append(
                WritebackDevice(
                    bdi: cString(key.bdi), pauses: value.pauses, pausedNs: value.paused_ns,
                    maxPauseNs: value.max_pause_ns, periodNs: value.max_period_ns, pausedBeforeNs: value.max_paused_ns,
                    dirty: value.dirty, limit: value.limit, setpoint: value.setpoint, wbDirty: value.wb_dirty,
                    wbSetpoint: value.wb_setpoint, cgroupInode: value.cgroup_ino, tgid: value.tgid))
        }
        for index in results.keys {
            results[index]!.threads.sort { ($0.pausedNs, $0.pid) > ($1.pausedNs, $1.pid) }
            results[index]!.devices.sort { ($0.pausedNs, $0.bdi) > ($1.pausedNs, $1.bdi) }
        }
        return results
    }
}

extension ProbeResults {
    /// The writeback probe's threads and devices by slot.
    public var writeback: [Int: WritebackResult] {
        get { self[WritebackProbe.self] }
        set { self[WritebackProbe.self] = newValue }
    }
}

/// writeback: what one target's tasks were paused for in one window.
public struct WritebackResult: Sendable, Equatable {
    /// Per thread that was paused.
    public var threads: [WritebackThread] = []
    /// Per device (bdi) whose dirty pages paused the target.
    public var devices: [WritebackDevice] = []

    /// An empty result.
    public init(threads: [WritebackThread] = [], devices: [WritebackDevice] = []) {
        self.threads = threads
        self.devices = devices
    }
}

/// writeback: one thread's dirty-throttling pauses.
public struct WritebackThread: Sendable, Equatable {
    /// The thread id (host).
    public var pid: UInt32
    /// Its process (host).
    public var tgid: UInt32
    /// Its command name.
    public var comm: String
    /// Pauses (balance_dirty_pages calls with `pause` > 0).
    public var pauses: UInt64
    /// Their sum, in ns (the tracepoint's resolution is 1 ms).
    public var pausedNs: UInt64
    /// The longest one, in ns.
    public var maxPauseNs: UInt64

    /// One thread's pauses.
    public init(pid: UInt32, tgid: UInt32, comm: String, pauses: UInt64, pausedNs: UInt64, maxPauseNs: UInt64) {
        self.pid = pid
        self.tgid = tgid
        self.comm = comm
        self.pauses = pauses
        self.pausedNs = pausedNs
        self.maxPauseNs = maxPauseNs
    }
}

/// writeback: one device's pauses of one target, and the dirty state at the longest (pages).
public struct WritebackDevice: Sendable, Equatable {
    /// The bdi's name (`7:0`, `253:1`: a `/sys/class/bdi` entry).
    public var bdi: String
    /// Pauses.
    public var pauses: UInt64
    /// Their sum, in ns.
    public var pausedNs: UInt64
    /// The longest, in ns.
    public var maxPauseNs: UInt64
    /// The tracepoint's `period` at the longest pause, in ns.
    public var periodNs: UInt64
    /// Its `paused`: how long that call had already paused, in ns.
    public var pausedBeforeNs: UInt64
    /// Dirty pages of the throttling domain (the node, or the memory cgroup on v2).
    public var dirty: UInt64
    /// The domain's dirty limit, in pages.
    public var limit: UInt64
    /// The domain's setpoint, in pages.
    public var setpoint: UInt64
    /// Dirty pages of the device's writeback.
    public var wbDirty: UInt64
    /// The device's share of the setpoint, in pages.
    public var wbSetpoint: UInt64
    /// The writeback's memory cgroup inode (the root's on v1).
    public var cgroupInode: UInt64
    /// The process that took the longest pause (host).
    public var tgid: UInt32

    /// One device's pauses.
    public init(
        bdi: String, pauses: UInt64, pausedNs: UInt64, maxPauseNs: UInt64, periodNs: UInt64 = 0,
        pausedBeforeNs: UInt64 = 0, dirty: UInt64 = 0, limit: UInt64 = 0, setpoint: UInt64 = 0, wbDirty: UInt64 = 0,
        wbSetpoint: UInt64 = 0, cgroupInode: UInt64 = 0, tgid: UInt32 = 0
    ) {
        self.bdi = bdi
        self.pauses = pauses
        self.pausedNs = pausedNs
        self.maxPauseNs = maxPauseNs
        self.periodNs = periodNs
        self.pausedBeforeNs = pausedBeforeNs
        self.dirty = dirty
        self.limit = limit
        self.setpoint = setpoint
        self.wbDirty = wbDirty
        self.wbSetpoint = wbSetpoint
        self.cgroupInode = cgroupInode
        self.tgid = tgid
    }
}
