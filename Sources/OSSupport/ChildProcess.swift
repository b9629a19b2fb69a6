import Glibc

/// Runs a helper program (e.g. `tar`) without Foundation (`Spawn`): stdin and stdout /dev/null,
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
        var options = Spawn.Options()
        options.standardError = .descriptor(pipeFDs[1])
        let pid: pid_t
        do {
            pid = try Spawn.start(arguments, options)
        } catch {
            close(pipeFDs[1])
            close(pipeFDs[0])
            throw SpawnError(program: arguments[0], code: error.code)
        }
        close(pipeFDs[1])
        var captured: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if captured.count < 65_536 { captured.append(contentsOf: buffer[0..<n]) }
        }
        close(pipeFDs[0])
        let code = Spawn.wait(pid)
        return Outcome(status: code, standardError: String(decoding: captured, as: UTF8.self))
    }
}
