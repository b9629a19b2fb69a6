import Glibc

/// Reading directories (`opendir`/`fdopendir` and `readdir`), the one loop every lister uses:
/// the host root's and a container root's listings, the cgroup tree search, the spool.
public enum DirectoryListing {
    /// One entry: its name and what `readdir` says it is.
    public struct Entry: Sendable, Equatable {
        /// The name (never `.` or `..`).
        public var name: String
        /// `d_type` (`DT_DIR`, `DT_REG`, …; `DT_UNKNOWN` on file systems that do not say).
        public var type: UInt8

        /// Whether it is a directory, or may be one (the file system did not say).
        public var mayBeDirectory: Bool { type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) }
    }

    /// A directory that could not be opened.
    public struct OpenError: Error, Sendable, Equatable {
        /// errno of `opendir`/`fdopendir`.
        public var code: Int32
    }

    /// Calls `body` with each entry of the directory at `path` but `.` and `..`, in the order
    /// `readdir` gives them, until `body` returns false.
    public static func forEach(_ path: String, _ body: (Entry) -> Bool) throws(OpenError) {
        guard let dir = opendir(path) else { throw OpenError(code: errno) }
        read(dir, body)
    }

    /// As `forEach(_:_:)` for the directory open at `descriptor`, which it takes over (closed at
    /// the end, or at once when it cannot be read as a directory).
    public static func forEach(descriptor: Int32, _ body: (Entry) -> Bool) throws(OpenError) {
        guard let dir = fdopendir(descriptor) else {
            let code = errno
            close(descriptor)
            throw OpenError(code: code)
        }
        read(dir, body)
    }

    /// The names in the directory at `path`, without `.` and `..`, in no particular order.
    public static func names(_ path: String) throws(OpenError) -> [String] {
        var names: [String] = []
        try forEach(path) { entry in
            names.append(entry.name)
            return true
        }
        return names
    }

    private static func read(_ dir: OpaquePointer, _ body: (Entry) -> Bool) {
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            guard body(Entry(name: name, type: entry.pointee.d_type)) else { return }
        }
    }
}
