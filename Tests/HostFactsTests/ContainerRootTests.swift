import Foundation
import HostFacts
import TestSupport
import Testing

@Suite("Reading inside a container root never escapes it")
struct ContainerRootTests {
    /// A fake container root holding links that point outside it, and a host file they aim at.
    struct Tree {
        let base: String
        var root: String { base + "/root" }
        var secret: String { base + "/host-secret" }

        init() throws {
            base = try Fixtures.temporaryDirectory("pgnode-root")
            let fm = FileManager.default
            try fm.createDirectory(atPath: root + "/var/lib/postgresql/data", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
            try "HOST-SECRET-MARKER\n".write(toFile: secret, atomically: true, encoding: .utf8)
            try "inside\n".write(toFile: root + "/etc/inside.conf", atomically: true, encoding: .utf8)
            // Absolute link to a host path: must resolve inside the root (where it does not exist).
            try fm.createSymbolicLink(
                atPath: root + "/var/lib/postgresql/data/postgresql.auto.conf", withDestinationPath: secret)
            // Relative link climbing above the root.
            try fm.createSymbolicLink(
                atPath: root + "/var/lib/postgresql/data/climb", withDestinationPath: "../../../../../../host-secret")
            // Absolute link that stays inside the root when resolved against it.
            try fm.createSymbolicLink(atPath: root + "/etc/alias.conf", withDestinationPath: "/etc/inside.conf")
            // A directory link to the host's /.
            try fm.createSymbolicLink(atPath: root + "/hostroot", withDestinationPath: "/")
            // A loop.
            try fm.createSymbolicLink(atPath: root + "/loop", withDestinationPath: "/loop")
        }

        func remove() { try? FileManager.default.removeItem(atPath: base) }
    }

    @Test("links out of the root are resolved inside it", arguments: [ContainerRoot.Strategy.automatic, .walk])
    func noEscape(strategy: ContainerRoot.Strategy) throws {
        let tree = try Tree()
        defer { tree.remove() }
        let root = ContainerRoot(rootPath: tree.root, strategy: strategy)
        #expect(throws: HostReadError.self) { try root.readText("/var/lib/postgresql/data/postgresql.auto.conf") }
        #expect(throws: HostReadError.self) { try root.readText("/var/lib/postgresql/data/climb") }
        #expect(throws: HostReadError.self) { try root.readText("/hostroot" + tree.secret) }
        #expect(throws: HostReadError.self) { try root.readText("/../../../../" + tree.secret) }
        #expect(throws: HostReadError.self) { try root.readText("/loop") }
        // The secret really is readable from the host, so the refusals above mean something.
        #expect(try String(contentsOfFile: tree.secret, encoding: .utf8).contains("HOST-SECRET-MARKER"))
    }

    @Test("links inside the root are followed", arguments: [ContainerRoot.Strategy.automatic, .walk])
    func insideLinks(strategy: ContainerRoot.Strategy) throws {
        let tree = try Tree()
        defer { tree.remove() }
        let root = ContainerRoot(rootPath: tree.root, strategy: strategy)
        #expect(try root.readText("/etc/alias.conf") == "inside\n")
        #expect(try root.readText("etc/inside.conf") == "inside\n")
        #expect(try root.readText("/etc/../etc/./inside.conf") == "inside\n")
        #expect(root.exists("/etc/inside.conf"))
        #expect(!root.exists("/etc/missing.conf"))
    }

    @Test("a missing file is notFound; an oversized one is tooLarge")
    func errors() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let root = ContainerRoot(rootPath: tree.root)
        #expect(throws: HostReadError.notFound(path: "/nope")) { try root.readText("/nope") }
        #expect(throws: HostReadError.tooLarge(path: "/etc/inside.conf", limit: 3)) {
            try root.read("/etc/inside.conf", limit: 3)
        }
    }

    @Test("a real process root: this test's own /proc/self/root")
    func procRoot() throws {
        let root = ContainerRoot(
            host: HostRoot("/"), process: try ProcessIdentity.read(host: HostRoot("/"), pid: getpid()))
        let text = try root.readText("/proc/sys/kernel/osrelease")
        #expect(!text.isEmpty)
        let usage = try root.fileSystem("/dev/shm")
        #expect(usage.type == CgroupLayout.tmpfsMagic)
        #expect(usage.sizeBytes > 0)
    }

    @Test(
        "a FIFO, a character device and a directory are refused before any read, and never block",
        arguments: [ContainerRoot.Strategy.automatic, .walk])
    func notRegularFiles(strategy: ContainerRoot.Strategy) throws {
        let tree = try Tree()
        defer { tree.remove() }
        let fifo = tree.root + "/etc/fifo.conf"
        try #require(mkfifo(fifo, 0o644) == 0)
        try FileManager.default.createSymbolicLink(
            atPath: tree.root + "/etc/to-fifo.conf", withDestinationPath: "/etc/fifo.conf")
        var paths = ["/etc/fifo.conf", "/etc/to-fifo.conf", "/var/lib/postgresql"]
        if TestEnvironment.requireRoot() {
            // 1:3 is /dev/null; glibc's dev_t for small numbers is major << 8 | minor.
            try #require(mknod(tree.root + "/etc/null.conf", mode_t(S_IFCHR) | 0o644, dev_t(1 << 8 | 3)) == 0)
            paths.append("/etc/null.conf")
        }
        let root = ContainerRoot(rootPath: tree.root, strategy: strategy)
        for path in paths {
            let outcome = try HangGuard.run("reading \(path)", unblock: { HangGuard.releaseFIFOs([fifo]) }) {
                () -> String in
                do {
                    let text = try root.readText(path)
                    return "read \(text.utf8.count) bytes"
                } catch {
                    return "\(error)"
                }
            }
            #expect(outcome == "not a regular file: \(path)")
        }
    }
}
