import CShims
import Foundation
import OSSupport

/// A child process for tests, started by `OSSupport.Spawn` (`posix_spawnp`) and reaped with
/// `waitpid(pid)`, with a deadline.
///
/// Not Foundation's `Process`: in CI a test hung for good in `Process.waitUntilExit()` while its
/// child (`scripts/containers run-postgres`) had long exited and sat as a zombie that nothing
/// reaped (seen with gdb: the waiting thread in the run loop, no other thread near the child).
/// Foundation learns of a child's end asynchronously; our guess is a lost SIGCHLD in a process
/// with many threads. Whatever the cause, `waitpid` on the child's own pid cannot miss it, and a
/// deadline turns any other hang into a failed test.
///
/// Each child gets its own process group (a deadline kills the whole group), a clean signal
/// mask and default dispositions (test threads block signals; children must not inherit that),
/// and no file descriptors of the test process beyond 0–2 (a leaked pipe end in a long-lived
/// grandchild would keep another reader from ever seeing end-of-file).
public final class Subprocess: @unchecked Sendable {
    /// Where a standard stream goes.
    public enum Stream: Sendable {
        /// Into a pipe this object reads (`standardOutput`, `standardError`).
        case capture
        /// `/dev/null`.
        case discard
        /// Appended to a file.
        case file(String)
    }

    /// A child that could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public var program: String
        public var code: Int32
        public var description: String { "cannot run \(program): \(String(cString: strerror(code)))" }
    }

    /// The child's pid (also its process group id).
    public let pid: pid_t
    /// The arguments it was started with.
    public let arguments: [String]
    private let lock = NSLock()
    private var exitStatus: Int32?
    private var out = Data()
    private var err = Data()
    private let readers = DispatchGroup()

    /// Starts `arguments` (the first looked up in PATH) with `environment` added to this
    /// process's, `stdin` written to its standard input (then closed; /dev/null when nil).
    public init(
        _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
        stdout: Stream = .capture, stderr: Stream = .capture
    ) throws {
        precondition(!arguments.isEmpty)
        self.arguments = arguments
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }

        func pipePair() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [0, 0]
            guard pgnode_pipe_cloexec(&fds) == 0 else { throw SpawnError(program: arguments[0], code: errno) }
            return (fds[0], fds[1])
        }
        var options = Spawn.Options()
        var stdinWriter: Int32 = -1
        if stdin != nil {
            let p = try pipePair()
            options.standardInput = .descriptor(p.read)
            childEnds.append(p.read)
            stdinWriter = p.write
        }
        var captureFDs: [(fd: Int32, isError: Bool)] = []
        for (target, stream) in [(Int32(1), stdout), (Int32(2), stderr)] {
            let spawned: Spawn.Stream
            switch stream {
            case .capture:
                let p = try pipePair()
                spawned = .descriptor(p.write)
                childEnds.append(p.write)
                parentEnds.append(p.read)
                captureFDs.append((p.read, target == 2))
            case .discard:
                spawned = .null
            case .file(let path):
                spawned = .appending(path)
            }
            if target == 1 { options.standardOutput = spawned } else { options.standardError = spawned }
        }
        options.closeOtherDescriptors = true
        options.defaultSignals = true
        options.newProcessGroup = true
        var env = ProcessInfo.processInfo.environment
        if let environment { env.merge(environment) { $1 } }
        options.environment = env.map { "\($0.key)=\($0.value)" }

        let child: pid_t
        do {
            child = try Spawn.start(arguments, options)
        } catch {
            for fd in parentEnds { close(fd) }
            if stdinWriter >= 0 { close(stdinWriter) }
            throw SpawnError(program: arguments[0], code: error.code)
        }
        pid = child
        for (fd, isError) in captureFDs {
            readers.enter()
            Thread.detachNewThread { [self] in
                defer { readers.leave() }
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    lock.withLock {
                        if isError {
                            err.append(contentsOf: buffer[0..<n])
                        } else {
                            out.append(contentsOf: buffer[0..<n])
                        }
                    }
                }
                close(fd)
            }
        }
        if stdinWriter >= 0, let stdin {
            let bytes = Array(stdin.utf8)
            let writer = stdinWriter
            Thread.detachNewThread {
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    offset += n
                }
                close(writer)
            }
        }
    }

    deinit {
        if isRunning { stop() }
    }

    /// Whether the child has not ended yet (reaps it when it has).
    public var isRunning: Bool {
        lock.withLock {
            guard exitStatus == nil else { return false }
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                exitStatus = Self.decode(status)
                return false
            }
            return rc == 0
        }
    }

    /// How it ended: the exit status, or 128 + the signal that ended it; nil while it runs.
    public var terminationStatus: Int32? {
        _ = isRunning
        return lock.withLock { exitStatus }
    }

    /// Waits until it ends, at most `timeout` seconds; past that the whole process group is
    /// killed (SIGKILL) and the result says so. Then waits a little for its output pipes.
    @discardableResult
    public func wait(timeout: Double = 600) -> (status: Int32, timedOut: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while isRunning {
            if Date() >= deadline {
                timedOut = true
                stop()
                break
            }
            usleep(10_000)
        }
        // A grandchild may still hold a pipe; do not wait for it for long.
        _ = readers.wait(timeout: .now() + 10)
        return (terminationStatus ?? 137, timedOut)
    }

    /// Sends `signal` to the child alone.
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Kills its whole process group and reaps it.
    public func stop() {
        // Once reaped, the pid (and group id) may belong to someone else.
        guard lock.withLock({ exitStatus == nil }) else { return }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        lock.withLock {
            guard exitStatus == nil else { return }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitStatus = Self.decode(status)
        }
    }

    /// What it wrote on standard output so far (all of it after `wait`).
    public var standardOutput: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    /// What it wrote on standard error so far (all of it after `wait`).
    public var standardError: String { lock.withLock { String(decoding: err, as: UTF8.self) } }

    private static func decode(_ status: Int32) -> Int32 { Spawn.exitStatus(status) }
}
