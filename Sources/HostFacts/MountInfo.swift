/// One line of `/proc/<pid>/mountinfo`.
public struct MountEntry: Sendable, Equatable {
    /// The mount id.
    public var id: Int
    /// The parent mount's id.
    public var parentID: Int
    /// `major:minor` of the device.
    public var device: String
    /// The root of the mount within its file system.
    public var root: String
    /// Where it is mounted (relative to the reader's root).
    public var mountPoint: String
    /// Per-mount options.
    public var options: [String]
    /// The file system type (`cgroup`, `cgroup2`, `tmpfs`, `overlay`, …).
    public var fileSystemType: String
    /// The mount source.
    public var source: String
    /// Per-superblock options (for cgroup v1, the controllers).
    public var superOptions: [String]
}

/// Parses `mountinfo` (proc(5)). Malformed lines are skipped and counted, never fatal.
public enum MountInfo {
    /// The parsed entries and how many lines could not be parsed.
    public static func parse(_ text: String) -> (entries: [MountEntry], malformedLines: Int) {
        var entries: [MountEntry] = []
        var malformed = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let entry = parseLine(line) { entries.append(entry) } else { malformed += 1 }
        }
        return (entries, malformed)
    }

    /// One line, or nil when it does not have the mountinfo shape.
    public static func parseLine(_ line: Substring) -> MountEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 3,
            let id = Int(fields[0]), let parent = Int(fields[1])
        else { return nil }
        return MountEntry(
            id: id, parentID: parent, device: String(fields[2]), root: unescape(fields[3]),
            mountPoint: unescape(fields[4]), options: fields[5].split(separator: ",").map(String.init),
            fileSystemType: String(fields[dash + 1]), source: unescape(fields[dash + 2]),
            superOptions: fields.count > dash + 3 ? fields[dash + 3].split(separator: ",").map(String.init) : [])
    }

    /// Undoes the kernel's octal escapes (`\040` for a space).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count {
                let digits = utf8[(i + 1)...(i + 3)]
                if digits.allSatisfy({ (48...55).contains($0) }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - 48) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
