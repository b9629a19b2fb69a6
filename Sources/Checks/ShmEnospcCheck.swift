import PGNodeModel

/// What the shm probe saw for one container during the observation window.
public struct ShmProbeReport: Sendable, Equatable {
    /// Failed attempts of one process to grow a segment to one size.
    public struct Failure: Sendable, Equatable {
        /// The process that failed (host pid).
        public var pid: Int32
        /// The size it asked for, in bytes.
        public var requestedBytes: Int64
        /// How many times.
        public var count: Int64
        /// When first and last (wall clock).
        public var firstSeen: Timestamp
        /// When last.
        public var lastSeen: Timestamp
        /// The process's id in the container's pid namespace, when known.
        public var containerPID: Int32?
        /// Its PostgreSQL role (`client backend`, `parallel worker`, …) from its process title at
        /// the failure, when it had one.
        public var role: String?
        /// For a parallel worker: its leader, as the title names it (a pid in the container's
        /// pid namespace) …
        public var leaderContainerPID: Int32?
        /// … and as the host knows it, when that could be mapped.
        public var leaderPID: Int32?

        /// Failures of one process at one size.
        public init(
            pid: Int32, requestedBytes: Int64, count: Int64 = 1, firstSeen: Timestamp, lastSeen: Timestamp? = nil,
            containerPID: Int32? = nil, role: String? = nil, leaderContainerPID: Int32? = nil,
            leaderPID: Int32? = nil
        ) {
            self.pid = pid
            self.requestedBytes = requestedBytes
            self.count = count
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen ?? firstSeen
            self.containerPID = containerPID
            self.role = role
            self.leaderContainerPID = leaderContainerPID
            self.leaderPID = leaderPID
        }
    }

    /// Every ENOSPC seen, in order.
    public var failures: [Failure]
    /// The most dynamic shared memory the container's processes held in /dev/shm at once during
    /// the window: bytes they allocated with fallocate (what PostgreSQL's posix_fallocate does
    /// after ftruncate), less what they truncated or unlinked, as the probe followed it.
    public var dsmPeakBytes: Int64
    /// PostgreSQL roles of the processes known before the window (pid → "client backend", …),
    /// used when a failure carries no role of its own.
    public var roles: [Int32: String]
    /// The highest `used` of the container's /dev/shm that statfs returned while sampling during
    /// the window (every file there, whoever wrote it), or nil when it was not sampled.
    public var shmUsedPeakBytes: Int64?

    /// A report.
    public init(failures: [Failure], dsmPeakBytes: Int64, roles: [Int32: String], shmUsedPeakBytes: Int64? = nil) {
        self.failures = failures
        self.dsmPeakBytes = dsmPeakBytes
        self.roles = roles
        self.shmUsedPeakBytes = shmUsedPeakBytes
    }
}

/// `shm.enospc`: did PostgreSQL fail to grow a dynamic shared memory segment in /dev/shm?
public enum ShmEnospcCheck {
    /// The check id.
    public static let id = "shm.enospc"

    /// The observation for one container whose `/dev/shm` is `shmSizeBytes` large and provided
    /// as `shmKind` (nil: unknown), with a server run by `runBy`.
    /// `memoryLimit`: the container's memory limit and the shared memory under it, which the
    /// remedy's larger `/dev/shm` is added up against (nil: not known).
    public static func evaluate(
        _ report: ShmProbeReport, shmSizeBytes: Int64?, shmKind: ShmSizeFacts.MountKind? = nil,
        runBy: PostgresOperator = .none, memoryLimit: ShmMemoryLimit? = nil
    ) -> Observation {
        observe(report, shmSizeBytes: shmSizeBytes, shmKind: shmKind, runBy: runBy, memoryLimit: memoryLimit)
            .flaggingSaturatedValues()
    }

    static func observe(
        _ report: ShmProbeReport, shmSizeBytes: Int64?, shmKind: ShmSizeFacts.MountKind?, runBy: PostgresOperator,
        memoryLimit: ShmMemoryLimit?
    ) -> Observation {
        let total = report.failures.map { max(1, $0.count) }.saturatingSum()
        var evidence: JSONObject = ["failures": .int(total)]
        runBy.addEvidence(to: &evidence)
        let sizes = report.failures.map(\.requestedBytes).sorted(by: >)
        var unique: [Int64] = []
        for size in sizes where unique.last != size { unique.append(size) }
        evidence["failed_request_bytes"] = .array(unique.map { .int($0) })
        var seen: [Int32] = []
        var processes: [JSONValue] = []
        for failure in report.failures where !seen.contains(failure.pid) {
            seen.append(failure.pid)
            var process: JSONObject = [
                "pid": .int(Int64(failure.pid)), "role": .from(failure.role ?? report.roles[failure.pid]),
            ]
            if let containerPID = failure.containerPID { process["container_pid"] = .int(Int64(containerPID)) }
            if let leader = failure.leaderContainerPID {
                process["leader_container_pid"] = .int(Int64(leader))
                process["leader_pid"] = .from(failure.leaderPID.map { Int64($0) })
            }
            processes.append(.object(process))
        }
        evidence["pids"] = .array(processes)
        evidence["first_seen"] = .from(report.failures.map(\.firstSeen).min()?.rfc3339)
        evidence["last_seen"] = .from(report.failures.map(\.lastSeen).max()?.rfc3339)
        evidence["dsm_peak_bytes"] = .int(report.dsmPeakBytes)
        if let used = report.shmUsedPeakBytes { evidence["shm_used_peak_bytes"] = .int(used) }
        if let shmSizeBytes { evidence["shm_size_bytes"] = .int(shmSizeBytes) }
        if let shmKind { evidence["shm_kind"] = .string(shmKind.rawValue) }

        let sampled = report.shmUsedPeakBytes.map { "; /dev/shm was at most \($0) bytes full" } ?? ""
        guard let largest = unique.first else {
            return Observation(
                check: id, severity: .ok,
                summary:
                    "No process failed to grow a shared-memory segment; PostgreSQL held at most "
                    + "\(report.dsmPeakBytes) bytes of dynamic shared memory in /dev/shm at once\(sampled).",
                evidence: evidence)
        }
        // What was held plus the largest request, and a quarter more; saturating (a request the
        // kernel reports is below 2^63, but their sum need not be). A negative size is no request.
        let request = max(0, largest)
        let held = max(report.dsmPeakBytes, report.shmUsedPeakBytes ?? 0)
        let needed = max(request, held).addingSaturating(request)
        let size = ShmSizeCheck.roundUpToMiB(needed.addingSaturating(needed / 4))
        return Observation(
            check: id, severity: .critical,
            summary:
                "\(total) attempt(s) to grow a shared-memory segment in /dev/shm failed with ENOSPC "
                + "(largest request \(largest) bytes): queries failed with 'could not resize shared memory segment … "
                + "No space left on device'.",
            evidence: evidence,
            remedy:
                "Give /dev/shm at least \(size / (1 << 20))Mi. "
                + OperatorRemedies.shm(size: "\(size / (1 << 20))Mi", kind: shmKind, operator: runBy) + "\n"
                + ShmMemoryLimit.note(shmBytes: size, limit: memoryLimit, operator: runBy)
                + "\nOr lower work_mem / max_parallel_workers_per_gather for the failing queries.")
    }
}
