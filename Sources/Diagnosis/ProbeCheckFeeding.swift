import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

/// A probe whose window feeds checks: how its result for one container becomes the observations
/// of the checks it names (`Probe.checks`). Each probe conforms in its own file here
/// (`<Name>ProbeChecks.swift`); `ContainerDiagnosis` asks every running probe of the window and
/// never asks which one it is.
public protocol ProbeCheckFeeding: Probe {
    /// The processes (host tgids) its result for `slot` names, so that they can be named from
    /// /proc while they still run (including those born during the window).
    static func processes(slot: Int, in results: ProbeResults) -> [Int32]
    /// The observations of its checks for the container at `slot`.
    static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation]
}

extension ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] { [] }
}

/// What a probe's checks read for one container besides the probe's result.
public struct ProbeCheckContext {
    /// The container.
    public var resolution: Resolution
    /// The host's files.
    public var host: HostRoot
    /// The probes' window.
    public var window: ProbeWindow
    /// The container's processes, named (those the probes saw included).
    public var processNames: ProcessNames
    /// Names the cgroups of I/O neighbours.
    public var cgroupNames: CgroupNames
    /// The kernel's page size.
    public var pageSize: Int
    /// Kernel timestamps to wall-clock time.
    public var clock: ProbeReports.Clock
    /// The node's disks.
    public var devices: [BlockNoiseReport.Device]
    /// Told what is being read before each read.
    public var step: (String) -> Void
    /// `--query-text`: `query.latency` shows the slowest statements' text, not a hash.
    public var queryText = false
    /// The container's CPU cgroup over the same window (`cpu.throttling`'s counters), when read.
    public var cpu: CPUCgroupWindow? = nil
}
