import Glibc
import HostFacts

/// A configuration file as a `ConfigFileSource` hands it to the loader.
public struct ConfigFileText: Sendable, Equatable {
    /// What identifies the file (device and inode); nil when the source cannot tell, and then
    /// its path identifies it.
    public var identity: FileIdentity?
    /// The text; nil when `identity` is one of those the loader said it had read already.
    public var text: String?

    /// A file handed to the loader.
    public init(identity: FileIdentity?, text: String?) {
        self.identity = identity
        self.text = text
    }
}

/// Where configuration files are read from: the container's root (always, on a real node), or a
/// dictionary in tests.
public protocol ConfigFileSource: Sendable {
    /// The file at `path` (absolute inside the container): its identity and, unless that is one
    /// of `alreadyRead`, its text, at most `limit` bytes (more is `.tooLarge`).
    func readFile(_ path: String, limit: Int, alreadyRead: Set<FileIdentity>) throws(HostReadError) -> ConfigFileText
    /// The names in directory `path` (absolute inside the container), at most `limit`.
    func listDirectory(_ path: String, limit: Int) throws(HostReadError) -> [String]
}

/// Reads configuration files inside a container's root, never following a link out of it and
/// refusing anything but regular files and directories before reading (`ContainerRoot`).
public struct ContainerConfigSource: ConfigFileSource {
    /// The container's root.
    public let root: ContainerRoot

    /// A source reading through `root`.
    public init(root: ContainerRoot) { self.root = root }

    public func readFile(_ path: String, limit: Int, alreadyRead: Set<FileIdentity>) throws(HostReadError)
        -> ConfigFileText
    {
        let (fd, identity) = try root.openRegularFile(path)
        defer { close(fd) }
        if alreadyRead.contains(identity) { return ConfigFileText(identity: identity, text: nil) }
        let bytes = try FileIO.read(fd: fd, path: path, limit: limit)
        return ConfigFileText(identity: identity, text: String(decoding: bytes, as: UTF8.self))
    }

    public func listDirectory(_ path: String, limit: Int) throws(HostReadError) -> [String] {
        try root.listDirectory(path, limit: limit)
    }
}

/// Everything read from a server's configuration files, in the order PostgreSQL applies it.
public struct LoadedConfig: Sendable, Equatable {
    /// Every `name = value` line, following includes in place; later entries win.
    public var entries: [ConfigEntry]
    /// The files applied, in order, each path once.
    public var files: [String]
    /// Problems: syntax errors, unreadable files, include loops, missing required includes, and
    /// what was left out to stay within the bounds (at most `PostgresConfigLoader.maxProblems`,
    /// then one line saying how many more there were).
    public var problems: [String]
    /// Bytes read from the files, in all (each file once, however often it is included).
    public var bytesRead: Int
    /// Lines applied, in all (a file included twice counts twice).
    public var linesApplied: Int
}

/// Follows `postgresql.conf` and its includes, then `postgresql.auto.conf`, as ProcessConfigFile
/// does — within bounds, since the files are the container's and may be built to exhaust pgnode:
///
/// - each file is read once, however often it is included: files are told apart by device and
///   inode (`fstat` of the descriptor read), and a file included again is applied again from
///   what was parsed the first time, as PostgreSQL would apply it again;
/// - a file that includes itself, directly or through others, is not followed into (PostgreSQL
///   would stop at its nesting depth and refuse the configuration): the loop is a problem;
/// - includes nest at most `maxDepth` deep, as in PostgreSQL;
/// - at most `maxFileBytes` per file and `maxTotalBytes` read in all; at most `maxLines` lines
///   applied in all; at most `maxFiles` files; at most `maxDirectoryNames` names listed by
///   `include_dir` in all; at most `maxPathBytes` of file paths applied in all (a file reached by
///   many spellings of its path); at most `maxProblems` problems kept.
///
/// Whatever is left out is said in `problems`. What one server's configuration costs while it is
/// loaded is therefore bounded: 4 MiB of text, 100,000 entries, and what was parsed of each file
/// (see docs/resolution.md).
public struct PostgresConfigLoader: Sendable {
    /// PostgreSQL's CONF_FILE_MAX_DEPTH.
    public static let maxDepth = 10
    /// The most files read for one server.
    public static let maxFiles = 200
    /// The largest configuration file read.
    public static let maxFileBytes = 1 << 20
    /// The most bytes read from all files of one server.
    public static let maxTotalBytes = 4 << 20
    /// The most lines applied from all files of one server.
    public static let maxLines = 100_000
    /// The most problems kept for one server (the rest are counted).
    public static let maxProblems = 100
    /// The longest problem kept, in bytes (longer ones are cut).
    public static let maxProblemBytes = 1024
    /// The most names listed from `include_dir` directories for one server, in all.
    public static let maxDirectoryNames = 100_000
    /// The most bytes of paths of files applied for one server, in all.
    public static let maxPathBytes = 4 << 20
    /// The longest path followed (PATH_MAX, with its terminating NUL).
    static let maxPathLength = 4095

    /// Where files come from.
    public let source: any ConfigFileSource

    /// A loader reading from `source`.
    public init(source: any ConfigFileSource) { self.source = source }

    /// Loads `configFile`, then `<dataDirectory>/postgresql.auto.conf` (whose data directory may
    /// itself be set by `data_directory` in the main file).
    public func load(configFile: String, dataDirectory: String?) -> LoadedConfig {
        var state = LoadState()
        loadFile(configFile, depth: 0, required: true, into: &state)
        let dataDir = state.result.entries.last(where: { $0.name == "data_directory" })?.value ?? dataDirectory
        if let dataDir {
            loadFile(join(dataDir, "postgresql.auto.conf"), depth: 0, required: false, into: &state)
        }
        if state.unlistedProblems > 0 {
            state.result.problems.append("… and \(state.unlistedProblems) more problems not listed")
        }
        return state.result
    }

    /// What identifies a file while loading: its device and inode, else (a source that cannot
    /// tell) its path.
    enum FileKey: Hashable {
        case identity(FileIdentity)
        case path(String)
    }

    /// A file as parsed when it was read: its entries and include directives (naming the path it
    /// was read by), and how many lines it has (one more than parsed when it was cut short).
    struct ParsedFile {
        var entries: [ConfigEntry]
        var lines: Int
    }

    /// The loader's progress through one server's files.
    struct LoadState {
        var result = LoadedConfig(entries: [], files: [], problems: [], bytesRead: 0, linesApplied: 0)
        /// Files read, by identity.
        var parsed: [FileKey: ParsedFile] = [:]
        var identities: Set<FileIdentity> = []
        /// The files being applied, outermost first (a file met again here is a loop).
        var stack: [FileKey] = []
        var listedPaths: Set<String> = []
        var unlistedProblems = 0
        var namesListed = 0
        var pathBytes = 0

        var bytesLeft: Int { PostgresConfigLoader.maxTotalBytes - result.bytesRead }
        var linesLeft: Int { PostgresConfigLoader.maxLines - result.linesApplied }
        var namesLeft: Int { PostgresConfigLoader.maxDirectoryNames - namesListed }

        /// Records a problem, cut to `maxProblemBytes`; past `maxProblems` only counts it.
        mutating func report(_ problem: String) {
            guard result.problems.count < PostgresConfigLoader.maxProblems else {
                unlistedProblems += 1
                return
            }
            let limit = PostgresConfigLoader.maxProblemBytes
            if problem.utf8.count <= limit {
                result.problems.append(problem)
            } else {
                result.problems.append(String(decoding: problem.utf8.prefix(limit), as: UTF8.self) + "…")
            }
        }
    }

    /// Loads one file (and what it includes) into `state`.
    func loadFile(_ path: String, depth: Int, required: Bool, into state: inout LoadState) {
        guard depth <= Self.maxDepth else {
            state.report("could not open configuration file \"\(path)\": maximum nesting depth exceeded")
            return
        }
        guard state.linesLeft > 0 else {
            state.report(
                "skipped configuration file \"\(path)\": the configuration files of this server already hold "
                    + "\(Self.maxLines) lines in all")
            return
        }
        guard state.pathBytes + path.utf8.count <= Self.maxPathBytes else {
            state.report(
                "skipped configuration file \"\(path)\": the paths of the files applied for this server exceed "
                    + "\(Self.maxPathBytes) bytes in all")
            return
        }
        guard let (key, file) = read(path, required: required, into: &state) else { return }
        if state.stack.contains(key) {
            state.report(
                "could not open configuration file \"\(path)\": maximum nesting depth exceeded "
                    + "(it includes itself, directly or through other files; not followed)")
            return
        }
        state.pathBytes += path.utf8.count
        if state.result.files.count < Self.maxFiles, state.listedPaths.insert(path).inserted {
            state.result.files.append(path)
        }
        state.stack.append(key)
        defer { state.stack.removeLast() }

        // Lines count as they are applied, in PostgreSQL's order (what an include names counts
        // where the include stands); applying stops where the bound is reached.
        var counted = 0
        var stopped = false
        let directory = parent(path)
        for var entry in file.entries {
            guard entry.line - counted <= state.linesLeft else {
                stopped = true
                break
            }
            state.result.linesApplied += entry.line - counted
            counted = entry.line
            if entry.file != path { entry.file = path }
            switch entry.name {
            case "include":
                loadFile(join(directory, entry.value), depth: depth + 1, required: true, into: &state)
            case "include_if_exists":
                loadFile(join(directory, entry.value), depth: depth + 1, required: false, into: &state)
            case "include_dir":
                includeDirectory(join(directory, entry.value), depth: depth, into: &state)
            default:
                state.result.entries.append(entry)
            }
        }
        // The lines after the last entry (comments, blank lines) count too.
        if !stopped, file.lines - counted <= state.linesLeft {
            state.result.linesApplied += file.lines - counted
        } else {
            state.report(
                "skipped the lines of configuration file \"\(path)\" after line \(counted + state.linesLeft): the "
                    + "configuration files of this server hold more than \(Self.maxLines) lines in all")
            state.result.linesApplied = Self.maxLines
        }
    }

    /// The `.conf` files of `dir` not starting with a dot, in strcmp order, as for `include_dir`.
    func includeDirectory(_ dir: String, depth: Int, into state: inout LoadState) {
        guard state.namesLeft > 0 else {
            state.report(
                "skipped configuration directory \"\(dir)\": the include_dir directories of this server already "
                    + "listed \(Self.maxDirectoryNames) names in all")
            return
        }
        var listed: [String]
        let wanted = min(ContainerRoot.listLimit, state.namesLeft)
        do {
            // One more than wanted, to know whether there were more.
            listed = try source.listDirectory(dir, limit: wanted + 1)
        } catch {
            state.report("could not open configuration directory \"\(dir)\": \(error.description)")
            return
        }
        if listed.count > wanted {
            listed.removeLast(listed.count - wanted)
            state.report(
                "listed only \(wanted) names of configuration directory \"\(dir)\" (at most \(ContainerRoot.listLimit) "
                    + "per directory and \(Self.maxDirectoryNames) in all): the others are not applied")
        }
        state.namesListed += listed.count
        let names = listed.filter { $0.hasSuffix(".conf") && !$0.hasPrefix(".") }
            .sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        for (index, name) in names.enumerated() {
            guard state.linesLeft > 0 else {
                state.report(
                    "skipped \(names.count - index) files of configuration directory \"\(dir)\": the configuration "
                        + "files of this server hold \(Self.maxLines) lines in all")
                return
            }
            loadFile(join(dir, name), depth: depth + 1, required: true, into: &state)
        }
    }

    /// The file at `path`: parsed from what was read before when it is the same file, else read
    /// (within what is left of the bounds) and parsed. Nil when it cannot or may not be read; the
    /// reason is reported unless it is a missing optional file.
    func read(_ path: String, required: Bool, into state: inout LoadState) -> (FileKey, ParsedFile)? {
        guard path.utf8.count <= Self.maxPathLength else {
            state.report("could not read configuration file \"\(path)\": the path is longer than PATH_MAX")
            return nil
        }
        if let cached = state.parsed[.path(path)] { return (.path(path), cached) }
        let atFileLimit = state.parsed.count >= Self.maxFiles
        let limit = atFileLimit ? 0 : min(Self.maxFileBytes, state.bytesLeft)
        let contents: ConfigFileText
        do {
            contents = try source.readFile(path, limit: limit, alreadyRead: state.identities)
        } catch {
            if case .notFound = error, !required { return nil }
            if case .tooLarge = error, limit < Self.maxFileBytes {
                // More than what was left: that much was read (and dropped).
                state.result.bytesRead += limit
                state.report(
                    atFileLimit
                        ? "skipped configuration file \"\(path)\": more than \(Self.maxFiles) configuration files"
                        : "skipped configuration file \"\(path)\": the configuration files of this server exceed "
                            + "4 MiB (\(Self.maxTotalBytes) bytes) in all")
                return nil
            }
            if case .tooLarge = error { state.result.bytesRead += limit }
            state.report("could not read configuration file \"\(path)\": \(error.description)")
            return nil
        }
        let key: FileKey = contents.identity.map { .identity($0) } ?? .path(path)
        guard let text = contents.text else {
            guard let cached = state.parsed[key] else { return nil }
            return (key, cached)
        }
        if atFileLimit {
            state.report("skipped configuration file \"\(path)\": more than \(Self.maxFiles) configuration files")
            return nil
        }
        state.result.bytesRead += text.utf8.count
        // Parse no more lines than may still be applied; the rest could never be.
        let parsed = ConfigFileSyntax.parse(
            text, file: path, maxLines: state.linesLeft, maxErrors: Self.maxProblems)
        for error in parsed.errors { state.report(error.description) }
        state.unlistedProblems += parsed.errorCount - parsed.errors.count
        let lines = parsed.truncated ? state.linesLeft + 1 : parsed.lines
        let file = ParsedFile(entries: parsed.entries, lines: lines)
        state.parsed[key] = file
        if let identity = contents.identity { state.identities.insert(identity) }
        return (key, file)
    }

    /// `relative` resolved against `directory`, as AbsoluteConfigLocation does.
    func join(_ directory: String, _ relative: String) -> String {
        if relative.hasPrefix("/") { return relative }
        return directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
    }

    func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
