import Glibc

/// Small file-tree operations without Foundation.
public enum FileTree {
    /// Creates a new private directory under `/tmp` (or `$TMPDIR`) named `<prefix>XXXXXX`.
    public static func makeTemporaryDirectory(prefix: String) -> String? {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(prefix)XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { return nil }
        return String(cString: result)
    }

    /// Removes `path` and everything below it, without following links. Errors are ignored:
    /// this cleans up pgnode's own temporary files.
    public static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? DirectoryListing.names(path)) ?? [] { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// The regular files below `path` (relative paths), depth first.
    public static func files(under path: String) -> [String] {
        var result: [String] = []
        for name in (try? DirectoryListing.names(path)) ?? [] {
            var st = stat()
            guard lstat(path + "/" + name, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                result += files(under: path + "/" + name).map { name + "/" + $0 }
            } else if (st.st_mode & S_IFMT) == S_IFREG {
                result.append(name)
            }
        }
        return result
    }
}
