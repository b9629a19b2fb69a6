import Shipping

extension Harness {
    /// Spool segments found at start: a previous run (or anyone who can write the spool
    /// directory) left them, with any name, header and content.
    static let spool = Harness(
        name: "spool", maxLength: 4096,
        summary: "spool segments at start (names, headers, checksums, finding lines) through Spool.init and load"
    ) { bytes in
        // Up to three segments, split at NUL bytes; each is `<sequence digits>\n<file content>`.
        Scratch.remove("spool")
        for piece in parts(bytes, limit: 3) {
            let newline = piece.firstIndex(of: 10) ?? piece.endIndex
            let digits = piece[..<newline].filter { $0 >= 48 && $0 <= 57 }.prefix(24)
            let sequence = digits.isEmpty ? "1" : String(decoding: digits, as: UTF8.self)
            let content = newline < piece.endIndex ? Array(piece[(newline + 1)...]) : []
            Scratch.store("spool/segment-\(sequence).ndjson", content)
        }
        let spool: Spool
        do {
            spool = try Spool(directory: "\(Scratch.root)/spool", maxBytes: 1 << 20)
        } catch {
            fatalError("invariant broken: the spool directory did not open: \(error)")
        }
        consume(spool.findingCount)
        consume(spool.totalBytes)
        while let segment = spool.oldest {
            let load = spool.load(segment)
            consume(load)
            if case .records(let records) = load {
                require(records.count == segment.count, "\(records.count) records, the header said \(segment.count)")
                spool.remove(segment)
            } else if case .corrupt = load {
                require(!spool.segments.contains(segment), "a corrupt segment stayed queued")
            } else {
                spool.remove(segment)  // Not readable now (any other outcome): done with it here.
            }
        }
    }
}
