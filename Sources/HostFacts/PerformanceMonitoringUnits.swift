/// The perf event sources the kernel registered (`/sys/bus/event_source/devices`), and among
/// them the CPU's hardware performance monitoring unit: `cpu` on x86 (`cpu_core` and
/// `cpu_atom` on hybrid Intel parts), `armv8_*` on arm64. Virtual machines often have none.
public struct PerformanceMonitoringUnits: Sendable, Equatable {
    /// The directory, relative to the host root.
    public static let directory = "sys/bus/event_source/devices"

    /// Every event source's name, sorted; nil when the directory could not be listed.
    public var eventSources: [String]?
    /// Why it could not be listed.
    public var problem: String?

    /// Facts as given.
    public init(eventSources: [String]?, problem: String? = nil) {
        self.eventSources = eventSources
        self.problem = problem
    }

    /// The event sources that are a CPU's hardware PMU.
    public var hardwarePMUs: [String] {
        (eventSources ?? []).filter { Self.isCPUPMU($0) }
    }

    /// Whether the event source `name` is a CPU's hardware PMU.
    public static func isCPUPMU(_ name: String) -> Bool {
        name == "cpu" || name == "cpu_core" || name == "cpu_atom" || name.hasPrefix("armv8_")
    }

    /// Lists the directory under `host` (at most 256 entries).
    public static func read(host: HostRoot) -> PerformanceMonitoringUnits {
        do {
            return PerformanceMonitoringUnits(eventSources: try host.list(directory, limit: 256).sorted())
        } catch {
            return PerformanceMonitoringUnits(eventSources: nil, problem: error.description)
        }
    }
}
