import PGNodeModel

/// What the writeback probe saw in one container during the observation window, with the
/// node's, the cgroup's and the server's facts that decide dirty throttling.
public struct WritebackThrottleReport: Sendable, Equatable {
    /// A setting as the check takes it: bytes and source, the text PostgreSQL refuses, or nil
    /// when unknown.
    public typealias Setting = Result<SettingValue<Int64>, InvalidSetting>?

    /// One process the kernel paused in `balance_dirty_pages`.
    public struct Process: Sendable, Equatable {
        /// Host pid.
        public var pid: Int32
        /// Its PostgreSQL role (`client backend`, `checkpointer`, …), or nil.
        public var role: String?
        /// Its command name, or nil.
        public var command: String?
        /// Its pid in the container's pid namespace, or nil.
        public var containerPID: Int32?
        /// Pauses.
        public var pauses: Int64
        /// Time paused, ns.
        public var pausedNanoseconds: Int64
        /// The longest pause, ns.
        public var maxPauseNanoseconds: Int64

        /// One process.
        public init(
            pid: Int32, role: String?, command: String? = nil, containerPID: Int32? = nil, pauses: Int64,
            pausedNanoseconds: Int64, maxPauseNanoseconds: Int64
        ) {
            self.pid = pid
            self.role = role
            self.command = command
            self.containerPID = containerPID
            self.pauses = pauses
            self.pausedNanoseconds = pausedNanoseconds
            self.maxPauseNanoseconds = maxPauseNanoseconds
        }
    }

    /// One device (bdi) whose dirty pages paused the container, and its knobs.
    public struct Device: Sendable, Equatable {
        /// The bdi's name (`7:0`).
        public var bdi: String
        /// The block device's name (`loop0`), or nil.
        public var name: String?
        /// `strict_limit`, if read.
        public var strictLimit: Int64?
        /// `max_bytes`, if read.
        public var maxBytes: Int64?
        /// `max_ratio`, if read.
        public var maxRatio: Int64?
        /// Pauses.
        public var pauses: Int64
        /// Time paused, ns.
        public var pausedNanoseconds: Int64
        /// The longest pause, ns.
        public var maxPauseNanoseconds: Int64
        /// At the longest pause: dirty bytes of the throttling domain (node, or memory cgroup).
        public var dirtyBytes: Int64
        /// … the domain's dirty limit in bytes.
        public var limitBytes: Int64
        /// … the device's dirty bytes.
        public var wbDirtyBytes: Int64
        /// … the device's setpoint in bytes.
        public var wbSetpointBytes: Int64
        /// … the host pid that took it (0 if unknown).
        public var pid: Int32
        /// … the inode of the memory cgroup whose writeback it was (the tracepoint's `cgroup_ino`:
        /// the container's own on cgroup v2, the root's, 1, on v1).
        public var writebackCgroupInode: Int64

        /// One device.
        public init(
            bdi: String, name: String? = nil, strictLimit: Int64? = nil, maxBytes: Int64? = nil,
            maxRatio: Int64? = nil, pauses: Int64, pausedNanoseconds: Int64, maxPauseNanoseconds: Int64,
            dirtyBytes: Int64 = 0, limitBytes: Int64 = 0, wbDirtyBytes: Int64 = 0, wbSetpointBytes: Int64 = 0,
            pid: Int32 = 0, writebackCgroupInode: Int64 = 0
        ) {
            self.bdi = bdi
            self.name = name
            self.strictLimit = strictLimit
            self.maxBytes = maxBytes
            self.maxRatio = maxRatio
            self.pauses = pauses
            self.pausedNanoseconds = pausedNanoseconds
            self.maxPauseNanoseconds = maxPauseNanoseconds
            self.dirtyBytes = dirtyBytes
            self.limitBytes = limitBytes
            self.wbDirtyBytes = wbDirtyBytes
            self.wbSetpointBytes = wbSetpointBytes
            self.pid = pid
            self.writebackCgroupInode = writebackCgroupInode
        }
    }

    /// The paused processes, any order.
    public var processes: [Process]
    /// The devices, any order.
    public var devices: [Device]
    /// How long the probe observed, ns.
    public var windowNanoseconds: Int64
    /// The node's `vm.dirty_*` values by file name (`dirty_ratio` → 20).
    public var vmDirty: [String: Int64]
    /// The container's memory limit in bytes (nil: none or unknown).
    public var memoryLimitBytes: Int64?
    /// The memory cgroup's dirty bytes at the end of the window (nil: unknown).
    public var memoryDirtyBytes: Int64?
    /// The memory cgroup's version (1, 2), nil if unknown: on v2 the memory limit bounds the
    /// cgroup's own dirty limit, on v1 it does not.
    public var cgroupVersion: Int?
    /// `backend_flush_after`, `bgwriter_flush_after`, `checkpoint_flush_after`,
    /// `wal_writer_flush_after`, in bytes, by name.
    public var flushAfter: [String: Setting]

    /// A report.
    public init(
        processes: [Process], devices: [Device], windowNanoseconds: Int64, vmDirty: [String: Int64] = [:],
        memoryLimitBytes: Int64? = nil, memoryDirtyBytes: Int64? = nil, cgroupVersion: Int? = nil,
        flushAfter: [String: Setting] = [:]
    ) {
        self.processes = processes
        self.devices = devices
        self.windowNanoseconds = windowNanoseconds
        self.vmDirty = vmDirty
        self.memoryLimitBytes = memoryLimitBytes
        self.memoryDirtyBytes = memoryDirtyBytes
        self.cgroupVersion = cgroupVersion
        self.flushAfter = flushAfter
    }
}

/// `writeback.throttle`: how often and how long the kernel paused the database's own processes
/// in `balance_dirty_pages` because their dirty pages outran writeback, on which device, and the
/// dirty state it throttled on.
///
/// Severity: no pause is `ok`; a client backend paused for at least 10 % of the window is
/// `critical`; a client backend paused for at least 1 % of the window, or any process paused once
/// for more than 100 ms, is a `warning`; other pauses (a checkpointer or the background writer
/// paused briefly, which delays no query directly) are `info`.
public enum WritebackThrottleCheck {
    /// The check id.
    public static let id = "writeback.throttle"
    /// The role whose pauses queries wait for.
    public static let clientBackend = "client backend"
    /// The share of the window one client backend spent paused at or above which it is critical.
    public static let criticalPausedFraction = 0.10
    /// … a warning (1 %: 10 ms of every second).
    public static let warningPausedFraction = 0.01
    /// A single pause above which it is a warning, whoever took it (the kernel's longest is
    /// `MAX_PAUSE`, 200 ms; above 100 ms the task dirties far faster than the device writes).
    public static let warningSinglePauseNanoseconds: Int64 = 100_000_000
    /// The settings reported, in order.
    public static let flushAfterSettings = [
        "backend_flush_after", "bgwriter_flush_after", "checkpoint_flush_after", "wal_writer_flush_after",
    ]

    /// The observation for one container.
    public static func evaluate(_ report: WritebackThrottleReport) -> Observation {
        observe(report).flaggingSaturatedValues()
    }

    static func observe(_ report: WritebackThrottleReport) -> Observation {
        let processes = report.processes.sorted {
            ($0.pausedNanoseconds, -Int64($0.pid)) > ($1.pausedNanoseconds, -Int64($1.pid))
        }
        let devices = report.devices.sorted { ($0.pausedNanoseconds, $1.bdi) > ($1.pausedNanoseconds, $0.bdi) }
        // Counters from BPF maps: summed saturating (a saturated total is flagged in the evidence).
        // Each pause is counted once per device and once per thread; the devices' sums are the totals.
        let pauses = devices.map(\.pauses).saturatingSum()
        let paused = devices.map(\.pausedNanoseconds).saturatingSum()
        let maxPause = max(
            devices.map(\.maxPauseNanoseconds).max() ?? 0, processes.map(\.maxPauseNanoseconds).max() ?? 0)
        var evidence: JSONObject = [
            "pauses": .int(pauses),
            "paused_ns": .int(paused),
            "max_pause_ns": .int(maxPause),
            "window_ns": .int(report.windowNanoseconds),
            "by_pid": .array(
                processes.map {
                    .object([
                        "pid": .int(Int64($0.pid)), "role": .from($0.role), "container_pid": .from($0.containerPID),
                        "command": .from($0.command), "pauses": .int($0.pauses),
                        "paused_ns": .int($0.pausedNanoseconds), "max_pause_ns": .int($0.maxPauseNanoseconds),
                    ])
                }),
            "devices": .array(
                devices.map {
                    .object([
                        "bdi": .string($0.bdi), "name": .from($0.name), "strict_limit": .from($0.strictLimit),
                        "max_bytes": .from($0.maxBytes), "max_ratio": .from($0.maxRatio), "pauses": .int($0.pauses),
                        "paused_ns": .int($0.pausedNanoseconds), "max_pause_ns": .int($0.maxPauseNanoseconds),
                        "at_max_pause": .object([
                            "pid": .int(Int64($0.pid)), "dirty_bytes": .int($0.dirtyBytes),
                            "limit_bytes": .int($0.limitBytes), "wb_dirty_bytes": .int($0.wbDirtyBytes),
                            "wb_setpoint_bytes": .int($0.wbSetpointBytes),
                            "wb_cgroup_ino": .int($0.writebackCgroupInode),
                        ]),
                    ])
                }),
            "memory_limit_bytes": .from(report.memoryLimitBytes),
            "memory_dirty_bytes": .from(report.memoryDirtyBytes),
            "cgroup_version": .from(report.cgroupVersion),
        ]
        var vm = JSONObject()
        for name in report.vmDirty.keys.sorted() { vm["vm.\(name)"] = .int(report.vmDirty[name]!) }
        evidence["vm"] = .object(vm)
        var settings = JSONObject()
        for name in flushAfterSettings { settings[name] = settingJSON(report.flushAfter[name] ?? nil) }
        evidence["settings"] = .object(settings)

        guard pauses > 0 || !processes.isEmpty else {
            return Observation(
                check: id, severity: .ok,
                summary: "The kernel did not pause this container's processes for dirty pages (balance_dirty_pages).",
                evidence: evidence)
        }
        guard report.windowNanoseconds > 0 else {
            return .unavailable(
                check: id, reason: "the observation window has no length (\(report.windowNanoseconds) ns)",
                evidence: evidence)
        }
        let window = Double(report.windowNanoseconds)
        let backends = processes.filter { $0.role == clientBackend }
        let worstBackend = backends.first
        let backendFraction = worstBackend.map { Double($0.pausedNanoseconds) / window } ?? 0
        let severity: Severity
        if backendFraction >= criticalPausedFraction {
            severity = .critical
        } else if backendFraction >= warningPausedFraction || maxPause > warningSinglePauseNanoseconds {
            severity = .warning
        } else {
            severity = .info
        }
        let who = (worstBackend ?? processes.first).map(name) ?? "?"
        let device = devices.first.map(deviceName) ?? "an unknown device"
        var summary =
            "The kernel paused this container's processes \(pauses) time(s) for \(paused / 1_000_000) ms "
            + "(longest \(maxPause / 1_000_000) ms) because their dirty pages outran writeback to \(device); "
            + "most: \(who)"
        if let worstBackend {
            summary +=
                "; client backend pid \(worstBackend.pid) paused \(format1(backendFraction * 100)) % of the window"
        }
        summary += "."
        return Observation(
            check: id, severity: severity, summary: summary, evidence: evidence,
            remedy: remedy(report, devices: devices))
    }

    static func remedy(_ report: WritebackThrottleReport, devices: [WritebackThrottleReport.Device]) -> String {
        var parts: [String] = []
        let backendFlush = report.flushAfter["backend_flush_after"] ?? nil
        if case .success(let s)? = backendFlush, s.value > 0 {
            parts.append(
                "backend_flush_after is \(s.value >> 10)kB (\(s.source)): backends already start writeback early; "
                    + "a smaller value (256kB) spreads it more")
        } else {
            parts.append(
                "Set backend_flush_after (256kB–2MB) so that backends start writeback of what they write in small "
                    + "steps instead of letting dirty pages pile up to the limit")
        }
        parts.append(
            "lower vm.dirty_background_bytes on the node pool (a node sysctl, not settable from a pod) so that "
                + "background writeback starts before writers are throttled")
        if report.cgroupVersion == 2 {
            parts.append(
                "on cgroup v2 the memory cgroup's dirty limit is a share of its memory: a larger memory limit "
                    + "raises it")
        }
        for device in devices where device.strictLimit == 1 {
            let maxBytes = device.maxBytes.map { ", max_bytes=\($0)" } ?? ""
            parts.append(
                "\(deviceName(device)) has strict_limit=1\(maxBytes) in /sys/class/bdi/\(device.bdi): its writers are "
                    + "throttled at the device's own share of the dirty limit whatever the node's state; unless that "
                    + "is meant (FUSE sets it), write 0 to strict_limit or raise max_bytes")
        }
        return parts.joined(separator: "; ") + "."
    }

    static func name(_ p: WritebackThrottleReport.Process) -> String {
        "pid \(p.pid)" + ((p.role ?? p.command).map { " (\($0))" } ?? "")
    }

    static func deviceName(_ d: WritebackThrottleReport.Device) -> String {
        d.name.map { "\($0) (bdi \(d.bdi))" } ?? "bdi \(d.bdi)"
    }

    static func settingJSON(_ setting: WritebackThrottleReport.Setting) -> JSONValue {
        switch setting {
        case nil: .null
        case .success(let s)?: .object(["value": .int(s.value), "source": .string(s.source)])
        case .failure(let invalid)?: invalid.json
        }
    }

    static func format1(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        let rounded = (value * 10).rounded() / 10
        return "\(rounded)"
    }
}
