/// An HTTP header that every request to the receiver carries (`--endpoint-header 'Name: value'`),
/// such as Loki's tenant `X-Scope-OrgID` or a gateway's key. The text comes from the command
/// line or the environment, so it is checked before it can reach a request: a field name of RFC
/// 9110 token characters, a value without control characters (no CR or LF: no header injection),
/// and none of the headers pgnode sets itself.
public struct EndpointHeader: Sendable, Equatable {
    /// The field name, as given.
    public let name: String
    /// The field value, without surrounding spaces.
    public let value: String

    /// The longest header accepted, in bytes (libcurl's own line limit is larger).
    public static let maximumLength = 4096

    /// Headers pgnode writes itself (case-insensitive): giving them would contradict the body.
    /// `Authorization` is refused only beside a token file, which sets it.
    public static let reserved: Set<String> = [
        "content-type", "content-encoding", "content-length", "transfer-encoding", "host", "connection", "expect",
    ]

    /// Why a header was refused.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case noColon
        case badName(String)
        case badValue(String)
        case tooLong
        case reserved(String)

        public var description: String {
            switch self {
            case .noColon: return "an endpoint header is 'Name: value'"
            case .badName(let name): return "'\(name)' is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
            case .badValue(let name): return "the value of header '\(name)' has a control character"
            case .tooLong: return "an endpoint header is at most \(EndpointHeader.maximumLength) bytes"
            case .reserved(let name): return "header '\(name)' is set by pgnode itself"
            }
        }
    }

    /// Parses `Name: value`; `withTokenFile` refuses `Authorization`, which the token sets.
    public static func parse(_ text: String, withTokenFile: Bool = false) throws(ParseError) -> EndpointHeader {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumLength else { throw .tooLong }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw .noColon }
        let nameBytes = bytes[..<colon]
        let name = String(decoding: nameBytes, as: UTF8.self)
        guard !nameBytes.isEmpty, nameBytes.allSatisfy(isTokenCharacter) else { throw .badName(name) }
        var valueBytes = bytes[(colon + 1)...]
        while let first = valueBytes.first, first == 0x20 || first == 0x09 { valueBytes = valueBytes.dropFirst() }
        while let last = valueBytes.last, last == 0x20 || last == 0x09 { valueBytes = valueBytes.dropLast() }
        // Visible characters, spaces, tabs and UTF-8 (obs-text); never CR, LF, NUL or DEL.
        guard valueBytes.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { throw .badValue(name) }
        let lower = name.lowercased()
        if reserved.contains(lower) || (withTokenFile && lower == "authorization") { throw .reserved(name) }
        return EndpointHeader(name: name, value: String(decoding: valueBytes, as: UTF8.self))
    }

    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}
