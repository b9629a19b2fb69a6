/// What one check concluded, before it is stamped with its resource, time and id.
/// Checks return these; they are pure values.
public struct Observation: Sendable, Equatable {
    /// The dotted check id, e.g. `shm.size`.
    public var check: String
    /// How serious it is.
    public var severity: Severity
    /// One sentence a person reads.
    public var summary: String
    /// Check-specific numbers: byte counts end in `_bytes`, durations in `_ns` or `_us`.
    public var evidence: JSONObject
    /// What to change; empty when the severity is `ok`.
    public var remedy: String

    /// An observation.
    public init(check: String, severity: Severity, summary: String, evidence: JSONObject = [:], remedy: String = "") {
        self.check = check
        self.severity = severity
        self.summary = summary
        self.evidence = evidence
        self.remedy = severity == .ok ? "" : remedy
    }

    /// An `unavailable` observation: the check could not run, for `reason`.
    public static func unavailable(check: String, reason: String, evidence: JSONObject = [:]) -> Observation {
        var evidence = evidence
        evidence["reason"] = .string(reason)
        return Observation(
            check: check, severity: .unavailable, summary: "\(check) could not run: \(reason)", evidence: evidence)
    }
}

/// A finding in schema `pgnode.finding.v1`: an observation about one resource in one window.
public struct Finding: Sendable, Equatable {
    /// The schema name every finding carries.
    public static let schema = "pgnode.finding.v1"

    /// A stable hash of node, container, check and observation window.
    public var id: String
    /// When the observation window ended.
    public var time: Timestamp
    /// Whom it is about.
    public var resource: ResourceAttributes
    /// What was concluded.
    public var observation: Observation

    /// Stamps `observation` for `resource`; the id is derived from the node, the container, the
    /// check and the window start, so the same finding for the same window always has the same id.
    public init(observation: Observation, resource: ResourceAttributes, windowStart: Timestamp, time: Timestamp) {
        self.observation = observation
        self.resource = resource
        self.time = time
        self.id = FindingID.make(
            node: resource.nodeName, container: resource.containerID, check: observation.check,
            windowStart: windowStart)
    }

    /// The check id.
    public var check: String { observation.check }
    /// The severity.
    public var severity: Severity { observation.severity }

    /// The finding as an ordered JSON object, the exact shape of `pgnode.finding.v1`.
    public var json: JSONValue {
        let object: JSONObject = [
            "schema": .string(Self.schema),
            "id": .string(id),
            "time": .string(time.rfc3339),
            "check": .string(observation.check),
            "severity": .string(observation.severity.rawValue),
            "summary": .string(observation.summary),
            "resource": .object(resource.json),
            "evidence": .object(observation.evidence),
            "remedy": .string(observation.remedy),
        ]
        return .object(object)
    }

    /// One NDJSON line (without the newline).
    public var jsonLine: String { JSONWriter.string(json) }
}

/// Stable finding ids.
public enum FindingID {
    /// The first 128 bits of SHA-256 over the node, container, check and window start, as hex.
    public static func make(node: String, container: String?, check: String, windowStart: Timestamp) -> String {
        let key = [node, container ?? "-", check, String(windowStart.nanoseconds)].joined(separator: "\u{1F}")
        return String(SHA256.hex(Array(key.utf8)).prefix(32))
    }
}
