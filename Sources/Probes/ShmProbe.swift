import HostFacts
import ProbeObjects
import Synchronization

/// The shm probe (`bpf/shm.bpf.c`): uprobes on the target containers' C library
/// (posix_fallocate, ftruncate, unlink), attached per library file by `UprobeAttachments`:
/// kprobe-type programs, no tracepoint, no tracefs (libbpf attaches them through the perf
/// `uprobe` PMU, or tracefs's `uprobe_events` without it). It counts calls and failures per
/// target, the tmpfs bytes each target holds and its peak per window, the failing processes, and
/// sends each failure through a ring buffer. Feeds `shm.enospc`.
public final class ShmProbe: Probe {
    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: ShmObject.name, checks: ["shm.enospc"], programTypes: ["kprobe"],
            mapTypes: ["hash", "array", "ringbuf"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel", "ringbuf_reserve", "ktime_get_boot_ns"],
            tracepoints: [], needsTracefs: false, needsUprobes: true),
        programs: [.pgnShmFaIn, .pgnShmFaOut, .pgnShmFtIn, .pgnShmFtOut, .pgnShmUlIn, .pgnShmUlOut]
            as [ShmObject.Program],
        rawTracepointPrograms: nil)
    public static let v1Controller = CgroupRef.Kind.memoryV1

    public let object: BPFObject
    private var eventTask: Task<Void, Never>?
    /// Failures received through the ring buffer and not yet read (bounded).
    private let events = EventSink()
    /// The number of the window `read(drain: true)` reads next (the map `shm_window`).
    private var window: UInt64 = 0
    /// The uprobes, per C library file of the targets.
    private let uprobes: TargetFileUprobes
    public var uprobeFailures: [UprobeAttachments.Failure] { uprobes.failures }

    public init(object: BPFObject) {
        self.object = object
        uprobes = TargetFileUprobes(object: object, functions: Self.functions, what: "shm uprobes")
    }

    /// Its programs: posix_fallocate, ftruncate and unlink (glibc's and musl's shm_unlink call
    /// unlink inside the library), at entry and at return. posix_fallocate64 is what a program
    /// built with `_FILE_OFFSET_BITS=64` calls (python3 does, PostgreSQL does not): a separate
    /// function in glibc (x86_64 2.36), an alias in musl (the programs then run twice per call,
    /// the second return finding nothing in flight), absent from some libraries. ftruncate64 is
    /// an alias of ftruncate in both on 64-bit machines.
    public static let functions: [UprobeAttachments.Function] = [
        .init(program: ShmObject.Program.pgnShmFaIn, symbol: "posix_fallocate", retprobe: false),
        .init(program: ShmObject.Program.pgnShmFaOut, symbol: "posix_fallocate", retprobe: true),
        .init(program: ShmObject.Program.pgnShmFaIn, symbol: "posix_fallocate64", retprobe: false, optional: true),
        .init(program: ShmObject.Program.pgnShmFaOut, symbol: "posix_fallocate64", retprobe: true, optional: true),
        .init(program: ShmObject.Program.pgnShmFtIn, symbol: "ftruncate", retprobe: false),
        .init(program: ShmObject.Program.pgnShmFtOut, symbol: "ftruncate", retprobe: true),
        .init(program: ShmObject.Program.pgnShmUlIn, symbol: "unlink", retprobe: false),
        .init(program: ShmObject.Program.pgnShmUlOut, symbol: "unlink", retprobe: true),
    ]

    /// Shared between the task that receives ring-buffer events and the probe that takes them.
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

    public func clear(slot: Int) throws(BPFError) {
        try object.map(ShmObject.Map.shmStats).update(UInt32(slot), pgn_shm_stats())
        let segments = try object.map(ShmObject.Map.shmSegments)
        for key in try segments.keys(pgn_shm_segment_key.self) where key.target == UInt32(slot) {
            try segments.delete(key)
        }
        let failures = try object.map(ShmObject.Map.shmFailures)
        for key in try failures.keys(pgn_shm_failure_key.self) where key.target == UInt32(slot) {
            try failures.delete(key)
        }
    }

    /// Starts receiving the ring buffer's failures and attaches the uprobes to the targets' libraries.
    public func attached() {
        if let records = try? object.ringBuffer(ShmObject.Map.shmEvents) {
            let buffer = events
            eventTask = Task {
                for await record in records {
                    if let event = ShmProbe.event(record) { buffer.state.withLock { $0.append(event) } }
                }
            }
        }
        uprobes.attach()
    }

    public func targetsChanged(_ slots: [Int: ProbeTarget]) {
        uprobes.update(files: slots.sorted { $0.key < $1.key }.flatMap { $0.value.libraries })
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: ShmResult] {
        guard drain else { return try Self.read(object, events: takeEvents()) }
        let events = takeEvents()
        let results = Swift.Result { () throws(BPFError) in
            try Self.read(object, events: events, drain: true, window: window)
        }
        // The next window's peaks start from here.
        window += 1
        try? object.map(ShmObject.Map.shmWindow).update(UInt32(0), window)
        return try results.get()
    }

    /// The targets the uprobes do not cover, and why.
    public func unwatched(_ slots: [Int: ProbeTarget]) -> [Int: String] {
        var unwatched: [Int: String] = [:]
        for (slot, target) in slots {
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

    /// The task receiving the ring buffer's records (it ends once the object is detached).
    public var receiving: Task<Void, Never>? { eventTask }

    public func releaseLinks() -> [OpaquePointer] { uprobes.releaseLinks() }

    public func stop() { eventTask?.cancel() }

    public var droppedEvents: UInt64 { events.state.withLock { $0.dropped } }

    private func takeEvents() -> [ShmResult.Event] {
        events.state.withLock { buffer in
            defer { buffer.events.removeAll() }
            return buffer.events
        }
    }

    // MARK: Windows

    /// Per slot: the calls and failures counted up to the previous window.
    public struct Baseline: Sendable {
        var counts: [Int: (calls: UInt64, failures: UInt64)] = [:]
    }

    public static var initialBaseline: Baseline { Baseline() }

    /// Counts become differences; the failures drained for the window give its first and last
    /// failure; the bytes held pass through. A target that held bytes but did nothing is kept.
    public static func window(_ cumulative: [Int: ShmResult], baseline: inout Baseline) -> [Int: ShmResult] {
        var result: [Int: ShmResult] = [:]
        for (slot, now) in cumulative {
            let before = baseline.counts[slot] ?? (0, 0)
            var window = now
            window.calls = WindowBaseline.delta(now.calls, before.calls)
            window.failures = WindowBaseline.delta(now.failures, before.failures)
            // The first and last failure of this window are those of the entries drained for it.
            window.firstFailureNs = now.failed.map(\.firstNs).min()
            window.lastFailureNs = now.failed.map(\.lastNs).max()
            baseline.counts[slot] = (now.calls, now.failures)
            if window.calls > 0 || window.failures > 0 || window.heldBytes != 0 || !window.failed.isEmpty {
                result[slot] = window
            }
        }
        return result
    }

    /// The slot's kernel counters were zeroed for a new target (`clear(slot:)`).
    public static func forget(slot: Int, baseline: inout Baseline) {
        baseline.counts[slot] = nil
    }

    /// Calls of the watched functions.
    public static func events(in results: [Int: ShmResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { $0 &+ $1.calls }
    }

    // MARK: Decoding

    static func syscallName(_ value: UInt32) -> String {
        switch value {
        case UInt32(PGN_SHM_FALLOCATE.rawValue): "fallocate"
        case UInt32(PGN_SHM_FTRUNCATE.rawValue): "ftruncate"
        default: "unknown"
        }
    }

    /// A ring-buffer record as an event; nil when it is too short.
    static func event(_ bytes: [UInt8]) -> ShmResult.Event? {
        guard bytes.count >= MemoryLayout<pgn_shm_event>.size else { return nil }
        let e = bytes.withUnsafeBytes { $0.loadUnaligned(as: pgn_shm_event.self) }
        return ShmResult.Event(
            timeNs: e.time_ns, sizeBytes: e.size, cgroupID: e.cgroup_id, target: Int(e.target), tgid: e.tgid,
            pid: e.pid, syscall: syscallName(e.syscall), fd: e.fd, ret: e.ret, device: e.dev, comm: cString(e.comm),
            file: cString(e.file), namespaceTGID: e.ns_tgid, title: cString(e.title))
    }

    /// The maps as they are; `drain` takes the failure entries out (per-window reading), and
    /// `window` is the current window's number in `shm_window` (a target whose stats carry an
    /// older one has not changed this window: its peak is what it holds).
    static func read(_ object: BPFObject, events: [ShmResult.Event], drain: Bool = false, window: UInt64 = 0)
        throws(BPFError) -> [Int: ShmResult]
    {
        var results: [Int: ShmResult] = [:]
        let stats = try object.map(ShmObject.Map.shmStats)
        for index in 0..<Int(PGN_MAX_TARGETS) {
            guard let s = try stats.lookup(UInt32(index), as: pgn_shm_stats.self),
                s.calls > 0 || s.failures > 0 || s.current_bytes != 0
            else { continue }
            var result = ShmResult()
            result.calls = s.calls
            result.failures = s.failures
            result.firstFailureNs = s.first_fail_ns == 0 ? nil : s.first_fail_ns
            result.lastFailureNs = s.last_fail_ns == 0 ? nil : s.last_fail_ns
            result.heldBytes = s.current_bytes
            result.peakBytes = s.window == window ? s.peak_bytes : s.current_bytes
            results[index] = result
        }
        let failures = try object.map(ShmObject.Map.shmFailures)
        for (key, value) in try drain
            ? failures.drain(pgn_shm_failure_key.self, pgn_shm_failure_value.self)
            : failures.entries(pgn_shm_failure_key.self, pgn_shm_failure_value.self)
        {
            let failure = ShmResult.Failure(
                tgid: key.tgid, pid: value.pid, comm: cString(value.comm), sizeBytes: key.size, count: value.count,
                syscall: syscallName(value.syscall), firstNs: value.first_ns, lastNs: value.last_ns,
                namespaceTGID: value.ns_tgid, title: cString(value.title))
            results[Int(key.target), default: ShmResult()].failed.append(failure)
        }
        for event in events { results[event.target, default: ShmResult()].events.append(event) }
        for index in results.keys {
            results[index]!.failed.sort { ($0.sizeBytes, $0.tgid) > ($1.sizeBytes, $1.tgid) }
            results[index]!.events.sort { $0.timeNs < $1.timeNs }
        }
        return results
    }
}

extension ProbeResults {
    /// The shm probe's results by slot.
    public var shm: [Int: ShmResult] {
        get { self[ShmProbe.self] }
        set { self[ShmProbe.self] = newValue }
    }

    /// Targets (by slot) whose processes the shm probe could not watch, with the reason: no C
    /// library mapped by the server (statically linked), or every one of its libraries refused
    /// the uprobes. Their `shm` result, empty, does not mean "nothing failed".
    public var shmUnwatched: [Int: String] {
        get { unwatched[ShmProbe.name] ?? [:] }
        set { unwatched[ShmProbe.name] = newValue.isEmpty ? nil : newValue }
    }
}

/// shm: one target's result.
public struct ShmResult: Sendable, Equatable {
    public struct Failure: Sendable, Equatable {
        public var tgid: UInt32
        public var pid: UInt32
        public var comm: String
        public var sizeBytes: UInt64
        public var count: UInt64
        public var syscall: String
        public var firstNs: UInt64
        public var lastNs: UInt64
        /// The process id in its own (innermost) pid namespace (the container's view), 0 if unknown.
        public var namespaceTGID: UInt32
        /// The start of the process title (argv as the process rewrote it) at its first failure.
        public var title: String
    }

    /// A failure as sent through the ring buffer.
    public struct Event: Sendable, Equatable {
        public var timeNs: UInt64
        public var sizeBytes: UInt64
        public var cgroupID: UInt64
        public var target: Int
        public var tgid: UInt32
        public var pid: UInt32
        public var syscall: String
        public var fd: Int32
        public var ret: Int32
        public var device: UInt32
        public var comm: String
        public var file: String
        /// The process id in its own (innermost) pid namespace, 0 if unknown.
        public var namespaceTGID: UInt32
        /// The start of the process title at the failure.
        public var title: String
    }

    public var calls: UInt64 = 0
    public var failures: UInt64 = 0
    public var firstFailureNs: UInt64?
    public var lastFailureNs: UInt64?
    /// Bytes of tmpfs segments the target held at the end, and at most during the window:
    /// pages allocated by fallocate (not the sparse sizes ftruncate sets), less what truncation
    /// and unlink released.
    public var heldBytes: Int64 = 0
    public var peakBytes: Int64 = 0
    /// Each failing (process, size), largest size first.
    public var failed: [Failure] = []
    /// Failures received through the ring buffer during the window.
    public var events: [Event] = []

    /// An empty result: nothing seen.
    public init() {}
}
