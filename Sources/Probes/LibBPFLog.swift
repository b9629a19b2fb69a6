import CLibBPF
import Glibc
import HostFacts
import Logging

/// libbpf's diagnostics: routed to pgnode's logger at debug level, and captured per thread
/// while an object is opened or loaded so that a failure can carry libbpf's own message and the
/// verifier log (libbpf prints both through this callback, on the thread that called it).
enum LibBPFLog {
    static let logger = Logger(label: "pgnode.bpf")

    /// Messages captured on one thread.
    final class Capture {
        var lines: [String] = []
    }

    /// The capture of the current thread, if one is active (pthread-specific: libbpf calls the
    /// print function synchronously on the thread that made the libbpf call).
    nonisolated(unsafe) private static var key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Installs the print callback once per process.
    static let install: Void = {
        _ = key
        libbpf_set_print { level, format, args in
            guard let format, let args else { return 0 }
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = vsnprintf(&buffer, buffer.count, format, args)
            guard n >= 0 else { return 0 }
            var text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            while text.hasSuffix("\n") { text.removeLast() }
            if let raw = pthread_getspecific(LibBPFLog.key) {
                Unmanaged<Capture>.fromOpaque(raw).takeUnretainedValue().lines.append(
                    contentsOf: text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
            }
            let levelName =
                switch level {
                case LIBBPF_WARN: "warn"
                case LIBBPF_INFO: "info"
                default: "debug"
                }
            LibBPFLog.logger.debug("\(text)", metadata: ["libbpf_level": "\(levelName)"])
            return 0
        }
    }()

    /// Runs `body` with libbpf's messages on this thread captured.
    static func capturing<T>(_ body: () throws -> T) rethrows -> (T, [String]) {
        _ = install
        let capture = Capture()
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(capture).toOpaque())
        defer { pthread_setspecific(key, previous) }
        let result = try withExtendedLifetime(capture) { try body() }
        return (result, capture.lines)
    }

    /// The last line libbpf printed outside a verifier log, e.g. "prog 'x': failed to load: -13".
    static func lastMessage(_ lines: [String]) -> String {
        var inLog = false
        var last = ""
        for line in lines {
            if line.contains("-- BEGIN PROG LOAD LOG --") {
                inLog = true
                continue
            }
            if line.contains("-- END PROG LOAD LOG --") {
                inLog = false
                continue
            }
            let text = line.hasPrefix("libbpf: ") ? String(line.dropFirst(8)) : line
            // "failed to load object 'x'" only repeats what the error says; keep the line before.
            if !inLog && !text.trimmingWhitespace().isEmpty && !text.hasPrefix("failed to load object") {
                last = text
            }
        }
        return last
    }

    /// The last `maxLines` lines of the last verifier log in `lines`, empty when there is none.
    static func verifierLogTail(_ lines: [String], maxLines: Int = 20) -> String {
        guard let begin = lines.lastIndex(where: { $0.contains("-- BEGIN PROG LOAD LOG --") }) else { return "" }
        let end = lines[begin...].firstIndex(where: { $0.contains("-- END PROG LOAD LOG --") }) ?? lines.endIndex
        let log = lines[(begin + 1)..<end].filter { !$0.isEmpty }
        return log.suffix(maxLines).joined(separator: "\n")
    }

    /// The program named in a libbpf failure message ("prog 'name': …").
    static func failedProgram(_ lines: [String]) -> String? {
        for line in lines.reversed() {
            guard let start = line.firstRange(of: "prog '") else { continue }
            let rest = line[start.upperBound...]
            if let end = rest.firstIndex(of: "'") { return String(rest[..<end]) }
        }
        return nil
    }
}
