/// How serious a finding is. `ok`, `info`, `warning` and `critical` are ordered;
/// `unavailable` means the check could not run and is outside that order.
public enum Severity: String, Sendable, CaseIterable, Codable {
    case ok
    case info
    case warning
    case critical
    case unavailable

    /// The rank used by `--fail-on`; nil for `unavailable`.
    public var rank: Int? {
        switch self {
        case .ok: 0
        case .info: 1
        case .warning: 2
        case .critical: 3
        case .unavailable: nil
        }
    }

    /// Whether this severity is at or above `threshold` (never for `unavailable`).
    public func isAtLeast(_ threshold: Severity) -> Bool {
        guard let rank, let limit = threshold.rank else { return false }
        return rank >= limit
    }

    /// The worse of two severities (`unavailable` loses to any ranked severity).
    public static func worst(_ a: Severity, _ b: Severity) -> Severity {
        switch (a.rank, b.rank) {
        case (nil, nil): return a
        case (nil, _): return b
        case (_, nil): return a
        case (let x?, let y?): return x >= y ? a : b
        }
    }
}
