import Glibc
import HostFacts
import OSSupport
import ProbeObjects
import Synchronization

/// The query probe (`bpf/query.bpf.c`), opt-in (`--query-latency`): PostgreSQL's USDT probes
/// mark each statement of the targets' backends (`query__start`/`query__done`,
/// `query__execute__start`/`query__execute__done`), its lock waits (`lock__wait__*`,
/// `lwlock__wait__*`), and the scheduler tracepoints (`sched_switch`, `sched_wakeup`) split each
/// statement's time by state: on a CPU, waiting for one, blocked on I/O, on a PostgreSQL lock,
/// or otherwise asleep; reclaim inside statements (the memory cgroup's and the node's direct
/// reclaim) is counted besides. Per target, in the
/// kernel: statements by protocol, their durations (log2 µs), the time by state; each CPU's
/// slowest statements of the window come through a ring buffer. Feeds `query.latency`.
///
/// The USDT programs are attached per server executable file (`ProbeTarget.servers`, opened
/// inside the container's root with the C libraries' identity checks), once for every container
/// that runs the same file.
public final class QueryProbe: Probe {
    public typealias Result = QueryResult

    /// The USDT provider of PostgreSQL's probes.
    public static let provider = "postgresql"

    /// Its USDT probes: every call site of each in the server executable, attached in this order
    /// (`UprobeAttachments` attaches a file's functions one after another): each `…done` before
    /// its `…start`. A backend that passes a start probe once it is attached then always meets
    /// its done probe; in the other order, a statement begun between the two attachments would
    /// never end (its nesting depth stays one above the truth), and it would swallow every later
    /// statement of that backend while the server runs under load.
    public static let functions: [UprobeAttachments.Function] = [
        .usdt(program: QueryObject.Program.pgnQDone, provider: provider, probe: "query__done"),
        .usdt(program: QueryObject.Program.pgnQExOut, provider: provider, probe: "query__execute__done"),
        .usdt(program: QueryObject.Program.pgnQLkOut, provider: provider, probe: "lock__wait__done"),
        .usdt(program: QueryObject.Program.pgnQLwOut, provider: provider, probe: "lwlock__wait__done"),
        .usdt(program: QueryObject.Program.pgnQStart, provider: provider, probe: "query__start"),
        .usdt(program: QueryObject.Program.pgnQExIn, provider: provider, probe: "query__execute__start"),
        .usdt(program: QueryObject.Program.pgnQLkIn, provider: provider, probe: "lock__wait__start"),
        .usdt(program: QueryObject.Program.pgnQLwIn, provider: provider, probe: "lwlock__wait__start"),
    ]

    /// The USDT programs (those of `functions`), in both program sets.
    static let usdtPrograms: [QueryObject.Program] = functions.compactMap { QueryObject.Program(rawValue: $0.program) }

    public static let definition = ProbeDefinition(
        requirement: BPFProbeRequirement(
            name: QueryObject.name, checks: ["query.latency"], programTypes: ["kprobe", "raw_tracepoint"],
            mapTypes: ["hash", "array", "percpu_array", "ringbuf"],
            helpers: ["get_current_cgroup_id", "probe_read_kernel", "ringbuf_reserve"],
            tracepoints: ["sched/sched_switch", "sched/sched_wakeup"], needsTracefs: false, needsUprobes: true),
        programs: usdtPrograms + [
            .pgnQSwBtf, .pgnQWkBtf, .pgnQMcgiBtf, .pgnQMcgoBtf, .pgnQDriBtf, .pgnQDroBtf,
        ],
        rawTracepointPrograms: usdtPrograms + [
            .pgnQSwRaw, .pgnQWkRaw, .pgnQMcgiRaw, .pgnQMcgoRaw, .pgnQDriRaw, .pgnQDroRaw,
        ])
    public static let v1Controller = CgroupRef.Kind.memoryV1

    /// The slowest statements a window reports (of those the CPUs sent).
    public static let slowestLimit = Int(PGN_QUERY_TOP)

    public let object: BPFObject
    private var eventTask: Task<Void, Never>?
    private let events = EventSink()
    /// The window `read(drain: true)` reads next (the map `query_window`).
    private var window: UInt64 = 0
    /// The USDT probes, per server executable of the targets.
    private let uprobes: TargetFileUprobes
    public var uprobeFailures: [UprobeAttachments.Failure] { uprobes.failures }

    public init(object: BPFObject) {
        self.object = object
        uprobes = TargetFileUprobes(object: object, functions: Self.functions, what: "query USDT probes")
    }

    /// Shared between the task that receives ring-buffer records and the probe that takes them.
    final class EventSink: Sendable {
        let state = Mutex(EventBuffer())
    }

    /// Slow statements waiting to be read; beyond `capacity` the shortest are dropped (and counted).
    struct EventBuffer {
        static let capacity = 1024
        var statements: [QueryResult.Statement] = []
        var dropped: UInt64 = 0

        mutating func append(_ statement: QueryResult.Statement) {
            statements.append(statement)
            if statements.count > Self.capacity {
                // Keep the slowest: only they can be reported.
                statements.sort { $0.durationNs > $1.durationNs }
                dropped += UInt64(statements.count - Self.capacity / 2)
                statements.removeLast(statements.count - Self.capacity / 2)
            }
        }
    }

    /// Forgets the slot's threads inside statements (the counters are differenced by windows).
    public func clear(slot: Int) throws(BPFError) {
        let threads = try object.map(QueryObject.Map.queryThreads)
        for (tid, thread) in try threads.entries(UInt32.self, pgn_query_thread.self) where thread.target == UInt32(slot)
        {
            _ = try threads.delete(tid)
        }
    }

    /// Starts receiving slow statements and attaches the USDT probes to the targets' servers.
    public func attached() {
        if let records = try? object.ringBuffer(QueryObject.Map.queryEvents) {
            let buffer = events
            eventTask = Task {
                for await record in records {
                    if let statement = QueryProbe.statement(record) { buffer.state.withLock { $0.append(statement) } }
                }
            }
        }
        uprobes.attach()
    }

    public func targetsChanged(_ slots: [Int: ProbeTarget]) {
        uprobes.update(files: slots.sorted { $0.key < $1.key }.flatMap { $0.value.servers })
    }

    public func read(drain: Bool) throws(BPFError) -> [Int: QueryResult] {
        let statements = takeStatements()
        let results = try Self.read(object, statements: statements)
        if drain {
            window &+= 1
            try? object.map(QueryObject.Map.queryWindow).update(UInt32(0), window)
            sweep()
        }
        return results
    }

    /// Removes the entries of threads that ended inside a statement (a backend killed in the
    /// middle of one): their thread id is gone from /proc. Only entries older than a minute are
    /// looked at.
    private func sweep() {
        guard let threads = try? object.map(QueryObject.Map.queryThreads),
            let entries = try? threads.entries(UInt32.self, pgn_query_thread.self)
        else { return }
        let nowNs = MonotonicClock.nanoseconds()
        for (tid, thread) in entries where nowNs > thread.start_ns && nowNs - thread.start_ns > 60_000_000_000 {
            if access("/proc/\(tid)", F_OK) != 0 { _ = try? threads.delete(tid) }
        }
    }

    /// The targets the probe cannot watch, and why: no server executable found, or none of
    /// theirs took the USDT probes (a server built without `--enable-dtrace` has none).
    public func unwatched(_ slots: [Int: ProbeTarget]) -> [Int: String] {
        var unwatched: [Int: String] = [:]
        for (slot, target) in slots {
            if target.servers.isEmpty {
                unwatched[slot] =
                    "the query probe attaches to the PostgreSQL server's executable, and none was found "
                    + "(no postmaster, or its /proc/<pid>/exe and maps could not be read)"
                continue
            }
            let identities = Set(target.servers.map(\.identity))
            let failed = uprobeFailures.filter { identities.contains($0.library.identity) }
            guard Set(failed.map(\.library.identity)) == identities else { continue }
            unwatched[slot] = failed.map(Self.reason).joined(separator: "; ")
        }
        return unwatched
    }

    /// Why one server executable took no USDT probe, in a user's words.
    static func reason(_ failure: UprobeAttachments.Failure) -> String {
        if case .attach(let site, let error) = failure.reason, error.errno == ENOENT {
            return "the server executable \(failure.library.path) has no USDT probe \(site) "
                + "(PostgreSQL built without --enable-dtrace, as some images are): "
                + "statements cannot be timed from below"
        }
        return "the query probe's USDT probes could not be attached to the server executable: \(failure)"
    }

    public var receiving: Task<Void, Never>? { eventTask }

    public func releaseLinks() -> [OpaquePointer] { uprobes.releaseLinks() }

    public func stop() { eventTask?.cancel() }

    public var droppedEvents: UInt64 { events.state.withLock { $0.dropped } }

    private func takeStatements() -> [QueryResult.Statement] {
        events.state.withLock { buffer in
            defer { buffer.statements.removeAll() }
            return buffer.statements
        }
    }

    // MARK: Windows

    /// Per slot: the counters of the previous reading.
    public struct Baseline: Sendable {
        var slots: [Int: QueryResult] = [:]
    }

    public static var initialBaseline: Baseline { Baseline() }

    /// Counters and the histogram become differences; the slow statements received pass (the
    /// slowest `slowestLimit`).
    public static func window(_ cumulative: [Int: QueryResult], baseline: inout Baseline) -> [Int: QueryResult] {
        var result: [Int: QueryResult] = [:]
        for (slot, now) in cumulative {
            let before = baseline.slots[slot] ?? QueryResult()
            var w = now
            w.simple = WindowBaseline.delta(now.simple, before.simple)
            w.extended = WindowBaseline.delta(now.extended, before.extended)
            w.totalNs = WindowBaseline.delta(now.totalNs, before.totalNs)
            w.stateNs = zip(now.stateNs, before.stateNs).map { WindowBaseline.delta($0, $1) }
            w.throttledNs = WindowBaseline.delta(now.throttledNs, before.throttledNs)
            w.reclaimNs = WindowBaseline.delta(now.reclaimNs, before.reclaimNs)
            w.untracked = WindowBaseline.delta(now.untracked, before.untracked)
            w.slowLost = WindowBaseline.delta(now.slowLost, before.slowLost)
            w.latencyMicroseconds = zip(now.latencyMicroseconds, before.latencyMicroseconds).map {
                WindowBaseline.delta($0, $1)
            }
            var remembered = now
            remembered.slowest = []
            baseline.slots[slot] = remembered
            if w.simple > 0 || w.extended > 0 || !w.slowest.isEmpty || w.untracked > 0 { result[slot] = w }
        }
        return result
    }

    /// Statements counted.
    public static func events(in results: [Int: QueryResult]) -> UInt64 {
        results.values.reduce(UInt64(0)) { $0 &+ $1.simple &+ $1.extended }
    }

    // MARK: Decoding

    /// A ring-buffer record as a statement; nil when it is too short.
    static func statement(_ bytes: [UInt8]) -> QueryResult.Statement? {
        guard bytes.count >= MemoryLayout<pgn_query_event>.size else { return nil }
        let e = bytes.withUnsafeBytes { $0.loadUnaligned(as: pgn_query_event.self) }
        let states = withUnsafeBytes(of: e.state_ns) { Array($0.bindMemory(to: UInt64.self)) }
        // The text as read (its NUL excluded), only for the simple protocol.
        let textOffset = MemoryLayout<pgn_query_event>.offset(of: \pgn_query_event.text)!
        let length = min(max(Int(e.text_len) - 1, 0), Int(PGN_QUERY_TEXT_LEN) - 1)
        let text = e.text_len > 0 ? Array(bytes[textOffset..<(textOffset + length)]) : nil
        return QueryResult.Statement(
            durationNs: e.duration_ns, stateNs: states, throttledNs: e.throttled_ns, reclaimNs: e.reclaim_ns,
            endNs: e.end_ns, target: Int(e.target), tgid: e.tgid, pid: e.pid, namespaceTGID: e.ns_tgid,
            title: cString(e.title), protocol: e.protocol == UInt32(PGN_QUERY_SIMPLE.rawValue) ? .simple : .extended,
            text: text)
    }

    /// The per-CPU counters summed (wrapping, as the kernel's u64 do), and the slow statements
    /// by target, slowest first.
    static func read(_ object: BPFObject, statements: [QueryResult.Statement] = []) throws(BPFError)
        -> [Int: QueryResult]
    {
        var results: [Int: QueryResult] = [:]
        let counts = try object.map(QueryObject.Map.queryCounts)
        for index in 0..<Int(PGN_MAX_TARGETS) {
            var r = QueryResult()
            for c in try counts.lookupPerCPU(UInt32(index), as: pgn_query_counts.self) ?? [] {
                r.simple &+= c.queries.0
                r.extended &+= c.queries.1
                r.totalNs &+= c.total_ns
                let states = withUnsafeBytes(of: c.state_ns) { Array($0.bindMemory(to: UInt64.self)) }
                for (i, ns) in states.enumerated() { r.stateNs[i] &+= ns }
                r.throttledNs &+= c.throttled_ns
                r.reclaimNs &+= c.reclaim_ns
                r.untracked &+= c.untracked
                r.slowLost &+= c.slow_lost
                let slots = withUnsafeBytes(of: c.latency_us.slots) { Array($0.bindMemory(to: UInt64.self)) }
                for (i, n) in slots.enumerated() { r.latencyMicroseconds[i] &+= n }
            }
            if r.simple > 0 || r.extended > 0 || r.untracked > 0 { results[index] = r }
        }
        for statement in statements where statement.target >= 0 && statement.target < Int(PGN_MAX_TARGETS) {
            results[statement.target, default: QueryResult()].slowest.append(statement)
        }
        for index in results.keys {
            results[index]!.slowest.sort { ($0.durationNs, $1.pid) > ($1.durationNs, $0.pid) }
            let excess = results[index]!.slowest.count - slowestLimit
            if excess > 0 { results[index]!.slowest.removeLast(excess) }
        }
        return results
    }
}

extension ProbeResults {
    /// The query probe's results by slot.
    public var query: [Int: QueryResult] {
        get { self[QueryProbe.self] }
        set { self[QueryProbe.self] = newValue }
    }
}

/// query: one target's statements in one window. Times in nanoseconds.
public struct QueryResult: Sendable, Equatable {
    /// Which protocol's probes bounded a statement.
    public enum QueryProtocol: String, Sendable, Equatable {
        /// A Query message: `query__start` to `query__done` (parse, plan, execute).
        case simple
        /// An Execute message: `query__execute__start` to `query__execute__done` (execution only).
        case extended
    }

    /// The states a statement's time is split into, in the order of `stateNs`.
    public static let states = ["on_cpu", "cpu_wait", "io_wait", "lock_wait", "other"]

    /// One slow statement (among its CPU's slowest of the window when it ended).
    public struct Statement: Sendable, Equatable {
        public var durationNs: UInt64
        /// Its time by state (`QueryResult.states`).
        public var stateNs: [UInt64]
        /// Of its CPU wait, the waits that began with its run queue throttled by the CFS quota.
        public var throttledNs: UInt64
        /// Time in reclaim (memory cgroup and direct) inside it.
        public var reclaimNs: UInt64
        /// Its end, kernel monotonic ns.
        public var endNs: UInt64
        public var target: Int
        /// The backend (host tgid and thread id).
        public var tgid: UInt32
        public var pid: UInt32
        /// The backend's pid in its own pid namespace (the container's view), 0 if unknown.
        public var namespaceTGID: UInt32
        /// The start of its process title at the statement's end (its role, once it has exited).
        public var title: String
        public var `protocol`: QueryProtocol
        /// The first bytes of its text (simple protocol; nil for the extended one, whose probes
        /// carry no text).
        public var text: [UInt8]?

        public init(
            durationNs: UInt64, stateNs: [UInt64], throttledNs: UInt64 = 0, reclaimNs: UInt64 = 0, endNs: UInt64 = 0,
            target: Int = 0, tgid: UInt32, pid: UInt32, namespaceTGID: UInt32 = 0, title: String = "",
            protocol: QueryProtocol, text: [UInt8]? = nil
        ) {
            self.namespaceTGID = namespaceTGID
            self.title = title
            self.durationNs = durationNs
            self.stateNs = stateNs
            self.throttledNs = throttledNs
            self.reclaimNs = reclaimNs
            self.endNs = endNs
            self.target = target
            self.tgid = tgid
            self.pid = pid
            self.protocol = `protocol`
            self.text = text
        }
    }

    /// Statements of the simple protocol, of the extended one.
    public var simple: UInt64 = 0
    public var extended: UInt64 = 0
    /// Their durations summed.
    public var totalNs: UInt64 = 0
    /// The same time by state (`states`).
    public var stateNs: [UInt64] = Array(repeating: 0, count: Int(PGN_QUERY_STATES.rawValue))
    /// Of the CPU wait, the waits that began with the run queue throttled by the CFS quota.
    public var throttledNs: UInt64 = 0
    /// Reclaim inside statements (memory cgroup and direct).
    public var reclaimNs: UInt64 = 0
    /// Statements not followed (the kernel's thread map was full).
    public var untracked: UInt64 = 0
    /// Slow statements the ring buffer could not take.
    public var slowLost: UInt64 = 0
    /// Durations in µs, log2 buckets.
    public var latencyMicroseconds: [UInt64] = Array(repeating: 0, count: Int(PGN_HIST_SLOTS))
    /// The slowest statements, slowest first (at most `QueryProbe.slowestLimit`).
    public var slowest: [Statement] = []

    /// An empty result.
    public init() {}
}
