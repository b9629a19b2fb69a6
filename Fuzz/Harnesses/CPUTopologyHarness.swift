import HostFacts

extension Harness {
    /// Kernel CPU lists (sysfs `cpulist`, `shared_cpu_list`, a container's `cpuset.cpus`), and the
    /// topology and cpuset readers over a tree whose files are the input. sysfs is the kernel's,
    /// but a tenant owns its cgroup files and a fixture tree can hold anything.
    static let cpuTopology = Harness(
        name: "cpu-topology", maxLength: 4096,
        summary: "CPU lists (CPUList.parse, format), CPUTopology.read and CPUSetCgroup.read over fuzzed files"
    ) { bytes in
        if let cpus = CPUList.parse(text(bytes)) {
            consume(cpus)
            require(cpus.allSatisfy { $0 >= 0 && $0 < CPUList.maxCPU }, "a CPU out of range")
            require(zip(cpus, cpus.dropFirst()).allSatisfy { $0 < $1 }, "not ascending and unique")
            require(CPUList.parse(CPUList.format(cpus)) == cpus, "format does not parse back")
        }

        // Through the real readers: the parts of the input (split at NUL bytes) are, in turn,
        // cpu0's and cpu1's shared_cpu_list and id, node0's and node1's cpulist, and the cpuset
        // files of a v1 and a v2 cgroup.
        let pieces = parts(bytes, limit: 8)
        func piece(_ index: Int) -> [UInt8] { index < pieces.count ? pieces[index] : [] }
        Scratch.remove("topology")
        let files = [
            "sys/devices/system/cpu/cpu0/cache/index3/shared_cpu_list", "sys/devices/system/cpu/cpu0/cache/index3/id",
            "sys/devices/system/cpu/cpu1/cache/index3/shared_cpu_list", "sys/devices/system/cpu/cpu1/cache/index3/id",
            "sys/devices/system/node/node0/cpulist", "sys/devices/system/node/node1/cpulist",
            "cgroup/v1/cpuset.effective_cpus", "cgroup/v2/cpuset.cpus.effective",
        ]
        for (index, file) in files.enumerated() { Scratch.store("topology/\(file)", piece(index)) }
        let host = HostRoot(Scratch.root + "/topology")
        guard let topology = try? CPUTopology.read(host: host) else {
            fatalError("invariant broken: the scratch CPU directory was not listed")
        }
        consume(topology)
        require(topology.cpus == [0, 1], "cpus \(topology.cpus)")
        require(topology.lastLevelCache.keys.allSatisfy { topology.cpus.contains($0) }, "an LLC of no CPU")
        require(topology.node.values.allSatisfy { $0 == 0 || $0 == 1 }, "a node that is not listed")
        consume(topology.lastLevelCaches(of: topology.cpus))
        consume(topology.nodes(of: Array(topology.node.keys)))
        for (directory, version) in [("cgroup/v1", 1), ("cgroup/v2", 2)] {
            if let set = try? CPUSetCgroup.read(host: host, directory: directory, version: version) {
                consume(set)
                require(set.cpus.allSatisfy { $0 < CPUList.maxCPU }, "cpuset \(set)")
            }
        }
    }
}
