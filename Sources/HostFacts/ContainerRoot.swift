import CShims
import Glibc
import OSSupport

/// Reads files inside a container's root file system — `/proc/<pid>/root` on the host — so
/// that nothing the container controls can lead a read out of that root, block it, or hand it
/// something other than a file.
///
/// pgnode runs as root on the node and reads paths that a container's user can replace with
/// links (`postgresql.auto.conf` → `/etc/shadow`), FIFOs (an `open` that never returns) or
/// device nodes (an `open` that reaches a driver: a tape rewinds, a watchdog arms). Every path is
/// resolved as if the container's root were `/`: with `openat2(2)` and `RESOLVE_IN_ROOT` where
/// the kernel has it (5.6+), else by walking the path one component at a time without following
/// links and resolving each link by hand against the container's root. Either way the path is
/// resolved to an `O_PATH` descriptor, which opens nothing; its type is checked with `fstat`, and
/// only a regular file (a directory, for a listing) is then opened for reading, through
/// `/proc/self/fd/<n>` (the very inode checked, not the path again), with `O_NONBLOCK` and
/// `O_NOCTTY`. Anything else is `HostReadError.notRegularFile` ("not a regular file: <path>").
///
/// The root of a process is reached through its `proc/<pid>` directory, and before each read
/// the process there is confirmed to be the one discovered (`ProcessIdentity`): a pid reused
/// by another process in the meantime fails the read with `.processReplaced` instead of
/// reading the other process's files.
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
    /// The process whose root this is, confirmed before every open; nil for a plain directory.
    public let process: ProcessIdentity?
    /// `<host>/proc/<pid>` of `process`.
    let processDirectory: String?

    /// Most links followed while resolving one path, as the kernel's own limit.
    static let maxLinks = 40
    /// The longest path accepted (PATH_MAX, with its terminating NUL).
    static let maxPathBytes = 4095
    /// The most names `listDirectory` returns by default.
    public static let listLimit = 10_000

    /// The root of `process` as seen through `host`.
    public init(host: HostRoot, process: ProcessIdentity, strategy: Strategy = .automatic) {
        self.rootPath = host.resolve("proc/\(process.pid)/root")
        self.strategy = strategy
        self.process = process
        self.processDirectory = host.resolve("proc/\(process.pid)")
    }

    /// A root at an arbitrary directory (tests use a plain directory).
    public init(rootPath: String, strategy: Strategy = .automatic) {
        self.rootPath = rootPath
        self.strategy = strategy
        self.process = nil
        self.processDirectory = nil
    }

    /// Reads a regular file at `path` (absolute inside the container) as bytes.
    public func read(_ path: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> [UInt8] {
        try readFile(path, limit: limit).bytes
    }

    /// Reads a regular file at `path` inside the container as text.
    public func readText(_ path: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> String {
        String(decoding: try read(path, limit: limit), as: UTF8.self)
    }

    /// Reads a regular file at `path`, at most `limit` bytes, with what identifies it.
    public func readFile(_ path: String, limit: Int = FileIO.defaultLimit) throws(HostReadError) -> ContainerFile {
        let (fd, identity) = try openRegularFile(path)
        defer { close(fd) }
        return ContainerFile(bytes: try FileIO.read(fd: fd, path: path, limit: limit), identity: identity)
    }

    /// Whether `path` exists inside the container (links resolved within the root).
    public func exists(_ path: String) -> Bool {
        guard let fd = try? resolve(path) else { return false }
        close(fd)
        return true
    }

    /// File-system statistics of the mount holding `path` inside the container.
    public func fileSystem(_ path: String) throws(HostReadError) -> FileSystemUsage {
        let fd = try resolve(path)
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

    /// Opens the regular file at `path` inside the root for reading; the caller closes the
    /// descriptor. Anything but a regular file is `.notRegularFile`, and is never opened.
    public func openRegularFile(_ path: String) throws(HostReadError) -> (fd: Int32, identity: FileIdentity) {
        try open(path, type: S_IFREG, flags: O_RDONLY)
    }

    /// The names in the directory at `path` inside the root, without `.` and `..`, at most
    /// `limit` (the rest is left out). Anything but a directory is `.notDirectory`.
    public func listDirectory(_ path: String, limit: Int = ContainerRoot.listLimit) throws(HostReadError) -> [String] {
        let (fd, _) = try open(path, type: S_IFDIR, flags: O_RDONLY | O_DIRECTORY)
        var names: [String] = []
        guard limit > 0 else {
            close(fd)
            return names
        }
        do throws(DirectoryListing.OpenError) {
            try DirectoryListing.forEach(descriptor: fd) { entry in
                names.append(entry.name)
                return names.count < limit
            }
        } catch {
            throw .from(errno: error.code, path: path)
        }
        return names
    }

    /// Resolves `path`, checks that it is of `type` (`S_IFREG` or `S_IFDIR`), and only then opens
    /// that inode with `flags` (plus `O_NONBLOCK`, `O_NOCTTY`, `O_CLOEXEC`).
    func open(_ path: String, type: mode_t, flags: Int32) throws(HostReadError) -> (fd: Int32, identity: FileIdentity) {
        // Resolved as whatever it is (no O_DIRECTORY), so that fstat can say what it is instead.
        let pathFD = try resolve(path)
        defer { close(pathFD) }
        let resolved = try Self.status(pathFD, path: path, type: type)
        let openFlags = flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
        // The inode just checked, opened through its descriptor: no second walk of the path
        // that a swapped file could change.
        var fd = Glibc.open("/proc/self/fd/\(pathFD)", openFlags)
        if fd < 0 {
            let code = errno
            guard code == ENOENT else { throw .from(errno: code, path: path) }
            // No procfs in pgnode's own mount namespace: resolve again, opening non-blocking, and
            // make sure below that it is the same inode.
            fd = try resolve(path, flags: openFlags)
        }
        do throws(HostReadError) {
            let opened = try Self.status(fd, path: path, type: type)
            // Replaced between the two resolutions: refused as stale.
            guard opened == resolved else { throw HostReadError.from(errno: ESTALE, path: path) }
        } catch {
            close(fd)
            throw error
        }
        return (fd, resolved)
    }

    /// `fstat` of `fd`: its identity, when it is of `type`.
    static func status(_ fd: Int32, path: String, type: mode_t) throws(HostReadError) -> FileIdentity {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .from(errno: errno, path: path) }
        guard (st.st_mode & S_IFMT) == type else {
            throw type == S_IFDIR ? .notDirectory(path: path) : .notRegularFile(path: path)
        }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Resolves `path` inside the root to a descriptor opened with `flags` (by default `O_PATH`,
    /// which opens nothing: no FIFO blocks, no device's driver is called); the caller closes it.
    func resolve(_ path: String, flags: Int32 = PGNODE_O_PATH) throws(HostReadError) -> Int32 {
        guard path.utf8.count <= Self.maxPathBytes else { throw .from(errno: ENAMETOOLONG, path: path) }
        let rootFD = try openRoot()
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

    /// The root directory, as an `O_PATH` descriptor. A process's root is opened through its
    /// `proc/<pid>` directory once that directory is confirmed to be of the process discovered:
    /// a procfs directory stays bound to the process it was opened for, so `root` below it is
    /// that process's or, once it has exited, nothing.
    func openRoot() throws(HostReadError) -> Int32 {
        guard let process, let processDirectory else {
            let fd = Glibc.open(rootPath, PGNODE_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw .from(errno: errno, path: rootPath) }
            return fd
        }
        let procFD = Glibc.open(processDirectory, PGNODE_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard procFD >= 0 else { throw ProcessIdentity.exited(errno: errno, pid: process.pid, path: "") }
        defer { close(procFD) }
        try process.confirm(directory: procFD)
        let fd = openat(procFD, "root", PGNODE_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ProcessIdentity.exited(errno: errno, pid: process.pid, path: "root") }
        return fd
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
                ? (flags & PGNODE_O_PATH != 0
                    ? flags | O_NOFOLLOW | O_CLOEXEC : flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
                : (PGNODE_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
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

/// What identifies a file: its device and inode, as `fstat` gives them.
public struct FileIdentity: Sendable, Hashable, CustomStringConvertible {
    /// `st_dev`.
    public var device: UInt64
    /// `st_ino`.
    public var inode: UInt64

    /// An identity.
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public var description: String { "device \(device) inode \(inode)" }
}

/// A regular file read inside a container: its bytes and what identifies it.
public struct ContainerFile: Sendable, Equatable {
    /// The contents (at most the limit of the read).
    public var bytes: [UInt8]
    /// The file's device and inode.
    public var identity: FileIdentity

    /// A file read.
    public init(bytes: [UInt8], identity: FileIdentity) {
        self.bytes = bytes
        self.identity = identity
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
