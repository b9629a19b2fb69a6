import CShims
import Glibc
import HostFacts
import PGNodeModel

/// Whether the cgroup paths pgnode reads from `/proc/<pid>/cgroup` are absolute paths on the
/// host, and how that was established.
///
/// The kernel writes those paths relative to the *reader's* cgroup namespace: a pgnode running in
/// a pod with a private cgroup namespace sees `0::/../../kubepods-…/cri-containerd-<id>.scope`.
/// pgnode joins the host's namespace (`setns` on `proc/1/ns/cgroup` under the host root, or on
/// any process's namespace that is the kernel's initial one) for the duration of a scan, and
/// says so when it cannot.
public struct CgroupNamespaceStatus: Sendable, Equatable {
    /// The reader's cgroup namespace inode, when readable.
    public var readerInode: UInt64?
    /// The host's cgroup namespace inode, when known.
    public var hostInode: UInt64?
    /// Whether pgnode joined the host's namespace for the scan.
    public var joined: Bool
    /// Whether paths read under this status are absolute on the host.
    public var absolute: Bool
    /// Why paths are not absolute, or how it was decided when that is not obvious.
    public var note: String?

    /// The status as JSON (`absolute`, `joined_host_namespace`, `reader_namespace_inode`,
    /// `host_namespace_inode`, `note`).
    public var json: JSONObject {
        [
            "absolute": .bool(absolute), "joined_host_namespace": .bool(joined),
            "reader_namespace_inode": .from(readerInode), "host_namespace_inode": .from(hostInode),
            "note": .from(note),
        ]
    }
}

/// Reading and joining cgroup namespaces under a host root.
public enum CgroupNamespace {
    /// The inode of the kernel's initial cgroup namespace (`PROC_CGROUP_INIT_INO` in
    /// include/linux/proc_ns.h): fixed since cgroup namespaces exist (4.6).
    public static let initialInode: UInt64 = 0xEFFF_FFFB

    /// Parses a namespace link target such as `cgroup:[4026531835]` into its inode.
    public static func inode(fromLink target: String) -> UInt64? {
        guard let open = target.firstIndex(of: "["), target.hasSuffix("]") else { return nil }
        let digits = target[target.index(after: open)..<target.index(before: target.endIndex)]
        return UInt64(digits)
    }

    /// The inode of `proc/<pid>/ns/<kind>` under `host` (a link; its target names the inode).
    public static func namespaceInode(host: HostRoot, pid: String, kind: String) -> UInt64? {
        guard let target = try? host.readLink("proc/\(pid)/ns/\(kind)") else { return nil }
        return inode(fromLink: target)
    }

    /// Runs `body` with the calling thread in the host's cgroup namespace when it can be joined,
    /// and restores the thread's own namespace afterwards. `body` must not suspend (the thread
    /// matters), which is why it is synchronous.
    public static func withHostNamespace<T>(
        host: HostRoot, _ body: (CgroupNamespaceStatus) throws(ResolutionError) -> T
    ) throws(ResolutionError) -> T {
        var status = CgroupNamespaceStatus(
            readerInode: namespaceInode(host: host, pid: "self", kind: "cgroup"),
            hostInode: namespaceInode(host: host, pid: "1", kind: "cgroup"), joined: false, absolute: true,
            note: nil)
        if status.readerInode == initialInode {
            status.hostInode = status.hostInode ?? initialInode
            return try body(status)
        }
        if let reader = status.readerInode, reader == status.hostInode {
            return try body(status)
        }
        guard status.readerInode != nil else {
            // Not a live procfs (a fixture without namespace links): nothing says the paths are relative.
            status.note = "the reader's cgroup namespace is unknown (no proc/self/ns/cgroup); paths taken as absolute"
            return try body(status)
        }
        // A private namespace: join the host's, then come back.
        let ownFD = open("/proc/thread-self/ns/cgroup", O_RDONLY | O_CLOEXEC)
        var joinedFrom: String? = nil
        var failure = "no process in the host's cgroup namespace could be found"
        if ownFD >= 0 {
            for candidate in hostNamespaceCandidates(host: host) {
                let fd = open(host.resolve("proc/\(candidate)/ns/cgroup"), O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    failure = "cannot open proc/\(candidate)/ns/cgroup: \(String(cString: strerror(errno)))"
                    continue
                }
                defer { close(fd) }
                if pgnode_setns(fd, pgnode_clone_newcgroup()) == 0 {
                    joinedFrom = candidate
                    break
                }
                failure = "setns(CLONE_NEWCGROUP) failed: \(String(cString: strerror(errno))) (needs CAP_SYS_ADMIN)"
            }
        } else {
            failure = "cannot open this thread's own cgroup namespace: \(String(cString: strerror(errno)))"
        }
        guard let joinedFrom else {
            if ownFD >= 0 { close(ownFD) }
            status.absolute = false
            status.note =
                "cgroup paths are relative to pgnode's own cgroup namespace and could not be made absolute: "
                + failure
            return try body(status)
        }
        defer {
            _ = pgnode_setns(ownFD, pgnode_clone_newcgroup())
            close(ownFD)
        }
        status.joined = true
        status.hostInode = namespaceInode(host: host, pid: joinedFrom, kind: "cgroup") ?? status.hostInode
        status.note = "joined the host's cgroup namespace through proc/\(joinedFrom)/ns/cgroup"
        return try body(status)
    }

    /// Processes whose cgroup namespace is the host's: pid 1 first, then any process found in
    /// the kernel's initial namespace (pid 1 can be unreadable, e.g. under a VM's init).
    static func hostNamespaceCandidates(host: HostRoot) -> [String] {
        var result = ["1"]
        if namespaceInode(host: host, pid: "1", kind: "cgroup") != nil { return result }
        guard let entries = try? host.list("proc") else { return result }
        for name in entries where name != "1" && name.utf8.allSatisfy({ (48...57).contains($0) }) {
            if namespaceInode(host: host, pid: name, kind: "cgroup") == initialInode {
                result.append(name)
                break
            }
        }
        return result
    }
}
