import CShims
import Glibc

/// Starting child processes on `posix_spawnp`, without Foundation's `Process` (and the ICU it
/// drags into a static binary). `ChildProcess` (a helper such as `tar`) and the tests' harness
/// (`TestSupport.Subprocess`) both start their children here.
public enum Spawn {
    /// Where one of the child's standard streams comes from or goes.
    public enum Stream: Sendable, Equatable {
        /// `/dev/null`.
        case null
        /// A descriptor of this process, duplicated onto the stream (a pipe end).
        case descriptor(Int32)
        /// A file, appended to (created 0644 when missing).
        case appending(String)
    }

    /// How the child starts besides its arguments.
    public struct Options: Sendable {
        /// Its standard input, output and error.
        public var standardInput: Stream = .null
        public var standardOutput: Stream = .null
        public var standardError: Stream = .null
        /// Its whole environment as `KEY=VALUE`; nil inherits this process's.
        public var environment: [String]?
        /// A process group of its own (its pid), so that the group can be signalled at once.
        public var newProcessGroup = false
        /// An empty signal mask and every signal at its default disposition, rather than what
        /// the spawning thread blocks or ignores.
        public var defaultSignals = false
        /// Closes every descriptor above 2 in the child (glibc 2.34+), rather than relying on
        /// `O_CLOEXEC` everywhere.
        public var closeOtherDescriptors = false

        /// Every stream to /dev/null, the environment inherited, nothing else changed.
        public init() {}
    }

    /// Why a child could not be started.
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// The program.
        public var program: String
        /// posix_spawnp's error number.
        public var code: Int32
        public var description: String { "cannot run \(program): \(String(cString: strerror(code)))" }
    }

    /// Starts `arguments` (the first looked up in PATH) and returns its pid; the caller reaps it
    /// (`wait`).
    public static func start(_ arguments: [String], _ options: Options = Options()) throws(Error) -> pid_t {
        precondition(!arguments.isEmpty)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, stream) in [
            (Int32(0), options.standardInput), (1, options.standardOutput), (2, options.standardError),
        ] {
            switch stream {
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .appending(let path):
                posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            }
        }
        if options.closeOtherDescriptors { pgnode_spawn_closefrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags: Int32 = 0
        if options.defaultSignals {
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            var allSignals = sigset_t()
            sigfillset(&allSignals)
            posix_spawnattr_setsigdefault(&attributes, &allSignals)
            flags |= Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        }
        if options.newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc: Int32
        if let environment = options.environment {
            var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
            defer { for pointer in envp { free(pointer) } }
            rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, &envp)
        } else {
            rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
        }
        guard rc == 0 else { throw Error(program: arguments[0], code: rc) }
        return pid
    }

    /// Waits for `pid` to end (retrying on EINTR) and returns how it ended (`exitStatus`).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return exitStatus(status)
    }

    /// A `waitpid` status as the exit status, or 128 + the signal that ended the child
    /// (WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out: they are macros in C).
    public static func exitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
