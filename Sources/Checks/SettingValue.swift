import PGNodeModel

/// A PostgreSQL setting's value with where it came from (for evidence).
public struct SettingValue<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The value, in base units (bytes for memory settings).
    public var value: Value
    /// Where it was set: `default`, `postgresql.conf:12`, `postgresql.auto.conf:3`, `command line`, …
    public var source: String

    /// A value and its source.
    public init(_ value: Value, source: String) {
        self.value = value
        self.source = source
    }
}

/// A setting whose configured text PostgreSQL refuses (out of range, a bad unit, not a number):
/// a server does not start with it, and ignores it on a reload, keeping the value it had — which
/// pgnode cannot see. Checks never compute with it; they say which setting it is and why.
public struct InvalidSetting: Error, Sendable, Equatable {
    /// The setting's name.
    public var name: String
    /// The value as written.
    public var text: String
    /// Where it was set (`postgresql.conf:3`, `command line`).
    public var source: String
    /// PostgreSQL's message (and hint) for it.
    public var reason: String

    /// An invalid setting.
    public init(name: String, text: String, source: String, reason: String) {
        self.name = name
        self.text = text
        self.source = source
        self.reason = reason
    }

    /// The evidence form: `{value: null, invalid_value, source, error}`.
    public var json: JSONValue {
        .object(["value": .null, "invalid_value": .string(text), "source": .string(source), "error": .string(reason)])
    }

    /// One clause for a summary or an `unavailable` reason.
    public var sentence: String {
        "\(name) = '\(text)' (\(source)) is a value PostgreSQL refuses: \(reason)"
    }

    /// Why a check cannot use the settings `invalid`: what each is and what PostgreSQL does with it.
    public static func reason(_ invalid: [InvalidSetting]) -> String {
        invalid.map(\.sentence).joined(separator: "; ")
            + ". PostgreSQL does not start with such a value and ignores it on a reload, keeping the one it had; "
            + "pgnode cannot see that one, so it does not guess"
    }
}
