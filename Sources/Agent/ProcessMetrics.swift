import Glibc
import HostFacts
import Shipping

/// The standard process metrics of a Prometheus client, read from the agent's own /proc/self at
/// each scrape: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_start_time_seconds`, `process_open_fds` and
/// `process_max_fds`. A file that cannot be read leaves its metrics at their last value.
public enum ProcessMetrics {
    /// What /proc/self/stat says of the process.
    public struct Stat: Sendable, Equatable {
        /// User and system CPU time, in clock ticks.
        public var cpuTicks: UInt64
        /// When the process started, in clock ticks after boot.
        public var startTicks: UInt64
        /// Virtual memory size, in bytes.
        public var virtualBytes: UInt64
        /// Resident set size, in pages.
        public var residentPages: UInt64

        public init(cpuTicks: UInt64, startTicks: UInt64, virtualBytes: UInt64, residentPages: UInt64) {
            self.cpuTicks = cpuTicks
            self.startTicks = startTicks
            self.virtualBytes = virtualBytes
            self.residentPages = residentPages
        }
    }

    /// Parses /proc/<pid>/stat: the fields after the command's closing parenthesis (the command
    /// may itself hold spaces and parentheses). Nil when the text is not of that shape.
    public static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After ")": state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        func field(_ number: Int) -> UInt64? {
            let index = number - 3
            guard index >= 0, index < fields.count else { return nil }
            return UInt64(fields[index].trimmingSuffix("\n"))
        }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
            let rss = field(24)
        else { return nil }
        return Stat(
            cpuTicks: utime.addingReportingOverflow(stime).overflow ? .max : utime + stime, startTicks: start,
            virtualBytes: vsize, residentPages: rss)
    }

    /// The `btime` line of /proc/stat: when the machine booted, in seconds since the epoch.
    public static func parseBootTime(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(line.dropFirst(6).trimmingSuffix(" "))
        }
        return nil
    }

    /// Declares the metrics in `metrics` and refreshes them before every rendering.
    public static func register(_ metrics: MetricsRegistry) {
        metrics.declare("process_cpu_seconds_total", .counter, help: "User and system CPU time spent, in seconds.")
        metrics.declare("process_resident_memory_bytes", .gauge, help: "Resident memory size, in bytes.")
        metrics.declare("process_virtual_memory_bytes", .gauge, help: "Virtual memory size, in bytes.")
        metrics.declare(
            "process_start_time_seconds", .gauge, help: "When the process started, in seconds since the epoch.")
        metrics.declare("process_open_fds", .gauge, help: "Open file descriptors.")
        metrics.declare("process_max_fds", .gauge, help: "The limit on open file descriptors.")
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let page = Double(max(1, sysconf(Int32(_SC_PAGESIZE))))
        let boot = (try? FileIO.readText(path: "/proc/stat", limit: 1 << 20)).flatMap(parseBootTime)
        metrics.onRender { metrics in
            if let text = try? FileIO.readText(path: "/proc/self/stat", limit: 64 << 10), let stat = parseStat(text) {
                metrics.set("process_cpu_seconds_total", [], Double(stat.cpuTicks) / ticks)
                metrics.set("process_resident_memory_bytes", [], Double(stat.residentPages) * page)
                metrics.set("process_virtual_memory_bytes", [], Double(stat.virtualBytes))
                if let boot {
                    metrics.set("process_start_time_seconds", [], Double(boot) + Double(stat.startTicks) / ticks)
                }
            }
            if let open = openDescriptors() { metrics.set("process_open_fds", [], Double(open)) }
            var limit = rlimit()
            if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
                metrics.set("process_max_fds", [], Double(limit.rlim_cur))
            }
        }
    }

    /// The entries of /proc/self/fd (the descriptor that lists them excluded); nil when it cannot be read.
    static func openDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { count += 1 }
        }
        // The directory stream itself holds one descriptor while it is read.
        return max(0, count - 1)
    }
}

extension Substring {
    fileprivate func trimmingSuffix(_ character: Character) -> Substring {
        var result = self
        while result.last == character { result = result.dropLast() }
        return result
    }
}
