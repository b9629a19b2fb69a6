import Checks
import HostFacts
import Resolution

/// Gathers `cpu.throttling` facts for one container: where its CPU cgroup is, one reading of
/// it (taken at each end of the window by `CPUWindowSampler`), and the PostgreSQL settings that
/// decide how many processes one query may keep busy.
public enum CPUFactsReader {
    /// The container's CPU cgroup: the v1 `cpu` (and `cpuacct`) controller when mounted, with the
    /// unified directory for PSI on a hybrid node; else the unified hierarchy. Nil when the
    /// resolution knows neither.
    public static func location(_ resolution: Resolution) -> CPUCgroupLocation? {
        CPUCgroupLocation.locate(
            v1: resolution.cgroup.v1, v2Path: resolution.cgroup.v2?.path, v2MountPoint: resolution.cgroup.v2MountPoint)
    }

    /// One reading of the container's CPU cgroup under `host` (bounded reads of regular files
    /// only, through `HostRoot`), or why it could not be taken.
    public static func sample(_ resolution: Resolution, host: HostRoot) -> Result<CPUCgroupSample, CheckUnavailable> {
        guard let location = location(resolution) else {
            return .failure(CheckUnavailable("the container has no CPU cgroup that pgnode can read"))
        }
        do {
            return .success(try CPUCgroupSample.read(host: host, location: location))
        } catch {
            let which: String =
                switch location {
                case .v1: "the v1 cpu cgroup"
                case .v2: "the CPU cgroup"
                }
            return .failure(CheckUnavailable("cannot read \(which): \(error)"))
        }
    }

    /// The window between two readings, or why there is none (the first reading that failed).
    public static func window(
        from start: Result<CPUCgroupSample, CheckUnavailable>, to end: Result<CPUCgroupSample, CheckUnavailable>
    ) -> Result<CPUCgroupWindow, CheckUnavailable> {
        switch (start, end) {
        case (.failure(let why), _):
            .failure(CheckUnavailable("at the start of the window, \(why.reason)"))
        case (_, .failure(let why)):
            .failure(CheckUnavailable("at the end of the window, \(why.reason)"))
        case (.success(let first), .success(let last)):
            .success(CPUCgroupWindow(from: first, to: last))
        }
    }

    /// Why a container has no window: pgnode did not observe (`pgnode check --duration 0`).
    /// Throttling is counted over time; one reading says what the limit is, not whether it
    /// stops anything, so the check says so rather than guess.
    public static let noWindow = CheckUnavailable(
        "no observation window (pgnode check --duration 0): throttling is counted between two readings of the "
            + "cgroup's cpu.stat, so it needs --duration above 0")

    /// The facts for `resolution` over `window`: its pod's QoS class (from its cgroup path) and its
    /// (first) server's `max_parallel_workers`, `max_parallel_workers_per_gather` and
    /// `max_worker_processes`.
    public static func facts(_ resolution: Resolution, window: Result<CPUCgroupWindow, CheckUnavailable>)
        -> CPUThrottlingFacts
    {
        let server = resolution.postgres.first
        return CPUThrottlingFacts(
            window: window, qosClass: resolution.container.qosClass?.rawValue,
            maxParallelWorkers: setting(server, "max_parallel_workers"),
            maxParallelWorkersPerGather: setting(server, "max_parallel_workers_per_gather"),
            maxWorkerProcesses: setting(server, "max_worker_processes"))
    }

    /// A setting as the check takes it: its whole number and source, the text PostgreSQL refuses,
    /// or nil when the server or the setting is not known (or its number is not a whole one).
    static func setting(_ server: PostgresServer?, _ name: String) -> CPUThrottlingFacts.Setting {
        guard let s = server?.setting(name) else { return nil }
        if let error = s.error {
            return .failure(InvalidSetting(name: name, text: s.value, source: s.source, reason: error))
        }
        guard let number = s.number, let value = Int64(exactly: number) else { return nil }
        return .success(SettingValue(value, source: s.source))
    }
}
