import Glibc

/// A directory of the fuzzing process's own (under `$TMPDIR`, else `/tmp`), for the targets whose
/// parsers are reached through files: the input is written there and read back by the real reader.
enum Scratch {
    /// The directory, created at first use.
    static let root: String = {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/pgnode-fuzz-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { fatalError("mkdtemp in \(base): errno \(errno)") }
        return String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// Writes `bytes` to `relative` under the root, creating its directories.
    static func store(_ relative: String, _ bytes: [UInt8]) {
        var directory = root
        for component in relative.split(separator: "/").dropLast() {
            directory += "/\(component)"
            mkdir(directory, 0o755)
        }
        let path = "\(root)/\(relative)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { fatalError("open \(path): errno \(errno)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { fatalError("write \(path): errno \(errno)") }
            offset += n
        }
    }

    /// Removes `relative` under the root and everything in it.
    static func remove(_ relative: String) { removeTree("\(root)/\(relative)") }

    private static func removeTree(_ path: String) {
        if let dir = opendir(path) {
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names { removeTree("\(path)/\(name)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
