import HostFacts
import PGNodeModel

/// One PostgreSQL process of a server.
public struct PostgresProcess: Sendable, Equatable {
    /// The pid on the host.
    public var pid: Int32
    /// The pid inside the container's pid namespace.
    public var namespacePID: Int32?
    /// The role from the process title; nil for a child that has not set its title yet.
    public var role: PostgresRole?
    /// The process title (or command line) as read.
    public var title: String
}

/// A PostgreSQL server found in a container.
public struct PostgresServer: Sendable, Equatable {
    /// The postmaster's pid on the host.
    public var postmasterPID: Int32
    /// The postmaster's pid in the container (what `postmaster.pid` holds).
    public var postmasterNamespacePID: Int32?
    /// The postmaster as discovered (pid and start time): what reads of its root confirm.
    public var postmasterIdentity: ProcessIdentity?
    /// The postmaster's children (and the postmaster itself first), with their roles.
    public var processes: [PostgresProcess]
    /// The data directory, inside the container.
    public var dataDirectory: String?
    /// How the data directory was found: `-D`, `data_directory`, `PGDATA`, `cwd`, `postmaster.opts`.
    public var dataDirectorySource: String?
    /// Whether `postmaster.pid` in the data directory names this postmaster (nil: not readable).
    public var pidFileMatches: Bool?
    /// The main configuration file, inside the container.
    public var configFile: String?
    /// `PG_VERSION` (e.g. `15`, or `9.6`).
    public var version: String?
    /// The effective settings; nil when the configuration could not be read (see `settingsUnavailableReason`).
    public var settings: [(name: String, setting: Setting?)]?
    /// Why settings are null.
    public var settingsUnavailableReason: String?
    /// Configuration files read, in order.
    public var configFiles: [String]
    /// Problems met while reading this server (syntax errors, unreadable files).
    public var problems: [String]
    /// The variables of the postmaster's environment that tell its operator (see
    /// `OperatorDetection.keeps(environmentKey:)`); empty when unreadable.
    public var operatorEnvironment: [String: String] = [:]
    /// The operator that runs the server (set by the resolver, which also knows the pod's labels).
    public var runBy: PostgresOperator = .none

    public static func == (lhs: PostgresServer, rhs: PostgresServer) -> Bool {
        lhs.postmasterPID == rhs.postmasterPID && lhs.processes == rhs.processes
            && lhs.dataDirectory == rhs.dataDirectory && lhs.version == rhs.version
            && lhs.settingsUnavailableReason == rhs.settingsUnavailableReason
            && lhs.settings?.map(\.name) == rhs.settings?.map(\.name)
            && lhs.settings?.map(\.setting) == rhs.settings?.map(\.setting) && lhs.runBy == rhs.runBy
    }

    /// The major version as a number (`15`; `9.6` gives 9, which pgnode treats like 9.6).
    public var majorVersion: Int? {
        guard let version else { return nil }
        return Int(version.split(separator: ".").first ?? "")
    }

    /// The setting `name`, if it is known.
    public func setting(_ name: String) -> Setting? {
        settings?.first(where: { $0.name == name })?.setting
    }
}

/// Finds PostgreSQL servers among a container's processes and reads their configuration
/// through the container's root.
public enum PostgresDiscovery {
    /// Whether `process` looks like a postmaster: its executable is `postgres` or `postmaster`
    /// and it has not rewritten its title.
    static func isPostmasterCandidate(_ process: ProcessRecord) -> Bool {
        guard let first = process.arguments.first, !first.hasPrefix(ProcessTitle.prefix) else { return false }
        let executable = first.split(separator: "/").last.map(String.init) ?? first
        return executable == "postgres" || executable == "postmaster"
    }

    /// The servers among `processes` (all of one container).
    public static func servers(host: HostRoot, processes: [ProcessRecord]) -> [PostgresServer] {
        let candidates = processes.filter(isPostmasterCandidate)
        let candidatePIDs = Set(candidates.map(\.pid))
        // A just-forked child still carries the postmaster's command line: its parent is a candidate.
        let postmasters = candidates.filter { !candidatePIDs.contains($0.parentPID ?? -1) }
        return postmasters.map { server(host: host, postmaster: $0, processes: processes) }
    }

    static func server(host: HostRoot, postmaster: ProcessRecord, processes: [ProcessRecord]) -> PostgresServer {
        var children: [PostgresProcess] = [
            PostgresProcess(
                pid: postmaster.pid, namespacePID: postmaster.namespacePID, role: PostgresRole(kind: .postmaster),
                title: postmaster.arguments.joined(separator: " "))
        ]
        for process in processes where process.parentPID == postmaster.pid {
            let title = process.arguments.first ?? process.command
            children.append(
                PostgresProcess(
                    pid: process.pid, namespacePID: process.namespacePID, role: ProcessTitle.parse(title),
                    title: process.arguments.count > 1 ? process.arguments.joined(separator: " ") : title))
        }
        var server = PostgresServer(
            postmasterPID: postmaster.pid, postmasterNamespacePID: postmaster.namespacePID,
            postmasterIdentity: postmaster.identity, processes: children, configFiles: [], problems: [])
        var options = PostmasterOptions.parse(Array(postmaster.arguments.dropFirst()))
        server.problems.append(contentsOf: options.problems.map { "command line: \($0)" })
        guard let identity = postmaster.identity else {
            server.settingsUnavailableReason =
                "process \(postmaster.pid) has no start time in its stat: its files are not read, since they might "
                + "be another process's"
            server.problems.append(server.settingsUnavailableReason ?? "")
            return server
        }
        // Every file of the container is read through the root of the postmaster discovered,
        // confirmed before each read (a pid reused meanwhile fails the read, see ContainerRoot).
        let root = ContainerRoot(host: host, process: identity)
        // A small file of the container; nil when absent. Any other failure (not a regular file,
        // the postmaster gone) is a problem of the server.
        func readSmall(_ path: String, limit: Int) -> String? {
            do {
                return try root.readText(path, limit: limit)
            } catch {
                if case .notFound = error { return nil }
                server.problems.append("could not read \(path): \(error.description)")
                return nil
            }
        }

        // The postmaster's environment (PGDATA, and what tells its operator), read by pid: of
        // the postmaster only if it is still the process at that pid afterwards.
        let environ = (try? host.read("proc/\(postmaster.pid)/environ", limit: 1 << 20)) ?? []
        let cwd = try? host.readLink("proc/\(postmaster.pid)/cwd")
        var environmentError: HostReadError? = nil
        do throws(HostReadError) {
            try identity.confirm(host: host)
        } catch {
            environmentError = error
        }
        let environment = environmentError == nil ? Cmdline.environment(environ) : [:]
        server.operatorEnvironment = environment.filter { OperatorDetection.keeps(environmentKey: $0.key) }
            .mapValues { String($0.prefix(OperatorDetection.valueLimit)) }

        // Where the configuration lives: -D, else PGDATA, else the postmaster's working directory
        // (it chdirs to the data directory), confirmed by postmaster.pid.
        var configDirectory = options.configDirectory
        var source: String? = configDirectory == nil ? nil : "-D"
        if configDirectory == nil, options.value("data_directory") == nil {
            if let error = environmentError {
                server.problems.append("could not read the postmaster's environment: \(error.description)")
                server.settingsUnavailableReason = error.description
                return server
            }
            if let pgdata = environment["PGDATA"], !pgdata.isEmpty {
                configDirectory = pgdata
                source = "PGDATA"
            } else if let cwd, cwd.hasPrefix("/") {
                configDirectory = cwd
                source = "cwd"
                // The original command line, when the postmaster was started without -D from its data directory.
                if let opts = readSmall(cwd + "/postmaster.opts", limit: 64 << 10) {
                    let saved = PostmasterOptions.parse(Array(PostmasterOptions.splitOpts(opts).dropFirst()))
                    if options.settings.isEmpty, !saved.settings.isEmpty {
                        options.settings = saved.settings
                        source = "cwd, postmaster.opts"
                    }
                }
            }
        }
        let configFile =
            options.value("config_file") ?? configDirectory.map { $0 + "/postgresql.conf" }
        server.configFile = configFile
        var loaded: LoadedConfig? = nil
        if let configFile {
            let loader = PostgresConfigLoader(source: ContainerConfigSource(root: root))
            let config = loader.load(
                configFile: configFile, dataDirectory: options.value("data_directory") ?? configDirectory)
            server.configFiles = config.files
            server.problems.append(contentsOf: config.problems)
            if config.files.first == configFile { loaded = config }
        }
        // The data directory: data_directory on the command line, then in the file, then -D.
        if let value = options.value("data_directory") {
            server.dataDirectory = value
            server.dataDirectorySource = "command line data_directory"
        } else if let entry = loaded?.entries.last(where: { $0.name == "data_directory" }) {
            server.dataDirectory = entry.value
            server.dataDirectorySource = "data_directory in \(entry.file):\(entry.line)"
        } else {
            server.dataDirectory = configDirectory
            server.dataDirectorySource = source
        }
        if let dataDirectory = server.dataDirectory {
            if let version = readSmall(dataDirectory + "/PG_VERSION", limit: 64) {
                let trimmed = version.trimmingWhitespace()
                server.version = trimmed.isEmpty ? nil : trimmed
            }
            if let pidFile = readSmall(dataDirectory + "/postmaster.pid", limit: 64 << 10),
                let first = pidFile.split(separator: "\n").first, let pid = Int32(first.trimmingWhitespace())
            {
                server.pidFileMatches = pid == (postmaster.namespacePID ?? postmaster.pid)
            }
        }
        if loaded != nil {
            let commandLine = options.settings.map { (name: $0.name, value: $0.value) }
            server.settings = PostgresSettings.resolve(
                config: loaded?.entries ?? [], commandLine: commandLine, majorVersion: server.majorVersion)
        } else {
            if let configFile {
                server.settingsUnavailableReason =
                    server.problems.last(where: { $0.contains(configFile) }) ?? "could not read \(configFile)"
            } else {
                server.settingsUnavailableReason =
                    "the configuration file could not be located (no -D, config_file, PGDATA or working directory)"
            }
        }
        return server
    }
}
