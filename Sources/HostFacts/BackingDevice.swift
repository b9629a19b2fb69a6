/// One backing device (`/sys/class/bdi/<name>`), the kernel's unit of writeback and of dirty
/// throttling: its name (`7:0`, the device numbers; `0:53` for a file system without a block
/// device), the block device it stands for, and its writeback knobs. `strict_limit` makes the
/// kernel throttle the device's writers as soon as the device exceeds its own share of the dirty
/// limit, even while the node is far below the global one (FUSE sets it; an administrator can);
/// `max_bytes`/`max_ratio` cap that share.
public struct BackingDevice: Sendable, Equatable {
    /// The directory of all of them, relative to the host root.
    public static let directory = "sys/class/bdi"

    /// Its name under `/sys/class/bdi`.
    public var name: String
    /// The block device's name (`loop0`, `nvme0n1`), from `/sys/dev/block/<name>`; nil when
    /// there is none.
    public var blockDevice: String?
    /// `strict_limit` (0 or 1).
    public var strictLimit: Int64?
    /// `max_bytes` (kernels from 6.2 on).
    public var maxBytes: Int64?
    /// `max_ratio` (percent).
    public var maxRatio: Int64?
    /// `min_ratio` (percent).
    public var minRatio: Int64?
    /// `read_ahead_kb`.
    public var readAheadKB: Int64?
    /// Why a file could not be read or understood.
    public var problems: [String]

    /// A device as given.
    public init(
        name: String, blockDevice: String? = nil, strictLimit: Int64? = nil, maxBytes: Int64? = nil,
        maxRatio: Int64? = nil, minRatio: Int64? = nil, readAheadKB: Int64? = nil, problems: [String] = []
    ) {
        self.name = name
        self.blockDevice = blockDevice
        self.strictLimit = strictLimit
        self.maxBytes = maxBytes
        self.maxRatio = maxRatio
        self.minRatio = minRatio
        self.readAheadKB = readAheadKB
        self.problems = problems
    }

    /// Whether `name` is a bdi name pgnode reads: `<major>:<minor>` in decimal, or a plain name of
    /// letters, digits, `-`, `_` and `.` (never `.`, `..` or a `/`), at most 64 characters.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64, name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x3A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D
                || c == 0x5F || c == 0x2E
        }
    }

    /// Reads the device `name` under `host`: each file at most 256 bytes, a non-regular file
    /// refused (`FileIO`), a missing (older kernel) or garbled one a problem, never an error; a
    /// name that is not a bdi name is not read at all.
    public static func read(host: HostRoot, name: String) -> BackingDevice {
        guard isValidName(name) else {
            return BackingDevice(name: name, problems: ["'\(name.prefix(64))' is not a backing device name"])
        }
        var device = BackingDevice(name: name)
        guard host.isDirectory("\(directory)/\(name)") else {
            device.problems.append("\(host.resolve("\(directory)/\(name)")): no such backing device")
            return device
        }
        func value(_ file: String) -> Int64? {
            let path = "\(directory)/\(name)/\(file)"
            do {
                let text = try host.readText(path, limit: 256).trimmingWhitespace()
                guard let value = Int64(text), value >= 0 else {
                    device.problems.append("\(host.resolve(path)): not a non-negative integer: '\(text.prefix(40))'")
                    return nil
                }
                return value
            } catch {
                device.problems.append(error.description)
                return nil
            }
        }
        device.strictLimit = value("strict_limit")
        device.maxBytes = value("max_bytes")
        device.maxRatio = value("max_ratio")
        device.minRatio = value("min_ratio")
        device.readAheadKB = value("read_ahead_kb")
        if name.utf8.contains(0x3A), let link = try? host.readLink("sys/dev/block/\(name)"),
            let last = link.split(separator: "/").last, !last.isEmpty
        {
            device.blockDevice = String(last.prefix(64))
        }
        return device
    }
}
