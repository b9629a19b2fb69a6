import HostFacts
import Resolution

extension Harness {
    /// `postgresql.conf`, its includes and `postgresql.auto.conf`, as a tenant may write them.
    static let config = Harness(
        name: "config", maxLength: 8192,
        summary: "postgresql.conf syntax, the include loader over a container root, PostgresSettings.resolve"
    ) { bytes in
        let input = text(bytes)
        let parsed = ConfigFileSyntax.parse(input, file: "/etc/postgresql/postgresql.conf")
        consume(parsed)
        for entry in parsed.entries {
            require(entry.line >= 1, "an entry on line \(entry.line)")
        }
        // Through the real loader and container reads: the main file, two files in conf.d and
        // postgresql.auto.conf are all the input, so an include of any of them (itself included)
        // loops or fans out.
        Scratch.remove("config")
        for path in [
            "etc/postgresql/postgresql.conf", "etc/postgresql/conf.d/a.conf", "etc/postgresql/conf.d/b.conf",
            "var/lib/postgresql/postgresql.auto.conf",
        ] {
            Scratch.store("config/\(path)", bytes)
        }
        let root = ContainerRoot(rootPath: "\(Scratch.root)/config")
        let loader = PostgresConfigLoader(source: ContainerConfigSource(root: root))
        let loaded = loader.load(configFile: "/etc/postgresql/postgresql.conf", dataDirectory: "/var/lib/postgresql")
        consume(loaded)
        require(loaded.files.count <= PostgresConfigLoader.maxFiles, "\(loaded.files.count) files read")
        for version in [nil, Int.min, 9, 15, 99, Int.max] {
            let settings = PostgresSettings.resolve(config: loaded.entries, commandLine: [], majorVersion: version)
            for (_, setting) in settings { consume(setting?.json) }
        }
    }
}
