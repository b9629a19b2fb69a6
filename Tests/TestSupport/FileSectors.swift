import Foundation

/// Where a file's data lies on its disk: the disk's device number and the sector ranges (512-byte
/// units from the start of the whole disk, as block requests address them), from `filefrag`.
public struct FileSectors: Sendable, Equatable {
    /// The whole disk's major and minor number (a partition's parent).
    public var major: UInt32
    /// See `major`.
    public var minor: UInt32
    /// The extents, in disk sectors, in file order.
    public var ranges: [Range<UInt64>]

    /// Why a file's layout could not be read.
    public struct LayoutError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The layout of `path` (its data must be written and synced: delayed allocation has no
    /// sectors yet).
    public static func of(_ path: String) throws(LayoutError) -> FileSectors {
        var st = stat()
        guard stat(path, &st) == 0 else { throw LayoutError(description: "stat \(path): \(errno)") }
        let raw = UInt64(st.st_dev)  // glibc's encoding (gnu_dev_major/minor)
        let major = UInt32(((raw >> 8) & 0xFFF) | ((raw >> 32) & ~0xFFF))
        let minor = UInt32((raw & 0xFF) | ((raw >> 12) & ~0xFF))
        let sys = "/sys/dev/block/\(major):\(minor)"
        // A partition: its extents are relative to its start; requests address the whole disk.
        var offset: UInt64 = 0
        var disk = (major, minor)
        if FileManager.default.fileExists(atPath: sys + "/partition") {
            guard let start = Self.read(sys + "/start").flatMap(UInt64.init),
                let parent = Self.read(sys + "/../dev")?.split(separator: ":"), parent.count == 2,
                let parentMajor = UInt32(parent[0]), let parentMinor = UInt32(parent[1])
            else { throw LayoutError(description: "partition \(sys): no start or parent") }
            offset = start
            disk = (parentMajor, parentMinor)
        }
        let result: CommandResult
        do {
            result = try Command.run(["filefrag", "-v", "-b512", path])
        } catch {
            throw LayoutError(description: "filefrag: \(error)")
        }
        guard result.status == 0 else { throw LayoutError(description: "filefrag: \(result.stderr)") }
        // "   0:        0..   65535:  194314240.. 194379775:  65536:             last,eof"
        var ranges: [Range<UInt64>] = []
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 4, Int(fields[0]) != nil else { continue }
            let physical = fields[2].components(separatedBy: "..").map { $0.trimmingCharacters(in: .whitespaces) }
            guard physical.count == 2, let first = UInt64(physical[0]), let last = UInt64(physical[1]), first <= last
            else { throw LayoutError(description: "filefrag line: \(line)") }
            // The flags column, when the line has one ("unwritten": allocated, never written).
            if fields.count >= 5, let flags = fields.last, flags.contains("unwritten") || flags.contains("unknown") {
                throw LayoutError(description: "extent not on disk yet: \(line)")
            }
            ranges.append((offset + first)..<(offset + last + 1))
        }
        guard !ranges.isEmpty else { throw LayoutError(description: "no extents: \(result.stdout)") }
        return FileSectors(major: disk.0, minor: disk.1, ranges: ranges)
    }

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
