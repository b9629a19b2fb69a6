import PGNodeModel

/// Writes findings as NDJSON: one `pgnode.finding.v1` object a line.
public struct NDJSONFormatter: Sendable {
    /// A formatter.
    public init() {}

    /// The lines for `findings`, each ending in a newline.
    public func format(_ findings: [Finding]) -> String {
        var out = ""
        for finding in findings {
            out += finding.jsonLine
            out += "\n"
        }
        return out
    }
}
