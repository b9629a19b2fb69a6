import PGNodeModel

/// One setting pgnode reports, with where its value came from.
public struct Setting: Sendable, Equatable {
    /// The value as written (or the built-in default, spelled as PostgreSQL's documentation does).
    public var value: String
    /// Where it came from: `command line`, `<file>:<line>`, or `default`.
    public var source: String
    /// For memory settings: the value in bytes.
    public var bytes: Int64?
    /// For numeric settings: the number (in the setting's base unit for memory settings).
    public var number: Double?
    /// Why the value is not valid (PostgreSQL would have refused it), if it is not.
    public var error: String?

    /// The setting as JSON: `value`, `source`, then `bytes` or `number` (whichever applies), and
    /// `error` only when there is one.
    public var json: JSONValue {
        var object: JSONObject = ["value": .string(value), "source": .string(source)]
        if let bytes { object["bytes"] = .int(bytes) }
        if let number, bytes == nil {
            object["number"] = number.rounded() == number && abs(number) < 1e15 ? .int(Int64(number)) : .double(number)
        }
        if let error { object["error"] = .string(error) }
        return .object(object)
    }
}

/// The settings later checks need, their types and built-in defaults per major version.
public enum PostgresSettings {
    /// How a setting's value is parsed.
    public enum Kind: Sendable {
        /// An integer in units of this many bytes (shared_buffers: 8192, work_mem: 1024).
        case memory(baseUnitBytes: Int64)
        /// A unitless integer.
        case integer
        /// A floating-point number.
        case real
        /// One of these options (lower-cased alias → canonical spelling).
        case enumeration([String: String])
    }

    /// A setting pgnode reads.
    public struct Definition: Sendable {
        /// The name.
        public var name: String
        /// The type.
        public var kind: Kind
        /// The built-in default for a major version, or nil when that version has no such setting.
        public var defaultValue: @Sendable (Int) -> String?
    }

    static let onOff: [String: String] = [
        "on": "on", "off": "off", "true": "on", "false": "off", "yes": "on", "no": "off", "1": "on", "0": "off",
    ]

    /// The settings, in the order they are reported. Defaults are the compiled-in boot values
    /// (guc_tables.c); PostgreSQL 15's were checked with `postgres -C` against an empty
    /// postgresql.conf.
    public static let definitions: [Definition] = [
        Definition(name: "shared_buffers", kind: .memory(baseUnitBytes: 8192)) { $0 >= 15 ? "16384" : "1024" },
        Definition(name: "work_mem", kind: .memory(baseUnitBytes: 1024)) { _ in "4MB" },
        Definition(name: "hash_mem_multiplier", kind: .real) { $0 >= 15 ? "2.0" : $0 >= 13 ? "1.0" : nil },
        Definition(name: "max_parallel_workers_per_gather", kind: .integer) { $0 >= 10 ? "2" : "0" },
        Definition(name: "max_parallel_workers", kind: .integer) { $0 >= 10 ? "8" : nil },
        Definition(name: "max_worker_processes", kind: .integer) { _ in "8" },
        Definition(name: "max_connections", kind: .integer) { _ in "100" },
        Definition(
            name: "dynamic_shared_memory_type",
            kind: .enumeration(["posix": "posix", "sysv": "sysv", "mmap": "mmap", "windows": "windows"])
        ) { _ in "posix" },
        Definition(name: "min_dynamic_shared_memory", kind: .memory(baseUnitBytes: 1024 * 1024)) {
            $0 >= 14 ? "0" : nil
        },
        Definition(
            name: "huge_pages", kind: .enumeration(onOff.merging(["try": "try"]) { a, _ in a })
        ) { _ in "try" },
        Definition(name: "shared_memory_type", kind: .enumeration(["mmap": "mmap", "sysv": "sysv"])) {
            $0 >= 12 ? "mmap" : nil
        },
    ]

    /// Parses `value` for `definition`.
    public static func make(_ definition: Definition, value: String, source: String) -> Setting {
        var setting = Setting(value: value, source: source)
        do throws(GUCValueError) {
            switch definition.kind {
            case .memory(let base):
                let units = try GUCValue.parseInteger(value, baseUnitBytes: base)
                setting.number = Double(units)
                let (bytes, overflow) = units.multipliedReportingOverflow(by: base)
                setting.bytes = overflow ? nil : bytes
            case .integer:
                setting.number = Double(try GUCValue.parseInteger(value, baseUnitBytes: nil))
            case .real:
                setting.number = try GUCValue.parseReal(value)
            case .enumeration(let options):
                setting.value = try GUCValue.parseEnum(value, options: options)
            }
        } catch {
            setting.error = error.message
        }
        return setting
    }

    /// The effective settings of a server of major version `version` (nil: unknown, defaults
    /// for the newest version pgnode knows are *not* assumed — they stay unset), from its
    /// configuration files and then its command line, later sources winning.
    public static func resolve(
        config: [ConfigEntry], commandLine: [(name: String, value: String)], majorVersion: Int?
    ) -> [(name: String, setting: Setting?)] {
        var result: [(String, Setting?)] = []
        for definition in definitions {
            var chosen: Setting? = nil
            if let entry = config.last(where: { $0.name == definition.name }) {
                chosen = make(definition, value: entry.value, source: "\(entry.file):\(entry.line)")
            }
            if let option = commandLine.last(where: { $0.name == definition.name }) {
                chosen = make(definition, value: option.value, source: "command line")
            }
            if chosen == nil, let majorVersion, let value = definition.defaultValue(majorVersion) {
                chosen = make(definition, value: value, source: "default")
            }
            result.append((definition.name, chosen))
        }
        return result
    }
}
