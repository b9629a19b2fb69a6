#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Runs a helper program (e.g. `tar`) without Foundation: `posix_spawnp`, stdout discarded,
/// stderr captured. Keeps the binary free of Foundation's `Process` and the ICU it drags in.
public enum ChildProcess {
    /// How a child ended.
    public struct Outcome: Sendable, Equatable {
        /// The exit status, or 128 + the signal that ended it.
        public var status: Int32
        /// What it wrote on stderr (at most 64 KiB).
        public var standardError: String
    }

    /// Why a child could not be started.
    public struct SpawnError: Error, Sendable, CustomStringConvertible {
        /// The program.
        public var program: String
        /// errno of posix_spawnp.
        public var code: Int32
        public var description: String { "cannot run \(program): \(String(cString: strerror(code)))" }
    }

    /// Runs `arguments` (the first is looked up in PATH) and waits for it.
    public static func run(_ arguments: [String]) throws(SpawnError) -> Outcome {
        precondition(!arguments.isEmpty)
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw SpawnError(program: arguments[0], code: errno) }
        // The read end must not leak into the child; the write end becomes its stderr.
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw SpawnError(program: arguments[0], code: rc)
        }
        var captured: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if captured.count < 65_536 { captured.append(contentsOf: buffer[0..<n]) }
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros in C).
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return Outcome(status: code, standardError: String(decoding: captured, as: UTF8.self))
    }
}

/// Small file-tree operations without Foundation.
public enum FileTree {
    /// Creates a new private directory under `/tmp` (or `$TMPDIR`) named `<prefix>XXXXXX`.
    public static func makeTemporaryDirectory(prefix: String) -> String? {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(prefix)XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { return nil }
        return String(cString: result)
    }

    /// Removes `path` and everything below it, without following links. Errors are ignored:
    /// this cleans up pgnode's own temporary files.
    public static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? HostRoot("/").list(path)) ?? [] { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// The regular files below `path` (relative paths), depth first.
    public static func files(under path: String) -> [String] {
        var result: [String] = []
        for name in (try? HostRoot("/").list(path)) ?? [] {
            var st = stat()
            guard lstat(path + "/" + name, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                result += files(under: path + "/" + name).map { name + "/" + $0 }
            } else if (st.st_mode & S_IFMT) == S_IFREG {
                result.append(name)
            }
        }
        return result
    }
}
