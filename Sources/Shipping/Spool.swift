import Glibc
import PGNodeModel

/// The on-disk spool (`--spool-dir`): batches of findings waiting for delivery, oldest first.
///
/// Each batch is one segment file `segment-<20-digit sequence>.ndjson`: a header line
/// `{"pgnode_spool":1,"count":N,"sha256":"…"}` and the findings' lines. A segment is written to a
/// temporary file, fsynced and renamed into place, so a crash (even `kill -9`) leaves whole
/// segments only; temporary files found at start are removed. The total size is bounded: when a
/// new segment would exceed `maxBytes`, the oldest segments are dropped and their findings counted.
///
/// What is on disk is read as outside input. A segment that cannot load because of what it holds
/// — a name that is not a 20-digit sequence, a header or checksum that does not match, a header
/// count the file cannot hold, lines that are not findings (a `time` outside what a timestamp can
/// hold included), something that is not a regular file — is moved to `quarantine/` (the 20 most
/// recently quarantined are kept), counted and skipped, so it can never block delivery. A read that
/// fails for a reason that says nothing about the file (too many open files, an I/O error, no
/// memory: `FileError.isTransient`) leaves the segment queued, to be read again on the next
/// attempt. Sums (findings, bytes) saturate; nothing read from disk can trap.
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
        /// How many findings it holds (0 until read when its header could not be read at start).
        public var count: Int
        /// The records of an in-memory segment.
        var records: [FindingRecord]?
    }

    /// What reading a segment gave.
    public enum Load: Sendable, Equatable {
        /// Its findings.
        case records([FindingRecord])
        /// It is damaged (the reason), and has been quarantined.
        case corrupt(String)
        /// It could not be read just now (the reason: a transient error); it stays queued.
        case unavailable(String)
        /// Its file is gone (deleted behind the spool's back); it has left the queue.
        case gone(String)
    }

    /// A segment quarantined when the spool was opened, and why.
    public struct Quarantined: Sendable, Equatable {
        /// Its file name.
        public var name: String
        /// What was wrong with it.
        public var reason: String
    }

    /// The directory.
    public let directory: String
    /// The bound on the total size of all segments.
    public let maxBytes: Int64
    /// The segments, oldest first.
    public private(set) var segments: [Segment] = []
    /// Segments quarantined since start (at start included).
    public private(set) var quarantined = 0
    /// The first `quarantineKeep` segments quarantined while opening, for the log.
    public private(set) var quarantinedAtOpen: [Quarantined] = []
    private var nextSequence: UInt64 = 1
    private let reader: SpoolReader
    /// How many quarantined segments are kept.
    static let quarantineKeep = 20
    /// The largest sequence a segment name can carry (20 digits); past it the spool renumbers.
    static let maxSequence: UInt64 = 9_999_999_999_999_999_999
    /// The bytes read for a header line.
    static let headerLimit = 256

    /// Opens (creating) the spool in `directory`; existing segments are queued in order, damaged
    /// ones quarantined (`quarantinedAtOpen`).
    public convenience init(directory: String, maxBytes: Int64) throws(FileError) {
        try self.init(directory: directory, maxBytes: maxBytes, reader: .fileSystem)
    }

    /// A spool that reads its segment files through `reader`.
    init(directory: String, maxBytes: Int64, reader: SpoolReader) throws(FileError) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.reader = reader
        try Files.makeDirectories(directory)
        var found: [Segment] = []
        for name in try Files.list(directory) {
            let path = "\(directory)/\(name)"
            if name.hasPrefix(".segment-") && name.hasSuffix(".tmp") {
                unlink(path)  // A write that a crash interrupted; its batch was never acknowledged as spooled.
                continue
            }
            guard name.hasPrefix("segment-") && name.hasSuffix(".ndjson") else { continue }
            guard let sequence = Self.sequence(of: name) else {
                quarantineAtOpen(path: path, name: name, reason: "not a segment name with a 20-digit sequence")
                continue
            }
            let size = Files.size(path) ?? 0
            let prefix: [UInt8]
            do {
                prefix = try reader.readPrefix(path, Self.headerLimit)
            } catch {
                if error.code == ENOENT { continue }
                if error.isTransient {
                    // Read again when it is delivered; until then its findings are not counted.
                    found.append(Segment(sequence: sequence, path: path, bytes: size, count: 0))
                } else {
                    quarantineAtOpen(path: path, name: name, reason: error.description)
                }
                continue
            }
            guard let newline = prefix.firstIndex(of: 10), let header = Self.parseHeader(prefix[0..<newline]) else {
                quarantineAtOpen(path: path, name: name, reason: "bad header")
                continue
            }
            // Every finding takes more than a byte: a count above the size is a lie.
            guard Int64(header.count) <= size else {
                quarantineAtOpen(path: path, name: name, reason: "header count \(header.count) in a \(size)-byte file")
                continue
            }
            found.append(Segment(sequence: sequence, path: path, bytes: size, count: header.count))
        }
        segments = found.sorted { $0.sequence < $1.sequence }
        // The largest sequence is `maxSequence`, so this never overflows; `append` renumbers past it.
        nextSequence = (segments.last?.sequence ?? 0) + 1
    }

    /// The total size of all segments (saturating).
    public var totalBytes: Int64 { segments.reduce(0) { Self.saturatingAdd($0, $1.bytes) } }
    /// How many findings wait (saturating).
    public var findingCount: Int { segments.reduce(0) { Self.saturatingAdd($0, $1.count) } }
    /// Whether nothing waits.
    public var isEmpty: Bool { segments.isEmpty }
    /// The oldest segment.
    public var oldest: Segment? { segments.first }

    static func saturatingAdd<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b < 0 ? T.min : T.max) : sum
    }

    static func name(of sequence: UInt64) -> String {
        let digits = String(sequence)
        return "segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".ndjson"
    }

    /// The sequence in a segment's file name: exactly 20 ASCII digits, at most `maxSequence`.
    static func sequence(of name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".ndjson") else { return nil }
        let digits = name.utf8.dropFirst(8).dropLast(7)
        guard digits.count == 20 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= 48, byte <= 57 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 48))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value <= maxSequence ? value : nil
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
            let count = json["count"]?.intValue, count >= 0, count <= Int64(Int.max),
            let sha = json["sha256"]?.stringValue
        else { return nil }
        return Header(count: Int(count), sha256: sha)
    }

    /// Adds a batch as the newest segment. Returns how many findings of older segments were dropped
    /// to stay within `maxBytes`. `onDiskError` is told when the batch had to be kept in memory.
    @discardableResult
    public func append(_ records: [FindingRecord], onDiskError: (FileError) -> Void = { _ in }) -> Int {
        guard !records.isEmpty else { return 0 }
        if nextSequence > Self.maxSequence { renumber() }
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
            dropped = Self.saturatingAdd(dropped, victim.count)
        }
        if dropped > 0, segment.path != nil { Files.syncDirectory(directory) }
        return dropped
    }

    /// Gives the queued segments the sequences 1, 2, … in order (renaming their files), when the
    /// next sequence would not fit a segment name. A file that cannot be renamed keeps its name;
    /// it is still found by its path, and only its place after a restart may change.
    private func renumber() {
        for index in segments.indices {
            let sequence = UInt64(index + 1)
            guard segments[index].sequence != sequence else { continue }
            if let path = segments[index].path {
                let renamed = "\(directory)/\(Self.name(of: sequence))"
                if rename(path, renamed) == 0 { segments[index].path = renamed }
            }
            segments[index].sequence = sequence
        }
        Files.syncDirectory(directory)
        nextSequence = UInt64(segments.count + 1)
    }

    /// The largest segment file read (anything larger is damaged: no batch is that big).
    var segmentLimit: Int { Int(clamping: min(256 << 20, max(1 << 20, maxBytes))) }

    /// Reads a segment; a damaged one is quarantined and removed from the queue, one that cannot be
    /// read just now stays queued.
    public func load(_ segment: Segment) -> Load {
        if let records = segment.records { return .records(records) }
        guard let path = segment.path else { return .corrupt("no file") }
        let bytes: [UInt8]
        do {
            bytes = try reader.readPrefix(path, segmentLimit + 1)
        } catch {
            if error.isTransient { return .unavailable(error.description) }
            remove(segment, unlinkFile: false)
            if error.code == ENOENT { return .gone(error.description) }
            quarantine(path: path)
            return .corrupt(error.description)
        }
        switch Self.decode(bytes, limit: segmentLimit) {
        case .success(let records):
            if let index = segments.firstIndex(where: { $0.sequence == segment.sequence }) {
                segments[index].count = records.count
            }
            return .records(records)
        case .failure(let damage):
            remove(segment, unlinkFile: false)
            quarantine(path: path)
            return .corrupt(damage.reason)
        }
    }

    /// Why a segment's bytes are not a batch.
    struct Damage: Error {
        var reason: String
    }

    /// The records of a segment file's bytes.
    static func decode(_ bytes: [UInt8], limit: Int) -> Result<[FindingRecord], Damage> {
        guard bytes.count <= limit else { return .failure(Damage(reason: "larger than \(limit) bytes")) }
        guard let newline = bytes.firstIndex(of: 10), let header = parseHeader(bytes[0..<newline]) else {
            return .failure(Damage(reason: "bad header"))
        }
        let body = Array(bytes[(newline + 1)...])
        guard SHA256.hex(body) == header.sha256 else { return .failure(Damage(reason: "checksum mismatch")) }
        var records: [FindingRecord] = []
        for line in body.split(separator: 10) {
            do {
                records.append(try FindingRecord(line: String(decoding: line, as: UTF8.self)))
            } catch {
                return .failure(Damage(reason: "bad finding: \(error.message)"))
            }
        }
        guard records.count == header.count else {
            return .failure(Damage(reason: "header says \(header.count) findings, found \(records.count)"))
        }
        return .success(records)
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

    private func quarantineAtOpen(path: String, name: String, reason: String) {
        if quarantinedAtOpen.count < Self.quarantineKeep {
            quarantinedAtOpen.append(Quarantined(name: name, reason: reason))
        }
        quarantine(path: path)
    }

    /// Moves a file to `quarantine/` under its own name and keeps the `quarantineKeep` most
    /// recently quarantined there (a rename sets the change time).
    private func quarantine(path: String) {
        quarantined = Self.saturatingAdd(quarantined, 1)
        let name = path.split(separator: "/").last.map(String.init) ?? "segment"
        let dir = "\(directory)/quarantine"
        do {
            try Files.makeDirectories(dir)
            rename(path, "\(dir)/\(name)")
            let kept = try Files.list(dir).map { entry in
                (name: entry, changed: Files.changeTime("\(dir)/\(entry)") ?? (0, 0))
            }.sorted { $0.changed != $1.changed ? $0.changed < $1.changed : $0.name < $1.name }
            for old in kept.dropLast(Self.quarantineKeep) { unlink("\(dir)/\(old.name)") }
        } catch {
            unlink(path)
        }
        Files.syncDirectory(directory)
    }
}

/// How the spool reads its segment files: from the file system, or in tests through a reader that
/// fails the way a busy node does (too many open files) to show that such a failure is retried.
struct SpoolReader: Sendable {
    /// At most `limit` bytes from the start of the file at `path` (a regular file, not a link).
    var readPrefix: @Sendable (_ path: String, _ limit: Int) throws(FileError) -> [UInt8]

    /// The file system.
    static let fileSystem = SpoolReader { path, limit throws(FileError) in
        try Files.readPrefix(path, limit: limit, followSymlinks: false)
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
