import Foundation
import HostFacts
import Resolution
import TestSupport

/// The id and pod UID used throughout the fixture files.
enum FixtureIDs {
    static let container = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
    static let podUID = "7c1e3b2a-5d4f-4e8a-9b6c-1d2e3f4a5b6c"
    static let sandbox = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
}

/// The fixture files beside these tests (real cgroup lines, runtime state files, mount tables).
enum FixtureFiles {
    static let directory = TestEnvironment.packageRoot.appendingPathComponent("Tests/ResolutionTests/Fixtures").path

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: directory + "/" + relative, encoding: .utf8)
    }
}

/// A host root assembled in a temporary directory from the fixture files: `proc/<pid>/…` for
/// each process, the cgroup hierarchies of a mount table, runtime state, container root trees.
final class FixtureHost {
    let root: String
    var host: HostRoot { HostRoot(root) }

    /// A host whose mount table is `Fixtures/mountinfo/<mounts>.txt`, read by a pgnode in the
    /// cgroup namespace `readerNamespace` (nil: no namespace links at all).
    init(mounts: String, readerNamespace: UInt64? = CgroupNamespace.initialInode) throws {
        root = try Fixtures.temporaryDirectory("pgnode-resolution")
        try write("proc/1/mountinfo", try FixtureFiles.text("mountinfo/\(mounts).txt"))
        try write("proc/1/cgroup", "0::/init.scope\n")
        try write("proc/1/stat", "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
        try write("proc/1/cmdline", "/sbin/init\0")
        if let readerNamespace {
            try link("proc/self/ns/cgroup", "cgroup:[\(readerNamespace)]")
            try link("proc/1/ns/cgroup", "cgroup:[\(CgroupNamespace.initialInode)]")
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ relative: String) -> String { root + "/" + relative }

    func write(_ relative: String, _ text: String) throws {
        let full = path(relative)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func link(_ relative: String, _ target: String) throws {
        let full = path(relative)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: full)
        try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    func directory(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path(relative), withIntermediateDirectories: true)
    }

    /// Adds process `pid`. `cgroup` is the text of its cgroup file; `rootfs` names a directory
    /// (relative to the host root) that becomes `proc/<pid>/root`; `startTime` is field 22 of its
    /// `stat` (clock ticks after boot), which tells a process from a later one with the same pid.
    func process(
        _ pid: Int32, parent: Int32 = 1, cgroup: String, arguments: [String], command: String = "postgres",
        namespacePID: Int32? = nil, environment: [String] = [], rootfs: String? = nil, cwd: String? = nil,
        mountNamespace: UInt64 = 4_026_532_177, pidNamespace: UInt64 = 4_026_532_180, startTime: UInt64 = 1
    ) throws {
        let base = "proc/\(pid)"
        try write("\(base)/cgroup", cgroup)
        try write(
            "\(base)/stat",
            "\(pid) (\(command)) S \(parent) \(pid) \(pid) 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 \(startTime) 0 0\n")
        try write("\(base)/cmdline", arguments.map { $0 + "\0" }.joined())
        try write("\(base)/environ", environment.map { $0 + "\0" }.joined())
        let nspid = namespacePID.map { "NSpid:\t\(pid)\t\($0)" } ?? "NSpid:\t\(pid)"
        try write("\(base)/status", "Name:\t\(command)\nPid:\t\(pid)\nPPid:\t\(parent)\n\(nspid)\n")
        try link("\(base)/ns/mnt", "mnt:[\(mountNamespace)]")
        try link("\(base)/ns/pid", "pid:[\(pidNamespace)]")
        if let rootfs { try link("\(base)/root", path(rootfs)) }
        if let cwd { try link("\(base)/cwd", cwd) }
    }

    /// A PostgreSQL data directory inside `rootfs`.
    func dataDirectory(
        rootfs: String, at dataDirectory: String = "/var/lib/postgresql/data", version: String = "15",
        postmasterPID: Int32 = 1, config: String? = nil, autoConfig: String? = nil
    ) throws {
        let base = "\(rootfs)\(dataDirectory)"
        try write("\(base)/PG_VERSION", version + "\n")
        try write("\(base)/postgresql.conf", try config ?? FixtureFiles.text("pgdata/postgresql.conf.initdb15"))
        if let autoConfig { try write("\(base)/postgresql.auto.conf", autoConfig) }
        try write(
            "\(base)/postmaster.pid",
            "\(postmasterPID)\n\(dataDirectory)\n1715677953\n5432\n/var/run/postgresql\n*\n  1026448         0\nready   \n"
        )
    }

    /// The cgroup directories of `path` in every hierarchy of the mount table, each with a cgroup.procs.
    func cgroupDirectories(_ path: String, hierarchies: [String], procs: [Int32] = []) throws {
        for hierarchy in hierarchies {
            try write("\(hierarchy)\(path)/cgroup.procs", procs.map { "\($0)\n" }.joined())
        }
    }

    /// containerd's runtime v2 bundle for `id` with the given config.json text and init pid.
    func containerdBundle(id: String, config: String, initPID: Int32?) throws {
        let base = "run/containerd/io.containerd.runtime.v2.task/k8s.io/\(id)"
        try write("\(base)/config.json", config)
        if let initPID { try write("\(base)/init.pid", "\(initPID)") }
    }

    /// The inode of a directory under the root.
    func inode(_ relative: String) throws -> UInt64 {
        try host.status(relative).inode
    }
}

/// The cgroup fixture `name` with the fixture container id replaced by `id`.
func cgroupFixture(_ name: String, id: String = FixtureIDs.container) throws -> String {
    try FixtureFiles.text("cgroup/\(name).txt").replacingOccurrences(of: FixtureIDs.container, with: id)
}
