import Glibc
import Logging
import PGNodeModel

/// A swift-log handler that writes one JSON object a line on stderr:
///
///     {"time":"2026-11-26T01:56:53.173Z","level":"warning","logger":"pgnode.shipping",
///      "message":"delivery failed; will retry","reason":"http_503","attempt":"2"}
///
/// Metadata keys become top-level keys (a key that clashes with `time`, `level`, `logger` or
/// `message` is prefixed with `meta.`). Each line is written with a single write(2), so lines from
/// different threads never interleave. Findings never go here: they go to stdout or the receiver.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let fd: Int32

    /// A handler for `label` at `level`, writing to `fd` (stderr by default).
    public init(label: String, level: Logger.Level = .info, fd: Int32 = 2) {
        self.label = label
        self.logLevel = level
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.line(
            time: Timestamp.now(), level: event.level, label: label, message: event.message.description,
            metadata: merged)
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// The JSON line (with its newline) of one log event.
    public static func line(
        time: Timestamp, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var object: JSONObject = [
            "time": .string(time.rfc3339), "level": .string(level.rawValue), "logger": .string(label),
            "message": .string(message),
        ]
        for key in metadata.keys.sorted() {
            let name = object[key] == nil ? key : "meta.\(key)"
            object[name] = json(metadata[key]!)
        }
        return JSONWriter.string(.object(object)) + "\n"
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let dict):
            var object = JSONObject()
            for key in dict.keys.sorted() { object[key] = json(dict[key]!) }
            return .object(object)
        }
    }
}
