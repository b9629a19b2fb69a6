import HostFacts

/// One process as read from `proc/<pid>` under the host root.
public struct ProcessRecord: Sendable, Equatable {
    /// The pid in the host's pid namespace (as seen through the host root's procfs).
    public var pid: Int32
    /// The parent's pid, from `proc/<pid>/stat`.
    public var parentPID: Int32?
    /// The pid inside the process's own (innermost) pid namespace, from `NSpid` in `status`.
    public var namespacePID: Int32?
    /// The command name (`comm`), at most 15 bytes.
    public var command: String
    /// The arguments from `proc/<pid>/cmdline`; for a process that rewrote its title (PostgreSQL
    /// backends) the first element is the title.
    public var arguments: [String]
    /// The mount namespace inode.
    public var mountNamespace: UInt64?
    /// The pid namespace inode.
    public var pidNamespace: UInt64?
    /// When the process started (field 22 of `stat`, clock ticks after boot): with the pid, what
    /// tells it from a later process given the same pid.
    public var startTime: UInt64?

    /// The process as discovered, for reads that must be of this very process (its root, its
    /// environment); nil when its `stat` had no start time.
    public var identity: ProcessIdentity? { startTime.map { ProcessIdentity(pid: pid, startTime: $0) } }

    /// Reads process `pid`; nil when it has exited (or was never there), also while it was
    /// being read: its start time is read again at the end, so that the files read are all of
    /// one process, not partly of a later one given the same pid.
    public static func read(host: HostRoot, pid: Int32) -> ProcessRecord? {
        guard let stat = try? host.readText("proc/\(pid)/stat", limit: 64 << 10),
            let parsed = ProcStat.parse(stat)
        else { return nil }
        let startTime = ProcessIdentity.startTime(stat: stat)
        let cmdline = (try? host.read("proc/\(pid)/cmdline", limit: 256 << 10)) ?? []
        let status = (try? host.readText("proc/\(pid)/status", limit: 64 << 10)) ?? ""
        let record = ProcessRecord(
            pid: pid, parentPID: parsed.parentPID, namespacePID: ProcStatus.innermostNamespacePID(status),
            command: parsed.command, arguments: Cmdline.parse(cmdline),
            mountNamespace: CgroupNamespace.namespaceInode(host: host, pid: String(pid), kind: "mnt"),
            pidNamespace: CgroupNamespace.namespaceInode(host: host, pid: String(pid), kind: "pid"),
            startTime: startTime)
        if let identity = record.identity {
            do { try identity.confirm(host: host) } catch { return nil }
        }
        return record
    }
}

extension Resolution {
    /// The identity of process `pid` of this container as discovered, for reads that must be of
    /// that very process; nil when it is not one of the container's processes.
    public func identity(ofProcess pid: Int32) -> ProcessIdentity? {
        processes.first(where: { $0.pid == pid })?.identity
    }
}

/// `proc/<pid>/stat`: the fields pgnode needs.
public enum ProcStat {
    /// The command and parent pid, or nil when the text does not have the stat shape. The command
    /// is between the first `(` and the *last* `)`: it may itself contain parentheses and spaces.
    public static func parse(_ text: String) -> (command: String, parentPID: Int32)? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else {
            return nil
        }
        let command = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count >= 2, let parent = Int32(rest[1]) else { return nil }
        return (command, parent)
    }
}

/// `proc/<pid>/status`.
public enum ProcStatus {
    /// The last pid of the `NSpid:` line (the pid in the innermost namespace), when present.
    public static func innermostNamespacePID(_ text: String) -> Int32? {
        for line in text.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " }).last.flatMap { Int32($0) }
        }
        return nil
    }
}

/// `proc/<pid>/cmdline` and `proc/<pid>/environ`: NUL-separated strings.
public enum Cmdline {
    /// The arguments; a rewritten process title (padded with NULs or spaces) becomes one trimmed argument.
    public static func parse(_ bytes: [UInt8]) -> [String] {
        var parts = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        while let last = parts.last, last.isEmpty { parts.removeLast() }
        if parts.count == 1, let only = parts.first { parts[0] = only.trimmingWhitespace() }
        return parts
    }

    /// The `KEY=value` pairs of an environment block; later duplicates win, as getenv would not,
    /// so the first one is kept.
    public static func environment(_ bytes: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        for entry in bytes.split(separator: 0) {
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: entry[entry.startIndex..<eq], as: UTF8.self)
            if result[key] == nil {
                result[key] = String(decoding: entry[(eq + 1)...], as: UTF8.self)
            }
        }
        return result
    }
}
