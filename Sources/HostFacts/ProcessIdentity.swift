import Glibc

/// A process as pgnode found it: its pid and the time it started (field 22 of
/// `/proc/<pid>/stat`, clock ticks after boot). A pid is only a number, which the kernel gives
/// to a new process once the old one has exited; the pair names one process for good.
///
/// Files read by pid (`proc/<pid>/root/…`, `environ`, `cwd`) are confirmed to be of the process
/// discovered: its start time is read again (through the `proc/<pid>` directory opened for the
/// read, see `ContainerRoot`) and a different one means the pid was reused, a missing one that
/// the process exited. A pidfd (`pidfd_open`) would do the same only for pids of pgnode's own
/// pid namespace, and the DaemonSet reads the host's processes through `--host-root /host`
/// (`/host/proc`) from a pod of its own: the start time, read through that same procfs, works
/// there and on the node alike.
public struct ProcessIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The pid, in the pid namespace of the procfs under the host root.
    public var pid: Int32
    /// When the process started, in clock ticks after boot.
    public var startTime: UInt64

    /// A process identity.
    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    public var description: String { "process \(pid) (started at tick \(startTime))" }

    /// The identity of the process that has pid `pid` under `host` now.
    public static func read(host: HostRoot, pid: Int32) throws(HostReadError) -> ProcessIdentity {
        ProcessIdentity(pid: pid, startTime: try currentStartTime(host: host, pid: pid))
    }

    /// The start time (field 22) in the text of a `stat` file, or nil when it has no such field.
    /// The command (field 2) is between the first `(` and the last `)`: it may hold spaces and
    /// parentheses of its own.
    public static func startTime(stat text: some StringProtocol) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // Fields from 3 (the state) on; the start time is field 22.
        let fields = text[text.index(after: close)...].split(separator: " ", maxSplits: 21)
        guard fields.count >= 20 else { return nil }
        return UInt64(fields[19])
    }

    /// Throws unless process `pid` under `host` is still this one: `.processReplaced` when the pid
    /// names a process that started at another time, `.processExited` when it names none.
    public func confirm(host: HostRoot) throws(HostReadError) {
        let now = try Self.currentStartTime(host: host, pid: pid)
        guard now == startTime else { throw .processReplaced(pid: pid) }
    }

    /// Throws unless `directory`, an open `proc/<pid>` directory, is this process's.
    func confirm(directory: Int32) throws(HostReadError) {
        let fd = openat(directory, "stat", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw Self.exited(errno: errno, pid: pid, path: "stat") }
        defer { close(fd) }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(fd: fd, path: "proc/\(pid)/stat", limit: Self.statLimit)
        } catch {
            if case .system(_, let code) = error { throw Self.exited(errno: code, pid: pid, path: "stat") }
            throw error
        }
        guard let now = Self.startTime(stat: String(decoding: bytes, as: UTF8.self)) else {
            throw .system(path: "proc/\(pid)/stat", errno: EINVAL)
        }
        guard now == startTime else { throw .processReplaced(pid: pid) }
    }

    /// The most bytes read from a `stat` file (a few hundred in practice).
    static let statLimit = 64 << 10

    static func currentStartTime(host: HostRoot, pid: Int32) throws(HostReadError) -> UInt64 {
        let text: String
        do {
            text = try host.readText("proc/\(pid)/stat", limit: statLimit)
        } catch {
            if case .notFound = error { throw .processExited(pid: pid) }
            if case .system(_, let code) = error { throw exited(errno: code, pid: pid, path: "stat") }
            throw error
        }
        guard let value = startTime(stat: text) else { throw .system(path: "proc/\(pid)/stat", errno: EINVAL) }
        return value
    }

    /// The error for `errno` from opening or reading a file of process `pid`: ENOENT and ESRCH
    /// mean it has exited.
    static func exited(errno code: Int32, pid: Int32, path: String) -> HostReadError {
        code == ENOENT || code == ESRCH ? .processExited(pid: pid) : .from(errno: code, path: "proc/\(pid)/\(path)")
    }
}
