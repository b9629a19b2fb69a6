import Glibc
import OSSupport

/// A failed file operation, with errno.
public struct FileError: Error, Sendable, CustomStringConvertible {
    /// What was being done, and to which path.
    public var operation: String
    /// errno.
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }

    /// An error for `operation` with `code`.
    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// Whether trying again later may succeed: the process or the system ran out of descriptors or
    /// memory, an I/O error, an interrupted or would-block call. The file itself says nothing here.
    public var isTransient: Bool {
        [EMFILE, ENFILE, EIO, EINTR, EAGAIN, ENOMEM, ENOBUFS].contains(code)
    }
}

/// The few file operations the spool, the dead-letter file and the token file need, on plain
/// POSIX calls.
enum Files {
    /// At most `limit` bytes from the start of the regular file at `path`. The open never blocks
    /// (`O_NONBLOCK`, so a FIFO put there cannot hang the caller) and anything but a regular file is
    /// refused before a byte is read; with `followSymlinks` false a symbolic link is refused too.
    static func readPrefix(_ path: String, limit: Int, followSymlinks: Bool = true) throws(FileError) -> [UInt8] {
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (followSymlinks ? 0 : O_NOFOLLOW)
        let fd = open(path, flags)
        guard fd >= 0 else { throw FileError(operation: "open \(path)", code: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileError(operation: "fstat \(path)", code: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw FileError(operation: "\(path) is not a regular file", code: EINVAL)
        }
        let limit = max(0, limit)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(limit, 64 << 10))
        while out.count < limit {
            let want = min(chunk.count, limit - out.count)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "read \(path)", code: errno)
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// The whole regular file (see `readPrefix`); fails above `limit` bytes.
    static func read(_ path: String, limit: Int = 256 << 20, followSymlinks: Bool = true) throws(FileError) -> [UInt8] {
        let limit = min(max(0, limit), Int.max - 1)
        let bytes = try readPrefix(path, limit: limit + 1, followSymlinks: followSymlinks)
        guard bytes.count <= limit else {
            throw FileError(operation: "read \(path) (over \(limit) bytes)", code: EFBIG)
        }
        return bytes
    }

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "write \(path)", code: errno)
            }
            offset += n
        }
    }

    /// Writes `bytes` to `directory/name` so that a crash leaves either no file or the whole file:
    /// a temporary file is written and fsynced, renamed into place, and the directory fsynced.
    static func writeAtomically(directory: String, name: String, _ bytes: [UInt8]) throws(FileError) {
        let temporary = "\(directory)/.\(name).tmp"
        let final = "\(directory)/\(name)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(operation: "create \(temporary)", code: errno) }
        do throws(FileError) {
            try writeAll(fd, bytes, path: temporary)
            guard fsync(fd) == 0 else { throw FileError(operation: "fsync \(temporary)", code: errno) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, final) == 0 else {
            let code = errno
            unlink(temporary)
            throw FileError(operation: "rename \(temporary)", code: code)
        }
        syncDirectory(directory)
    }

    /// fsyncs a directory, so that a rename or unlink in it survives a crash.
    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Appends `bytes` to `path` (created 0600), in one write.
    static func append(_ path: String, _ bytes: [UInt8]) throws(FileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(operation: "open \(path)", code: errno) }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
        fsync(fd)
    }

    /// The names in `directory` (no `.` or `..`).
    static func list(_ directory: String) throws(FileError) -> [String] {
        do throws(DirectoryListing.OpenError) {
            return try DirectoryListing.names(directory)
        } catch {
            throw FileError(operation: "opendir \(directory)", code: error.code)
        }
    }

    /// Creates `path` and its parents (0700) when missing.
    static func makeDirectories(_ path: String) throws(FileError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/\(component)"
            if mkdir(current, 0o700) != 0 && errno != EEXIST {
                throw FileError(operation: "mkdir \(current)", code: errno)
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw FileError(operation: "\(path) is not a directory", code: ENOTDIR)
        }
    }

    /// The size of a file, or nil.
    static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    /// When the inode at `path` last changed (a rename sets it): seconds and nanoseconds, or nil.
    static func changeTime(_ path: String) -> (seconds: Int64, nanoseconds: Int64)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (Int64(info.st_ctim.tv_sec), Int64(info.st_ctim.tv_nsec))
    }
}
