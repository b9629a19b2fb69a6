import Foundation
import PGNodeModel
import Shipping
import TestSupport
import Testing

@Suite("The on-disk spool")
struct SpoolTests {
    func segmentFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.sorted()
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
}
