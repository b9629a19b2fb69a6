/// The fields of `/etc/os-release` that pgnode reports (os-release(5)).
public struct OSRelease: Sendable, Equatable {
    /// `ID`, e.g. `debian`, `ubuntu`, `amzn`, `cos`, `bottlerocket`, `flatcar`.
    public var id: String?
    /// `VERSION_ID`, e.g. `12`, `22.04`.
    public var versionID: String?
    /// `PRETTY_NAME`.
    public var prettyName: String?

    /// Parses os-release text: `KEY=value` lines, values optionally quoted, comments ignored.
    public static func parse(_ text: String) -> OSRelease {
        var values: [String: String] = [:]
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.trimmingWhitespace()
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            var value = String(line[line.index(after: eq)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            value = value.replacingBackslashEscapes()
            values[key] = value
        }
        return OSRelease(id: values["ID"], versionID: values["VERSION_ID"], prettyName: values["PRETTY_NAME"])
    }
}

extension String {
    fileprivate func replacingBackslashEscapes() -> String {
        guard contains("\\") else { return self }
        var out = ""
        var escaped = false
        for ch in self {
            if escaped {
                out.append(ch)
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else {
                out.append(ch)
            }
        }
        return out
    }
}
