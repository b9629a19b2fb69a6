import Glibc
import OSSupport
import PGNodeModel

/// Where a container's CPU controller files are, as directories relative to the host root.
public enum CPUCgroupLocation: Sendable, Equatable {
    /// cgroup v1: the `cpu` controller's directory (quota, period, burst, `cpu.stat`), the
    /// `cpuacct` one (`cpuacct.usage`; the same directory when the two are co-mounted as
    /// `cpu,cpuacct`), and on a hybrid node the container's directory in the unified hierarchy,
    /// which has `cpu.pressure` (PSI is accounted there even without v2 controllers).
    case v1(cpu: String, cpuacct: String?, unified: String?)
    /// cgroup v2: the container's directory in the unified hierarchy.
    case v2(String)

    /// The location for a container's cgroups as the resolution gives them (`Resolution.Cgroups`:
    /// `v1` controller → path and mount point, the unified path and its mount point): v1 when the
    /// `cpu` controller is mounted there, else the unified hierarchy; nil when neither is known.
    public static func locate(
        v1: [(controller: String, path: String, mountPoint: String?)], v2Path: String?, v2MountPoint: String?
    ) -> CPUCgroupLocation? {
        let unified = v2Path.flatMap { path in v2MountPoint.map { join($0, path) } }
        if let cpu = v1.first(where: { $0.controller == "cpu" }), let mount = cpu.mountPoint {
            let cpuacct = v1.first(where: { $0.controller == "cpuacct" }).flatMap { entry in
                entry.mountPoint.map { join($0, entry.path) }
            }
            return .v1(cpu: join(mount, cpu.path), cpuacct: cpuacct, unified: unified)
        }
        return unified.map { .v2($0) }
    }

    /// `mountPoint` + `path`, without doubled slashes.
    static func join(_ mountPoint: String, _ path: String) -> String {
        let trimmed = path.drop(while: { $0 == "/" })
        if trimmed.isEmpty { return mountPoint }
        return mountPoint.hasSuffix("/") ? mountPoint + trimmed : mountPoint + "/" + trimmed
    }
}

/// A cgroup's CFS bandwidth limit: at most `quota` microseconds of CPU time in every `period`.
public struct CPUBandwidth: Sendable, Equatable {
    /// The quota in microseconds per period; nil when there is none (v1 `-1`, v2 `max`).
    public var quotaMicroseconds: Int64?
    /// The period in microseconds (the kubelet always sets 100000).
    public var periodMicroseconds: Int64

    /// A limit of `quotaMicroseconds` (nil: none) per `periodMicroseconds`.
    public init(quotaMicroseconds: Int64?, periodMicroseconds: Int64) {
        self.quotaMicroseconds = quotaMicroseconds
        self.periodMicroseconds = periodMicroseconds
    }

    /// The limit in CPUs (quota ÷ period: 50000/100000 is half a CPU); nil when there is no limit
    /// or the period is not positive.
    public var cores: Double? {
        guard let quotaMicroseconds, periodMicroseconds > 0 else { return nil }
        return Double(quotaMicroseconds) / Double(periodMicroseconds)
    }
}

/// One reading of a container's CPU cgroup, taken at a monotonic time, so that two readings
/// make a window (`CPUCgroupWindow`). Fields a kernel does not provide are nil, never invented.
///
/// Counters are kept as the kernel keeps them: time in nanoseconds (v2's microseconds are
/// multiplied, saturating), 64-bit counters above `Int64.max` clamped there (see `CgroupFiles`),
/// and the period counters (`nr_periods`, `nr_throttled`, `nr_bursts`) as the unsigned 32-bit
/// counters they are: the kernel stores them in an `int` and prints them with `%d`, so past
/// 2^31 they print negative; a negative value is read back as its 32-bit pattern
/// (`-2147483648` → 2^31), which lets a window across the wrap be computed.
public struct CPUCgroupSample: Sendable, Equatable {
    /// 1 or 2.
    public var version: Int
    /// `CLOCK_MONOTONIC` when the files were read, in nanoseconds.
    public var monotonicNanoseconds: Int64
    /// The inode of the cgroup directory (v1: the cpu controller's); a different one in a later
    /// sample means the cgroup was removed and created again.
    public var cgroupInode: UInt64?
    /// The quota and period; nil when they could not be read (v2 without the cpu controller
    /// enabled has no `cpu.max`).
    public var bandwidth: CPUBandwidth?
    /// The burst allowance in microseconds (v1 `cpu.cfs_burst_us`, v2 `cpu.max.burst`, 5.14+):
    /// unused quota that may be carried into a later period; 0 is none.
    public var burstMicroseconds: Int64?
    /// Periods in which the cgroup had runnable tasks under an active quota (`nr_periods`).
    public var periods: Int64?
    /// Periods in which it ran out of quota and was throttled (`nr_throttled`).
    public var throttledPeriods: Int64?
    /// Time its run queues spent throttled, summed over CPUs (v1 `throttled_time`, v2
    /// `throttled_usec`), in nanoseconds.
    public var throttledNanoseconds: Int64?
    /// Periods in which it used burst (`nr_bursts`, 5.14+).
    public var bursts: Int64?
    /// CPU time it ran on burst (v1 `burst_time`, v2 `burst_usec`), in nanoseconds.
    public var burstNanoseconds: Int64?
    /// CPU time used by its tasks (v1 `cpuacct.usage`, v2 `usage_usec`), in nanoseconds.
    public var usageNanoseconds: Int64?
    /// CPU pressure (`cpu.pressure`; on v1, from the unified hierarchy of a hybrid node).
    public var pressure: CgroupFiles.Pressure?
    /// Files that could not be read (file names), for the reader.
    public var missing: [String]

    /// An empty sample of cgroup `version` at `monotonicNanoseconds`; readers fill in what the
    /// kernel provides.
    public init(version: Int, monotonicNanoseconds: Int64, missing: [String] = []) {
        self.version = version
        self.monotonicNanoseconds = monotonicNanoseconds
        self.missing = missing
    }

    /// The largest control file read (cpu.stat is a few hundred bytes).
    static let fileLimit = 64 << 10

    /// Reads the cgroup at `location` under `host`, stamped with `monotonicNanoseconds` (by
    /// default the time of the call).
    public static func read(
        host: HostRoot, location: CPUCgroupLocation, monotonicNanoseconds: Int64 = monotonicNow()
    ) throws(HostReadError) -> CPUCgroupSample {
        switch location {
        case .v1(let cpu, let cpuacct, let unified):
            try readV1(
                host: host, cpuDirectory: cpu, cpuacctDirectory: cpuacct, unifiedDirectory: unified,
                monotonicNanoseconds: monotonicNanoseconds)
        case .v2(let directory):
            try readV2(host: host, directory: directory, monotonicNanoseconds: monotonicNanoseconds)
        }
    }

    /// Reads a v1 cpu cgroup: `cpu.cfs_quota_us`, `cpu.cfs_period_us`, `cpu.cfs_burst_us` (when
    /// the kernel has it), `cpu.stat` from `cpuDirectory`; `cpuacct.usage` from
    /// `cpuacctDirectory`; `cpu.pressure` from `unifiedDirectory` when present there.
    public static func readV1(
        host: HostRoot, cpuDirectory: String, cpuacctDirectory: String?, unifiedDirectory: String?,
        monotonicNanoseconds: Int64 = monotonicNow()
    ) throws(HostReadError) -> CPUCgroupSample {
        guard host.isDirectory(cpuDirectory) else { throw .notFound(path: cpuDirectory) }
        var sample = CPUCgroupSample(version: 1, monotonicNanoseconds: monotonicNanoseconds)
        sample.cgroupInode = try? host.status(cpuDirectory).inode
        func read(_ directory: String, _ name: String) -> String? {
            do { return try host.readText(directory + "/" + name, limit: fileLimit) } catch {
                sample.missing.append(name)
                return nil
            }
        }
        let quota = read(cpuDirectory, "cpu.cfs_quota_us").flatMap(v1Quota)
        let period = read(cpuDirectory, "cpu.cfs_period_us").flatMap(CgroupFiles.integer)
        if let quota, let period {
            let microseconds: Int64? =
                switch quota {
                case .unlimited: nil
                case .microseconds(let value): value
                }
            sample.bandwidth = CPUBandwidth(quotaMicroseconds: microseconds, periodMicroseconds: period)
        }
        if host.exists(cpuDirectory + "/cpu.cfs_burst_us") {
            sample.burstMicroseconds = read(cpuDirectory, "cpu.cfs_burst_us").flatMap(CgroupFiles.integer)
        }
        if let text = read(cpuDirectory, "cpu.stat") {
            let fields = flatKeyed(text)
            sample.periods = fields["nr_periods"].flatMap(periodCounter)
            sample.throttledPeriods = fields["nr_throttled"].flatMap(periodCounter)
            sample.throttledNanoseconds = fields["throttled_time"].flatMap(CgroupFiles.counter)
            sample.bursts = fields["nr_bursts"].flatMap(periodCounter)
            sample.burstNanoseconds = fields["burst_time"].flatMap(CgroupFiles.counter)
        }
        if let cpuacctDirectory {
            sample.usageNanoseconds = read(cpuacctDirectory, "cpuacct.usage").flatMap(CgroupFiles.integer)
        } else {
            sample.missing.append("cpuacct.usage")
        }
        if let unifiedDirectory, host.exists(unifiedDirectory + "/cpu.pressure") {
            sample.pressure = read(unifiedDirectory, "cpu.pressure").flatMap(CgroupFiles.pressure)
        }
        return sample
    }

    /// Reads a v2 cgroup: `cpu.max`, `cpu.max.burst` (5.14+, when present), `cpu.stat` and
    /// `cpu.pressure` (when present: not with `psi=0`).
    public static func readV2(
        host: HostRoot, directory: String, monotonicNanoseconds: Int64 = monotonicNow()
    ) throws(HostReadError) -> CPUCgroupSample {
        guard host.isDirectory(directory) else { throw .notFound(path: directory) }
        var sample = CPUCgroupSample(version: 2, monotonicNanoseconds: monotonicNanoseconds)
        sample.cgroupInode = try? host.status(directory).inode
        func read(_ name: String) -> String? {
            do { return try host.readText(directory + "/" + name, limit: fileLimit) } catch {
                sample.missing.append(name)
                return nil
            }
        }
        sample.bandwidth = read("cpu.max").flatMap(v2Max)
        if host.exists(directory + "/cpu.max.burst") {
            sample.burstMicroseconds = read("cpu.max.burst").flatMap(CgroupFiles.integer)
        }
        if let text = read("cpu.stat") {
            let fields = flatKeyed(text)
            func nanoseconds(_ key: Substring) -> Int64? {
                fields[key].flatMap(CgroupFiles.counter).map { $0.multipliedSaturating(by: 1000) }
            }
            sample.usageNanoseconds = nanoseconds("usage_usec")
            sample.periods = fields["nr_periods"].flatMap(periodCounter)
            sample.throttledPeriods = fields["nr_throttled"].flatMap(periodCounter)
            sample.throttledNanoseconds = nanoseconds("throttled_usec")
            sample.bursts = fields["nr_bursts"].flatMap(periodCounter)
            sample.burstNanoseconds = nanoseconds("burst_usec")
        }
        if host.exists(directory + "/cpu.pressure") {
            sample.pressure = read("cpu.pressure").flatMap(CgroupFiles.pressure)
        }
        return sample
    }

    /// `CLOCK_MONOTONIC` now, in nanoseconds.
    public static func monotonicNow() -> Int64 {
        Int64(clamping: MonotonicClock.nanoseconds())
    }

    /// A v1 `cpu.cfs_quota_us` value.
    enum V1Quota: Equatable {
        /// `-1`: no limit.
        case unlimited
        /// A quota in microseconds per period.
        case microseconds(Int64)
    }

    /// A v1 quota: `-1` is none, a positive number is microseconds; nil for anything else.
    static func v1Quota(_ text: String) -> V1Quota? {
        let trimmed = text.trimmingWhitespace()
        if trimmed == "-1" { return .unlimited }
        guard let value = CgroupFiles.integer(trimmed), value > 0 else { return nil }
        return .microseconds(value)
    }

    /// v2 `cpu.max`: `max 100000` (no limit) or `50000 100000`; nil for anything else.
    static func v2Max(_ text: String) -> CPUBandwidth? {
        let fields = text.trimmingWhitespace().split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2, let period = CgroupFiles.counter(fields[1]) else { return nil }
        if fields[0] == "max" { return CPUBandwidth(quotaMicroseconds: nil, periodMicroseconds: period) }
        guard let quota = CgroupFiles.counter(fields[0]), quota > 0 else { return nil }
        return CPUBandwidth(quotaMicroseconds: quota, periodMicroseconds: period)
    }

    /// `key value` lines as text, the value unparsed (cpu.stat mixes `%d` and `%llu` fields).
    static func flatKeyed(_ text: String) -> [Substring: Substring] {
        var result: [Substring: Substring] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2 else { continue }
            result[fields[0]] = fields[1]
        }
        return result
    }

    /// A period counter printed with `%d`: a non-negative number as is (clamped to `Int64.max`
    /// should a kernel print a wider one), a negative one in the 32-bit range as its unsigned
    /// 32-bit pattern; nil for anything else.
    static func periodCounter(_ text: Substring) -> Int64? {
        if let value = CgroupFiles.counter(text) { return value }
        guard let negative = Int32(text), negative < 0 else { return nil }
        return Int64(UInt32(bitPattern: negative))
    }
}

/// What a container's CPU cgroup did between two samples: the deltas of its counters and the
/// limits in force at the end. Computed without trapping whatever the samples hold.
public struct CPUCgroupWindow: Sendable, Equatable {
    /// The cgroup version of the later sample.
    public var version: Int
    /// The window's length in nanoseconds (later − earlier monotonic time; ≤ 0 when the samples
    /// are out of order, which the check reports as no window).
    public var durationNanoseconds: Int64
    /// The quota and period of the later sample.
    public var bandwidth: CPUBandwidth?
    /// The burst allowance of the later sample, in microseconds.
    public var burstMicroseconds: Int64?
    /// CFS periods in the window.
    public var periods: Int64?
    /// Throttled periods in the window.
    public var throttledPeriods: Int64?
    /// Throttled time in the window, summed over CPUs, in nanoseconds.
    public var throttledNanoseconds: Int64?
    /// Periods that used burst in the window.
    public var bursts: Int64?
    /// CPU time run on burst in the window, in nanoseconds.
    public var burstNanoseconds: Int64?
    /// CPU time used in the window, in nanoseconds.
    public var usageNanoseconds: Int64?
    /// CPU pressure of the later sample (its running averages).
    public var pressure: CgroupFiles.Pressure?
    /// Time some of its tasks stalled waiting for a CPU in the window (PSI `some` totals), ns.
    public var pressureSomeStallNanoseconds: Int64?
    /// Time all of its non-idle tasks stalled at once in the window (PSI `full` totals), ns.
    public var pressureFullStallNanoseconds: Int64?
    /// Whether the cgroup was recreated within the window (a new directory inode, another
    /// version, or a counter that went backwards): the deltas are then the later sample's
    /// counters, everything since the new cgroup appeared, which is inside the window.
    public var countersReset: Bool
    /// Files missing from either sample.
    public var missing: [String]

    /// The window from `earlier` to `later`.
    public init(from earlier: CPUCgroupSample, to later: CPUCgroupSample) {
        version = later.version
        durationNanoseconds = later.monotonicNanoseconds.subtractingSaturating(earlier.monotonicNanoseconds)
        bandwidth = later.bandwidth
        burstMicroseconds = later.burstMicroseconds
        pressure = later.pressure
        var missing = earlier.missing
        for name in later.missing where !missing.contains(name) { missing.append(name) }
        self.missing = missing

        // The most periods a window can hold: the kernel's shortest period is 1 ms.
        let plausiblePeriods = max(0, durationNanoseconds / 1_000_000).addingSaturating(1)
        var recreated =
            later.version != earlier.version
            || (earlier.cgroupInode != nil && later.cgroupInode != nil && earlier.cgroupInode != later.cgroupInode)
        let deltas: [Delta] = [
            .periods(earlier.periods, later.periods, plausiblePeriods),
            .periods(earlier.throttledPeriods, later.throttledPeriods, plausiblePeriods),
            .periods(earlier.bursts, later.bursts, plausiblePeriods),
            .time(earlier.throttledNanoseconds, later.throttledNanoseconds),
            .time(earlier.burstNanoseconds, later.burstNanoseconds),
            .time(earlier.usageNanoseconds, later.usageNanoseconds),
        ]
        let results = deltas.map { $0.value }
        if results.contains(where: { $0 == .backwards }) { recreated = true }
        countersReset = recreated
        func pick(_ index: Int, _ absolute: Int64?) -> Int64? {
            if recreated { return absolute.map { max(0, $0) } }
            if case .value(let v) = results[index] { return v }
            return nil
        }
        periods = pick(0, later.periods)
        throttledPeriods = pick(1, later.throttledPeriods)
        bursts = pick(2, later.bursts)
        throttledNanoseconds = pick(3, later.throttledNanoseconds)
        burstNanoseconds = pick(4, later.burstNanoseconds)
        usageNanoseconds = pick(5, later.usageNanoseconds)

        func stall(_ a: CgroupFiles.Pressure.Line?, _ b: CgroupFiles.Pressure.Line?) -> Int64? {
            guard !recreated, let a = a?.totalMicroseconds, let b = b?.totalMicroseconds, b >= a else { return nil }
            return b.subtractingSaturating(a).multipliedSaturating(by: 1000)
        }
        pressureSomeStallNanoseconds = stall(earlier.pressure?.some, later.pressure?.some)
        pressureFullStallNanoseconds = stall(earlier.pressure?.full, later.pressure?.full)
    }

    /// One counter's change between the samples.
    enum Delta {
        /// A period counter: 32 bits wide in the kernel, so a later value below the earlier one is
        /// a wrap when the difference modulo 2^32 is no more than `plausible`, else a reset.
        case periods(Int64?, Int64?, Int64)
        /// A 64-bit time counter: a later value below the earlier one is a reset.
        case time(Int64?, Int64?)

        enum Result: Equatable {
            case value(Int64)
            case backwards
            case unknown
        }

        var value: Result {
            switch self {
            case .periods(let a?, let b?, let plausible):
                if b >= a { return .value(b.subtractingSaturating(a)) }
                let wrap: Int64 = 1 << 32
                if a < wrap, b >= 0 {
                    let wrapped = b.addingSaturating(wrap).subtractingSaturating(a)
                    if wrapped <= plausible { return .value(wrapped) }
                }
                return .backwards
            case .time(let a?, let b?):
                return b >= a ? .value(b.subtractingSaturating(a)) : .backwards
            default:
                return .unknown
            }
        }
    }
}
