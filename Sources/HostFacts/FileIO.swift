#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
        case .system(let path, let code): "\(path): \(String(cString: strerror(code)))"
        }
    }
}

/// Small, bounded reads from file descriptors and paths.
public enum FileIO {
    /// The default upper bound for a file read into memory (procfs and sysfs files are small).
    public static let defaultLimit = 4 << 20

    /// Reads a whole file by path, at most `limit` bytes.
    public static func read(path: String, limit: Int = defaultLimit) throws(HostReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw .from(errno: errno, path: path) }
        defer { close(fd) }
        return try read(fd: fd, path: path, limit: limit)
    }

    /// Reads an open descriptor to its end, at most `limit` bytes.
    public static func read(fd: Int32, path: String, limit: Int = defaultLimit) throws(HostReadError) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
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
