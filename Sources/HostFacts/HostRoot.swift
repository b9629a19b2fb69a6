import CShims
import Glibc
import OSSupport

/// The directory that stands for the node's `/`: `/` when pgnode runs on the node itself,
/// `/host` in the DaemonSet, or a fixture tree in tests. Every read of host state goes
/// through one of these, so that readers never hard-code an absolute path.
public struct HostRoot: Sendable, Equatable, CustomStringConvertible {
    /// The absolute path of the root, without a trailing slash (`/` stays `/`).
    public let path: String

    /// A host root at `path`.
    public init(_ path: String = "/") {
        var p = path.isEmpty ? "/" : path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p
    }

    /// Whether this is the real root of the machine pgnode runs on.
    public var isSystemRoot: Bool { path == "/" }

    public var description: String { path }

    /// The absolute path of `relative` (given with or without a leading slash) under this root.
    public func resolve(_ relative: String) -> String {
        let trimmed = relative.drop(while: { $0 == "/" })
        if path == "/" { return "/" + trimmed }
        return trimmed.isEmpty ? path : path + "/" + trimmed
    }

    /// Reads a file under the root as bytes.
    public func read(_ relative: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> [UInt8] {
        try FileIO.read(path: resolve(relative), limit: limit)
    }

    /// Reads a file under the root as text.
    public func readText(_ relative: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> String {
        try FileIO.readText(path: resolve(relative), limit: limit)
    }

    /// Reads a one-line file (sysfs/procfs style), trimmed of surrounding white space.
    public func readLine(_ relative: String) throws(HostReadError) -> String {
        try readText(relative, limit: 64 << 10).trimmingWhitespace()
    }

    /// Whether anything exists at `relative` (a dangling link counts as absent).
    public func exists(_ relative: String) -> Bool {
        access(resolve(relative), F_OK) == 0
    }

    /// Whether `relative` is a directory.
    public func isDirectory(_ relative: String) -> Bool {
        var st = stat()
        return stat(resolve(relative), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// File metadata of `relative` (following links).
    public func status(_ relative: String) throws(HostReadError) -> FileStatus {
        var st = stat()
        let p = resolve(relative)
        guard stat(p, &st) == 0 else { throw .from(errno: errno, path: p) }
        return FileStatus(st)
    }

    /// The most entries `list` returns by default: procfs's largest pid_max (2^22), so that the
    /// process table always fits and nothing else can grow without bound.
    public static let listLimit = 1 << 22

    /// The entries of a directory, without `.` and `..`, in no particular order; more than
    /// `limit` entries is `tooLarge`.
    public func list(_ relative: String, limit: Int = HostRoot.listLimit) throws(HostReadError) -> [String] {
        let p = resolve(relative)
        var names: [String] = []
        do throws(DirectoryListing.OpenError) {
            try DirectoryListing.forEach(p) { entry in
                names.append(entry.name)
                return names.count <= limit
            }
        } catch {
            throw .from(errno: error.code, path: p)
        }
        if names.count > limit { throw .tooLarge(path: p, limit: limit) }
        return names
    }

    /// The target of a symbolic link, as stored.
    public func readLink(_ relative: String) throws(HostReadError) -> String {
        let p = resolve(relative)
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(p, &buffer, buffer.count)
        guard n >= 0 else { throw .from(errno: errno, path: p) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The magic number of the file system mounted at (or containing) `relative`.
    public func fileSystemType(_ relative: String) throws(HostReadError) -> Int64 {
        let p = resolve(relative)
        var type: Int64 = 0
        guard pgnode_statfs_type(p, &type) == 0 else { throw .from(errno: errno, path: p) }
        return type
    }
}

/// The parts of `stat(2)` that pgnode uses.
public struct FileStatus: Sendable, Equatable {
    /// The inode number (for cgroup directories on cgroup2, the cgroup id).
    public var inode: UInt64
    /// The size in bytes.
    public var size: Int64
    /// The device number.
    public var device: UInt64
    /// Whether it is a directory.
    public var isDirectory: Bool
    /// Whether it is a regular file.
    public var isRegularFile: Bool
    /// The owner's uid.
    public var uid: UInt32

    init(_ st: stat) {
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        device = UInt64(st.st_dev)
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        isRegularFile = (st.st_mode & S_IFMT) == S_IFREG
        uid = st.st_uid
    }
}

extension StringProtocol {
    /// The string without leading and trailing spaces, tabs and newlines.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}
