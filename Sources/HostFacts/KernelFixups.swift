import Glibc

/// The fixups header-based BPF tools (BCC) need on a node: their environment, a headers link,
/// and a legacy object's `version` section.
public enum KernelFixups {
    /// `BCC_LINUX_VERSION_CODE=…` and `BCC_KERNEL_SOURCE=…` lines, ready for `eval`; the
    /// source line is left out when no headers were found (`headersPath` nil).
    public static func bccEnvironment(versionCode: Int, headersPath: String?) -> String {
        var lines = ["BCC_LINUX_VERSION_CODE=\(versionCode)"]
        if let headersPath { lines.append("BCC_KERNEL_SOURCE=\(shellQuoted(headersPath))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `text` as one shell word: unchanged when it holds only safe characters, else single-quoted.
    public static func shellQuoted(_ text: String) -> String {
        let safe = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+:=@%,".contains($0)) }
        if safe && !text.isEmpty { return text }
        return "'" + text.replacingAll("'", with: "'\\''") + "'"
    }

    /// Why `--link-headers` did not create a link.
    public enum LinkError: Error, Equatable, CustomStringConvertible {
        case noRelease
        case noHeaders(release: String, searched: [String])
        case occupied(path: String, what: String)
        case system(path: String, message: String)

        public var description: String {
            switch self {
            case .noRelease: "the node's kernel release is unknown"
            case .noHeaders(let release, let searched):
                "no kernel headers for \(release) on the node (searched \(searched.joined(separator: ", ")))"
            case .occupied(let path, let what):
                "\(path) already exists and is \(what), not a link pgnode made; refusing to replace it"
            case .system(let path, let message): "\(path): \(message)"
            }
        }
    }

    /// What `--link-headers` did.
    public enum LinkResult: Equatable {
        case created(link: String, target: String)
        case alreadyLinked(link: String, target: String)
    }

    /// The marker pgnode leaves beside a link it made (`<dir>/.pgnode-build-link`).
    public static let markerName = ".pgnode-build-link"

    /// Creates `<modulesDir>/<release>/build` → `target` in pgnode's own file system. Replaces
    /// only a link pgnode made before (recorded by a marker file beside it); refuses anything else.
    public static func linkHeaders(release: String, target: String, modulesDir: String = "/lib/modules")
        throws(LinkError) -> LinkResult
    {
        let dir = modulesDir + "/" + release
        let link = dir + "/build"
        let marker = dir + "/" + markerName
        var st = stat()
        if lstat(link, &st) == 0 {
            let isLink = (st.st_mode & S_IFMT) == S_IFLNK
            guard isLink else {
                throw .occupied(path: link, what: (st.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "a file")
            }
            let current = readLink(link)
            if current == target { return .alreadyLinked(link: link, target: target) }
            guard access(marker, F_OK) == 0 else {
                throw .occupied(path: link, what: "a link to \(current ?? "?")")
            }
            guard unlink(link) == 0 else { throw .system(path: link, message: String(cString: strerror(errno))) }
        }
        if mkdirParents(dir) != 0 { throw .system(path: dir, message: String(cString: strerror(errno))) }
        guard symlink(target, link) == 0 else { throw .system(path: link, message: String(cString: strerror(errno))) }
        let fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd >= 0 {
            let note = Array("made by pgnode kernel --link-headers: \(link) -> \(target)\n".utf8)
            _ = note.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        return .created(link: link, target: target)
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func mkdirParents(_ path: String) -> Int32 {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST { return -1 }
        }
        return 0
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for ch in self { if ch == target { result += replacement } else { result.append(ch) } }
        return result
    }
}

extension KernelFixups {
    /// Why `--set-version` failed.
    public enum SetVersionError: Error, Equatable, CustomStringConvertible {
        case read(HostReadError)
        case malformed(path: String, ELFFile.Error)
        case write(path: String, message: String)

        public var description: String {
            switch self {
            case .read(let error): error.description
            case .malformed(let path, let error): "\(path): \(error.description)"
            case .write(let path, let message): "\(path): \(message)"
            }
        }
    }

    /// What `--set-version` did.
    public struct SetVersionResult: Equatable {
        public var previous: UInt32
        public var current: UInt32
        /// The backup of the original file (kept when one existed already).
        public var backup: String
    }

    /// Rewrites the `version` section of the legacy BPF object at `path` to `code`, in place,
    /// after copying the original to `<path>.orig` (an existing backup is kept: it is the
    /// original). The new contents are written to a temporary file and renamed over `path`.
    public static func setVersion(path: String, code: UInt32) throws(SetVersionError) -> SetVersionResult {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(path: path, limit: 256 << 20)
        } catch {
            throw .read(error)
        }
        let previous: UInt32
        let updated: [UInt8]
        do {
            previous = try LegacyBPFObject.version(of: bytes)
            updated = try LegacyBPFObject.settingVersion(bytes, to: code)
        } catch {
            throw .malformed(path: path, error)
        }
        var st = stat()
        let mode = stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0o644
        let backup = path + ".orig"
        if access(backup, F_OK) != 0 { try writeFile(backup, bytes, mode: mode) }
        let temporary = path + ".pgnode-tmp"
        try writeFile(temporary, updated, mode: mode)
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw .write(path: path, message: message)
        }
        return SetVersionResult(previous: previous, current: code, backup: backup)
    }

    private static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(SetVersionError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .write(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .write(path: path, message: String(cString: strerror(errno)))
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw .write(path: path, message: String(cString: strerror(errno))) }
    }
}
