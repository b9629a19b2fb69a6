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

/// The settings later checks need, their types, ranges and built-in defaults per major version.
public enum PostgresSettings {
    /// How a setting's value is parsed and which values PostgreSQL accepts.
    public typealias Kind = GUCKind

    /// A setting pgnode reads.
    public struct Definition: Sendable {
        /// The name.
        public var name: String
        /// The type and range for a major version (nil: unknown, taken as the newest pgnode knows).
        public var kind: @Sendable (Int?) -> Kind
        /// The built-in default for a major version, or nil when that version has no such setting.
        public var defaultValue: @Sendable (Int) -> String?

        /// A setting whose type and range are the same in every version.
        init(name: String, kind: Kind, defaultValue: @escaping @Sendable (Int) -> String?) {
            self.name = name
            self.kind = { _ in kind }
            self.defaultValue = defaultValue
        }

        /// A setting whose type or range depends on the version.
        init(
            name: String, kindForVersion: @escaping @Sendable (Int?) -> Kind,
            defaultValue: @escaping @Sendable (Int) -> String?
        ) {
            self.name = name
            self.kind = kindForVersion
            self.defaultValue = defaultValue
        }
    }

    /// `MAX_BACKENDS` (postmaster.h): the upper bound of `max_connections` and `max_worker_processes`.
    static let maxBackends: Int32 = 0x3FFFF
    /// `MAX_PARALLEL_WORKER_LIMIT` (parallel.h).
    static let maxParallelWorkerLimit: Int32 = 1024
    /// `MAX_KILOBYTES` (guc.h) on a 64-bit build: `INT_MAX`.
    static let maxKilobytes: Int32 = .max

    /// `huge_pages`: off, on, try, and the hidden boolean spellings.
    static let hugePages = GUCEnumOptions(
        ["off", "on", "try"],
        aliases: [("true", "on"), ("false", "off"), ("yes", "on"), ("no", "off"), ("1", "on"), ("0", "off")])

    /// The settings, in the order they are reported. Types, units and ranges are PostgreSQL 15's
    /// (guc.c; `postgres --describe-config` of the 15 on the test machine prints the same
    /// minimum and maximum for each) and are applied to every version — they are the same for
    /// these settings from 9.6 on, except that `dynamic_shared_memory_type` also had `none`
    /// before 12. The enums are those of a Linux build (no `windows` options). Defaults are the
    /// compiled-in boot values (guc_tables.c); PostgreSQL 15's were checked with `postgres -C`
    /// against an empty postgresql.conf.
    public static let definitions: [Definition] = [
        Definition(name: "shared_buffers", kind: .integer(unit: .blocks, range: 16...(Int32.max / 2))) {
            $0 >= 15 ? "16384" : "1024"
        },
        Definition(name: "work_mem", kind: .integer(unit: .kilobytes, range: 64...maxKilobytes)) { _ in "4MB" },
        Definition(name: "hash_mem_multiplier", kind: .real(unit: nil, range: 1...1000)) {
            $0 >= 15 ? "2.0" : $0 >= 13 ? "1.0" : nil
        },
        Definition(
            name: "max_parallel_workers_per_gather", kind: .integer(unit: nil, range: 0...maxParallelWorkerLimit)
        ) { $0 >= 10 ? "2" : "0" },
        Definition(name: "max_parallel_workers", kind: .integer(unit: nil, range: 0...maxParallelWorkerLimit)) {
            $0 >= 10 ? "8" : nil
        },
        Definition(name: "max_worker_processes", kind: .integer(unit: nil, range: 0...maxBackends)) { _ in "8" },
        Definition(name: "max_connections", kind: .integer(unit: nil, range: 1...maxBackends)) { _ in "100" },
        Definition(name: "autovacuum_max_workers", kind: .integer(unit: nil, range: 1...maxBackends)) { _ in "3" },
        Definition(name: "max_wal_senders", kind: .integer(unit: nil, range: 0...maxBackends)) {
            $0 >= 10 ? "10" : "0"
        },
        Definition(
            name: "dynamic_shared_memory_type",
            kindForVersion: { version in
                (version ?? 15) >= 12
                    ? .enumeration(GUCEnumOptions(["posix", "sysv", "mmap"]))
                    : .enumeration(GUCEnumOptions(["none", "posix", "sysv", "mmap"]))
            }
        ) { _ in "posix" },
        Definition(name: "min_dynamic_shared_memory", kind: .integer(unit: .megabytes, range: 0...maxKilobytes)) {
            $0 >= 14 ? "0" : nil
        },
        Definition(name: "huge_pages", kind: .enumeration(hugePages)) { _ in "try" },
        // The *_flush_after settings (9.6+): Linux defaults; `WRITEBACK_MAX_PENDING_FLUSHES` is 256.
        Definition(name: "backend_flush_after", kind: .integer(unit: .blocks, range: 0...256)) { _ in "0" },
        Definition(name: "bgwriter_flush_after", kind: .integer(unit: .blocks, range: 0...256)) { _ in "64" },
        Definition(name: "checkpoint_flush_after", kind: .integer(unit: .blocks, range: 0...256)) { _ in "32" },
        Definition(name: "wal_writer_flush_after", kind: .integer(unit: .walBlocks, range: 0...Int32.max)) {
            _ in "128"
        },
        Definition(name: "shared_memory_type", kind: .enumeration(GUCEnumOptions(["sysv", "mmap"]))) {
            $0 >= 12 ? "mmap" : nil
        },
        Definition(name: "huge_page_size", kind: .integer(unit: .kilobytes, range: 0...Int32.max)) {
            $0 >= 14 ? "0" : nil
        },
        // -1: 1/32 of shared_buffers, at least 64kB and at most one WAL segment (16MB by default).
        Definition(name: "wal_buffers", kind: .integer(unit: .blocks, range: -1...(Int32.max / 8192))) { _ in "-1" },
        Definition(name: "maintenance_work_mem", kind: .integer(unit: .kilobytes, range: 1024...maxKilobytes)) {
            _ in "64MB"
        },
        // -1: maintenance_work_mem.
        Definition(name: "autovacuum_work_mem", kind: .integer(unit: .kilobytes, range: -1...maxKilobytes)) { _ in
            "-1"
        },
    ]

    /// Parses `value` for `definition` as a server of major version `majorVersion` does: a
    /// value it refuses keeps its text in `value`, gets PostgreSQL's message in `error`, and
    /// no `number` or `bytes` — it is never used as a number.
    public static func make(_ definition: Definition, value: String, source: String, majorVersion: Int? = nil)
        -> Setting
    {
        var setting = Setting(value: value, source: source)
        do throws(GUCValueError) {
            let kind = definition.kind(majorVersion)
            switch try GUCValue.parse(value, parameter: definition.name, kind: kind) {
            case .integer(let units):
                setting.number = Double(units)
                if case .integer(let unit?, _) = kind, let unitBytes = unit.bytes {
                    // At most 2^31 units of at most 1 MiB: far inside 64 bits.
                    setting.bytes = Int64(units).multipliedSaturating(by: unitBytes)
                }
            case .real(let number):
                setting.number = number
            case .enumeration(let option):
                setting.value = option
            }
        } catch {
            setting.error = error.description
        }
        return setting
    }

    /// The effective settings of a server of major version `version` (nil: unknown, defaults
    /// for the newest version pgnode knows are *not* assumed — they stay unset), from its
    /// configuration files and then its command line, later sources winning.
    public static func resolve(
        config: [ConfigEntry], commandLine: [(name: String, value: String)], majorVersion: Int?
    ) -> [(name: String, setting: Setting?)] {
        var result: [(name: String, setting: Setting?)] = []
        for definition in definitions {
            var chosen: Setting? = nil
            if let entry = config.last(where: { $0.name == definition.name }) {
                chosen = make(
                    definition, value: entry.value, source: "\(entry.file):\(entry.line)", majorVersion: majorVersion)
            }
            if let option = commandLine.last(where: { $0.name == definition.name }) {
                chosen = make(definition, value: option.value, source: "command line", majorVersion: majorVersion)
            }
            if chosen == nil, let majorVersion, let value = definition.defaultValue(majorVersion) {
                chosen = make(definition, value: value, source: "default", majorVersion: majorVersion)
            }
            result.append((definition.name, chosen))
        }
        checkMaxBackends(&result, majorVersion: majorVersion)
        return result
    }

    /// The check hooks of `max_connections`, `autovacuum_max_workers`, `max_worker_processes`
    /// and `max_wal_senders` (guc.c of 12 to 16): their sum plus one (the autovacuum launcher)
    /// must not exceed `MAX_BACKENDS`, or the server refuses the last one assigned and does not
    /// start (before 12 the WAL senders are not counted; 17 and later refuse the same sum at
    /// startup). Applied to the effective values — a setting nothing sets counts with its
    /// default —, it marks every one of them that is set explicitly as refused, with
    /// PostgreSQL's message and the sum; nothing is checked when one of them is already invalid.
    static func checkMaxBackends(_ settings: inout [(name: String, setting: Setting?)], majorVersion: Int?) {
        let countsWalSenders = (majorVersion ?? 15) >= 12
        let terms: [(name: String, fallback: Int64)] =
            [("max_connections", 100), ("autovacuum_max_workers", 3), ("max_worker_processes", 8)]
            + (countsWalSenders ? [("max_wal_senders", 10)] : [])
        var values: [Int64] = []
        for term in terms {
            let setting = settings.first { $0.name == term.name }?.setting
            if setting?.error != nil { return }
            guard let number = setting.map({ $0.number.flatMap { Int64(exactly: $0) } }) else {
                values.append(term.fallback)
                continue
            }
            guard let number else { return }
            values.append(number)
        }
        let sum = values.saturatingSum().addingSaturating(1)
        guard sum > Int64(maxBackends) else { return }
        let formula =
            zip(terms, values).map { "\($0.name) (\($1))" }.prefix(3).joined(separator: " + ") + " + 1"
            + (countsWalSenders ? " + max_wal_senders (\(values[3]))" : "")
        for index in settings.indices {
            guard terms.contains(where: { $0.name == settings[index].name }),
                var setting = settings[index].setting, setting.source != "default", let number = setting.number
            else { continue }
            setting.error =
                "invalid value for parameter \"\(settings[index].name)\": \(Int64(exactly: number) ?? 0). "
                + "\(formula) is \(sum), more than MAX_BACKENDS (\(maxBackends))"
            setting.number = nil
            settings[index].setting = setting
        }
    }
}
