import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

/// Whether a probe ran, and why not when it did not.
public struct ProbeStatus: Sendable, Equatable {
    /// The probe's name (`shm`, `reclaim`, `blkio`).
    public var probe: String
    /// The checks that use it.
    public var checks: [String]
    /// Whether it was loaded and attached.
    public var running: Bool
    /// Why it is not running.
    public var reason: String?

    /// A status.
    public init(probe: String, checks: [String], running: Bool, reason: String?) {
        self.probe = probe
        self.checks = checks
        self.running = running
        self.reason = reason
    }
}

/// What one observation window of the probes produced, for every target at once.
public struct ProbeWindow: Sendable {
    /// Results by target index.
    public var results: ProbeResults
    /// Every probe's status.
    public var statuses: [ProbeStatus]
    /// How long the probes observed, in nanoseconds.
    public var nanoseconds: Int64
    /// By target index: the highest `used` bytes of the target's /dev/shm sampled during the window.
    public var shmUsedPeakBytes: [Int: Int64]

    /// A window.
    public init(
        results: ProbeResults, statuses: [ProbeStatus], nanoseconds: Int64, shmUsedPeakBytes: [Int: Int64] = [:]
    ) {
        self.results = results
        self.statuses = statuses
        self.nanoseconds = nanoseconds
        self.shmUsedPeakBytes = shmUsedPeakBytes
    }
}

/// What the probe checks of every container of a window read besides the container's own files.
public struct WindowFacts: Sendable {
    /// The probes' window.
    public var window: ProbeWindow
    /// The node's cgroup hierarchies (to name the cgroups of I/O neighbours).
    public var layout: CgroupLayout
    /// The containers of the window, resolved (neighbours among them are named without a lookup).
    public var known: [Resolution]
    /// The kernel's page size.
    public var pageSize: Int
    /// Kernel timestamps to wall-clock time, sampled at the end of the window.
    public var clock: ProbeReports.Clock
    /// The node's disks.
    public var devices: [BlockNoiseReport.Device]

    /// Facts for a window.
    public init(
        window: ProbeWindow, layout: CgroupLayout, known: [Resolution], pageSize: Int, clock: ProbeReports.Clock,
        devices: [BlockNoiseReport.Device]
    ) {
        self.window = window
        self.layout = layout
        self.known = known
        self.pageSize = pageSize
        self.clock = clock
        self.devices = devices
    }
}

/// Runs every container-level check for one resolved container: gathers the facts (I/O at
/// this edge) and hands them to the pure checks. `step` is told what is being read before each
/// read, so that a diagnosis that does not finish in time can say where it was.
public enum ContainerDiagnosis {
    /// The checks `staticObservations` reports, in order.
    public static let staticChecks = [ShmSizeCheck.id, MemoryLimitCheck.id]
    /// The checks of the window that need no probe (`cpu.throttling`: the cgroup's counters at
    /// both ends), reported for every container, with a probe slot or not.
    public static let windowChecks = [CPUThrottlingCheck.id]

    /// Every check of one container for a window, in order: the static checks, `cpu.throttling`
    /// over `cpu` (the container's CPU cgroup between the window's two readings, or why there is
    /// none), then, when the container holds probe slot `slot` in `window`, the probe checks.
    public static func observations(
        _ resolution: Resolution, slot: Int?, host: HostRoot, window: WindowFacts?,
        cpu: Result<CPUCgroupWindow, CheckUnavailable> = .failure(CPUFactsReader.noWindow),
        step: (String) -> Void = { _ in }
    ) -> [Observation] {
        var observations = staticObservations(resolution, host: host, step: step)
        observations.append(CPUThrottlingCheck.evaluate(CPUFactsReader.facts(resolution, window: cpu)))
        if let slot, let window {
            // Its own namer: a cache shared with another container's thread (one that may still
            // run, abandoned) would be shared mutable state.
            let names = CgroupNames(host: host, layout: window.layout, known: window.known)
            observations += probeObservations(
                resolution, index: slot, host: host, window: window.window, names: names, pageSize: window.pageSize,
                clock: window.clock, devices: window.devices, step: step)
        }
        return observations
    }

    /// `shm.size` for the container's (first) server and `memory.limit`.
    public static func staticObservations(
        _ resolution: Resolution, host: HostRoot, step: (String) -> Void = { _ in }
    ) -> [Observation] {
        var observations: [Observation] = []
        if let server = resolution.postgres.first {
            step("/dev/shm of process \(server.postmasterPID) (shm.size)")
            var o = ShmSizeCheck.evaluate(ShmFactsReader.facts(server: server, host: host))
            o.evidence["postmaster_pid"] = .int(Int64(server.postmasterPID))
            o.evidence["data_directory"] = .from(server.dataDirectory)
            observations.append(o)
        } else {
            observations.append(
                .unavailable(check: ShmSizeCheck.id, reason: "no PostgreSQL server was found in the container"))
        }
        step("the container's memory cgroup (memory.limit)")
        observations.append(MemoryLimitCheck.evaluate(MemoryFactsReader.facts(resolution: resolution, host: host)))
        return observations
    }

    /// `shm.enospc`, `memory.reclaim` and `blkio.noise` from the probes' window, for the target
    /// at `index`; a probe that did not run gives `unavailable` with its reason.
    public static func probeObservations(
        _ resolution: Resolution, index: Int, host: HostRoot, window: ProbeWindow, names: CgroupNames, pageSize: Int,
        clock: ProbeReports.Clock, devices: [BlockNoiseReport.Device], step: (String) -> Void = { _ in }
    ) -> [Observation] {
        // Name the processes the probes saw, including those born during the window (read from
        // /proc now, while they still run).
        step("/proc for the names of the processes the probes saw")
        var processNames = ProcessNames(resolution)
        let seen =
            (window.results.reclaim[index] ?? []).map { Int32(bitPattern: $0.tgid) }
            + (window.results.shm[index]?.failed ?? []).map { Int32(bitPattern: $0.tgid) }
        processNames.learn(seen, host: host)
        let roles = processNames.roles
        var observations: [Observation] = []
        for status in window.statuses {
            guard status.running else {
                for check in status.checks {
                    observations.append(
                        .unavailable(
                            check: check, reason: status.reason ?? "the \(status.probe) probe is not running",
                            evidence: ["probe": .string(status.probe)]))
                }
                continue
            }
            switch status.probe {
            case "shm":
                if let reason = window.results.shmUnwatched[index] {
                    observations.append(
                        .unavailable(check: ShmEnospcCheck.id, reason: reason, evidence: ["probe": .string("shm")]))
                    continue
                }
                let process = ShmUsageSampler.process(resolution)
                step("/dev/shm of process \(process.map { "\($0.pid)" } ?? "?") (shm.enospc)")
                let shmSize = process.flatMap { try? ContainerRoot(host: host, process: $0).fileSystem("/dev/shm") }
                let result = window.results.shm[index] ?? ShmResult()
                observations.append(
                    ShmEnospcCheck.evaluate(
                        ProbeReports.shm(
                            result, roles: roles, namespacePIDs: ProbeReports.namespacePIDs(processNames), clock: clock,
                            shmUsedPeakBytes: window.shmUsedPeakBytes[index]),
                        shmSizeBytes: shmSize.map { Int64(clamping: $0.sizeBytes) }))
            case "reclaim":
                observations.append(
                    MemoryReclaimCheck.evaluate(
                        ProbeReports.reclaim(
                            window.results.reclaim[index] ?? [], names: processNames, pageSize: pageSize,
                            windowNanoseconds: window.nanoseconds)))
            case "blkio":
                observations.append(
                    BlockNoiseCheck.evaluate(
                        ProbeReports.blkio(window.results.blkio[index] ?? BlkioResult(), devices: devices, names: names)
                    ))
            default:
                continue
            }
        }
        return observations
    }

    /// The probe checks of a container that has no probe slot: the probes follow at most
    /// `slots` containers at once on a node, and this one came after them.
    public static func unfollowedObservations(statuses: [ProbeStatus], slots: Int) -> [Observation] {
        let reason = "the probes follow at most \(slots) containers at once on a node and this one has no slot"
        return statuses.flatMap { status in
            status.checks.map {
                Observation.unavailable(check: $0, reason: reason, evidence: ["probe": .string(status.probe)])
            }
        }
    }
}
