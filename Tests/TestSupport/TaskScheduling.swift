import Foundation

/// What the kernel itself says of one task's scheduling, from procfs: the witness that tests hold
/// the probes' counts against, and the affinity moves that make a test's workload move.
public enum TaskScheduling {
    /// How many times the kernel moved thread `tid` of process `pid` between CPUs since the thread
    /// was created: `se.nr_migrations` in `/proc/<pid>/task/<tid>/sched` (kept without
    /// CONFIG_SCHEDSTATS). The kernel adds one in `set_task_cpu()` when the CPU changes, where
    /// the `sched_migrate_task` tracepoint fires; a new task's placement (`wake_up_new_task`)
    /// counts for neither. Nil when the thread is gone or the line missing.
    public static func migrations(pid: Int32, tid: Int32? = nil) -> UInt64? {
        schedValue("se.nr_migrations", pid: pid, tid: tid)
    }

    /// How many times thread `tid` of process `pid` gave up its CPU to wait (for a query, a
    /// lock, a timer…): `nr_voluntary_switches` of the same file. A test's measure of work done
    /// by a task that waits between its units of work (a backend between queries).
    public static func voluntarySwitches(pid: Int32, tid: Int32? = nil) -> UInt64? {
        schedValue("nr_voluntary_switches", pid: pid, tid: tid)
    }

    /// The value of line `name` of `/proc/<pid>/task/<tid>/sched` (`name   :   value`).
    private static func schedValue(_ name: String, pid: Int32, tid: Int32?) -> UInt64? {
        let path = "/proc/\(pid)/task/\(tid ?? pid)/sched"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name else { continue }
            return UInt64(parts[1].trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The fields of `/proc/<pid>/task/<tid>/stat` after the command name: index 0 is field 3
    /// (the state).
    private static func statFields(pid: Int32, tid: Int32?) -> [Substring]? {
        let path = "/proc/\(pid)/task/\(tid ?? pid)/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// The thread's state letter (`R`, `S`, `D`, `T` stopped, …); nil when it is gone.
    public static func state(pid: Int32, tid: Int32? = nil) -> Character? {
        statFields(pid: pid, tid: tid)?.first?.first
    }

    /// The CPU the thread is on or last ran on (`task_cpu()`, field 39); nil when it is gone.
    public static func cpu(pid: Int32, tid: Int32? = nil) -> Int? {
        guard let fields = statFields(pid: pid, tid: tid), fields.count > 36 else { return nil }
        return Int(fields[36])
    }

    /// The thread group of thread `tid` (`Tgid:` of its status); nil when it is gone.
    public static func threadGroup(of tid: Int32) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(tid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Whether the thread is off every run queue: neither running nor waiting for a CPU, so that
    /// nothing moves it until it is woken. The kernel gives a thread's wait channel
    /// (`/proc/<pid>/task/<tid>/wchan`, `get_wchan()`) only then, `0` otherwise: a thread that
    /// is already `T` (stopped) or frozen but was preempted before it left its CPU is still
    /// queued, and the balancer or an affinity change can still move it.
    public static func isOffRunQueue(pid: Int32, tid: Int32? = nil) -> Bool {
        let path = "/proc/\(pid)/task/\(tid ?? pid)/wchan"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        let channel = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return !channel.isEmpty && channel != "0"
    }

    /// Waits until every one of `tids` (threads that are their own process, or any thread given
    /// as its pid) is off every run queue, at most `timeout` seconds (a hang guard); returns
    /// those that are not.
    public static func waitUntilOffRunQueue(_ tids: [Int32], timeout: Double = 60) -> [Int32] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let queued = tids.filter { !isOffRunQueue(pid: $0) }
            if queued.isEmpty || Date() >= deadline { return queued }
            usleep(10_000)
        }
    }

    /// Waits until every one of `pids` is stopped (state `T`) and off every run queue, or can
    /// never run again (a zombie `Z` — a backend that exited while its postmaster, stopped too,
    /// could not reap it — `X`, or gone), at most `timeout` seconds (a hang guard); returns the
    /// pids that are not.
    public static func waitUntilStopped(_ pids: [Int32], timeout: Double = 60) -> [Int32] {
        let deadline = Date().addingTimeInterval(timeout)
        func quiescent(_ pid: Int32) -> Bool {
            switch state(pid: pid) {
            case nil, "Z", "X": true
            case "T": isOffRunQueue(pid: pid)
            default: false
            }
        }
        while true {
            let running = pids.filter { !quiescent($0) }
            if running.isEmpty || Date() >= deadline { return running }
            usleep(10_000)
        }
    }

    /// The CPU affinity of `pid` as a CPU list (`0-3`, `0,2`), from `taskset`.
    public static func affinity(of pid: Int32) throws -> String {
        let result = try Command.run(["taskset", "-c", "-p", String(pid)])
        guard result.status == 0, let list = result.stdout.split(separator: ":").last else {
            throw AffinityError(message: "taskset -c -p \(pid): \(result.stderr)")
        }
        return list.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Sets the CPU affinity of `pid` to `cpus` (a CPU list) with `taskset`.
    public static func setAffinity(of pid: Int32, to cpus: String) throws {
        let result = try Command.run(["taskset", "-c", "-p", cpus, String(pid)])
        guard result.status == 0 else { throw AffinityError(message: "taskset -c -p \(cpus) \(pid): \(result.stderr)") }
    }

    /// Pins `pid`, which must be off every run queue (stopped, frozen), to one CPU other than the
    /// one it last ran on, so that the kernel must move it when it next runs; returns its
    /// affinity before, to give back with `setAffinity` once the move happened. Needs two CPUs.
    public static func pinAway(_ pid: Int32) throws -> String {
        guard let cpu = cpu(pid: pid) else { throw AffinityError(message: "no CPU for \(pid): gone") }
        let before = try affinity(of: pid)
        try setAffinity(of: pid, to: cpu == 0 ? "1" : "0")
        return before
    }

    /// Waits until the kernel counted a migration of `pid` past `baseline`, at most `timeout`
    /// seconds (a hang guard); returns whether it did.
    public static func waitForMigration(of pid: Int32, past baseline: UInt64, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let now = migrations(pid: pid), now > baseline { return true }
            if Date() >= deadline { return false }
            usleep(10_000)
        }
    }
}

/// `taskset` failed.
public struct AffinityError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
