import PGNodeModel

/// What the reclaim probe saw in one container's processes during the observation window.
public struct ReclaimReport: Sendable, Equatable {
    /// Reclaim done in the context of one process.
    public struct Process: Sendable, Equatable {
        /// The process id (host PID namespace).
        public var pid: Int32
        /// Its PostgreSQL role (`client backend`, `checkpointer`, …); nil for a process that is not
        /// one of the server's (or whose title could not be read).
        public var role: String?
        /// Its command name (`comm`: `postgres`, `sh`, …); nil if unknown.
        public var command: String?
        /// Its pid inside the container's pid namespace (what `pg_stat_activity.pid` and
        /// `pg_backend_pid()` show); nil if unknown.
        public var namespacePID: Int32?
        /// Reclaim passes (begin/end pairs) it ran.
        public var events: Int64
        /// Pages it reclaimed, in bytes.
        public var reclaimedBytes: Int64
        /// Time it spent stalled in reclaim, in nanoseconds.
        public var stallNanoseconds: Int64

        /// One process's reclaim.
        public init(
            pid: Int32, role: String?, events: Int64, reclaimedBytes: Int64, stallNanoseconds: Int64,
            command: String? = nil, namespacePID: Int32? = nil
        ) {
            self.pid = pid
            self.role = role
            self.command = command
            self.namespacePID = namespacePID
            self.events = events
            self.reclaimedBytes = reclaimedBytes
            self.stallNanoseconds = stallNanoseconds
        }
    }

    /// Per process, in any order.
    public var processes: [Process]
    /// How long the probe observed, in nanoseconds.
    public var windowNanoseconds: Int64

    /// A report.
    public init(processes: [Process], windowNanoseconds: Int64) {
        self.processes = processes
        self.windowNanoseconds = windowNanoseconds
    }
}

/// `memory.reclaim`: how much memory the kernel reclaimed in the container's own processes
/// (memory-cgroup and direct reclaim), and how long they stalled for it.
public enum MemoryReclaimCheck {
    /// The check id.
    public static let id = "memory.reclaim"
    /// Stall time per second of observation, summed over the container's processes, at or above
    /// which reclaim is critical (10 %: 100 ms of every second spent reclaiming instead of
    /// running queries).
    public static let criticalStallFraction = 0.10
    /// … a warning (1 %).
    public static let warningStallFraction = 0.01
    /// Reclaimed bytes per second of observation at or above which reclaim is a warning even when
    /// the measured stall is short (10 MiB/s). Measured on a 2-vCPU VM with a virtio disk (see
    /// docs/findings.md), memory-cgroup reclaim cost 0.5–0.8 ms of stall per MiB with one scanning
    /// backend and 1.7 ms/MiB with four: at 10 MiB/s reclaim costs 0.5–1.7 %, about the stall
    /// warning. The stall excludes the reads that bring evicted pages back, so the volume
    /// catches cache thrash on machines where reclaim itself is cheap; trickle reclaim of a few
    /// MiB/s (the steady state of a database larger than its limit) stays `info`.
    public static let warningReclaimBytesPerSecond: Double = 10 * 1_048_576

    /// The observation for one container.
    public static func evaluate(_ report: ReclaimReport) -> Observation {
        observe(report).flaggingSaturatedValues()
    }

    static func observe(_ report: ReclaimReport) -> Observation {
        let processes = report.processes.sorted {
            if ($0.reclaimedBytes, $0.stallNanoseconds) != ($1.reclaimedBytes, $1.stallNanoseconds) {
                return ($0.reclaimedBytes, $0.stallNanoseconds) > ($1.reclaimedBytes, $1.stallNanoseconds)
            }
            return $0.pid < $1.pid
        }
        // Counters from BPF maps: summed saturating (a saturated total is flagged in the evidence).
        let events = processes.map(\.events).saturatingSum()
        let reclaimed = processes.map(\.reclaimedBytes).saturatingSum()
        let stall = processes.map(\.stallNanoseconds).saturatingSum()
        let seconds = max(Double(report.windowNanoseconds) / 1e9, 1e-9)
        let stallFraction = Double(stall) / 1e9 / seconds
        let rate = Double(reclaimed) / seconds
        let evidence: JSONObject = [
            "events": .int(events),
            "reclaimed_bytes": .int(reclaimed),
            "stall_ns": .int(stall),
            "window_ns": .int(report.windowNanoseconds),
            "stall_per_second_ns": .int(Int64(clampingFinite: Double(stall) / seconds) ?? 0),
            "by_pid": .array(
                processes.map {
                    .object([
                        "pid": .int(Int64($0.pid)), "ns_pid": .from($0.namespacePID),
                        "command": .from($0.command), "role": .from($0.role),
                        "reclaimed_bytes": .int($0.reclaimedBytes), "stall_ns": .int($0.stallNanoseconds),
                        "events": .int($0.events),
                    ])
                }),
        ]
        let remedy =
            "The container runs at its memory limit, so the kernel reclaims pages in the database's own processes. "
            + "Raise resources.limits.memory (page cache and shared_buffers both count), or reduce what is cached: "
            + "a smaller shared_buffers, fewer connections, less work_mem."
        guard events > 0 else {
            return Observation(
                check: id, severity: .ok,
                summary: "No memory-cgroup or direct reclaim ran in this container's processes.", evidence: evidence)
        }
        guard report.windowNanoseconds > 0 else {
            return .unavailable(
                check: id, reason: "the observation window has no length (\(report.windowNanoseconds) ns)",
                evidence: evidence)
        }
        let who = processes.first.map { p in "pid \(p.pid)" + ((p.role ?? p.command).map { " (\($0))" } ?? "") } ?? "?"
        let summary =
            "The kernel reclaimed \(reclaimed.addingSaturating(1 << 19) >> 20) MiB in \(events) pass(es) inside this container's processes, "
            + "stalling them \(stall / 1_000_000) ms (\(format1(stallFraction * 100)) % of the window); "
            + "most in \(who)."
        let severity: Severity
        if stallFraction >= criticalStallFraction {
            severity = .critical
        } else if stallFraction >= warningStallFraction || rate >= warningReclaimBytesPerSecond {
            severity = .warning
        } else {
            severity = .info
        }
        return Observation(check: id, severity: severity, summary: summary, evidence: evidence, remedy: remedy)
    }

    static func format1(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return "\(rounded)"
    }
}
