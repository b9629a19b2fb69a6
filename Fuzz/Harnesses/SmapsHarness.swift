import HostFacts

extension Harness {
    /// `/proc/<pid>/smaps` of a postmaster, `/proc/meminfo`, a `status` file's `VmPTE` and the
    /// hugetlb cgroup files: the mappings' names are the container's to choose, and a container
    /// that owns its cgroup namespace (or a fixture tree) can make the files say anything.
    static let smaps = Harness(
        name: "smaps", maxLength: 16_384,
        summary: "/proc/<pid>/smaps (ProcessSmaps), meminfo huge pages, VmPTE, hugetlb cgroup files"
    ) { bytes in
        let input = text(bytes)
        let mappings = ProcessSmaps.parse(input)
        consume(mappings)
        for mapping in mappings {
            require(mapping.sizeBytes.map { $0 >= 0 } ?? true, "size \(mapping)")
            require(mapping.kernelPageSizeBytes.map { $0 >= 0 } ?? true, "page size \(mapping)")
            require(mapping.hugetlbBytes.map { $0 >= 0 } ?? true, "hugetlb \(mapping)")
            consume(mapping.isMainSegmentCandidate)
        }
        if let main = ProcessSmaps.mainSegment(mappings) { require(main.isMainSegmentCandidate, "main \(main)") }
        for (key, value) in HugePagePool.parseMeminfo(input) { require(value >= 0, "\(key) \(value)") }
        if let pte = ProcessPageTables.parse(status: input) { require(pte >= 0, "VmPTE \(pte)") }
        consume(HugePagePool.pageSize(directoryName: input))

        // Through the real readers: the input as smaps, meminfo, a pool counter and each hugetlb file.
        Scratch.remove("smaps")
        Scratch.store("smaps/proc/1/smaps", bytes)
        Scratch.store("smaps/proc/meminfo", bytes)
        Scratch.store("smaps/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", bytes)
        Scratch.store("smaps/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", bytes)
        for name in ["limit_in_bytes", "usage_in_bytes", "failcnt", "rsvd.limit_in_bytes", "max", "events", "rsvd.max"]
        {
            Scratch.store("smaps/cgroup/c/hugetlb.2MB.\(name)", bytes)
        }
        let host = HostRoot("\(Scratch.root)/smaps")
        consume(try? ProcessSmaps.read(host: host, pid: 1))
        let pool = HugePagePool.read(host: host)
        consume(pool)
        for size in pool.sizes { require((size.available ?? 0) >= 0, "available \(size)") }
        for limits in [
            try? HugetlbCgroupLimits.readV1(host: host, mountPoint: "/cgroup", path: "c", pageSizeBytes: 2 << 20),
            try? HugetlbCgroupLimits.readV2(host: host, mountPoint: "/cgroup", path: "c", pageSizeBytes: 2 << 20),
        ] {
            guard let limits else { fatalError("invariant broken: the scratch hugetlb cgroup was not read") }
            if case .bytes(let b)? = limits.limit { require(b >= 0, "limit \(b)") }
            consume(limits)
        }
    }
}
