import Foundation

/// A log receiver on 127.0.0.1 (`Tests/Receivers/receiver.py`) for shipping tests: it answers like
/// the API of `mode`, decodes gzip bodies, injects faults on demand and logs every request.
public final class Receiver: @unchecked Sendable {
    /// One request it received.
    public struct Request: Sendable {
        /// When it arrived (seconds since the epoch).
        public var time: Double
        /// The request path.
        public var path: String
        /// Header fields, lowercased names.
        public var headers: [String: String]
        /// Whether the body came gzip-encoded.
        public var gzip: Bool
        /// The decoded body.
        public var body: String
        /// What the receiver answered ("hang" for a held request).
        public var status: String
        /// The common name of the client certificate, when one was required.
        public var clientCN: String?
    }

    /// The port it listens on.
    public let port: Int
    /// Its directory (request log, port file).
    public let directory: String
    private let process: Subprocess

    /// Starts a receiver; `options` are extra arguments (`--fail-first 3`, …). `port` 0 picks one.
    public init(mode: String, port: Int = 0, options: [String] = [], directory: String? = nil) throws {
        let dir = try directory ?? Fixtures.temporaryDirectory("pgnode-receiver")
        self.directory = dir
        let portFile = "\(dir)/port"
        try? FileManager.default.removeItem(atPath: portFile)
        let process = try Subprocess(
            [
                "python3", TestEnvironment.packageRoot.appendingPathComponent("Tests/Receivers/receiver.py").path,
                "--mode", mode, "--port", String(port), "--port-file", portFile, "--log", "\(dir)/requests.jsonl",
            ] + options, stdout: .discard, stderr: .file("\(dir)/receiver.log"))
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: portFile) {
            guard Date() < deadline, process.isRunning else {
                process.stop()
                throw ReceiverError.didNotStart
            }
            usleep(20_000)
        }
        self.port = Int(try String(contentsOfFile: portFile, encoding: .utf8)) ?? 0
    }

    /// `http://127.0.0.1:<port><path>`.
    public func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)\(path)" }

    /// `https://127.0.0.1:<port><path>`, for a receiver started with `--tls-cert`.
    public func httpsURL(_ path: String = "") -> String { "https://127.0.0.1:\(port)\(path)" }

    /// Every request so far, in arrival order.
    public func requests() -> [Request] {
        guard let text = try? String(contentsOfFile: "\(directory)/requests.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            let status = (object["status"] as? Int).map(String.init) ?? (object["status"] as? String) ?? ""
            return Request(
                time: object["t"] as? Double ?? 0, path: object["path"] as? String ?? "",
                headers: object["headers"] as? [String: String] ?? [:], gzip: object["gzip"] as? Bool ?? false,
                body: object["body"] as? String ?? "", status: status, clientCN: object["client_cn"] as? String)
        }
    }

    /// Waits until `condition` holds for the requests so far, or `timeout` seconds pass.
    @discardableResult
    public func wait(timeout: Double = 20, until condition: ([Request]) -> Bool) -> [Request] {
        let deadline = Date().addingTimeInterval(timeout)
        var seen = requests()
        while !condition(seen) && Date() < deadline {
            usleep(50_000)
            seen = requests()
        }
        return seen
    }

    /// Stops it (the port is then free).
    public func stop() {
        process.stop()
    }

    deinit { stop() }

    /// A TCP port on 127.0.0.1 that was free a moment ago (for a receiver started later).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A receiver that did not come up.
public enum ReceiverError: Error {
    case didNotStart
}
