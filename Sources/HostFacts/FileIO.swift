import Glibc

/// Why a file on the host (or in a container) could not be read.
public enum HostReadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path does not exist (ENOENT, ENOTDIR, or a process that has exited: ESRCH).
    case notFound(path: String)
    /// Permission was refused (EACCES, EPERM).
    case permissionDenied(path: String)
    /// The file is larger than the reader accepts.
    case tooLarge(path: String, limit: Int)
    /// A path inside a container tried to leave the container's root.
    case escapesRoot(path: String)
    /// The path names something other than a regular file (a FIFO, a device, a socket, a
    /// directory): refused before any read, so that it can neither block nor be read.
    case notRegularFile(path: String)
    /// The path names something other than a directory where a listing was wanted.
    case notDirectory(path: String)
    /// The process whose files were to be read has exited.
    case processExited(pid: Int32)
    /// The process found at discovery has exited and its pid now names a later process: the
    /// read was refused, since it would have been of that other process.
    case processReplaced(pid: Int32)
    /// Any other system error.
    case system(path: String, errno: Int32)

    /// Maps an errno from open/read to an error for `path`.
    public static func from(errno code: Int32, path: String) -> HostReadError {
        switch code {
        case ENOENT, ENOTDIR, ESRCH: .notFound(path: path)
        case EACCES, EPERM: .permissionDenied(path: path)
        case EXDEV: .escapesRoot(path: path)
        default: .system(path: path, errno: code)
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): no such file"
        case .permissionDenied(let path): "\(path): permission denied"
        case .tooLarge(let path, let limit): "\(path): larger than \(limit) bytes"
        case .escapesRoot(let path): "\(path): resolves outside the container's root"
        case .notRegularFile(let path): "not a regular file: \(path)"
        case .notDirectory(let path): "not a directory: \(path)"
        case .processExited(let pid): "process \(pid) exited"
        case .processReplaced(let pid): "process \(pid) exited (pid reused)"
        case .system(let path, let code): "\(path): \(String(cString: strerror(code)))"
        }
    }
}

/// Small, bounded reads from file descriptors and paths.
public enum FileIO {
    /// The default upper bound for a file read into memory (procfs and sysfs files are small).
    public static let defaultLimit = 4 << 20

    /// Reads a whole regular file by path (on the host: procfs, sysfs, runtime state), at most
    /// `limit` bytes. The open does not block (`O_NONBLOCK`) and anything but a regular file is
    /// refused before it is read. Paths inside a container go through `ContainerRoot` instead.
    public static func read(path: String, limit: Int = defaultLimit) throws(HostReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .from(errno: errno, path: path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .from(errno: errno, path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notRegularFile(path: path) }
        return try read(fd: fd, path: path, limit: limit)
    }

    /// Reads an open descriptor to its end, at most `limit` bytes: never more than `limit + 1`
    /// bytes are taken from the descriptor (the one past the limit says the file is too large).
    public static func read(fd: Int32, path: String, limit: Int = defaultLimit) throws(HostReadError) -> [UInt8] {
        let limit = max(limit, 0)
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            // At most what is left of the limit, plus one byte to tell "exactly full" from "more".
            let wanted = min(buffer.count, limit - result.count + 1)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, wanted) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .from(errno: errno, path: path)
            }
            if n == 0 { break }
            guard result.count + n <= limit else { throw .tooLarge(path: path, limit: limit) }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }

    /// Reads a whole file as UTF-8 text (invalid bytes are replaced).
    public static func readText(path: String, limit: Int = defaultLimit) throws(HostReadError) -> String {
        String(decoding: try read(path: path, limit: limit), as: UTF8.self)
    }
}
