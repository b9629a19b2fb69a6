/// Which CPUs of the node share a last-level cache and which NUMA node each belongs to, from
/// sysfs: `/sys/devices/system/cpu/cpu<N>/cache/index3/{id,shared_cpu_list}` and
/// `/sys/devices/system/node/node<N>/cpulist`. These are the node's, whatever mount namespace
/// reads them (sysfs does not virtualise them), so an agent in a pod sees the host's topology.
public struct CPUTopology: Sendable, Equatable {
    /// The CPUs sysfs lists (`cpu<N>` directories), ascending.
    public var cpus: [Int]
    /// CPU → the id of its last-level (index3) cache; CPUs without one (no L3, an offline CPU
    /// whose cache directory is gone) are absent.
    public var lastLevelCache: [Int: Int]
    /// CPU → its NUMA node; absent without `CONFIG_NUMA` or for a CPU no node lists.
    public var node: [Int: Int]

    /// A topology as given (tests, or one read from sysfs).
    public init(cpus: [Int], lastLevelCache: [Int: Int], node: [Int: Int]) {
        self.cpus = cpus
        self.lastLevelCache = lastLevelCache
        self.node = node
    }

    /// Directories of this form read at most: as many CPUs as `CPUList` accepts.
    static let directoryLimit = CPUList.maxCPU

    /// The topology under `host`. Only the CPU directory must be listable; a CPU whose cache files
    /// are missing or unreadable, or hold no valid list, has no LLC, and a node whose `cpulist` is
    /// unreadable places none of its CPUs. Reads are bounded (`CPUList.textLimit` per file, at most
    /// `CPUList.maxCPU` CPUs and nodes).
    public static func read(host: HostRoot) throws(HostReadError) -> CPUTopology {
        let cpus = numbered(try host.list("sys/devices/system/cpu"), prefix: "cpu")
        var cache: [Int: Int] = [:]
        for cpu in cpus {
            let directory = "sys/devices/system/cpu/cpu\(cpu)/cache/index3"
            guard let text = try? host.readText(directory + "/shared_cpu_list", limit: CPUList.textLimit),
                let shared = CPUList.parse(text), shared.contains(cpu)
            else { continue }
            // `id` (4.14+ on x86, later elsewhere) is the cache's id within its level; without it
            // the lowest CPU sharing the cache names it, which is as unique.
            let id = (try? host.readLine(directory + "/id")).flatMap { CPUList.number(Substring($0)) }
            cache[cpu] = id ?? shared[0]
        }
        var node: [Int: Int] = [:]
        let nodes = (try? host.list("sys/devices/system/node")).map { numbered($0, prefix: "node") } ?? []
        for number in nodes {
            guard
                let text = try? host.readText(
                    "sys/devices/system/node/node\(number)/cpulist", limit: CPUList.textLimit),
                let listed = CPUList.parse(text)
            else { continue }
            for cpu in listed where node[cpu] == nil { node[cpu] = number }
        }
        return CPUTopology(cpus: cpus, lastLevelCache: cache, node: node)
    }

    /// The distinct last-level caches `cpus` span (CPUs without a known LLC not counted).
    public func lastLevelCaches(of cpus: [Int]) -> Int { Set(cpus.compactMap { lastLevelCache[$0] }).count }

    /// The distinct NUMA nodes `cpus` span (CPUs without a known node not counted).
    public func nodes(of cpus: [Int]) -> Int { Set(cpus.compactMap { node[$0] }).count }

    /// The numbers of the entries named `<prefix><digits>`, ascending, at most `directoryLimit`.
    static func numbered(_ names: [String], prefix: String) -> [Int] {
        var numbers: [Int] = []
        for name in names where name.hasPrefix(prefix) {
            guard let number = CPUList.number(name.dropFirst(prefix.count)) else { continue }
            numbers.append(number)
            if numbers.count >= directoryLimit { break }
        }
        return Array(Set(numbers)).sorted()
    }
}
