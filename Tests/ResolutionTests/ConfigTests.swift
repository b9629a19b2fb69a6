import HostFacts
import Resolution
import Testing

/// Configuration files held in memory (told apart by path: they have no device and inode).
struct MemoryConfigSource: ConfigFileSource {
    var files: [String: String]

    func readFile(_ path: String, limit: Int, alreadyRead: Set<FileIdentity>) throws(HostReadError) -> ConfigFileText {
        guard let text = files[path] else { throw .notFound(path: path) }
        guard text.utf8.count <= limit else { throw .tooLarge(path: path, limit: limit) }
        return ConfigFileText(identity: nil, text: text)
    }

    func listDirectory(_ path: String, limit: Int) throws(HostReadError) -> [String] {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        let names = files.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            .filter { !$0.contains("/") }
        guard !names.isEmpty else { throw .notFound(path: path) }
        return Array(names.prefix(limit))
    }
}

@Suite("setting values as PostgreSQL parses them")
struct GUCValueTests {
    @Test(
        "memory values in the setting's base unit",
        arguments: [
            // (text, base unit bytes, expected value in base units)
            ("128MB", Int64(8192), Int64(16384)), ("16384", 8192, 16384), ("1GB", 8192, 131072), ("8kB", 8192, 1),
            ("4MB", 1024, 4096), ("64kB", 1024, 64), ("1TB", 1024, 1_073_741_824), ("1.5MB", 1024, 1536),
            ("0x10", 1024, 16), ("010", 1024, 8), ("  32 MB  ", 1024, 32768), ("'2GB'", 1024, -1),
            ("12kB", 8192, 2), ("4kB", 8192, 0), ("-1", 1024, -1), ("1024B", 1024, 1), ("1e3", 1024, 1000),
            ("2.5", 1024, 2), ("3.5", 1024, 4),
        ])
    func memory(_ text: String, _ base: Int64, _ expected: Int64) throws {
        if text.hasPrefix("'") {
            #expect(throws: GUCValueError.self) { try GUCValue.parseInteger(text, baseUnitBytes: base) }
        } else {
            #expect(try GUCValue.parseInteger(text, baseUnitBytes: base) == expected)
        }
    }

    @Test(
        "invalid values are errors, as the server would refuse them",
        arguments: ["", "MB", "128mb", "128 M", "12QB", "1.5.3MB", "128MB junk", "99999999999999999999GB", "\u{0}1"])
    func invalidMemory(_ text: String) {
        #expect(throws: GUCValueError.self) { try GUCValue.parseInteger(text, baseUnitBytes: 1024) }
    }

    @Test("unitless integers refuse units")
    func unitless() throws {
        #expect(try GUCValue.parseInteger("100", baseUnitBytes: nil) == 100)
        #expect(throws: GUCValueError.self) { try GUCValue.parseInteger("100kB", baseUnitBytes: nil) }
        #expect(throws: GUCValueError.self) { try GUCValue.parseInteger("3000000000", baseUnitBytes: nil) }
    }

    @Test("reals and enums")
    func realsAndEnums() throws {
        #expect(try GUCValue.parseReal("2.0") == 2.0)
        #expect(try GUCValue.parseReal(" 1.5 ") == 1.5)
        #expect(try GUCValue.parseReal("1e1") == 10)
        for bad in ["", "x", "1.5x", "nan", "inf"] {
            #expect(throws: GUCValueError.self, "\(bad)") { try GUCValue.parseReal(bad) }
        }
        let hugePages = PostgresSettings.definitions.first { $0.name == "huge_pages" }
        let setting = try #require(hugePages.map { PostgresSettings.make($0, value: "TRUE", source: "x") })
        #expect(setting.value == "on" && setting.error == nil)
        let bad = hugePages.map { PostgresSettings.make($0, value: "maybe", source: "x") }
        #expect(bad?.error != nil)
    }
}

@Suite("postgresql.conf syntax")
struct ConfigSyntaxTests {
    @Test("names, optional '=', quoting, escapes, comments")
    func lines() {
        let text = """
            # a comment
            shared_buffers = 128MB\t\t\t# min 128kB
            work_mem '64MB'
            Max_Connections=200
            log_line_prefix = '%m [%p] ''quoted'' \\t tab'
            search_path = '"$user", public'
            dynamic_shared_memory_type = posix
            custom.setting = on
            timezone = Europe/Berlin
            hash_mem_multiplier = 1.5
            offset = -1
            empty = ''

            """
        let (entries, errors) = ConfigFileSyntax.parse(text, file: "/d/postgresql.conf")
        #expect(errors.isEmpty, "\(errors)")
        let values = Dictionary(entries.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(values["shared_buffers"] == "128MB")
        #expect(values["work_mem"] == "64MB")
        #expect(values["max_connections"] == "200")
        #expect(values["log_line_prefix"] == "%m [%p] 'quoted' \t tab")
        #expect(values["search_path"] == "\"$user\", public")
        #expect(values["custom.setting"] == "on")
        #expect(values["timezone"] == "Europe/Berlin")
        #expect(values["hash_mem_multiplier"] == "1.5")
        #expect(values["offset"] == "-1")
        #expect(values["empty"] == "")
        #expect(entries.first { $0.name == "shared_buffers" }?.line == 2)
    }

    @Test(
        "syntax errors are reported per line and never crash",
        arguments: [
            "work_mem = 4 MB", "= 4MB", "work_mem =", "work_mem = 'unterminated", "1abc = 2", "work_mem = 1.5GB",
            "work_mem == 4MB", "work_mem = /abs/path", "a = b c", "a = 'x' 'y'", "a = 'x\\",
        ])
    func errors(_ line: String) {
        let (entries, errors) = ConfigFileSyntax.parse(line + "\nok = 1\n", file: "f")
        #expect(errors.count == 1, "\(line)")
        #expect(errors.first?.line == 1)
        #expect(entries.map(\.name) == ["ok"])
    }

    @Test("garbage and huge input")
    func garbage() {
        let binary = String(decoding: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }, as: UTF8.self)
        _ = ConfigFileSyntax.parse(binary, file: "f")
        let huge = String(repeating: "shared_buffers = 1GB\n", count: 50_000)
        #expect(ConfigFileSyntax.parse(huge, file: "f").entries.count == 50_000)
        #expect(ConfigFileSyntax.parse("", file: "f").entries.isEmpty)
        #expect(ConfigFileSyntax.parse(String(repeating: "'", count: 10_001), file: "f").errors.count == 1)
    }
}

@Suite("configuration files, includes and the command line")
struct ConfigLoaderTests {
    @Test("include, include_if_exists, include_dir, auto.conf, later wins")
    func includes() {
        let source = MemoryConfigSource(files: [
            "/data/postgresql.conf": """
            shared_buffers = 128MB
            work_mem = 4MB
            include 'extra.conf'
            include_if_exists 'missing.conf'
            include_dir 'conf.d'
            max_connections = 300
            """,
            "/data/extra.conf": "work_mem = 16MB\nmax_connections = 50\n",
            "/data/conf.d/10-memory.conf": "work_mem = 32MB\n",
            "/data/conf.d/20-more.conf": "work_mem = 48MB\nhuge_pages = on\n",
            "/data/conf.d/.hidden.conf": "work_mem = 1kB\n",
            "/data/conf.d/notes.txt": "work_mem = 2kB\n",
            "/data/postgresql.auto.conf": "# Do not edit this file manually!\nwork_mem = '64MB'\n",
        ])
        let loaded = PostgresConfigLoader(source: source).load(
            configFile: "/data/postgresql.conf", dataDirectory: "/data")
        #expect(loaded.problems.isEmpty, "\(loaded.problems)")
        #expect(
            loaded.files == [
                "/data/postgresql.conf", "/data/extra.conf", "/data/conf.d/10-memory.conf",
                "/data/conf.d/20-more.conf", "/data/postgresql.auto.conf",
            ])
        let settings = PostgresSettings.resolve(
            config: loaded.entries, commandLine: [("shared_buffers", "256MB")], majorVersion: 15)
        func setting(_ name: String) -> Setting? { settings.first { $0.name == name }?.setting }
        #expect(setting("work_mem")?.bytes == 64 << 20)
        #expect(setting("work_mem")?.source == "/data/postgresql.auto.conf:2")
        #expect(setting("max_connections")?.number == 300)
        #expect(setting("max_connections")?.source == "/data/postgresql.conf:6")
        #expect(setting("huge_pages")?.value == "on")
        #expect(setting("shared_buffers")?.bytes == 256 << 20)
        #expect(setting("shared_buffers")?.source == "command line")
        #expect(setting("hash_mem_multiplier")?.number == 2.0)
        #expect(setting("hash_mem_multiplier")?.source == "default")
    }

    @Test("a missing include is a problem; a loop stops at the depth limit")
    func problems() {
        let source = MemoryConfigSource(files: [
            "/d/postgresql.conf": "include 'nope.conf'\ninclude 'loop.conf'\nwork_mem = 8MB\n",
            "/d/loop.conf": "include 'loop.conf'\n",
        ])
        let loaded = PostgresConfigLoader(source: source).load(configFile: "/d/postgresql.conf", dataDirectory: "/d")
        #expect(loaded.problems.contains { $0.contains("nope.conf") })
        #expect(loaded.problems.contains { $0.contains("maximum nesting depth") })
        #expect(loaded.entries.last?.value == "8MB")
    }

    @Test("a data_directory in the main file moves postgresql.auto.conf")
    func dataDirectoryInFile() {
        let source = MemoryConfigSource(files: [
            "/etc/postgresql/15/main/postgresql.conf": "data_directory = '/var/lib/postgresql/15/main'\n",
            "/var/lib/postgresql/15/main/postgresql.auto.conf": "work_mem = '1GB'\n",
        ])
        let loaded = PostgresConfigLoader(source: source).load(
            configFile: "/etc/postgresql/15/main/postgresql.conf", dataDirectory: "/etc/postgresql/15/main")
        #expect(loaded.entries.last?.value == "1GB")
    }

    @Test("version defaults: hash_mem_multiplier 2.0 from 15, 1.0 on 13 and 14, absent before")
    func versionDefaults() {
        func multiplier(_ version: Int?) -> Setting? {
            PostgresSettings.resolve(config: [], commandLine: [], majorVersion: version)
                .first { $0.name == "hash_mem_multiplier" }?.setting
        }
        #expect(multiplier(15)?.number == 2.0)
        #expect(multiplier(16)?.number == 2.0)
        #expect(multiplier(14)?.number == 1.0)
        #expect(multiplier(13)?.number == 1.0)
        #expect(multiplier(12) == nil)
        #expect(multiplier(nil) == nil)
        let sharedBuffers = PostgresSettings.resolve(config: [], commandLine: [], majorVersion: 15)
            .first { $0.name == "shared_buffers" }?.setting
        #expect(sharedBuffers?.bytes == 128 << 20)
    }

    @Test("the postmaster's command line")
    func commandLine() {
        let options = PostmasterOptions.parse([
            "-D", "/data", "-c", "work_mem=8MB", "-cshared_buffers=1GB", "--max-connections=20", "-B", "1000",
            "-i", "-p5433", "--huge_pages=on", "-N", "30", "-c", "broken",
        ])
        #expect(options.configDirectory == "/data")
        #expect(options.value("work_mem") == "8MB")
        #expect(options.value("shared_buffers") == "1000")
        #expect(options.value("max_connections") == "30")
        #expect(options.value("port") == "5433")
        #expect(options.value("huge_pages") == "on")
        #expect(options.problems.count == 1)
        #expect(PostmasterOptions.parse(["-D"]).problems.count == 1)
        #expect(PostmasterOptions.parse([]).settings.isEmpty)
        #expect(
            PostmasterOptions.splitOpts(
                "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/data\" \"-c\" \"a=b c\"\n")
                == ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/data", "-c", "a=b c"])
    }
}
