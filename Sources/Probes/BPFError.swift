import CLibBPF
import Glibc

/// Why a BPF operation failed. Every case carries libbpf's own words (its last log line) and
/// the errno, so that `bpf.support` and the logs can say exactly what the kernel refused.
public enum BPFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `bpf_object__open_mem` failed: malformed object, unusable BTF, …
    case open(object: String, errno: Int32, message: String)
    /// `bpf_object__load` failed; `verifierLog` is the tail of the verifier's log when a program
    /// was rejected.
    case load(object: String, program: String?, errno: Int32, message: String, verifierLog: String)
    /// Attaching a program failed.
    case attach(object: String, program: String, errno: Int32, message: String)
    /// A named program or map is not in the object.
    case notFound(object: String, name: String)
    /// A map operation failed (lookup, update, delete, iteration).
    case map(map: String, operation: String, errno: Int32)
    /// The key or value type does not have the map's key or value size.
    case sizeMismatch(map: String, what: String, expected: Int, actual: Int)
    /// The object was used after close().
    case closed(object: String)

    /// The errno, when there is one.
    public var errno: Int32? {
        switch self {
        case .open(_, let e, _), .load(_, _, let e, _, _), .attach(_, _, let e, _), .map(_, _, let e): e
        default: nil
        }
    }

    /// A one-line reason a person can act on.
    public var description: String {
        switch self {
        case .open(let object, let code, let message):
            "opening BPF object '\(object)' failed: \(Self.describe(code))\(Self.suffix(message))"
        case .load(let object, let program, let code, let message, _):
            "loading BPF object '\(object)'\(program.map { " (program \($0))" } ?? "") failed: "
                + "\(Self.describe(code))\(Self.suffix(message))"
        case .attach(let object, let program, let code, let message):
            "attaching program \(program) of '\(object)' failed: \(Self.describe(code))\(Self.suffix(message))"
        case .notFound(let object, let name): "BPF object '\(object)' has no program or map named \(name)"
        case .map(let map, let operation, let code): "BPF map \(map): \(operation) failed: \(Self.describe(code))"
        case .sizeMismatch(let map, let what, let expected, let actual):
            "BPF map \(map): \(what) is \(expected) bytes, the Swift type has \(actual)"
        case .closed(let object): "BPF object '\(object)' is closed"
        }
    }

    /// `EPERM (Operation not permitted)`; libbpf's own codes (4000 and up) in libbpf's words.
    static func describe(_ code: Int32) -> String {
        if code >= 4000 {
            var buffer = [CChar](repeating: 0, count: 256)
            libbpf_strerror(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return "libbpf error \(code) (\(text))"
        }
        let name = errnoNames[code] ?? "errno \(code)"
        return "\(name) (\(String(cString: strerror(code))))"
    }

    private static func suffix(_ message: String) -> String { message.isEmpty ? "" : " — libbpf: \(message)" }

    private static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", E2BIG: "E2BIG",
        EBADF: "EBADF", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT",
        EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
        ENOSYS: "ENOSYS", ENOTSUP: "EOPNOTSUPP", ENOEXEC: "ENOEXEC",
        ELOOP: "ELOOP", ENAMETOOLONG: "ENAMETOOLONG", ENODATA: "ENODATA",
    ]
}
