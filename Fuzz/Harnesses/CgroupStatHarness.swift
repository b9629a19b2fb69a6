import HostFacts

extension Harness {
    /// A container's memory cgroup files. Their values are the kernel's, but a container that
    /// owns its cgroup namespace (or a fixture tree) can make the readers see anything.
    static let cgroupStat = Harness(
        name: "cgroup-stat", maxLength: 4096,
        summary: "cgroup files (CgroupFiles: key values, limits, integers, pressure) and MemoryCgroupStats v1/v2"
    ) { bytes in
        let input = text(bytes)
        consume(CgroupFiles.keyValues(input))
        if case .bytes(let limit) = CgroupFiles.limit(input) { require(limit >= 0, "limit \(limit)") }
        consume(CgroupFiles.integer(input))
        consume(CgroupFiles.pressure(input))

        // Through the real readers: each part of the input (split at NUL bytes) replaces one file,
        // chosen by its first byte; the other files keep ordinary contents.
        var files = cgroupFiles
        for piece in parts(bytes, limit: 16) where !piece.isEmpty {
            files[Int(piece[0]) % files.count].content = Array(piece.dropFirst())
        }
        Scratch.remove("cgroup")
        for file in files { Scratch.store("cgroup/\(file.path)", file.content) }
        let host = HostRoot(Scratch.root)
        for stats in [
            try? MemoryCgroupStats.readV1(host: host, mountPoint: "/cgroup/memory", path: "/pod/c"),
            try? MemoryCgroupStats.readV2(host: host, mountPoint: "/cgroup/unified", path: "/pod/c"),
        ] {
            guard let stats else { fatalError("invariant broken: the scratch cgroup was not read") }
            require(stats.missing.isEmpty, "files not read: \(stats.missing)")
            consume(stats)
            if let workingSet = stats.workingSetBytes {
                consume(workingSet)
                require(workingSet >= 0, "working set \(workingSet)")
            }
        }
    }

    /// The files the readers read, in the order an input's first byte picks them (modulo their
    /// count), with ordinary contents.
    private static let cgroupFiles: [(path: String, content: [UInt8])] = [
        ("memory/pod/c/memory.limit_in_bytes", "536870912\n"),
        ("memory/pod/c/memory.usage_in_bytes", "268435456\n"),
        ("memory/pod/c/memory.max_usage_in_bytes", "402653184\n"),
        ("memory/pod/c/memory.failcnt", "0\n"),
        (
            "memory/pod/c/memory.stat",
            "cache 134217728\nrss 67108864\nshmem 4096\nmapped_file 8192\ninactive_file 33554432\n"
                + "total_cache 134217728\ntotal_rss 67108864\ntotal_inactive_file 33554432\n"
                + "total_workingset_refault_anon 3\ntotal_workingset_refault_file 5\n"
        ),
        ("memory/pod/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
        ("unified/pod/c/memory.max", "536870912\n"),
        ("unified/pod/c/memory.high", "max\n"),
        ("unified/pod/c/memory.low", "0\n"),
        ("unified/pod/c/memory.min", "0\n"),
        ("unified/pod/c/memory.current", "268435456\n"),
        ("unified/pod/c/memory.peak", "402653184\n"),
        (
            "unified/pod/c/memory.stat",
            "anon 67108864\nfile 134217728\nshmem 4096\nfile_mapped 8192\nfile_dirty 0\ninactive_file 33554432\n"
                + "pgscan 10\npgsteal 8\npgmajfault 1\nworkingset_refault_anon 3\nworkingset_refault_file 5\n"
        ),
        ("unified/pod/c/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"),
        (
            "unified/pod/c/memory.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        ),
    ].map { ($0.0, Array($0.1.utf8)) }
}
