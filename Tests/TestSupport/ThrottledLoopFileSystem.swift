import Foundation

/// An ext4 file system on a loop device whose backing device (bdi) has `strict_limit=1` and a
/// small `max_bytes`: the kernel throttles whoever dirties pages on it (`balance_dirty_pages`)
/// as soon as the device holds more than its own tiny share of dirty pages, whatever the node's
/// state. Made by a test (root), undone by `close`: unmounted, the loop device detached, the
/// bdi's knobs restored (they belong to the loop disk and outlive the detach), the backing file
/// removed.
public final class ThrottledLoopFileSystem {
    /// The loop device (`/dev/loop3`).
    public let device: String
    /// Its bdi's name (`7:3`).
    public let bdi: String
    /// Its block device's name (`loop3`).
    public var blockDevice: String { (device as NSString).lastPathComponent }
    /// Where it is mounted.
    public let mountPoint: String
    /// The bdi's `max_bytes` as read right after setting it. The kernel keeps it as a ratio of the
    /// node's dirty limit (`max_ratio_fine`) and recomputes the bytes as dirtyable memory changes,
    /// so a later reading differs a little.
    public private(set) var maxBytes: Int64 = 0
    let directory: String
    let savedMaxRatioFine: String?
    var closed = false

    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    static func run(_ arguments: [String]) throws -> String {
        let result = try Command.run(arguments, timeout: 120)
        guard result.status == 0 else {
            throw SetupError(description: "\(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Makes a `sizeMiB` file system under /var/tmp and mounts it; its bdi gets `strict_limit=1`
    /// and `max_bytes` (the device's share of the dirty limit).
    public init(sizeMiB: Int = 512, maxBytes: Int64 = 1 << 20) throws {
        directory = "/var/tmp/pgnode-loop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/mnt", withIntermediateDirectories: true)
        mountPoint = directory + "/mnt"
        let backing = directory + "/disk.img"
        var attached: String?
        var bdiName: String?
        var saved: String?
        do {
            _ = try Self.run(["truncate", "-s", "\(sizeMiB)M", backing])
            _ = try Self.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", backing])
            let loop = try Self.run(["losetup", "--find", "--show", backing])
            attached = loop
            let name = (loop as NSString).lastPathComponent
            let dev = try String(contentsOfFile: "/sys/block/\(name)/dev", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            bdiName = dev
            saved = try? String(contentsOfFile: "/sys/class/bdi/\(dev)/max_ratio_fine", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            _ = try Self.run(["mount", "-t", "ext4", loop, mountPoint])
            try "1".write(toFile: "/sys/class/bdi/\(dev)/strict_limit", atomically: false, encoding: .utf8)
            try "\(maxBytes)".write(toFile: "/sys/class/bdi/\(dev)/max_bytes", atomically: false, encoding: .utf8)
        } catch {
            if attached != nil { _ = try? Command.run(["umount", mountPoint]) }
            if let bdiName { Self.restore(bdi: bdiName, maxRatioFine: saved) }
            if let attached { _ = try? Command.run(["losetup", "-d", attached]) }
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        device = attached!
        bdi = bdiName!
        savedMaxRatioFine = saved
        self.maxBytes =
            Int64(
                (try? String(contentsOfFile: "/sys/class/bdi/\(bdi)/max_bytes", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    static func restore(bdi: String, maxRatioFine: String?) {
        try? "0".write(toFile: "/sys/class/bdi/\(bdi)/strict_limit", atomically: false, encoding: .utf8)
        try? (maxRatioFine ?? "1000000").write(
            toFile: "/sys/class/bdi/\(bdi)/max_ratio_fine", atomically: false, encoding: .utf8)
    }

    /// Makes `path` (relative to the mount point) a directory owned by `user`.
    public func directory(_ path: String, owner user: String) throws -> String {
        let full = mountPoint + "/" + path
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        _ = try Self.run(["chown", user, full])
        return full
    }

    /// Unmounts (after a sync), detaches, restores the knobs, removes the files; once.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = try? Command.run(["sync", "-f", mountPoint], timeout: 300)
        var unmounted = false
        for _ in 0..<50 {
            if (try? Command.run(["umount", mountPoint]))?.status == 0 {
                unmounted = true
                break
            }
            usleep(200_000)
        }
        Self.restore(bdi: bdi, maxRatioFine: savedMaxRatioFine)
        if unmounted {
            _ = try? Command.run(["losetup", "-d", device])
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    deinit { close() }
}
