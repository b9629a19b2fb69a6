import HostFacts
import Resolution

extension Harness {
    /// `postgresql.conf`, its includes and `postgresql.auto.conf`, as a tenant may write them.
    static let config = Harness(
        name: "config", maxLength: 8192,
        summary: "postgresql.conf syntax, the include loader (every file is the input), PostgresSettings.resolve"
    ) { bytes in
        let input = text(bytes)
        let parsed = ConfigFileSyntax.parse(input, file: "/etc/postgresql/postgresql.conf")
        consume(parsed)
        for entry in parsed.entries {
            require(entry.line >= 1, "an entry on line \(entry.line)")
        }
        // Every file the input includes is the input again: include loops and bombs.
        let loader = PostgresConfigLoader(source: EchoConfigSource(text: input))
        let loaded = loader.load(configFile: "/etc/postgresql/postgresql.conf", dataDirectory: "/var/lib/postgresql")
        consume(loaded)
        require(loaded.files.count <= PostgresConfigLoader.maxFiles, "\(loaded.files.count) files read")
        for version in [nil, Int.min, 9, 15, 99, Int.max] {
            let settings = PostgresSettings.resolve(config: loaded.entries, commandLine: [], majorVersion: version)
            for (_, setting) in settings { consume(setting?.json) }
        }
    }
}

/// Answers every file with the same text; a path naming `missing` does not exist, and every
/// directory holds the same few names.
struct EchoConfigSource: ConfigFileSource {
    var text: String

    func readFile(_ path: String) throws(HostReadError) -> String {
        if path.contains("missing") { throw .notFound(path: path) }
        return text
    }

    func listDirectory(_ path: String) throws(HostReadError) -> [String] {
        if path.contains("missing") { throw .notFound(path: path) }
        return ["b.conf", "a.conf", ".hidden.conf", "notes.txt"]
    }
}
