import Foundation
import PGNodeModel
import TestSupport
import Testing

@testable import Shipping

@Suite("The on-disk spool")
struct SpoolTests {
    func segmentFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.sorted()
    }

    func quarantineFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/quarantine")) ?? []).sorted()
    }

    /// Writes a segment file by hand: `lines` under a header with a valid checksum and `count`
    /// (the number of lines unless given).
    func writeSegment(_ dir: String, _ name: String, lines: [String], count: Int64? = nil) throws {
        let body = lines.map { $0 + "\n" }.joined()
        let header =
            "{\"pgnode_spool\":1,\"count\":\(count ?? Int64(lines.count)),\"sha256\":\"\(SHA256.hex(Array(body.utf8)))\"}\n"
        try Data((header + body).utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
    }

    /// A finding's line with its `time` replaced.
    func line(time: String, window: Int64 = 0) throws -> String {
        var object = try #require(JSONParser.parse(Sample.finding(window: window).jsonLine).objectValue)
        object["time"] = .string(time)
        return JSONWriter.string(.object(object))
    }

    @Test("segments survive reopening and come back in order, byte for byte")
    func reopen() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = Sample.records(Sample.many(3, start: 0))
        let second = Sample.records(Sample.many(2, start: 100))
        do {
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            spool.append(first)
            spool.append(second)
            #expect(spool.findingCount == 5)
        }
        let reopened = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(reopened.segments.count == 2)
        #expect(reopened.findingCount == 5)
        guard case .records(let a) = reopened.load(reopened.oldest!) else {
            Issue.record("first segment unreadable")
            return
        }
        #expect(a == first)
        reopened.remove(reopened.oldest!)
        guard case .records(let b) = reopened.load(reopened.oldest!) else {
            Issue.record("second segment unreadable")
            return
        }
        #expect(b == second)
        // New segments continue the sequence after the existing ones.
        reopened.append(first)
        #expect(try segmentFiles(dir).count == 2)
        #expect(reopened.segments.map(\.sequence) == [2, 3])
    }

    @Test("when full, the oldest segments are dropped and their findings counted")
    func bound() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = Sample.records(Sample.many(4))
        let probe = try Spool(directory: dir + "/probe", maxBytes: 1 << 20)
        probe.append(batch)
        let segmentSize = probe.totalBytes
        let spool = try Spool(directory: dir + "/s", maxBytes: segmentSize * 3)
        var dropped = 0
        for i in 0..<5 { dropped += spool.append(Sample.records(Sample.many(4, start: Int64(i * 10)))) }
        #expect(dropped == 8)
        #expect(spool.segments.count == 3)
        #expect(spool.totalBytes <= segmentSize * 3)
        #expect(spool.segments.map(\.sequence) == [3, 4, 5])
        #expect(try segmentFiles(dir + "/s").count == 3)
    }

    @Test("a damaged segment is quarantined and skipped; an interrupted write is cleaned up")
    func corruption() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            spool.append(Sample.records(Sample.many(2, start: 0)))
            spool.append(Sample.records(Sample.many(2, start: 10)))
            spool.append(Sample.records(Sample.many(2, start: 20)))
        }
        let files = try segmentFiles(dir)
        // Flip a byte in the body of the first segment (checksum), truncate the second (a torn
        // write that bypassed rename), and leave a temporary file as a killed writer would.
        var first = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(files[0])"))
        first[first.count - 5] ^= 0x20
        try first.write(to: URL(fileURLWithPath: "\(dir)/\(files[0])"))
        let second = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(files[1])"))
        try second.prefix(10).write(to: URL(fileURLWithPath: "\(dir)/\(files[1])"))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: "\(dir)/.segment-00000000000000000009.ndjson.tmp"))

        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/.segment-00000000000000000009.ndjson.tmp"))
        #expect(spool.quarantined == 1)  // the truncated one has no valid header
        #expect(spool.segments.count == 2)
        guard case .corrupt(let reason) = spool.load(spool.oldest!) else {
            Issue.record("the checksum mismatch went unnoticed")
            return
        }
        #expect(reason == "checksum mismatch")
        #expect(spool.quarantined == 2)
        guard case .records(let records) = spool.load(spool.oldest!) else {
            Issue.record("the intact segment was not delivered after the damaged ones")
            return
        }
        #expect(records == Sample.records(Sample.many(2, start: 20)))
        let quarantine = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/quarantine").sorted()
        #expect(quarantine == [files[0], files[1]])
    }

    @Test("a spool that cannot write keeps batches in memory, within its bound")
    func unwritable() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer {
            chmod(dir, 0o700)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        // Root ignores directory permissions; replace the directory by a file to make writes fail.
        try FileManager.default.removeItem(atPath: dir)
        try Data().write(to: URL(fileURLWithPath: dir))
        var errors = 0
        spool.append(Sample.records(Sample.many(3))) { _ in errors += 1 }
        #expect(errors == 1)
        #expect(spool.findingCount == 3)
        guard case .records(let records) = spool.load(spool.oldest!) else {
            Issue.record("in-memory batch lost")
            return
        }
        #expect(records.count == 3)
        try FileManager.default.removeItem(atPath: dir)
    }

    @Test("a finding dated after 2262 (year 9999) in a segment with a valid checksum is quarantined, not a trap")
    func farFutureTime() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeSegment(
            dir, Spool.name(of: 1),
            lines: [try line(time: "2026-11-26T01:56:53.173Z"), try line(time: "9999-12-31T23:59:59.999Z", window: 1)])
        try writeSegment(dir, Spool.name(of: 2), lines: [try line(time: "2262-04-11T23:47:17Z")])
        let good = Sample.records(Sample.many(2, start: 50))
        try Data(Spool.encode(good)).write(to: URL(fileURLWithPath: "\(dir)/\(Spool.name(of: 3))"))
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.segments.map(\.sequence) == [1, 2, 3])  // the headers are fine
        #expect(spool.load(spool.oldest!) == .corrupt("bad finding: finding without a valid time"))
        #expect(spool.load(spool.oldest!) == .corrupt("bad finding: finding without a valid time"))
        #expect(spool.load(spool.oldest!) == .records(good))
        #expect(spool.quarantined == 2)
        #expect(quarantineFiles(dir) == [Spool.name(of: 1), Spool.name(of: 2)])
    }

    @Test("timestamps from disk: the full range of a Timestamp parses, one second or nanosecond beyond it does not")
    func timestampRange() {
        #expect(Timestamp(rfc3339: "2262-04-11T23:47:16.854775807Z") == Timestamp(nanoseconds: .max))
        #expect(Timestamp(rfc3339: "2262-04-11T23:47:16.854775808Z") == nil)
        #expect(Timestamp(rfc3339: "1677-09-21T00:12:43.145224192Z") == Timestamp(nanoseconds: .min))
        #expect(Timestamp(rfc3339: "1677-09-21T00:12:43.145224191Z") == nil)
        for text in ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "1000-01-01T00:00:00Z"] {
            #expect(Timestamp(rfc3339: text) == nil, "\(text)")
        }
    }

    @Test("segment names that are not a 20-digit sequence (UInt64.max among them) are quarantined at open")
    func badNames() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records = Sample.records(Sample.many(2))
        let bad = [
            "segment-18446744073709551615.ndjson", "segment-18446744073709551616.ndjson", "segment-5.ndjson",
            "segment-+0000000000000000005.ndjson", "segment-0000000000000000000x.ndjson",
            "segment-000000000000000000001.ndjson", "segment-.ndjson",
        ]
        for name in bad { try Data(Spool.encode(records)).write(to: URL(fileURLWithPath: "\(dir)/\(name)")) }
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: "\(dir)/notes.txt"))
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.isEmpty)
        #expect(spool.quarantined == bad.count)
        #expect(Set(spool.quarantinedAtOpen.map(\.name)) == Set(bad))
        #expect(spool.quarantinedAtOpen.allSatisfy { $0.reason == "not a segment name with a 20-digit sequence" })
        #expect(quarantineFiles(dir) == bad.sorted())
        #expect(FileManager.default.fileExists(atPath: "\(dir)/notes.txt"))  // not a segment: left alone
    }

    @Test("after the largest sequence a name can hold, the spool renumbers its segments in order instead of trapping")
    func sequenceWraps() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = Sample.records(Sample.many(2, start: 0))
        let second = Sample.records(Sample.many(3, start: 10))
        let third = Sample.records(Sample.many(1, start: 20))
        try Data(Spool.encode(first)).write(to: URL(fileURLWithPath: "\(dir)/segment-09999999999999999998.ndjson"))
        try Data(Spool.encode(second)).write(to: URL(fileURLWithPath: "\(dir)/segment-09999999999999999999.ndjson"))
        do {
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            #expect(spool.segments.map(\.sequence) == [9_999_999_999_999_999_998, Spool.maxSequence])
            spool.append(third)
            #expect(spool.segments.map(\.sequence) == [1, 2, 3])
            #expect(try segmentFiles(dir) == [Spool.name(of: 1), Spool.name(of: 2), Spool.name(of: 3)])
        }
        let reopened = try Spool(directory: dir, maxBytes: 1 << 20)
        var loaded: [[FindingRecord]] = []
        while let oldest = reopened.oldest {
            guard case .records(let records) = reopened.load(oldest) else { break }
            loaded.append(records)
            reopened.remove(oldest)
        }
        #expect(loaded == [first, second, third])
    }

    @Test("header counts whose sum would overflow are quarantined at open; totals saturate")
    func hugeHeaderCounts() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = Sample.records(Sample.many(2)).map(\.line)
        try writeSegment(dir, Spool.name(of: 1), lines: lines, count: Int64.max)
        try writeSegment(dir, Spool.name(of: 2), lines: lines, count: Int64.max - 1)
        try writeSegment(dir, Spool.name(of: 3), lines: lines, count: 3)  // fits the file; wrong all the same
        let good = Sample.records(Sample.many(4, start: 100))
        try Data(Spool.encode(good)).write(to: URL(fileURLWithPath: "\(dir)/\(Spool.name(of: 4))"))
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.quarantined == 2)
        #expect(spool.findingCount == 7)
        #expect(spool.load(spool.oldest!) == .corrupt("header says 3 findings, found 2"))
        #expect(spool.load(spool.oldest!) == .records(good))
        #expect(spool.findingCount == 4)
        #expect(Spool.saturatingAdd(Int.max, 1) == Int.max)
        #expect(Spool.saturatingAdd(Int64.max - 1, Int64.max) == Int64.max)
        #expect(Spool.saturatingAdd(Int64.min, -1) == Int64.min)
    }

    @Test(
        "a read that fails for a transient reason leaves a sound segment queued; it loads on the next attempt",
        arguments: [EMFILE, ENFILE, EIO, EINTR, EAGAIN, ENOMEM])
    func transientLoad(code: Int32) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = Sample.records(Sample.many(3))
        let second = Sample.records(Sample.many(2, start: 10))
        do {
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            spool.append(first)
            spool.append(second)
        }
        let failing = FailingReader(failures: 0, code: code)
        let spool = try Spool(directory: dir, maxBytes: 1 << 20, reader: failing.reader)
        failing.fail(next: 2)
        guard case .unavailable(let reason) = spool.load(spool.oldest!) else {
            Issue.record("a transient read error was not reported as such")
            return
        }
        #expect(reason.contains(String(cString: strerror(code))))
        #expect(spool.load(spool.oldest!) == .unavailable(reason))  // still failing: still queued
        #expect(spool.segments.count == 2)
        #expect(spool.quarantined == 0)
        #expect(quarantineFiles(dir).isEmpty)
        #expect(try segmentFiles(dir).count == 2)
        #expect(spool.load(spool.oldest!) == .records(first))  // the next attempt reads it
        #expect(failing.calls.withLock { $0 } == 2 + 3)  // two headers at open, three loads
    }

    @Test("a header that cannot be read at open for a transient reason: the segment is queued and counted once read")
    func transientOpen() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records = Sample.records(Sample.many(3))
        do { try Spool(directory: dir, maxBytes: 1 << 20).append(records) }
        let failing = FailingReader(failures: 1, code: EMFILE)
        let spool = try Spool(directory: dir, maxBytes: 1 << 20, reader: failing.reader)
        #expect(spool.quarantined == 0)
        #expect(spool.segments.map(\.count) == [0])  // not known yet
        #expect(spool.load(spool.oldest!) == .records(records))
        #expect(spool.findingCount == 3)
    }

    @Test("an error that is not transient (permission) quarantines; a vanished file leaves the queue")
    func lastingErrors() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            spool.append(Sample.records(Sample.many(1)))
            spool.append(Sample.records(Sample.many(1, start: 10)))
        }
        let failing = FailingReader(failures: 0, code: EACCES)
        let spool = try Spool(directory: dir, maxBytes: 1 << 20, reader: failing.reader)
        failing.fail(next: 1)
        guard case .corrupt = spool.load(spool.oldest!) else {
            Issue.record("a lasting error did not quarantine")
            return
        }
        #expect(spool.quarantined == 1)
        try FileManager.default.removeItem(atPath: "\(dir)/\(Spool.name(of: 2))")
        guard case .gone = spool.load(spool.oldest!) else {
            Issue.record("a vanished segment was not reported gone")
            return
        }
        #expect(spool.isEmpty)
        #expect(spool.quarantined == 1)
    }

    @Test("a FIFO, a directory or a symbolic link at a segment's name is quarantined without blocking")
    func notRegularFiles() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let elsewhere = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        #expect(mkfifo("\(dir)/\(Spool.name(of: 1))", 0o600) == 0)
        try FileManager.default.createDirectory(
            atPath: "\(dir)/\(Spool.name(of: 2))", withIntermediateDirectories: false)
        try Data(Spool.encode(Sample.records(Sample.many(1)))).write(to: URL(fileURLWithPath: "\(elsewhere)/real"))
        try FileManager.default.createSymbolicLink(
            atPath: "\(dir)/\(Spool.name(of: 3))", withDestinationPath: "\(elsewhere)/real")
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.isEmpty)
        #expect(spool.quarantined == 3)
        let reasons = spool.quarantinedAtOpen.sorted { $0.name < $1.name }.map(\.reason)
        #expect(reasons.count == 3)
        #expect(reasons.prefix(2).allSatisfy { $0.hasSuffix("is not a regular file: Invalid argument") })
        #expect(reasons.last?.contains("Too many levels of symbolic links") == true)
        #expect(FileManager.default.fileExists(atPath: "\(elsewhere)/real"))
    }

    @Test("the quarantine keeps the 20 most recently quarantined files")
    func quarantineBound() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for round in 0..<3 {
            for n in 0..<10 {
                // Names that sort before the earlier rounds' ones: order by name would keep the wrong files.
                let sequence = UInt64(1000 - round * 100 + n)
                try Data("damaged \(round)".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(Spool.name(of: sequence))"))
            }
            let spool = try Spool(directory: dir, maxBytes: 1 << 20)
            #expect(spool.quarantined == 10)
            usleep(20_000)  // distinct change times between rounds on coarse-grained file systems
        }
        let kept = quarantineFiles(dir)
        #expect(kept.count == 20)
        let newest: [UInt64] = (800..<810).map { $0 } + (900..<910).map { $0 }
        #expect(kept == newest.map { Spool.name(of: $0) })
    }
}
