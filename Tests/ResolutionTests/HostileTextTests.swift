import Resolution
import Testing

/// A small deterministic generator for the fuzz loops (SplitMix64).
struct SeededGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` strings of bytes drawn from `alphabet`, decoded as UTF-8 with replacement.
    mutating func strings(_ count: Int, maxLength: Int, alphabet: [UInt8]) -> [String] {
        (0..<count).map { _ in
            let length = Int(next() % UInt64(maxLength + 1))
            let bytes = (0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

/// Process titles, command lines and `postmaster.opts` are written by whoever runs the
/// container: nothing in them may trap pgnode, and numbers in them are checked.
@Suite("process titles, command lines and settings from hostile text")
struct HostileTextTests {
    static let tenThousandDigits = "1" + String(repeating: "0", count: 10_000)
    static let notUTF8 = String(decoding: [0x70, 0xFF, 0xC3, 0x28, 0x80], as: UTF8.self)

    @Test("process titles")
    func titles() {
        #expect(ProcessTitle.parse("postgres: parallel worker for PID 99999999999999999999")?.leaderPID == nil)
        #expect(ProcessTitle.parse("postgres: parallel worker for PID -5")?.leaderPID == nil)
        #expect(ProcessTitle.parse("postgres: parallel worker for PID 2147483647")?.leaderPID == .max)
        let titles = [
            "postgres: ", "postgres:", "postgres: " + Self.tenThousandDigits, "postgres: \(Self.notUTF8)",
            "postgres: a b (", "postgres: a b ()", "postgres: a b x(1", "postgres: a b x(1)", "postgres: : : :",
            "postgres: walsender", "postgres: walsender a b(1) c(2) d", "postgres: bgworker: ",
            "postgres: " + String(repeating: "a ", count: 50_000), "postgres: \u{0}",
        ]
        for title in titles { _ = ProcessTitle.parse(title) }
        var generator = SeededGenerator(seed: 21)
        for text in generator.strings(3000, maxLength: 60, alphabet: Array("postgres: walsender()[]0123456789 -.".utf8))
        {
            _ = ProcessTitle.parse("postgres: " + text)
        }
    }

    @Test("command lines and postmaster.opts")
    func commandLines() {
        let arguments = [
            ["-"], ["--"], ["-c"], ["-cx"], ["--=1"], ["-D"], ["-B"], ["-B99999999999999999999"], ["-c", "="],
            ["-c", "a=b=c"], ["--\(Self.notUTF8)=1"], ["-c", "work_mem=\(Self.tenThousandDigits)"],
            Array(repeating: "-i", count: 10_000), ["-\u{0}"], ["-cwork_mem"],
        ]
        for argv in arguments {
            let options = PostmasterOptions.parse(argv)
            let settings = PostgresSettings.resolve(
                config: [], commandLine: options.settings.map { ($0.name, $0.value) }, majorVersion: 15)
            for (_, setting) in settings {
                if let setting { #expect(setting.error != nil || setting.number != nil || setting.value != "") }
            }
        }
        let shared = PostmasterOptions.parse(["-B99999999999999999999"]).settings
        let resolved = PostgresSettings.resolve(
            config: [], commandLine: shared.map { ($0.name, $0.value) }, majorVersion: 15)
        let sharedBuffers = resolved.first { $0.name == "shared_buffers" }?.setting
        #expect(sharedBuffers?.error?.hasSuffix("Value exceeds integer range.") == true && sharedBuffers?.bytes == nil)
        for text in ["\"", "\"\"", "a\"b c", String(repeating: "\"x\" ", count: 50_000), "\(Self.notUTF8) \"-c\""] {
            _ = PostmasterOptions.parse(Array(PostmasterOptions.splitOpts(text).dropFirst()))
        }
        var generator = SeededGenerator(seed: 22)
        for text in generator.strings(3000, maxLength: 40, alphabet: Array("-cDBN=_ x19\"".utf8)) {
            let argv = PostmasterOptions.splitOpts(text)
            _ = PostmasterOptions.parse(argv)
        }
    }

    @Test("setting values: random text for every setting is refused or in range")
    func settingValues() {
        var generator = SeededGenerator(seed: 23)
        let values = generator.strings(
            4000, maxLength: 24, alphabet: Array("0123456789.eE+-x kMGTBbminsdhu\tnaif'".utf8))
        for definition in PostgresSettings.definitions {
            for value in values {
                let setting = PostgresSettings.make(definition, value: value, source: "x", majorVersion: 15)
                guard setting.error == nil else {
                    #expect(setting.number == nil && setting.bytes == nil)
                    continue
                }
                switch definition.kind(15) {
                case .integer(_, let range):
                    #expect(
                        setting.number.map { $0 >= Double(range.lowerBound) && $0 <= Double(range.upperBound) } == true)
                case .real(_, let range):
                    #expect(setting.number.map(range.contains) == true, "\(definition.name) '\(value)'")
                case .enumeration:
                    break
                }
            }
        }
    }
}
