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

        /// Failures of one process at one size.
        public init(
            pid: Int32, requestedBytes: Int64, count: Int64 = 1, firstSeen: Timestamp, lastSeen: Timestamp? = nil
        ) {
            self.pid = pid
            self.requestedBytes = requestedBytes
            self.count = count
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen ?? firstSeen
        }
    }

    /// Every ENOSPC seen, in order.
    public var failures: [Failure]
    /// The most dynamic shared memory the container held in /dev/shm at once during the window.
    public var dsmPeakBytes: Int64
    /// PostgreSQL roles of the processes involved (pid → "client backend", "parallel worker", …).
    public var roles: [Int32: String]

    /// A report.
    public init(failures: [Failure], dsmPeakBytes: Int64, roles: [Int32: String]) {
        self.failures = failures
        self.dsmPeakBytes = dsmPeakBytes
        self.roles = roles
    }
}

/// `shm.enospc`: did PostgreSQL fail to grow a dynamic shared memory segment in /dev/shm?
public enum ShmEnospcCheck {
    /// The check id.
    public static let id = "shm.enospc"

    /// The observation for one container.
    public static func evaluate(_ report: ShmProbeReport, shmSizeBytes: Int64?) -> Observation {
        let total = report.failures.reduce(Int64(0)) { $0 + max(1, $1.count) }
        var evidence: JSONObject = ["failures": .int(total)]
        let sizes = report.failures.map(\.requestedBytes).sorted(by: >)
        var unique: [Int64] = []
        for size in sizes where unique.last != size { unique.append(size) }
        evidence["failed_request_bytes"] = .array(unique.map { .int($0) })
        var seen: [Int32] = []
        for failure in report.failures where !seen.contains(failure.pid) { seen.append(failure.pid) }
        evidence["pids"] = .array(
            seen.map { pid in .object(["pid": .int(Int64(pid)), "role": .from(report.roles[pid])]) })
        evidence["first_seen"] = .from(report.failures.map(\.firstSeen).min()?.rfc3339)
        evidence["last_seen"] = .from(report.failures.map(\.lastSeen).max()?.rfc3339)
        evidence["dsm_peak_bytes"] = .int(report.dsmPeakBytes)
        if let shmSizeBytes { evidence["shm_size_bytes"] = .int(shmSizeBytes) }

        guard let largest = unique.first else {
            return Observation(
                check: id, severity: .ok,
                summary:
                    "No process failed to grow a shared-memory segment; peak dynamic shared memory in /dev/shm was "
                    + "\(report.dsmPeakBytes) bytes.",
                evidence: evidence)
        }
        let needed = max(largest, report.dsmPeakBytes) + largest
        let size = ShmSizeCheck.roundUpToMiB(needed + needed / 4)
        return Observation(
            check: id, severity: .critical,
            summary:
                "\(total) attempt(s) to grow a shared-memory segment in /dev/shm failed with ENOSPC "
                + "(largest request \(largest) bytes): queries failed with 'could not resize shared memory segment … "
                + "No space left on device'.",
            evidence: evidence,
            remedy:
                "Give /dev/shm at least \(size / (1 << 20))Mi: a memory-backed emptyDir mounted at /dev/shm "
                + "(volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: \(size / (1 << 20))Mi}}]), or "
                + "CloudNativePG's spec.ephemeralVolumesSizeLimit.shm; or lower work_mem / "
                + "max_parallel_workers_per_gather for the failing queries.")
    }
}
