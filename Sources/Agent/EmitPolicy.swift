import PGNodeModel

/// Which container findings the agent emits each window (`--emit`, `--heartbeat`,
/// `--min-severity`). Node findings are not its concern: the loop emits them when they change.
public struct EmitPolicy: Sendable, Equatable {
    /// `--emit`.
    public enum Mode: String, Sendable, CaseIterable {
        /// A container's finding when the container appears, when the finding changes, and as a
        /// heartbeat every `heartbeat` windows.
        case changes
        /// Every container finding of every window.
        case all
    }

    /// `--emit`.
    public var mode: Mode
    /// `--heartbeat`: windows after which an unchanged finding is emitted again (at least 1).
    public var heartbeat: Int
    /// `--min-severity`: findings below it are not emitted, except the first one after a finding
    /// at or above it (so that the recovery is seen). `unavailable` always passes: it says that
    /// pgnode could not look, whatever the threshold.
    public var minSeverity: Severity

    /// A policy; the defaults are the agent's.
    public init(mode: Mode = .changes, heartbeat: Int = 60, minSeverity: Severity = .ok) {
        self.mode = mode
        self.heartbeat = max(1, heartbeat)
        self.minSeverity = minSeverity.rank == nil ? .ok : minSeverity
    }

    /// Today's behaviour before `--emit changes`: everything, every window.
    public static let all = EmitPolicy(mode: .all)

    /// Whether a finding of `severity` passes `--min-severity`.
    public func passes(_ severity: Severity) -> Bool {
        severity == .unavailable || severity.isAtLeast(minSeverity)
    }
}

/// The emit policy applied window after window: what it remembers of each container's findings
/// (keyed by container id and check) to tell which are news.
///
/// A finding has changed when its severity differs from the last window's, or, for `warning`,
/// `critical` and `unavailable`, its summary does: an `ok` or `info` summary carries the window's
/// own numbers (the working set, the requests counted, the migrations), which are no news, while
/// a warning whose numbers move is, and so is another reason for being unavailable.
public struct EmitFilter: Sendable {
    private struct Last: Sendable {
        var severity: Severity
        var summary: String
        /// Windows since it was last emitted.
        var sinceEmitted: Int
        var passed: Bool
    }

    /// The policy.
    public let policy: EmitPolicy
    private var last: [String: Last] = [:]

    /// A filter that has seen nothing yet.
    public init(policy: EmitPolicy) { self.policy = policy }

    /// How many container findings it remembers (one per container and check).
    public var remembered: Int { last.count }

    /// Whether a change of summary alone is no news at `severity` (`ok`, `info`).
    static func numbersAreNoNews(_ severity: Severity) -> Bool { severity == .ok || severity == .info }

    /// The findings of one window to emit, in their order; node findings pass unchanged.
    public mutating func select(_ findings: [Finding]) -> [Finding] {
        var out: [Finding] = []
        for finding in findings {
            guard let container = finding.resource.containerID else {
                out.append(finding)
                continue
            }
            let key = container + "\u{1F}" + finding.check
            let severity = finding.severity
            let summary = finding.observation.summary
            let passes = policy.passes(severity)
            let previous = last[key]
            let changed =
                previous.map { $0.severity != severity || (!Self.numbersAreNoNews(severity) && $0.summary != summary) }
                ?? true
            let since = (previous?.sinceEmitted ?? 0) + 1
            let recovery = !passes && changed && previous?.passed == true
            let emit: Bool
            switch policy.mode {
            case .all: emit = passes || recovery
            case .changes: emit = (passes && (changed || since >= policy.heartbeat)) || recovery
            }
            if emit { out.append(finding) }
            last[key] = Last(
                severity: severity, summary: summary, sinceEmitted: emit ? 0 : since, passed: passes)
        }
        return out
    }

    /// Forgets the containers not in `present` (gone): should one come back, it is new again.
    public mutating func forget(allBut present: Set<String>) {
        last = last.filter { key, _ in
            present.contains(String(key.prefix { $0 != "\u{1F}" }))
        }
    }
}
