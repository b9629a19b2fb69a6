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
