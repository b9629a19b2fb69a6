import HostFacts

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where configuration files are read from: the container's root (always, on a real node), or a
/// dictionary in tests.
public protocol ConfigFileSource: Sendable {
    /// The text of the file at `path` (absolute inside the container).
    func readFile(_ path: String) throws(HostReadError) -> String
    /// The names in directory `path` (absolute inside the container).
    func listDirectory(_ path: String) throws(HostReadError) -> [String]
}

/// Reads configuration files inside a container's root, never following a link out of it and
/// refusing anything but regular files and directories before reading (`ContainerRoot`).
public struct ContainerConfigSource: ConfigFileSource {
    /// The container's root.
    public let root: ContainerRoot
    /// The largest configuration file read.
    public static let fileLimit = 1 << 20

    /// A source reading through `root`.
    public init(root: ContainerRoot) { self.root = root }

    public func readFile(_ path: String) throws(HostReadError) -> String {
        try root.readText(path, limit: Self.fileLimit)
    }

    public func listDirectory(_ path: String) throws(HostReadError) -> [String] {
        try root.listDirectory(path)
    }
}

/// Everything read from a server's configuration files, in the order PostgreSQL applies it.
public struct LoadedConfig: Sendable, Equatable {
    /// Every `name = value` line, following includes in place; later entries win.
    public var entries: [ConfigEntry]
    /// Files read, in order.
    public var files: [String]
    /// Problems: syntax errors, unreadable files, include loops, missing required includes.
    public var problems: [String]
}

/// Follows `postgresql.conf` and its includes, then `postgresql.auto.conf`, as ProcessConfigFile does.
public struct PostgresConfigLoader: Sendable {
    /// PostgreSQL's CONF_FILE_MAX_DEPTH.
    public static let maxDepth = 10
    /// A bound on the files read for one server.
    public static let maxFiles = 200

    /// Where files come from.
    public let source: any ConfigFileSource

    /// A loader reading from `source`.
    public init(source: any ConfigFileSource) { self.source = source }

    /// Loads `configFile`, then `<dataDirectory>/postgresql.auto.conf` (whose data directory may
    /// itself be set by `data_directory` in the main file).
    public func load(configFile: String, dataDirectory: String?) -> LoadedConfig {
        var result = LoadedConfig(entries: [], files: [], problems: [])
        loadFile(configFile, depth: 0, required: true, into: &result)
        let dataDir = result.entries.last(where: { $0.name == "data_directory" })?.value ?? dataDirectory
        if let dataDir {
            loadFile(join(dataDir, "postgresql.auto.conf"), depth: 0, required: false, into: &result)
        }
        return result
    }

    /// Loads one file (and what it includes) into `result`.
    func loadFile(_ path: String, depth: Int, required: Bool, into result: inout LoadedConfig) {
        guard depth <= Self.maxDepth else {
            result.problems.append("could not open configuration file \"\(path)\": maximum nesting depth exceeded")
            return
        }
        guard result.files.count < Self.maxFiles else {
            result.problems.append("more than \(Self.maxFiles) configuration files; stopped at \"\(path)\"")
            return
        }
        let text: String
        do {
            text = try source.readFile(path)
        } catch {
            if case .notFound = error, !required { return }
            result.problems.append("could not read configuration file \"\(path)\": \(error.description)")
            return
        }
        result.files.append(path)
        let parsed = ConfigFileSyntax.parse(text, file: path)
        result.problems.append(contentsOf: parsed.errors.map(\.description))
        let directory = parent(path)
        for entry in parsed.entries {
            switch entry.name {
            case "include":
                loadFile(join(directory, entry.value), depth: depth + 1, required: true, into: &result)
            case "include_if_exists":
                loadFile(join(directory, entry.value), depth: depth + 1, required: false, into: &result)
            case "include_dir":
                let dir = join(directory, entry.value)
                do {
                    // Files ending in .conf, not starting with a dot, in strcmp order.
                    let names = try source.listDirectory(dir).filter { $0.hasSuffix(".conf") && !$0.hasPrefix(".") }
                    for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                        loadFile(join(dir, name), depth: depth + 1, required: true, into: &result)
                    }
                } catch {
                    result.problems.append("could not open configuration directory \"\(dir)\": \(error.description)")
                }
            default:
                result.entries.append(entry)
            }
        }
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
