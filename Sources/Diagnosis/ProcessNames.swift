import HostFacts
import Resolution

/// Who a container's processes are, by host pid: command, PostgreSQL role and pid inside the
/// container — first from the resolution (taken before the observation window), then completed
/// right after the window for the pids the probes saw that were born during it (a client
/// backend that connected while pgnode observed, a parallel worker).
///
/// A process that was born *and* exited inside the window cannot be named this way: its
/// `/proc/<pid>` is gone by the time the window ends. For those only the command name the probe
/// recorded (`comm`, e.g. `postgres`) is known, and the role stays null.
public struct ProcessNames: Sendable, Equatable {
    /// What is known of one process.
    public struct Name: Sendable, Equatable {
        /// The command name (`comm`).
        public var command: String?
        /// The PostgreSQL role (`client backend`, …); nil for a process that is not a server's.
        public var role: String?
        /// The pid inside the container's pid namespace.
        public var namespacePID: Int32?

        /// A name.
        public init(command: String?, role: String?, namespacePID: Int32?) {
            self.command = command
            self.role = role
            self.namespacePID = namespacePID
        }
    }

    /// By host pid.
    public var byPID: [Int32: Name]
    /// The container's postmasters (host pids): a new child of one of them is a server process.
    var postmasters: Set<Int32>
    /// The container's pid namespaces: a new process in one of them belongs to the container.
    var pidNamespaces: Set<UInt64>

    /// The names the resolution knows.
    public init(_ resolution: Resolution) {
        byPID = [:]
        for process in resolution.processes {
            byPID[process.pid] = Name(command: process.command, role: nil, namespacePID: process.namespacePID)
        }
        for server in resolution.postgres {
            for process in server.processes {
                var name = byPID[process.pid] ?? Name(command: nil, role: nil, namespacePID: process.namespacePID)
                name.role = process.role?.kind.rawValue
                name.namespacePID = name.namespacePID ?? process.namespacePID
                byPID[process.pid] = name
            }
        }
        postmasters = Set(resolution.postgres.map(\.postmasterPID))
        pidNamespaces = Set(resolution.processes.compactMap(\.pidNamespace))
    }

    /// Reads `proc/<pid>` under `host` now for each of `pids` that is not named yet, and keeps it
    /// when it still belongs to the container: a child of one of its postmasters (named by its
    /// process title), or a process in one of its pid namespaces. A pid that has exited, or was
    /// reused by a process elsewhere, stays unknown.
    public mutating func learn(_ pids: some Sequence<Int32>, host: HostRoot) {
        for pid in pids where byPID[pid] == nil {
            guard let record = ProcessRecord.read(host: host, pid: pid) else { continue }
            if let parent = record.parentPID, postmasters.contains(parent) {
                let title = record.arguments.first ?? ""
                byPID[pid] = Name(
                    command: record.command, role: ProcessTitle.parse(title)?.kind.rawValue,
                    namespacePID: record.namespacePID)
            } else if let namespace = record.pidNamespace, pidNamespaces.contains(namespace) {
                byPID[pid] = Name(command: record.command, role: nil, namespacePID: record.namespacePID)
            }
        }
    }

    /// Host pid → PostgreSQL role, or the command for processes that are not the server's (the
    /// shape `ShmProbeReport` takes).
    public var roles: [Int32: String] {
        var roles: [Int32: String] = [:]
        for (pid, name) in byPID {
            if let label = name.role ?? name.command { roles[pid] = label }
        }
        return roles
    }
}
