import CShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reads files inside a container's root file system — `/proc/<pid>/root` on the host — so
/// that no symbolic link the container controls can lead a read out of that root.
///
/// pgnode runs as root on the node and reads paths that a container's user can replace with
/// links (`postgresql.auto.conf` → `/etc/shadow`). Every such read resolves the path as if
/// the container's root were `/`: with `openat2(2)` and `RESOLVE_IN_ROOT` where the kernel has
/// it (5.6+), else by walking the path one component at a time without following links and
/// resolving each link by hand against the container's root.
public struct ContainerRoot: Sendable {
    /// How paths are resolved.
    public enum Strategy: Sendable, Equatable {
        /// `openat2` with `RESOLVE_IN_ROOT`, falling back to `.walk` when the kernel lacks it.
        case automatic
        /// Component by component with `O_NOFOLLOW` (used where `openat2` is missing).
        case walk
    }

    /// The absolute path of the root directory (e.g. `/host/proc/4242/root`).
    public let rootPath: String
    /// How paths are resolved.
    public let strategy: Strategy

    /// Most links followed while resolving one path, as the kernel's own limit.
    static let maxLinks = 40

    /// The root of process `pid` as seen through `host`.
    public init(host: HostRoot, pid: Int32, strategy: Strategy = .automatic) {
        self.init(rootPath: host.resolve("proc/\(pid)/root"), strategy: strategy)
    }

    /// A root at an arbitrary directory (tests use a plain directory).
    public init(rootPath: String, strategy: Strategy = .automatic) {
        self.rootPath = rootPath
        self.strategy = strategy
    }

    /// Reads a file at `path` (absolute inside the container) as bytes.
    public func read(_ path: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY)
        defer { close(fd) }
        return try FileIO.read(fd: fd, path: path, limit: limit)
    }

    /// Reads a file at `path` inside the container as text.
    public func readText(_ path: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> String {
        String(decoding: try read(path, limit: limit), as: UTF8.self)
    }

    /// Whether `path` exists inside the container (links resolved within the root).
    public func exists(_ path: String) -> Bool {
        guard let fd = try? open(path, flags: PGNODE_O_PATH) else { return false }
        close(fd)
        return true
    }

    /// File-system statistics of the mount holding `path` inside the container.
    public func fileSystem(_ path: String) throws(HostReadError) -> FileSystemUsage {
        let fd = try open(path, flags: PGNODE_O_PATH)
        defer { close(fd) }
        var type: Int64 = 0
        var blockSize: UInt64 = 0
        var blocks: UInt64 = 0
        var free: UInt64 = 0
        guard pgnode_fstatfs_size(fd, &type, &blockSize, &blocks, &free) == 0 else {
            throw .from(errno: errno, path: path)
        }
        return FileSystemUsage(type: type, sizeBytes: blocks &* blockSize, freeBytes: free &* blockSize)
    }

    /// Opens `path` inside the root with `flags`; the caller closes the descriptor.
    public func open(_ path: String, flags: Int32) throws(HostReadError) -> Int32 {
        let rootFD = Glibc.open(rootPath, PGNODE_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw .from(errno: errno, path: rootPath) }
        defer { close(rootFD) }
        if strategy == .automatic {
            let relative = String(path.drop(while: { $0 == "/" }))
            // openat2 rejects flags that O_PATH ignores, so O_NOCTTY only goes with real opens.
            let openFlags = flags & PGNODE_O_PATH != 0 ? flags | O_CLOEXEC : flags | O_CLOEXEC | O_NOCTTY
            let fd = pgnode_openat2(
                rootFD, relative.isEmpty ? "." : relative, UInt64(UInt32(bitPattern: openFlags)), 0,
                UInt64(PGNODE_RESOLVE_IN_ROOT | PGNODE_RESOLVE_NO_MAGICLINKS))
            if fd >= 0 { return fd }
            let code = errno
            if code != ENOSYS && code != EPERM { throw .from(errno: code, path: path) }
            // ENOSYS: no openat2 in this kernel. EPERM: blocked by a seccomp profile. Walk instead.
        }
        return try walk(rootFD: rootFD, path: path, flags: flags)
    }

    /// Resolves `path` component by component, never following a link out of `rootFD`.
    private func walk(rootFD: Int32, path: String, flags: Int32) throws(HostReadError) -> Int32 {
        var pending = Array(path.split(separator: "/").map(String.init).reversed())
        var stack: [Int32] = [dup(rootFD)]
        defer { for fd in stack { close(fd) } }
        var links = 0
        while let component = pending.popLast() {
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                if stack.count > 1 { close(stack.removeLast()) }
                continue
            }
            let current = stack.last!
            var st = stat()
            guard fstatat(current, component, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw .from(errno: errno, path: path)
            }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                links += 1
                guard links <= Self.maxLinks else { throw .from(errno: ELOOP, path: path) }
                var buffer = [CChar](repeating: 0, count: 4096)
                let n = readlinkat(current, component, &buffer, buffer.count - 1)
                guard n >= 0 else { throw .from(errno: errno, path: path) }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") {
                    // Absolute links restart at the container's root, never the host's.
                    for fd in stack.dropFirst() { close(fd) }
                    stack.removeSubrange(1...)
                }
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
                continue
            }
            let isLast = pending.isEmpty
            let openFlags: Int32 =
                isLast
                ? (flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY) : (PGNODE_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let fd = openat(current, component, openFlags)
            guard fd >= 0 else { throw .from(errno: errno, path: path) }
            if isLast { return fd }
            stack.append(fd)
        }
        // The path named a directory (or the root itself).
        let fd = openat(stack.last!, ".", flags | O_CLOEXEC)
        guard fd >= 0 else { throw .from(errno: errno, path: path) }
        return fd
    }
}

/// Size and use of a mounted file system.
public struct FileSystemUsage: Sendable, Equatable {
    /// The statfs magic number (`0x01021994` for tmpfs).
    public var type: Int64
    /// Total size in bytes.
    public var sizeBytes: UInt64
    /// Free bytes.
    public var freeBytes: UInt64
    /// Used bytes.
    public var usedBytes: UInt64 { sizeBytes &- freeBytes }

    /// Usage figures.
    public init(type: Int64, sizeBytes: UInt64, freeBytes: UInt64) {
        self.type = type
        self.sizeBytes = sizeBytes
        self.freeBytes = freeBytes
    }
}
