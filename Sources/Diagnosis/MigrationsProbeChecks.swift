import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution
import Synchronization

/// `cpu.migrations` from the migrations probe's window, the node's topology and the container's
/// cpuset.
extension MigrationsProbe: ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] {
        Array(Set((results.migrations[slot]?.threads ?? []).map { Int32(bitPattern: $0.tgid) }))
    }

    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        context.step("the node's CPU topology")
        let topology = ProbeReports.topology(context.host)
        context.step("the container's cpuset")
        let cpuset = ProbeReports.cpuset(context.resolution, host: context.host)
        return [
            CPUMigrationsCheck.evaluate(
                ProbeReports.migrations(
                    context.window.results.migrations[slot] ?? MigrationsResult(), names: context.processNames,
                    windowNanoseconds: context.window.nanoseconds,
                    topology: topology, cpuset: cpuset))
        ]
    }
}

extension ProbeReports {
    /// The node's topology by host root, read once: what the probe classified against (it read
    /// the topology when it was loaded), and not 2 × CPUs sysfs files per container every window.
    private static let topologies = Mutex<[String: CPUTopology]>([:])

    /// The node's CPU topology under `host` (empty when sysfs cannot be listed; then not kept).
    static func topology(_ host: HostRoot) -> CPUTopology {
        if let known = topologies.withLock({ $0[host.path] }) { return known }
        guard let read = try? CPUTopology.read(host: host) else {
            return CPUTopology(cpus: [], lastLevelCache: [:], node: [:])
        }
        topologies.withLock { $0[host.path] = read }
        return read
    }

    /// The migrations probe's window as the `cpu.migrations` report: threads summed per
    /// PostgreSQL role (by `names`; `other` for the container's other processes).
    public static func migrations(
        _ result: MigrationsResult, names: ProcessNames, windowNanoseconds: Int64, topology: CPUTopology,
        cpuset: Result<[Int], CheckUnavailable>
    ) -> MigrationsReport {
        var roles: [String: MigrationsReport.Role] = [:]
        var processes: [String: Set<UInt32>] = [:]
        for thread in result.threads {
            let role = names.byPID[Int32(bitPattern: thread.tgid)]?.role ?? "other"
            var r =
                roles[role] ?? MigrationsReport.Role(role: role, processes: 0, migrations: 0, crossLLC: 0, crossNUMA: 0)
            // Kernel counters: added saturating (flagged in the evidence at Int64.max).
            r.migrations = r.migrations.addingSaturating(Int64(clamping: thread.migrations))
            r.crossLLC = r.crossLLC.addingSaturating(Int64(clamping: thread.crossLLC))
            r.crossNUMA = r.crossNUMA.addingSaturating(Int64(clamping: thread.crossNUMA))
            roles[role] = r
            processes[role, default: []].insert(thread.tgid)
        }
        for (role, tgids) in processes { roles[role]?.processes = Int64(tgids.count) }
        let counts = result.counts
        return MigrationsReport(
            migrations: Int64(clamping: counts.migrations), withinLLC: Int64(clamping: counts.withinLLC),
            crossLLC: Int64(clamping: counts.crossLLC), crossNUMA: Int64(clamping: counts.crossNUMA),
            unknown: Int64(clamping: counts.unknown), roles: Array(roles.values), windowNanoseconds: windowNanoseconds,
            nodeLastLevelCaches: Int64(topology.lastLevelCaches(of: topology.cpus)),
            nodeNUMANodes: Int64(topology.nodes(of: topology.cpus)),
            cpuset: cpuset.map { cpus in
                MigrationsReport.CPUSet(
                    cpus: CPUList.format(cpus), count: Int64(cpus.count),
                    lastLevelCaches: Int64(topology.lastLevelCaches(of: cpus)), nodes: Int64(topology.nodes(of: cpus)))
            })
    }

    /// The CPUs of the container's cpuset: its v1 cpuset controller's directory when the
    /// resolution knows it, else its unified one (`cpuset.cpus.effective`).
    public static func cpuset(_ resolution: Resolution, host: HostRoot) -> Result<[Int], CheckUnavailable> {
        let location = CPUSetCgroup.locate(
            v1: resolution.cgroup.v1, v2Path: resolution.cgroup.v2?.path, v2MountPoint: resolution.cgroup.v2MountPoint)
        guard let (path, version) = location else {
            return .failure(CheckUnavailable("the container has no cpuset cgroup that pgnode can read"))
        }
        do {
            return .success(try CPUSetCgroup.read(host: host, directory: path, version: version).cpus)
        } catch {
            return .failure(CheckUnavailable("cannot read the cpuset: \(error)"))
        }
    }
}
