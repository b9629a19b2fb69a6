import Glibc
import HostFacts

/// A shared library that a container's processes map (their C library), to attach uprobes to.
///
/// Found in `/proc/<pid>/maps`, which names it by a path inside the container and by the device
/// and inode of the mapped file. The path is container-controlled, so `open()` resolves it inside
/// the container's root only (`ContainerRoot`: `openat2(RESOLVE_IN_ROOT)`), and then refuses any
/// file other than the one mapped: a link planted in the container can neither lead pgnode to a
/// host file nor swap in another file.
public struct LibraryFile: Sendable, Hashable, CustomStringConvertible {
    /// What identifies the mapped file: its device and inode, as `/proc/<pid>/maps` shows them.
    public struct Identity: Sendable, Hashable, CustomStringConvertible {
        /// The device's major number.
        public var major: UInt32
        /// The device's minor number.
        public var minor: UInt32
        /// The inode number.
        public var inode: UInt64

        public init(major: UInt32, minor: UInt32, inode: UInt64) {
            self.major = major
            self.minor = minor
            self.inode = inode
        }

        /// `major:minor inode` in hexadecimal and decimal, as in `maps`.
        public var description: String {
            "\(String(major, radix: 16)):\(String(minor, radix: 16)) \(inode)"
        }

        /// The identity `fstat` gives for `st_dev` and `st_ino` (glibc's dev_t encoding).
        init(device: UInt64, inode: UInt64) {
            major = UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & 0xffff_f000))
            minor = UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & 0xffff_ff00))
            self.inode = inode
        }
    }

    /// The mapped file's device and inode.
    public var identity: Identity
    /// The absolute host path of the root the path is resolved in (`<host>/proc/<pid>/root`).
    public var rootPath: String
    /// The path inside that root, as `maps` names it.
    public var path: String

    public init(identity: Identity, rootPath: String, path: String) {
        self.identity = identity
        self.rootPath = rootPath
        self.path = path
    }

    public var description: String { "\(path) (\(identity), in \(rootPath))" }

    /// Opens the file read-only inside its root and checks that it is the mapped file; the caller
    /// closes the descriptor. Anything but a regular file is refused before it is opened (a FIFO
    /// would block, a device's driver would be called: `ContainerRoot.openRegularFile`).
    ///
    /// The root is reached by the path `<host>/proc/<pid>/root`: were the pid reused meanwhile,
    /// the file found there would be another process's, and the device and inode check refuses it
    /// unless it is the very file mapped (then attaching to it is attaching to the same inode).
    public func open() throws(LibraryFileError) -> Int32 {
        let fd: Int32
        let opened: Identity
        do throws(HostReadError) {
            let file = try ContainerRoot(rootPath: rootPath).openRegularFile(path)
            fd = file.fd
            opened = Identity(device: file.identity.device, inode: file.identity.inode)
        } catch {
            if case .notRegularFile = error { throw .notRegularFile(path: path) }
            throw .unreadable(path: path, error)
        }
        if opened == identity { return fd }
        // Where `maps` shows another identity than fstat (an overlayfs file on kernels before
        // 6.8 showed the layer's inode): map the opened file and compare the kernel's own view.
        if let mapped = Self.mappedIdentity(fd: fd), mapped == identity { return fd }
        close(fd)
        throw .differentFile(path: path, expected: identity, found: opened)
    }

    /// The identity `/proc/self/maps` shows for a mapping of `fd`, or nil when it cannot be mapped.
    static func mappedIdentity(fd: Int32) -> Identity? {
        guard let address = mmap(nil, 1, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else { return nil }
        defer { munmap(address, 1) }
        let start = UInt64(UInt(bitPattern: address))
        guard let text = try? FileIO.readText(path: "/proc/self/maps", limit: 16 << 20),
            let line = ProcessMaps.parse(text).first(where: { $0.start == start })
        else { return nil }
        return Identity(major: line.deviceMajor, minor: line.deviceMinor, inode: line.inode)
    }
}

/// Why a library file could not be opened for uprobes.
public enum LibraryFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path could not be opened inside the container's root (gone, or a link leading out).
    case unreadable(path: String, HostReadError)
    /// The path names something other than a regular file.
    case notRegularFile(path: String)
    /// The path names another file than the one the processes map.
    case differentFile(path: String, expected: LibraryFile.Identity, found: LibraryFile.Identity)

    public var description: String {
        switch self {
        case .unreadable(_, let error): "cannot open the library inside the container: \(error)"
        case .notRegularFile(let path): "not a regular file: \(path)"
        case .differentFile(let path, let expected, let found):
            "\(path) inside the container is \(found), not the mapped file \(expected): refused"
        }
    }
}
