import Checks
import Resolution

/// A server's setting as a check's fact: a value PostgreSQL accepts (`.success`, with its
/// source), or the text it refuses (`.failure`); a setting nothing sets is `fallback`, its
/// built-in default, with a source that says so.
enum SettingFacts {
    /// `name` of `server`, its value taken by `value` (nil: not a number pgnode can use).
    static func read<V>(_ server: PostgresServer, _ name: String, _ fallback: V, _ value: (Setting) -> V?)
        -> Result<SettingValue<V>, InvalidSetting>
    {
        guard let s = server.setting(name) else { return .success(ShmFactsReader.defaultValue(fallback, server)) }
        if let error = s.error {
            return .failure(InvalidSetting(name: name, text: s.value, source: s.source, reason: error))
        }
        guard let v = value(s) else {
            return .failure(
                InvalidSetting(name: name, text: s.value, source: s.source, reason: "not a number pgnode can use"))
        }
        return .success(SettingValue(v, source: s.source))
    }

    /// A memory setting in bytes.
    static func bytes(_ server: PostgresServer, _ name: String, _ fallback: Int64)
        -> Result<SettingValue<Int64>, InvalidSetting>
    {
        read(server, name, fallback) { $0.bytes }
    }

    /// An integer setting.
    static func integer(_ server: PostgresServer, _ name: String, _ fallback: Int64)
        -> Result<SettingValue<Int64>, InvalidSetting>
    {
        read(server, name, fallback) { ShmFactsReader.integer($0) }
    }
}
