import Glibc

/// A bearer token kept in a file (`--endpoint-token-file`), e.g. a projected service-account token
/// that the kubelet rotates by swapping a symlink. The file is stat'ed before every request and
/// re-read when its device, inode, size or modification time changed. The token itself is never
/// logged or put into an error message.
public final class TokenFile: @unchecked Sendable {
    /// The file's path.
    public let path: String
    private var identity: [Int64] = []
    private var token: String?

    /// A token file at `path`; it is first read on `current()`.
    public init(path: String) { self.path = path }

    /// The token, re-read when the file changed. When the file cannot be read, the last token read
    /// is kept (a rotation in progress must not stop delivery); with none, it throws.
    public func current() throws(FileError) -> String {
        var info = stat()
        if stat(path, &info) == 0 {
            let now = [
                Int64(info.st_dev), Int64(info.st_ino), Int64(info.st_size), Int64(info.st_mtim.tv_sec),
                Int64(info.st_mtim.tv_nsec),
            ]
            if now != identity || token == nil {
                if let bytes = try? Files.read(path, limit: 1 << 20) {
                    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \t\r\n")
                    if !text.isEmpty {
                        token = text
                        identity = now
                    }
                }
            }
        }
        guard let token else {
            throw FileError(operation: "read token file \(path)", code: errno == 0 ? ENOENT : errno)
        }
        return token
    }
}
