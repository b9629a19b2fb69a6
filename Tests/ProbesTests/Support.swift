import Foundation
import HostFacts
import Probes
import TestSupport
import Testing

/// A cgroup made by a test in some hierarchies of this machine (v1 controllers and/or the
/// unified hierarchy), removed at the end.
final class TestCgroup {
    /// Hierarchy directory → the cgroup's path.
    let paths: [String: String]

    /// Creates `pgnode-test-<pid>-<n>` under `/sys/fs/cgroup/<hierarchy>` for each hierarchy
    /// (`memory`, `blkio`, `unified`).
    init(_ hierarchies: [String]) throws {
        let name = "pgnode-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var paths: [String: String] = [:]
        for hierarchy in hierarchies {
            let path = "/sys/fs/cgroup/\(hierarchy)/\(name)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            paths[hierarchy] = path
        }
        self.paths = paths
    }

    /// The cgroup id in `hierarchy`: its directory's inode number.
    func id(_ hierarchy: String) throws -> UInt64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: paths[hierarchy]!)
        return (attributes[.systemFileNumber] as! NSNumber).uint64Value
    }

    /// Writes a control file (e.g. memory.limit_in_bytes).
    func set(_ hierarchy: String, _ file: String, _ value: String) throws {
        try value.write(toFile: paths[hierarchy]! + "/" + file, atomically: false, encoding: .utf8)
    }

    /// A shell prefix that moves the shell into every hierarchy of this cgroup.
    var enterCommand: String {
        paths.values.sorted().map { "echo $$ > \($0)/cgroup.procs" }.joined(separator: " && ")
    }

    /// Runs `script` with sh inside the cgroup and waits.
    @discardableResult
    func run(_ script: String) throws -> CommandResult {
        try Command.run(["sh", "-c", "\(enterCommand) && \(script)"])
    }

    deinit {
        for path in paths.values {
            // Wait for exited members to leave, then remove the directory.
            for _ in 0..<50 {
                if rmdir(path) == 0 || errno == ENOENT { break }
                usleep(100_000)
            }
        }
    }
}

enum ProbeTestSupport {
    /// Whether BPF tests can run here: root, with the tracefs these probes attach through.
    static var canRunBPF: Bool {
        TestEnvironment.isRoot && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux")
    }

    /// Mounts tracefs if needed (scripts/setup does it too).
    static func ensureTracefs() {
        if !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") {
            _ = try? Command.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
    }

    /// The environment as pgnode gathers it at start-up, with the kernel's BTF.
    static func environment(btf: BTFLocation? = nil) -> BPFEnvironment {
        ensureTracefs()
        let host = HostRoot("/")
        let facts = KernelFacts.gather(host: host)
        let resolution = BTFResolver.resolve(host: host, facts: facts, option: btf?.path, archive: nil)
        return BPFFeatures.gather(host: host, facts: facts, btf: resolution.location, btfProblem: resolution.problem)
    }

    /// Waits until none of `ids` is loaded in the kernel (program freeing is deferred by RCU).
    static func waitUntilUnloaded(_ ids: Set<UInt32>, timeout: Double = 5) -> Set<UInt32> {
        let deadline = Date().addingTimeInterval(timeout)
        var remaining = ids
        repeat {
            let loaded = Set((BPFSystem.loadedPrograms() ?? []).map(\.id))
            remaining = ids.intersection(loaded)
            if remaining.isEmpty { return [] }
            usleep(100_000)
        } while Date() < deadline
        return remaining
    }

    /// A scratch directory on the node's disk (not tmpfs), removed by the caller.
    static func scratchDirectory() throws -> String {
        let path = "/var/tmp/pgnode-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
