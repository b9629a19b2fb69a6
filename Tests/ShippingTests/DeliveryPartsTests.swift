import Foundation
import PGNodeModel
import Shipping
import TestSupport
import Testing

@Suite("Retry timing, gzip, token file, metrics")
struct DeliveryPartsTests {
    @Test("Retry-After: delay-seconds and the three HTTP-date forms")
    func retryAfter() {
        let now = Timestamp(nanoseconds: 1_795_658_213 * 1_000_000_000)  // Thu, 26 Nov 2026 01:56:53 GMT
        #expect(RetryAfter.seconds("7", now: now) == 7)
        #expect(RetryAfter.seconds(" 120 ", now: now) == 120)
        #expect(RetryAfter.seconds("Thu, 26 Nov 2026 01:57:03 GMT", now: now) == 10)
        #expect(RetryAfter.seconds("Thursday, 26-Nov-26 01:57:13 GMT", now: now) == 20)
        #expect(RetryAfter.seconds("Thu Nov 26 01:57:23 2026", now: now) == 30)
        #expect(RetryAfter.seconds("Thu, 26 Nov 2026 01:00:00 GMT", now: now) == 0)  // in the past
        #expect(RetryAfter.seconds("soon", now: now) == nil)
        #expect(RetryAfter.seconds("-5", now: now) == nil)
    }

    @Test(
        "Retry-After from a hostile receiver or proxy: clamped to the maximum, never negative, never a trap",
        arguments: [
            // (value, expected seconds from `now`; nil: ignored, the backoff applies)
            ("Fri, 31 Dec 9999 23:59:59 GMT", 600), ("Sat, 01 Jan 2263 00:00:00 GMT", 600),
            ("Fri, 11 Apr 2262 23:47:17 GMT", 600), ("Thu Jan  1 00:00:00 9999", 600),
            ("Friday, 31-Dec-9999 23:59:59 GMT", 600), ("Sat, 01 Jan 0000 00:00:00 GMT", 0),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0), ("Friday, 31-Dec-99 23:59:59 GMT", 0),
            ("99999999999999999999", 600), ("9223372036854775807", 600), ("18446744073709551616", 600),
            (String(repeating: "9", count: 200), 600), ("601", 600), ("0", 0), ("00000000000000000000042", 42),
            ("-5", nil), ("-99999999999999999999", nil), ("1.5", nil), ("+5", nil), ("1e9", nil), ("", nil),
            ("   ", nil), ("\u{663}", nil), ("Thu, 26 Nov 2026 25:00:00 GMT", nil),
            ("Thu, 26 Nov 2026 01:60:00 GMT", nil), ("Thu, 31 Feb 2026 00:00:00 GMT", nil),
            ("Thu, 29 Feb 2026 00:00:00 GMT", nil), ("Thu, 26 Nov 99999 00:00:00 GMT", nil),
            ("Thu, 26 Nov -2026 00:00:00 GMT", nil), ("Thu, 26 Nov +2026 00:00:00 GMT", nil),
            ("Thu, 26 Nov 2026 01:57:03 UTC", nil), ("Thu, 26 Foo 2026 01:57:03 GMT", nil),
            ("Thu, 00 Nov 2026 01:57:03 GMT", nil), ("Thu, 26 Nov 2026 1:57:03 GMT", nil),
            ("Thu, 26 Nov 2026 01:57 GMT", nil), ("Thu, 26 Nov 2026 01:57:03:00 GMT", nil),
            ("Thursday, 26--26 01:57:13 GMT", nil), ("Thursday, 26-Nov-2 01:57:13 GMT", nil),
            ("Thu Nov 26 01:57:23 99999999999999999999", nil), (String(repeating: "Thu, ", count: 1000), nil),
        ] as [(String, Double?)])
    func retryAfterHostile(value: String, expected: Double?) {
        let now = Timestamp(nanoseconds: 1_795_658_213 * 1_000_000_000)  // Thu, 26 Nov 2026 01:56:53 GMT
        #expect(RetryAfter.seconds(value, now: now) == expected)
    }

    @Test("Retry-After: the caller's maximum applies, and a maximum that is not a number gives no wait")
    func retryAfterMaximum() {
        let now = Timestamp(nanoseconds: 1_795_658_213 * 1_000_000_000)
        #expect(RetryAfter.seconds("100", now: now, maximum: 30) == 30)
        #expect(RetryAfter.seconds("Fri, 31 Dec 9999 23:59:59 GMT", now: now, maximum: 3600) == 3600)
        #expect(RetryAfter.seconds("99999999999999999999", now: now, maximum: .infinity) == Double(Int64.max))
        #expect(RetryAfter.seconds("100", now: now, maximum: .nan) == 0)
        #expect(RetryAfter.seconds("100", now: now, maximum: -1) == 0)
        #expect(RetryAfter.defaultMaximum == 600)
    }

    @Test("HTTP dates: the three forms name the same instant; RFC 850 years within 50 years of now")
    func httpDates() {
        let now = Timestamp(nanoseconds: 1_795_658_213 * 1_000_000_000)  // 2026
        let expected: Int64 = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(HTTPDate.epochSeconds("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == expected)
        #expect(HTTPDate.epochSeconds("Sunday, 06-Nov-94 08:49:37 GMT", now: now) == expected)
        #expect(HTTPDate.epochSeconds("Sun Nov  6 08:49:37 1994", now: now) == expected)
        #expect(HTTPDate.epochSeconds("Fri, 31 Dec 9999 23:59:59 GMT", now: now) == 253_402_300_799)
        #expect(HTTPDate.epochSeconds("Sat, 01 Jan 0000 00:00:00 GMT", now: now) == -62_167_219_200)
        #expect(HTTPDate.epochSeconds("Tue, 29 Feb 2000 00:00:00 GMT", now: now) == 951_782_400)
        // 2076 is 50 years ahead of 2026 (kept); 2077 would be more (taken as 1977).
        #expect(HTTPDate.epochSeconds("Thursday, 26-Nov-76 00:00:00 GMT", now: now) == 3_373_574_400)
        #expect(HTTPDate.epochSeconds("Friday, 26-Nov-77 00:00:00 GMT", now: now) == 249_350_400)
        // Late in a century, a small two-digit year is in the next one.
        let late = Timestamp(nanoseconds: 3_786_912_000 * 1_000_000_000)  // 2090-01-01
        #expect(HTTPDate.epochSeconds("Sunday, 01-Jan-10 00:00:00 GMT", now: late) == 4_417_977_600)  // 2110
    }

    @Test("hostile text never traps the HTTP date or Retry-After parsers")
    func retryAfterFuzz() {
        // Deterministic pseudo-random mutations of valid values (xorshift), plus random bytes.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let seeds = [
            "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "120",
        ]
        let alphabet = Array("0123456789 ,:-+GMTNovFri\t\u{0}\u{FFFD}é".unicodeScalars)
        let now = Timestamp(nanoseconds: 1_795_658_213 * 1_000_000_000)
        var parsed = 0
        for round in 0..<20_000 {
            var scalars = Array(seeds[round % seeds.count].unicodeScalars)
            for _ in 0..<(1 + Int(next() % 4)) {
                let position = Int(next() % UInt64(scalars.count + 1))
                let scalar = alphabet[Int(next() % UInt64(alphabet.count))]
                switch next() % 3 {
                case 0 where position < scalars.count: scalars[position] = scalar
                case 1 where position < scalars.count: scalars.remove(at: position)
                default: scalars.insert(scalar, at: position)
                }
            }
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars)
            let value = String(text)
            if let seconds = RetryAfter.seconds(value, now: now) {
                #expect((0...RetryAfter.defaultMaximum).contains(seconds), "\(value)")
                parsed += 1
            }
            _ = HTTPDate.epochSeconds(value, now: now)
        }
        #expect(parsed > 0)  // the mutations are not all rejected: the parsers are exercised
    }

    @Test("backoff doubles up to its maximum, with jitter in the upper half")
    func backoff() {
        let policy = Backoff(initial: 1, maximum: 60)
        #expect(policy.delay(attempt: 0, random: { 0 }) == 0.5)
        #expect(policy.delay(attempt: 0, random: { 0.999 }) < 1)
        #expect(policy.delay(attempt: 3, random: { 0 }) == 4)
        #expect(policy.delay(attempt: 10, random: { 0 }) == 30)
        #expect(policy.delay(attempt: 1000, random: { 0.5 }) == 45)
        let delays = (0..<200).map { _ in policy.delay(attempt: 2) }
        #expect(delays.allSatisfy { $0 >= 2 && $0 < 4 })
        #expect(Set(delays).count > 100)  // jittered, not constant
    }

    @Test("gzip round-trips and is a real gzip stream (magic 1f 8b)")
    func gzip() throws {
        let input = Array(String(repeating: "{\"check\":\"shm.size\",\"severity\":\"warning\"}\n", count: 200).utf8)
        let compressed = Gzip.compress(input)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        #expect(compressed.count < input.count / 10)
        #expect(Gzip.decompress(compressed) == input)
        #expect(Gzip.decompress(Array("not gzip".utf8)) == nil)
        // Python's gzip module (what a receiver uses) reads it too.
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(compressed).write(to: URL(fileURLWithPath: "\(dir)/body.gz"))
        let result = try Command.run([
            "python3", "-c", "import gzip,sys; sys.stdout.write(gzip.open(sys.argv[1]).read().decode())",
            "\(dir)/body.gz",
        ])
        #expect(result.stdout == String(decoding: input, as: UTF8.self))
    }

    @Test("the token file is re-read when it changes, and kept when it briefly vanishes")
    func tokenFile() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/token"
        let token = TokenFile(path: path)
        #expect(throws: FileError.self) { try token.current() }
        try "first-token\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try token.current() == "first-token")
        try "second-token-longer".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try token.current() == "second-token-longer")
        try FileManager.default.removeItem(atPath: path)
        #expect(try token.current() == "second-token-longer")
    }

    @Test("metrics render in the Prometheus text format")
    func metrics() {
        let registry = MetricsRegistry()
        registry.declare("pgnode_things_total", .counter, help: "Things.", initial: 0)
        registry.declare("pgnode_by_label", .gauge, help: "By label.")
        registry.add("pgnode_things_total")
        registry.add("pgnode_things_total", [], 2)
        registry.set("pgnode_by_label", [("check", "shm.size"), ("severity", "warning")], 1.5)
        registry.set("pgnode_by_label", [("check", "a\"b\\c\nd"), ("severity", "ok")], 2)
        #expect(
            registry.render() == """
                # HELP pgnode_by_label By label.
                # TYPE pgnode_by_label gauge
                pgnode_by_label{check="a\\"b\\\\c\\nd",severity="ok"} 2
                pgnode_by_label{check="shm.size",severity="warning"} 1.5
                # HELP pgnode_things_total Things.
                # TYPE pgnode_things_total counter
                pgnode_things_total 3

                """)
        #expect(registry.total("pgnode_by_label") == 3.5)
    }
}
