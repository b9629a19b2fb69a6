import PGNodeModel

/// The OpenTelemetry SDK's exporter variables that the agent honours, read from the environment
/// (the OpenTelemetry specification, "OTLP Exporter Configuration"; an empty variable is unset):
///
/// - `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`: the logs URL, used as is (a URL without a path gets `/`).
/// - else `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL; logs go to `v1/logs` relative to it (the
///   base is given a trailing `/` first, so `http://c:4318` and `http://c:4318/` both give
///   `http://c:4318/v1/logs`, and `http://c:4318/collector` gives `…/collector/v1/logs`).
/// - `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2` in the
///   W3C Baggage format without properties; spaces around members, keys and values are trimmed,
///   values are percent-decoded; every header must then pass `EndpointHeader`'s checks.
/// - `OTEL_RESOURCE_ATTRIBUTES`: the same list format; only `k8s.cluster.name` is taken. As the
///   specification asks, a value that does not parse is discarded as a whole (the caller says so).
///
/// The text comes from outside, so everything is bounded: at most `maximumLength` bytes per
/// variable and `maximumHeaders` headers; nothing here can trap.
public struct OTLPEnvironment: Sendable, Equatable {
    /// The variables, by name.
    public enum Variable {
        public static let logsEndpoint = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
        public static let endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
        public static let logsHeaders = "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
        public static let headers = "OTEL_EXPORTER_OTLP_HEADERS"
        public static let resourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
    }

    /// The longest value read from one variable, in bytes.
    public static let maximumLength = 65_536
    /// The most headers taken from one variable.
    public static let maximumHeaders = 64

    /// The logs URL, when one of the endpoint variables is set.
    public var endpoint: String?
    /// The variable `endpoint` came from.
    public var endpointVariable: String?
    /// The headers (empty when neither headers variable is set).
    public var headers: [EndpointHeader]
    /// The variable the headers came from, if any.
    public var headersVariable: String?
    /// `k8s.cluster.name` from `OTEL_RESOURCE_ATTRIBUTES`, if it is there and valid.
    public var clusterName: String?
    /// Why `OTEL_RESOURCE_ATTRIBUTES` was discarded, if it was (not an error: it is optional).
    public var resourceAttributesProblem: String?

    /// No variable set.
    public init() {
        endpoint = nil
        endpointVariable = nil
        headers = []
        headersVariable = nil
        clusterName = nil
        resourceAttributesProblem = nil
    }

    /// Reads the variables; `withTokenFile` refuses an `Authorization` header (the token sets it).
    /// An endpoint or headers variable that cannot be used is an error naming it.
    public init(_ environment: [String: String], withTokenFile: Bool = false) throws(OTLPEnvironmentError) {
        func value(_ name: String) -> String? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        endpoint = nil
        endpointVariable = nil
        if let url = value(Variable.logsEndpoint) {
            endpoint = try Self.logsURL(signalEndpoint: url, variable: Variable.logsEndpoint)
            endpointVariable = Variable.logsEndpoint
        } else if let url = value(Variable.endpoint) {
            endpoint = try Self.logsURL(baseEndpoint: url, variable: Variable.endpoint)
            endpointVariable = Variable.endpoint
        }
        headers = []
        headersVariable = nil
        for name in [Variable.logsHeaders, Variable.headers] {
            guard let text = value(name) else { continue }
            headers = try Self.headers(text, variable: name, withTokenFile: withTokenFile)
            headersVariable = name
            break
        }
        clusterName = nil
        resourceAttributesProblem = nil
        if let text = value(Variable.resourceAttributes) {
            do {
                let members = try Self.keyValueList(text)
                if let name = members.last(where: { $0.key == "k8s.cluster.name" })?.value {
                    if let problem = ResourceAttributes.clusterNameProblem(name) {
                        resourceAttributesProblem = "k8s.cluster.name: \(problem)"
                    } else {
                        clusterName = name
                    }
                }
            } catch {
                resourceAttributesProblem = error.reason
            }
        }
    }

    /// A per-signal endpoint (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`): used as is; without a path, `/`.
    public static func logsURL(signalEndpoint url: String, variable: String) throws(OTLPEnvironmentError) -> String {
        let bytes = Array(url.utf8)
        let hostEnd = try checkedHostEnd(url, variable: variable)
        guard hostEnd == bytes.count || bytes[hostEnd] != UInt8(ascii: "/") else { return url }
        return String(decoding: bytes[..<hostEnd] + Array("/".utf8) + bytes[hostEnd...], as: UTF8.self)
    }

    /// The logs URL from a base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`): `v1/logs` relative to
    /// the base with a trailing slash. A base with a query or fragment is refused (appending a
    /// path to it would put the path inside them).
    public static func logsURL(baseEndpoint url: String, variable: String) throws(OTLPEnvironmentError) -> String {
        _ = try checkedHostEnd(url, variable: variable)
        guard !url.utf8.contains(UInt8(ascii: "?")), !url.utf8.contains(UInt8(ascii: "#")) else {
            throw OTLPEnvironmentError(variable: variable, reason: "a base URL has no query or fragment")
        }
        return (url.hasSuffix("/") ? url : url + "/") + "v1/logs"
    }

    /// Checks an http(s) URL with a host and without control characters or spaces; returns the
    /// byte index where its host (and port) ends: its path's `/`, a `?`, a `#` or the end.
    static func checkedHostEnd(_ url: String, variable: String) throws(OTLPEnvironmentError) -> Int {
        let bytes = Array(url.utf8)
        guard bytes.count <= maximumLength else {
            throw OTLPEnvironmentError(variable: variable, reason: "longer than \(maximumLength) bytes")
        }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw OTLPEnvironmentError(variable: variable, reason: "a URL has no spaces or control characters")
        }
        let scheme: Int
        if url.hasPrefix("http://") {
            scheme = 7
        } else if url.hasPrefix("https://") {
            scheme = 8
        } else {
            throw OTLPEnvironmentError(variable: variable, reason: "not an http:// or https:// URL")
        }
        let rest = bytes[scheme...]
        let hostEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
        guard (hostEnd ?? bytes.count) > scheme else {
            throw OTLPEnvironmentError(variable: variable, reason: "a URL names a host")
        }
        return hostEnd ?? bytes.count
    }

    /// The headers of a headers variable: every member must be a header `EndpointHeader` accepts.
    public static func headers(_ text: String, variable: String, withTokenFile: Bool = false)
        throws(OTLPEnvironmentError) -> [EndpointHeader]
    {
        let members: [(key: String, value: String)]
        do { members = try keyValueList(text) } catch {
            throw OTLPEnvironmentError(variable: variable, reason: error.reason)
        }
        guard members.count <= maximumHeaders else {
            throw OTLPEnvironmentError(variable: variable, reason: "more than \(maximumHeaders) headers")
        }
        var result: [EndpointHeader] = []
        for member in members {
            do {
                result.append(try EndpointHeader.parse("\(member.key): \(member.value)", withTokenFile: withTokenFile))
            } catch {
                // The message may quote the name: control characters shown as `?`, bounded.
                throw OTLPEnvironmentError(
                    variable: variable, reason: printable(Array(error.description.utf8)[...], 200))
            }
        }
        return result
    }

    /// `key1=value1,key2=value2` (W3C Baggage without properties): members separated by `,`,
    /// spaces and tabs around members, keys and values trimmed, empty members skipped; a key is
    /// not empty and has no `%`, a value is percent-decoded (`%` and two hex digits, and the
    /// result UTF-8). A member without `=`, a bad escape or a value that is not UTF-8 refuses the
    /// whole list.
    public static func keyValueList(_ text: String) throws(OTLPEnvironmentError) -> [(key: String, value: String)] {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumLength else {
            throw OTLPEnvironmentError(variable: "", reason: "longer than \(maximumLength) bytes")
        }
        var result: [(key: String, value: String)] = []
        for member in bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let trimmed = trim(member)
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: UInt8(ascii: "=")) else {
                throw OTLPEnvironmentError(variable: "", reason: "'\(printable(trimmed))' is not key=value")
            }
            let key = trim(trimmed[..<equals])
            guard !key.isEmpty, !key.contains(UInt8(ascii: "%")) else {
                throw OTLPEnvironmentError(variable: "", reason: "'\(printable(trimmed))' has no valid key")
            }
            guard let value = percentDecoded(trim(trimmed[(equals + 1)...])) else {
                throw OTLPEnvironmentError(
                    variable: "", reason: "the value of '\(printable(key))' is not percent-encoded UTF-8")
            }
            result.append((String(decoding: key, as: UTF8.self), value))
        }
        return result
    }

    static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    /// `%XX` decoded; nil for a `%` without two hex digits or a result that is not UTF-8.
    static func percentDecoded(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = hexValue(bytes[index + 1]),
                    let low = hexValue(bytes[index + 2])
                else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// At most `limit` bytes of `bytes` for a message, control characters as `?`.
    static func printable(_ bytes: ArraySlice<UInt8>, _ limit: Int = 64) -> String {
        let shown = bytes.prefix(limit).map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }
        return String(decoding: shown, as: UTF8.self) + (bytes.count > limit ? "…" : "")
    }
}

/// An OpenTelemetry variable that cannot be used, naming it.
public struct OTLPEnvironmentError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The variable (empty for a list parsed on its own).
    public var variable: String
    /// What is wrong with it.
    public var reason: String
    public var description: String { variable.isEmpty ? reason : "\(variable): \(reason)" }
}
