import Foundation
import HostFacts
import Resolution
import TestSupport
import Testing

/// The configuration loader on include bombs and oversized configurations, reading real files
/// through a container root (files are told apart by device and inode, as on a node).
@Suite("configuration loading is bounded")
struct ConfigBoundsTests {
    /// A container root in a temporary directory with the configuration under /data.
    final class Tree {
        let root: String
        init() throws { root = try Fixtures.temporaryDirectory("pgnode-config") + "/root" }
        deinit { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }

        func write(_ name: String, _ text: String) throws {
            try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
            try text.write(toFile: root + "/data/" + name, atomically: false, encoding: .utf8)
        }

        func size(_ name: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: root + "/data/" + name)[.size] as? Int) ?? -1
        }

        func load() -> LoadedConfig {
            PostgresConfigLoader(source: ContainerConfigSource(root: ContainerRoot(rootPath: root)))
                .load(configFile: "/data/postgresql.conf", dataDirectory: "/data")
        }
    }

    /// About `bytes` bytes of comment lines.
    static func padding(_ bytes: Int) -> String {
        let line = "# " + String(repeating: "x", count: 61) + "\n"
        return String(repeating: line, count: bytes / line.utf8.count)
    }

    @Test("a 1 MiB file that includes itself is read once, and the loop is reported")
    func selfInclude() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "work_mem = 4MB\ninclude 'bomb.conf'\n")
        try tree.write("bomb.conf", "include 'bomb.conf'\nwork_mem = 16MB\n" + Self.padding((1 << 20) - 100))
        let loaded = tree.load()
        #expect(loaded.files == ["/data/postgresql.conf", "/data/bomb.conf"])
        #expect(loaded.bytesRead == (try tree.size("postgresql.conf")) + (try tree.size("bomb.conf")))
        #expect(
            loaded.problems.contains { $0.contains("\"/data/bomb.conf\"") && $0.contains("maximum nesting depth") },
            "\(loaded.problems)")
        #expect(loaded.entries.filter { $0.name == "work_mem" }.map(\.value) == ["4MB", "16MB"])
    }

    @Test("two 1 MiB files including each other and themselves: each read once")
    func mutualInclude() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "include 'a.conf'\n")
        try tree.write("a.conf", "include 'a.conf'\ninclude 'b.conf'\n" + Self.padding((1 << 20) - 100))
        try tree.write("b.conf", "include 'b.conf'\ninclude 'a.conf'\n" + Self.padding((1 << 20) - 100))
        let loaded = tree.load()
        #expect(loaded.files == ["/data/postgresql.conf", "/data/a.conf", "/data/b.conf"])
        let expected = try tree.size("postgresql.conf") + tree.size("a.conf") + tree.size("b.conf")
        #expect(loaded.bytesRead == expected)
        #expect(loaded.problems.filter { $0.contains("maximum nesting depth") }.count == 3, "\(loaded.problems)")
    }

    @Test("the bytes of all files of one server are bounded; what is left out is reported")
    func totalBytes() throws {
        let tree = try Tree()
        let names = (1...6).map { "part\($0).conf" }
        try tree.write("postgresql.conf", names.map { "include '\($0)'\n" }.joined() + "work_mem = 8MB\n")
        for name in names { try tree.write(name, Self.padding(900 << 10)) }
        let loaded = tree.load()
        #expect(loaded.bytesRead <= PostgresConfigLoader.maxTotalBytes)
        #expect(loaded.files.count == 5, "\(loaded.files)")
        for skipped in ["part5.conf", "part6.conf"] {
            #expect(
                loaded.problems.contains { $0.contains(skipped) && $0.contains("4 MiB") }, "\(loaded.problems)")
        }
        // What follows in the main file is still applied.
        #expect(loaded.entries.last?.value == "8MB")
    }

    @Test("the lines of all files of one server are bounded; what is left out is reported")
    func totalLines() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "include 'many.conf'\n")
        try tree.write(
            "many.conf",
            String(repeating: "#\n", count: PostgresConfigLoader.maxLines + 10) + "work_mem = 64MB\n")
        let loaded = tree.load()
        #expect(!loaded.entries.contains { $0.name == "work_mem" })
        #expect(
            loaded.problems.contains {
                $0.contains("many.conf") && $0.contains("\(PostgresConfigLoader.maxLines) lines")
            },
            "\(loaded.problems)")
    }

    @Test("a file included twice is read once and applied twice, as PostgreSQL applies it")
    func repeatedInclude() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "include 'common.conf'\nwork_mem = 8MB\ninclude 'common.conf'\n")
        try tree.write("common.conf", "work_mem = 4MB\n")
        let loaded = tree.load()
        #expect(loaded.problems.isEmpty, "\(loaded.problems)")
        #expect(loaded.files == ["/data/postgresql.conf", "/data/common.conf"])
        #expect(loaded.bytesRead == (try tree.size("postgresql.conf")) + (try tree.size("common.conf")))
        #expect(loaded.entries.map(\.value) == ["4MB", "8MB", "4MB"])
        #expect(loaded.entries.last?.file == "/data/common.conf")
    }

    @Test("one file under two names (a hard link) is read once; its settings name the path they came through")
    func hardLink() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "include 'a.conf'\ninclude 'b.conf'\n")
        try tree.write("a.conf", "work_mem = 4MB\n")
        try FileManager.default.linkItem(atPath: tree.root + "/data/a.conf", toPath: tree.root + "/data/b.conf")
        let loaded = tree.load()
        #expect(loaded.bytesRead == (try tree.size("postgresql.conf")) + (try tree.size("a.conf")))
        #expect(loaded.entries.map(\.file) == ["/data/a.conf", "/data/b.conf"])
    }

    @Test("include depth is bounded as PostgreSQL bounds it (10)")
    func depth() throws {
        let tree = try Tree()
        try tree.write("postgresql.conf", "include 'level1.conf'\n")
        for level in 1...12 {
            try tree.write("level\(level).conf", "include 'level\(level + 1).conf'\nx\(level) = 1\n")
        }
        let loaded = tree.load()
        #expect(loaded.entries.map(\.name) == (1...10).reversed().map { "x\($0)" })
        #expect(loaded.problems.contains { $0.contains("level11.conf") && $0.contains("maximum nesting depth") })
    }

    @Test("problems are bounded in number and length")
    func problemsBounded() throws {
        let tree = try Tree()
        let longToken = String(repeating: "!", count: 200_000)
        try tree.write("postgresql.conf", longToken + "\n" + String(repeating: "= =\n", count: 20_000))
        let loaded = tree.load()
        #expect(loaded.problems.count <= PostgresConfigLoader.maxProblems + 1)
        #expect(loaded.problems.allSatisfy { $0.utf8.count <= PostgresConfigLoader.maxProblemBytes + 64 })
        #expect(loaded.problems.last?.contains("more problems") == true, "\(loaded.problems.suffix(2))")
    }

    @Test("an include_dir with more names than are listed says so")
    func directoryListing() {
        var files = ["/d/postgresql.conf": "include_dir 'conf.d'\n"]
        for n in 0...ContainerRoot.listLimit { files["/d/conf.d/\(n).conf"] = "" }
        let loaded = PostgresConfigLoader(source: MemoryConfigSource(files: files))
            .load(configFile: "/d/postgresql.conf", dataDirectory: nil)
        #expect(loaded.files.count <= PostgresConfigLoader.maxFiles)
        #expect(
            loaded.problems.contains {
                $0.contains("listed only \(ContainerRoot.listLimit) names") && $0.contains("conf.d")
            },
            "\(loaded.problems.prefix(3))")
    }
}
