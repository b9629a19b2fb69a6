/// The node settings that tune how PostgreSQL runs on it, read for the node-level checks
/// `kernel.thp`, `kernel.clocksource`, `kernel.mitigations` and `cpu.llc`: all from sysfs and
/// `/proc/cmdline` under the host root, so that the same code reads the real node and a fixture.
public struct NodeTuningFacts: Sendable, Equatable {
    /// `/sys/kernel/mm/transparent_hugepage`.
    public var transparentHugePages: TransparentHugePages
    /// `/sys/devices/system/clocksource/clocksource0`.
    public var clocksource: Clocksource
    /// `/sys/devices/system/cpu/vulnerabilities` and `mitigations=`.
    public var vulnerabilities: CPUVulnerabilities
    /// `/sys/bus/event_source/devices`.
    public var performanceMonitoring: PerformanceMonitoringUnits

    /// Facts as given.
    public init(
        transparentHugePages: TransparentHugePages, clocksource: Clocksource, vulnerabilities: CPUVulnerabilities,
        performanceMonitoring: PerformanceMonitoringUnits
    ) {
        self.transparentHugePages = transparentHugePages
        self.clocksource = clocksource
        self.vulnerabilities = vulnerabilities
        self.performanceMonitoring = performanceMonitoring
    }

    /// Reads every part under `host`; what cannot be read is a problem in its part, never an error.
    public static func gather(host: HostRoot) -> NodeTuningFacts {
        NodeTuningFacts(
            transparentHugePages: .read(host: host), clocksource: .read(host: host),
            vulnerabilities: .read(host: host), performanceMonitoring: .read(host: host))
    }
}
