import Foundation
import Resolution
import TestSupport
import Testing

@Suite("setting values as PostgreSQL parses them")
struct GUCValueTests {
    static func definition(_ name: String) -> PostgresSettings.Definition {
        guard let definition = PostgresSettings.definitions.first(where: { $0.name == name }) else {
            preconditionFailure("no definition for \(name)")
        }
        return definition
    }

    static func make(_ name: String, _ value: String) -> Setting {
        PostgresSettings.make(definition(name), value: value, source: "test", majorVersion: 15)
    }

    @Test(
        "memory values in the setting's base unit",
        arguments: [
            // (text, base unit, expected value in base units)
            ("128MB", GUCUnit.blocks, Int32(16384)), ("16384", .blocks, 16384), ("1GB", .blocks, 131072),
            ("8kB", .blocks, 1), ("4MB", .kilobytes, 4096), ("64kB", .kilobytes, 64),
            ("1TB", .kilobytes, 1_073_741_824),
            ("1.5MB", .kilobytes, 1536), ("0x10", .kilobytes, 16), ("010", .kilobytes, 8),
            ("  32 MB  ", .kilobytes, 32768),
            ("12kB", .blocks, 2), ("4kB", .blocks, 0), ("-1", .kilobytes, -1), ("1024B", .kilobytes, 1),
            ("1e3", .kilobytes, 1000), ("2.5", .kilobytes, 2), ("3.5", .kilobytes, 4), ("100.5kB", .kilobytes, 100),
            ("1536kB", .megabytes, 2), ("512kB", .megabytes, 0), ("2TB", .megabytes, 2_097_152), ("3B", .bytes, 3),
        ])
    func memory(_ text: String, _ unit: GUCUnit, _ expected: Int32) throws {
        #expect(try GUCValue.parseInteger(text, unit: unit) == expected)
    }

    @Test("memory.budget's and memory.hugepages' settings: -1 for automatic, units and ranges as PostgreSQL 15's")
    func budgetSettings() {
        #expect(Self.make("wal_buffers", "-1").bytes == -8192)  // -1: 1/32 of shared_buffers
        #expect(Self.make("wal_buffers", "16MB").bytes == 16 << 20)
        #expect(Self.make("wal_buffers", "-2").error != nil)
        #expect(Self.make("autovacuum_work_mem", "-1").bytes == -1024)  // -1: maintenance_work_mem
        #expect(Self.make("autovacuum_work_mem", "1GB").bytes == 1 << 30)
        #expect(Self.make("maintenance_work_mem", "512kB").error != nil)  // below 1MB
        #expect(Self.make("maintenance_work_mem", "64MB").bytes == 64 << 20)
        #expect(Self.make("huge_page_size", "2MB").bytes == 2 << 20)
        #expect(Self.make("huge_page_size", "0").bytes == 0)
        #expect(Self.make("huge_page_size", "-1").error != nil)
        let resolved = PostgresSettings.resolve(config: [], commandLine: [], majorVersion: 13)
        #expect(resolved.first { $0.name == "huge_page_size" }?.setting == nil)  // 14 and later
        #expect(resolved.first { $0.name == "wal_buffers" }?.setting?.value == "-1")
    }

    @Test("time values in the setting's base unit")
    func time() throws {
        #expect(try GUCValue.parseInteger("1min", unit: .milliseconds) == 60000)
        #expect(try GUCValue.parseInteger("1.5s", unit: .milliseconds) == 1500)
        #expect(try GUCValue.parseInteger("100us", unit: .milliseconds) == 0)
        #expect(try GUCValue.parseInteger("1500us", unit: .milliseconds) == 2)  // 1.5 ms, ties to even
        #expect(try GUCValue.parseInteger("1d", unit: .seconds) == 86400)
        #expect(try GUCValue.parseInteger("2h", unit: .minutes) == 120)
        #expect(try GUCValue.parseInteger("90s", unit: .minutes) == 2)
        #expect(try GUCValue.parseInteger("30s", unit: .minutes) == 0)
        #expect(try GUCValue.parseReal("2.5ms", unit: .milliseconds) == 2.5)
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("1m", unit: .seconds) }
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("1MB", unit: .seconds) }
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("1s", unit: .kilobytes) }
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("25d", unit: .milliseconds) }  // > 2^31 ms
    }

    @Test(
        "text that is not a value is refused, as the server would refuse it",
        arguments: [
            "", " ", "MB", "128mb", "128 M", "12QB", "1.5.3MB", "128MB junk", "99999999999999999999GB", "\u{0}1",
            "'2GB'", "2147483648", "-2147483649", "1e300", "1e-400", "nan", "inf", "-inf", "Infinity", "0x", "0x1p4",
            "4kBx", "3 kB z", "1 0", "+", "-", ".", "e5", "\u{FFFD}", "１２",
        ])
    func invalidMemory(_ text: String) {
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger(text, unit: .kilobytes) }
    }

    @Test("unitless integers refuse units; reals parse with strtod")
    func unitlessAndReals() throws {
        #expect(try GUCValue.parseInteger("100", unit: nil) == 100)
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("100kB", unit: nil) }
        #expect(throws: GUCSyntaxError.self) { try GUCValue.parseInteger("3000000000", unit: nil) }
        #expect(try GUCValue.parseReal("2.0", unit: nil) == 2.0)
        #expect(try GUCValue.parseReal(" 1.5 ", unit: nil) == 1.5)
        #expect(try GUCValue.parseReal("1e1", unit: nil) == 10)
        #expect(try GUCValue.parseReal("0x10", unit: nil) == 16)
        #expect(try GUCValue.parseReal("inf", unit: nil) == .infinity)  // parses; the range check refuses it
        for bad in ["", "x", "1.5x", "nan", "NaN", "1e999", "1e-400", "1.5kB"] {
            #expect(throws: GUCSyntaxError.self, "\(bad)") { try GUCValue.parseReal(bad, unit: nil) }
        }
    }

    @Test("enums: any ASCII case, hidden aliases, no trimming; the hint lists the options")
    func enums() {
        #expect(Self.make("huge_pages", "TRUE").value == "on")
        #expect(Self.make("huge_pages", "Off").value == "off")
        #expect(Self.make("huge_pages", "0").value == "off")
        let bad = Self.make("huge_pages", "maybe")
        #expect(bad.error == "invalid value for parameter \"huge_pages\": \"maybe\". Available values: off, on, try.")
        #expect(Self.make("huge_pages", " on").error != nil)
        #expect(Self.make("dynamic_shared_memory_type", "POSIX").value == "posix")
        #expect(Self.make("dynamic_shared_memory_type", "windows").error != nil)  // a Linux build has none
        #expect(Self.make("dynamic_shared_memory_type", "none").error != nil)
        let before12 = PostgresSettings.make(
            Self.definition("dynamic_shared_memory_type"), value: "none", source: "x", majorVersion: 11)
        #expect(before12.value == "none" && before12.error == nil)
    }

    @Test("PostgreSQL's ranges, with its messages; a refused value has no number")
    func ranges() {
        let huge = Self.make("hash_mem_multiplier", "1e300")
        #expect(huge.error == "1e+300 is outside the valid range for parameter \"hash_mem_multiplier\" (1 .. 1000)")
        #expect(huge.number == nil && huge.bytes == nil && huge.value == "1e300")
        #expect(Self.make("hash_mem_multiplier", "inf").error?.hasPrefix("Infinity is outside") == true)
        #expect(Self.make("hash_mem_multiplier", "1000").number == 1000)
        let small = Self.make("work_mem", "8")
        #expect(small.error == "8 kB is outside the valid range for parameter \"work_mem\" (64 .. 2147483647)")
        #expect(small.bytes == nil)
        #expect(Self.make("work_mem", "2TB").error?.hasSuffix("Value exceeds integer range.") == true)
        #expect(Self.make("work_mem", "1TB").bytes == 1 << 40)
        #expect(Self.make("shared_buffers", "15").error?.hasPrefix("15 8kB is outside") == true)
        #expect(Self.make("shared_buffers", "8TB").error != nil)
        #expect(Self.make("min_dynamic_shared_memory", "2147483647").bytes == Int64(Int32.max) << 20)
        #expect(Self.make("max_connections", "0").error != nil)
        #expect(Self.make("max_connections", "262143").number == 262143)
        #expect(Self.make("max_connections", "262144").error != nil)
        #expect(Self.make("max_parallel_workers_per_gather", "1025").error != nil)
    }

    /// Hostile text for every setting: nothing traps; a value is either refused (with a message,
    /// no number) or a number inside the setting's range.
    @Test("hostile text for every setting")
    func hostile() {
        let tenThousandDigits = "1" + String(repeating: "0", count: 10_000)
        let texts = [
            "", " ", "\t\n", tenThousandDigits, "-" + tenThousandDigits, "0." + tenThousandDigits,
            tenThousandDigits + "kB", "1e" + tenThousandDigits, "9223372036854775807", "-9223372036854775808",
            "18446744073709551615", "1e308", "-1e308", "1e300", "1e-308", "4.9e-324", "nan", "-nan", "inf",
            "-infinity", "0x7fffffffffffffff", "0x8000000000000000", "0xffffffffffffffffffff", "\u{FFFD}\u{FFFD}",
            "\u{0}", "1\u{0}2", "１", "1 kB kB", "kB", "--1", "+-1", String(repeating: "9", count: 400) + "e-400",
            String(repeating: " ", count: 5000) + "1",
        ]
        for definition in PostgresSettings.definitions {
            for text in texts {
                let setting = PostgresSettings.make(definition, value: text, source: "x", majorVersion: 15)
                if let error = setting.error {
                    #expect(!error.isEmpty && setting.number == nil && setting.bytes == nil, "\(definition.name)")
                    continue
                }
                switch definition.kind(15) {
                case .integer(_, let range):
                    let n = setting.number ?? .nan
                    #expect(
                        n >= Double(range.lowerBound) && n <= Double(range.upperBound), "\(definition.name) \(text)")
                case .real(_, let range):
                    #expect(setting.number.map(range.contains) == true, "\(definition.name) \(text.prefix(40))")
                case .enumeration: Issue.record("\(definition.name) accepted '\(text.prefix(40))'")
                }
            }
        }
    }
}

/// The parser against PostgreSQL 15 itself: `postgres --describe-config` for every setting's
/// type and range, and `postgres -C name -c name=value` (which refuses to start on a value it
/// does not accept) for what it makes of each value — accepted or refused, the value it stores,
/// its message and hint.
@Suite("setting values: pgnode agrees with PostgreSQL 15", .serialized)
struct GUCValuePostgresAgreementTests {
    static let postgres = "/usr/lib/postgresql/15/bin/postgres"

    static var available: Bool {
        TestEnvironment.isRoot && FileManager.default.isExecutableFile(atPath: postgres)
    }

    static func runAsPostgres(_ arguments: [String]) throws -> CommandResult {
        try Command.run(["/usr/sbin/runuser", "-u", "postgres", "--", postgres] + arguments, timeout: 120)
    }

    @Test("every setting's type and range is the one postgres --describe-config prints")
    func ranges() throws {
        guard TestEnvironment.require(Self.available, "root and PostgreSQL 15 at \(Self.postgres)") else { return }
        let result = try Self.runAsPostgres(["--describe-config"])
        #expect(result.status == 0, "\(result.stderr)")
        var described: [String: [Substring]] = [:]
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields.count > 6 { described[String(fields[0])] = fields }
        }
        for definition in PostgresSettings.definitions {
            let fields = try #require(described[definition.name], "\(definition.name) not described")
            switch definition.kind(15) {
            case .integer(_, let range):
                #expect(fields[3] == "INTEGER", "\(definition.name)")
                #expect(
                    Int32(fields[5]) == range.lowerBound && Int32(fields[6]) == range.upperBound, "\(definition.name)")
            case .real(_, let range):
                #expect(fields[3] == "REAL", "\(definition.name)")
                #expect(
                    Double(fields[5]) == range.lowerBound && Double(fields[6]) == range.upperBound, "\(definition.name)"
                )
            case .enumeration:
                #expect(fields[3] == "ENUM", "\(definition.name)")
            }
        }
    }

    static let tenThousandDigits = "1" + String(repeating: "0", count: 10_000)

    static let cases: [(String, String)] = [
        ("hash_mem_multiplier", "2.5"), ("hash_mem_multiplier", "1e300"), ("hash_mem_multiplier", "nan"),
        ("hash_mem_multiplier", "inf"), ("hash_mem_multiplier", "-1"), ("hash_mem_multiplier", "0x10"),
        ("hash_mem_multiplier", "1e-400"), ("hash_mem_multiplier", " 3 "), ("hash_mem_multiplier", "1000.0001"),
        ("hash_mem_multiplier", "0.99"), ("hash_mem_multiplier", "2x"), ("hash_mem_multiplier", ""),
        ("hash_mem_multiplier", "1e3"), ("hash_mem_multiplier", tenThousandDigits),
        ("work_mem", "8"), ("work_mem", "64"), ("work_mem", "1e300"), ("work_mem", "0x40"), ("work_mem", "1.5MB"),
        ("work_mem", "1.5 MB "), ("work_mem", "12XB"), ("work_mem", "2147483648"), ("work_mem", "4kBx"),
        ("work_mem", "3 kB z"), ("work_mem", "010"), ("work_mem", "-0x10"), ("work_mem", "100.5"),
        ("work_mem", "100.5kB"), ("work_mem", "1GB"), ("work_mem", "2TB"), ("work_mem", "3B"), ("work_mem", "64kb"),
        ("work_mem", "99999999999999999999"), ("work_mem", "65537B"), ("work_mem", "1e5"), ("work_mem", ".5MB"),
        ("work_mem", tenThousandDigits), ("work_mem", "0x1p4"), ("work_mem", "１２８MB"),
        ("shared_buffers", "128MB"), ("shared_buffers", "8kB"), ("shared_buffers", "15"), ("shared_buffers", "1GB"),
        ("shared_buffers", "1073741823"), ("shared_buffers", "1073741824"), ("shared_buffers", "8TB"),
        ("shared_buffers", "12kB"), ("shared_buffers", "200kB"),
        ("min_dynamic_shared_memory", "0"), ("min_dynamic_shared_memory", "1kB"),
        ("min_dynamic_shared_memory", "512kB"), ("min_dynamic_shared_memory", "1536kB"),
        ("min_dynamic_shared_memory", "1GB"), ("min_dynamic_shared_memory", "-1"),
        ("min_dynamic_shared_memory", "2TB"), ("min_dynamic_shared_memory", "3000000TB"),
        ("max_connections", "0"), ("max_connections", "262143"), ("max_connections", "262144"),
        ("max_connections", "262121"), ("max_connections", "262122"), ("autovacuum_max_workers", "0"),
        ("max_wal_senders", "262143"), ("max_worker_processes", "262000"),
        ("max_connections", "100.4"), ("max_connections", "1e2"), ("max_connections", "10 kB"),
        ("max_parallel_workers_per_gather", "1024"), ("max_parallel_workers_per_gather", "1025"),
        ("max_parallel_workers_per_gather", "-1"), ("max_parallel_workers", "2000"),
        ("max_worker_processes", "0"), ("max_worker_processes", "262144"),
        ("dynamic_shared_memory_type", "POSIX"), ("dynamic_shared_memory_type", "windows"),
        ("dynamic_shared_memory_type", "none"), ("dynamic_shared_memory_type", " posix"),
        ("dynamic_shared_memory_type", "mmap"), ("huge_pages", "TRUE"), ("huge_pages", "maybe"),
        ("huge_pages", "tr"), ("huge_pages", "Off"), ("shared_memory_type", "MMAP"), ("shared_memory_type", "posix"),
        ("backend_flush_after", "256kB"), ("backend_flush_after", "2MB"), ("backend_flush_after", "3MB"),
        ("backend_flush_after", "-1"), ("bgwriter_flush_after", "0"), ("checkpoint_flush_after", "1MB"),
        ("wal_writer_flush_after", "1MB"), ("wal_writer_flush_after", "100"),
    ]

    @Test("accepted or refused, the stored value, the message and hint: as postgres -C says", arguments: cases)
    func agreement(_ name: String, _ value: String) throws {
        guard TestEnvironment.require(Self.available, "root and PostgreSQL 15 at \(Self.postgres)") else { return }
        let directory = try Fixtures.temporaryDirectory("pgnode-guc")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(FileManager.default.createFile(atPath: directory + "/postgresql.conf", contents: Data()))
        #expect(try Command.run(["chown", "-R", "postgres", directory]).status == 0)
        let result = try Self.runAsPostgres(["-D", directory, "-C", name, "-c", "\(name)=\(value)"])
        let label = "\(name)=\(value.prefix(40))"
        let lines = result.stderr.split(separator: "\n")
        func after(_ marker: String) -> String? {
            lines.first { $0.contains(marker) }.map { String($0.split(separator: marker, maxSplits: 1)[1]) }
        }
        // What pgnode makes of the same command line, the whole way (ranges and cross-checks).
        let resolved = PostgresSettings.resolve(config: [], commandLine: [(name, value)], majorVersion: 15)
        let setting = try #require(resolved.first { $0.name == name }?.setting)
        guard let error = setting.error else {
            #expect(result.status == 0, "\(label): PostgreSQL refused what pgnode accepts: \(result.stderr)")
            let printed = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let definition = try #require(PostgresSettings.definitions.first { $0.name == name })
            switch definition.kind(15) {
            case .integer: #expect(printed == setting.number.map { String(Int64($0)) }, "\(label)")
            case .real: #expect(printed == setting.number.map(GUCValue.format), "\(label)")
            case .enumeration: #expect(printed == setting.value, "\(label)")
            }
            return
        }
        #expect(result.status != 0, "\(label): PostgreSQL accepted what pgnode refuses (\(error))")
        let fatal = try #require(after("FATAL:  "), "\(label): \(result.stderr)")
        #expect(error.hasPrefix(fatal), "\(label): pgnode says \(error)")
        if let hint = after("HINT:  ") { #expect(error.hasSuffix(". " + hint), "\(label): pgnode says \(error)") }
        // Where the value itself is refused, the parser's message and hint are exactly PostgreSQL's.
        let definition = try #require(PostgresSettings.definitions.first { $0.name == name })
        do throws(GUCValueError) {
            _ = try GUCValue.parse(value, parameter: name, kind: definition.kind(15))
        } catch {
            #expect(error.message == fatal && error.hint == after("HINT:  "), "\(label)")
        }
    }
}
