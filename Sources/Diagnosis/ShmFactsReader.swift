import Checks
import HostFacts
import Resolution

/// Gathers `shm.size` facts for one server: its `/dev/shm` as it sees it (statfs through its
/// root, so a container's view, not the host's) and the settings that size dynamic shared memory.
public enum ShmFactsReader {
    /// The facts for `server` in a container, read under `host`. A setting the configuration
    /// sets to a value PostgreSQL refuses is passed on as invalid (with its text, source and
    /// PostgreSQL's message), never as a number; a setting nothing sets is its built-in default.
    public static func facts(server: PostgresServer, host: HostRoot) -> ShmSizeFacts {
        let mount = readMount(process: server.postmasterIdentity, pid: server.postmasterPID, host: host)
        typealias Input<V: Sendable & Equatable> = Result<SettingValue<V>, InvalidSetting>
        func read<V>(_ name: String, _ fallback: V, _ value: (Setting) -> V?) -> Input<V> {
            guard let s = server.setting(name) else { return .success(defaultValue(fallback, server)) }
            if let error = s.error {
                return .failure(InvalidSetting(name: name, text: s.value, source: s.source, reason: error))
            }
            guard let v = value(s) else {
                return .failure(
                    InvalidSetting(name: name, text: s.value, source: s.source, reason: "not a number pgnode can use"))
            }
            return .success(SettingValue(v, source: s.source))
        }
        let major = server.majorVersion ?? 15
        return ShmSizeFacts(
            mount: mount,
            dynamicSharedMemoryType: read("dynamic_shared_memory_type", "posix") { $0.value },
            workMem: read("work_mem", Int64(4 << 20)) { $0.bytes },
            hashMemMultiplier: read("hash_mem_multiplier", major >= 15 ? 2.0 : 1.0) { $0.number },
            maxParallelWorkersPerGather: read("max_parallel_workers_per_gather", Int64(2)) { integer($0) },
            maxParallelWorkers: read("max_parallel_workers", Int64(8)) { integer($0) },
            minDynamicSharedMemory: read("min_dynamic_shared_memory", Int64(0)) { $0.bytes }, runBy: server.runBy)
    }

    /// An integer setting's number as an integer (settings are 32-bit; nil for anything else).
    static func integer(_ setting: Setting) -> Int64? { setting.number.flatMap { Int64(exactly: $0) } }

    /// A built-in default used because nothing sets the setting or the server's configuration
    /// could not be read; its source says so.
    static func defaultValue<V>(_ value: V, _ server: PostgresServer) -> SettingValue<V> {
        let why = server.settingsUnavailableReason.map { " (configuration unreadable: \($0))" } ?? ""
        return SettingValue(value, source: "default" + why)
    }

    /// `/dev/shm` of process `pid` (`process` as discovered): size and use by statfs through its
    /// root, and what provides it from its mount table; both confirmed to be of the process
    /// discovered, not of a later one given its pid.
    public static func readMount(process: ProcessIdentity?, pid: Int32, host: HostRoot) -> Result<
        ShmMount, CheckUnavailable
    > {
        guard let process else {
            return .failure(CheckUnavailable("cannot statfs /dev/shm of process \(pid): its start time is unknown"))
        }
        let root = ContainerRoot(host: host, process: process)
        let usage: FileSystemUsage
        do {
            usage = try root.fileSystem("/dev/shm")
        } catch {
            return .failure(CheckUnavailable("cannot statfs /dev/shm of process \(pid): \(error)"))
        }
        var mounts = (try? host.readText("proc/\(pid)/mountinfo")).map { MountInfo.parse($0).entries } ?? []
        do throws(HostReadError) {
            try process.confirm(host: host)
        } catch {
            mounts = []
        }
        let shm = mounts.last(where: { $0.mountPoint == "/dev/shm" })
        let hostShm =
            ((try? host.readText("proc/1/mountinfo")) ?? (try? host.readText("proc/self/mountinfo")))
            .map { MountInfo.parse($0).entries.last(where: { $0.mountPoint == "/dev/shm" }) } ?? nil
        return .success(
            ShmMount(
                sizeBytes: Int64(clamping: usage.sizeBytes), usedBytes: Int64(clamping: usage.usedBytes),
                kind: kind(of: shm, hostShm: hostShm, fileSystemType: usage.type), source: shm?.source))
    }

    /// What provides a container's `/dev/shm`.
    static func kind(of mount: MountEntry?, hostShm: MountEntry?, fileSystemType: Int64) -> ShmSizeFacts.MountKind {
        guard let mount else { return .other }
        if let hostShm, mount.device == hostShm.device, mount.root == hostShm.root { return .host }
        if mount.root.contains("kubernetes.io~empty-dir") { return .memoryEmptyDir }
        if mount.fileSystemType == "tmpfs" && mount.source == "shm" { return .runtimeDefault }
        return .other
    }
}
