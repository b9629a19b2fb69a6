import PGNodeModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The on-disk spool (`--spool-dir`): batches of findings waiting for delivery, oldest first.
///
/// Each batch is one segment file `segment-<20-digit sequence>.ndjson`: a header line
/// `{"pgnode_spool":1,"count":N,"sha256":"…"}` and the findings' lines. A segment is written to a
/// temporary file, fsynced and renamed into place, so a crash (even `kill -9`) leaves whole
/// segments only; temporary files found at start are removed. A segment whose header or checksum
/// does not match is moved to `quarantine/` (the newest 20 are kept), counted and skipped, so it
/// can never block delivery. The total size is bounded: when a new segment would exceed
/// `maxBytes`, the oldest segments are dropped and their findings counted.
///
/// When a segment cannot be written (disk full, read-only), the batch is kept in memory, within the
/// same bound, so delivery goes on; it is lost only if the process ends before it is delivered.
///
/// Not thread-safe: the delivery thread owns it.
public final class Spool {
    /// One batch.
    public struct Segment: Sendable, Equatable {
        /// Its sequence number (delivery order).
        public var sequence: UInt64
        /// Its file, or nil for a batch held in memory because it could not be written.
        public var path: String?
        /// Its size on disk (or in memory).
        public var bytes: Int64
        /// How many findings it holds.
        public var count: Int
        /// The records of an in-memory segment.
        var records: [FindingRecord]?
    }

    /// What reading a segment gave.
    public enum Load {
        /// Its findings.
        case records([FindingRecord])
        /// It is damaged (the reason), and has been quarantined.
        case corrupt(String)
    }

    /// The directory.
    public let directory: String
    /// The bound on the total size of all segments.
    public let maxBytes: Int64
    /// The segments, oldest first.
    public private(set) var segments: [Segment] = []
    /// Segments quarantined since start (at start included).
    public private(set) var quarantined = 0
    private var nextSequence: UInt64 = 1
    /// How many quarantined segments are kept.
    static let quarantineKeep = 20

    /// Opens (creating) the spool in `directory`; existing segments are queued in order.
    public init(directory: String, maxBytes: Int64) throws(FileError) {
        self.directory = directory
        self.maxBytes = maxBytes
        try Files.makeDirectories(directory)
        var found: [Segment] = []
        for name in try Files.list(directory) {
            let path = "\(directory)/\(name)"
            if name.hasPrefix(".segment-") && name.hasSuffix(".tmp") {
                unlink(path)  // A write that a crash interrupted; its batch was never acknowledged as spooled.
                continue
            }
            guard let sequence = Self.sequence(of: name) else { continue }
            guard let header = Self.readHeader(path) else {
                quarantine(path: path, name: name)
                continue
            }
            found.append(Segment(sequence: sequence, path: path, bytes: Files.size(path) ?? 0, count: header.count))
        }
        segments = found.sorted { $0.sequence < $1.sequence }
        nextSequence = (segments.last?.sequence ?? 0) + 1
    }

    /// The total size of all segments.
    public var totalBytes: Int64 { segments.reduce(0) { $0 + $1.bytes } }
    /// How many findings wait.
    public var findingCount: Int { segments.reduce(0) { $0 + $1.count } }
    /// Whether nothing waits.
    public var isEmpty: Bool { segments.isEmpty }
    /// The oldest segment.
    public var oldest: Segment? { segments.first }

    static func name(of sequence: UInt64) -> String {
        let digits = String(sequence)
        return "segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".ndjson"
    }

    static func sequence(of name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".ndjson") else { return nil }
        return UInt64(name.dropFirst(8).dropLast(7))
    }

    /// The bytes of a segment holding `records`.
    static func encode(_ records: [FindingRecord]) -> [UInt8] {
        var body: [UInt8] = []
        for record in records {
            body += record.line.utf8
            body.append(10)
        }
        let header: JSONValue = [
            "pgnode_spool": 1, "count": .int(Int64(records.count)), "sha256": .string(SHA256.hex(body)),
        ]
        return Array((JSONWriter.string(header) + "\n").utf8) + body
    }

    private struct Header {
        var count: Int
        var sha256: String
    }

    private static func parseHeader(_ line: ArraySlice<UInt8>) -> Header? {
        guard let json = try? JSONParser.parse(bytes: Array(line)), json["pgnode_spool"]?.intValue == 1,
            let count = json["count"]?.intValue, count >= 0, let sha = json["sha256"]?.stringValue
        else { return nil }
        return Header(count: Int(count), sha256: sha)
    }

    private static func readHeader(_ path: String) -> Header? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let newline = buffer[0..<n].firstIndex(of: 10) else { return nil }
        return parseHeader(buffer[0..<newline])
    }

    /// Adds a batch as the newest segment. Returns how many findings of older segments were dropped
    /// to stay within `maxBytes`. `onDiskError` is told when the batch had to be kept in memory.
    @discardableResult
    public func append(_ records: [FindingRecord], onDiskError: (FileError) -> Void = { _ in }) -> Int {
        guard !records.isEmpty else { return 0 }
        let bytes = Self.encode(records)
        let sequence = nextSequence
        nextSequence += 1
        let name = Self.name(of: sequence)
        var segment = Segment(sequence: sequence, path: nil, bytes: Int64(bytes.count), count: records.count)
        do {
            try Files.writeAtomically(directory: directory, name: name, bytes)
            segment.path = "\(directory)/\(name)"
        } catch {
            onDiskError(error)
            segment.records = records
        }
        segments.append(segment)
        var dropped = 0
        while totalBytes > maxBytes, segments.count > 1 {
            let victim = segments.removeFirst()
            if let path = victim.path { unlink(path) }
            dropped += victim.count
        }
        if dropped > 0, segment.path != nil { Files.syncDirectory(directory) }
        return dropped
    }

    /// Reads a segment; a damaged one is quarantined and removed from the queue.
    public func load(_ segment: Segment) -> Load {
        if let records = segment.records { return .records(records) }
        guard let path = segment.path else { return .corrupt("no file") }
        let reason: String
        do {
            let bytes = try Files.read(path)
            if let newline = bytes.firstIndex(of: 10), let header = Self.parseHeader(bytes[0..<newline]) {
                let body = Array(bytes[(newline + 1)...])
                if SHA256.hex(body) != header.sha256 {
                    reason = "checksum mismatch"
                } else {
                    var records: [FindingRecord] = []
                    var bad: String?
                    for line in body.split(separator: 10) {
                        do {
                            records.append(try FindingRecord(line: String(decoding: line, as: UTF8.self)))
                        } catch {
                            bad = error.message
                            break
                        }
                    }
                    if let bad {
                        reason = "bad finding: \(bad)"
                    } else if records.count != header.count {
                        reason = "header says \(header.count) findings, found \(records.count)"
                    } else {
                        return .records(records)
                    }
                }
            } else {
                reason = "bad header"
            }
        } catch {
            reason = error.description
        }
        remove(segment, unlinkFile: false)
        quarantine(path: path, name: (path.split(separator: "/").last.map(String.init)) ?? "segment")
        return .corrupt(reason)
    }

    /// Removes a delivered (or dead-lettered) segment.
    public func remove(_ segment: Segment) { remove(segment, unlinkFile: true) }

    private func remove(_ segment: Segment, unlinkFile: Bool) {
        segments.removeAll { $0.sequence == segment.sequence }
        if unlinkFile, let path = segment.path {
            unlink(path)
            Files.syncDirectory(directory)
        }
    }

    /// Replaces a segment's findings with `records` (those a receiver asked to retry), in place.
    public func replace(_ segment: Segment, with records: [FindingRecord]) {
        guard let index = segments.firstIndex(where: { $0.sequence == segment.sequence }) else { return }
        let bytes = Self.encode(records)
        var updated = segment
        updated.count = records.count
        updated.bytes = Int64(bytes.count)
        if let path = segment.path {
            let name = String(path.split(separator: "/").last ?? "")
            do {
                try Files.writeAtomically(directory: directory, name: name, bytes)
            } catch {
                updated.records = records
            }
        } else {
            updated.records = records
        }
        segments[index] = updated
    }

    private func quarantine(path: String, name: String) {
        quarantined += 1
        let dir = "\(directory)/quarantine"
        do {
            try Files.makeDirectories(dir)
            rename(path, "\(dir)/\(name)")
            let kept = try Files.list(dir).sorted()
            for old in kept.dropLast(Self.quarantineKeep) { unlink("\(dir)/\(old)") }
        } catch {
            unlink(path)
        }
        Files.syncDirectory(directory)
    }
}

/// The dead-letter file (`<spool-dir>/dead-letter.ndjson`): findings a receiver refused for good
/// (a 4xx other than 408 and 429, or an Elasticsearch item error such as a mapping conflict), one
/// JSON object a line: `{"time":…,"status":400,"reason":"…","finding":{…}}`. When it passes
/// `maxBytes` it is renamed to `dead-letter.ndjson.1` (replacing the previous one).
public struct DeadLetterFile: Sendable {
    /// Its path.
    public let path: String
    /// Its size bound.
    public let maxBytes: Int64

    /// A dead-letter file.
    public init(path: String, maxBytes: Int64 = 16 << 20) {
        self.path = path
        self.maxBytes = maxBytes
    }

    /// Appends `records` with the receiver's `status` and `reason`.
    public func write(_ records: [FindingRecord], status: Int, reason: String) throws(FileError) {
        if let size = Files.size(path), size > maxBytes { rename(path, path + ".1") }
        let prefix =
            "{\"time\":\(JSONWriter.string(.string(Timestamp.now().rfc3339))),\"status\":\(status),"
            + "\"reason\":\(JSONWriter.string(.string(reason))),\"finding\":"
        var bytes: [UInt8] = []
        for record in records {
            bytes += prefix.utf8
            bytes += record.line.utf8
            bytes += "}\n".utf8
        }
        try Files.append(path, bytes)
    }
}
