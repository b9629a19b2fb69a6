import HostFacts

extension Harness {
    /// A container's CPU cgroup files, and the schedstat and /proc/stat lines `cpu.contention`
    /// reads. Their values are the kernel's, but a container that owns its cgroup namespace (or a
    /// fixture tree) can make the readers see anything.
    static let cpuCgroup = Harness(
        name: "cpu-cgroup", maxLength: 4096,
        summary: "CPU cgroup files (CPUCgroupSample v1/v2, windows between readings), /proc/<pid>/schedstat, /proc/stat"
    ) { bytes in
        let input = text(bytes)
        if let stat = SchedStat.parse(input) {
            require(stat.runNanoseconds >= 0 && stat.waitNanoseconds >= 0, "schedstat \(stat)")
        }
        if let times = NodeCPUTimes.parse(input) {
            require(times.stealTicks >= 0 && times.totalTicks >= times.stealTicks, "/proc/stat \(times)")
        }

        // Through the real readers: each part of the input (split at NUL bytes) replaces one file,
        // chosen by its first byte; the other files keep ordinary contents.
        var files = cpuFiles
        for piece in parts(bytes, limit: 16) where !piece.isEmpty {
            files[Int(piece[0]) % files.count].content = Array(piece.dropFirst())
        }
        Scratch.remove("cpu")
        for file in files { Scratch.store("cpu/\(file.path)", file.content) }
        let host = HostRoot(Scratch.root)
        let v1 = try? CPUCgroupSample.readV1(
            host: host, cpuDirectory: "/cpu/cpu/pod/c", cpuacctDirectory: "/cpu/cpuacct/pod/c",
            unifiedDirectory: "/cpu/unified/pod/c", monotonicNanoseconds: 1_000_000_000)
        let v2 = try? CPUCgroupSample.readV2(
            host: host, directory: "/cpu/unified/pod/c", monotonicNanoseconds: 2_000_000_000)
        guard let v1, let v2 else { fatalError("invariant broken: the scratch cgroup was not read") }
        // Windows from an ordinary earlier reading to the fuzzed one, back, and across versions.
        var earlier = CPUCgroupSample(version: 1, monotonicNanoseconds: 0)
        earlier.periods = 1000
        earlier.throttledPeriods = 10
        earlier.throttledNanoseconds = 1_000_000
        earlier.usageNanoseconds = 5_000_000
        for (a, b) in [(earlier, v1), (v1, earlier), (v1, v2), (v2, v1), (v2, v2)] {
            let window = CPUCgroupWindow(from: a, to: b)
            consume(window)
            for value in [
                window.periods, window.throttledPeriods, window.bursts, window.throttledNanoseconds,
                window.burstNanoseconds, window.usageNanoseconds, window.pressureSomeStallNanoseconds,
                window.pressureFullStallNanoseconds,
            ] {
                require((value ?? 0) >= 0, "a negative count in a window: \(window)")
            }
            consume(window.bandwidth?.cores)
        }
    }

    /// The files the readers read, in the order an input's first byte picks them (modulo their
    /// count), with ordinary contents (this machine's, kernel 6.18).
    private static let cpuFiles: [(path: String, content: [UInt8])] = [
        ("cpu/pod/c/cpu.cfs_quota_us", "50000\n"),
        ("cpu/pod/c/cpu.cfs_period_us", "100000\n"),
        ("cpu/pod/c/cpu.cfs_burst_us", "0\n"),
        (
            "cpu/pod/c/cpu.stat",
            "nr_periods 74\nnr_throttled 73\nthrottled_time 3608461040\nnr_bursts 0\nburst_time 0\n"
        ),
        ("cpuacct/pod/c/cpuacct.usage", "3682119436\n"),
        (
            "unified/pod/c/cpu.pressure",
            "some avg10=48.68 avg60=14.24 avg300=3.20 total=3683110\nfull avg10=48.68 avg60=14.24 avg300=3.20 total=3683110\n"
        ),
        ("unified/pod/c/cpu.max", "50000 100000\n"),
        ("unified/pod/c/cpu.max.burst", "0\n"),
        (
            "unified/pod/c/cpu.stat",
            "usage_usec 3682119\nuser_usec 3682119\nsystem_usec 0\nnr_periods 74\nnr_throttled 73\n"
                + "throttled_usec 3608461\nnr_bursts 0\nburst_usec 0\n"
        ),
    ].map { ($0.0, Array($0.1.utf8)) }
}
