import Foundation
import HostFacts
import TestSupport
import Testing

/// A process's root is read only while its pid still names the process discovered.
@Suite("reads of a process's root confirm the process")
struct ProcessIdentityTests {
    @Test("field 22 of stat, with spaces and parentheses in the command")
    func startTimeField() {
        let line = "4242 (post (gres) x) S 4200 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 123 0\n"
        #expect(ProcessIdentity.startTime(stat: line) == 987_654)
        #expect(ProcessIdentity.startTime(stat: "4242 (postgres) S 1 2 3") == nil)
        #expect(ProcessIdentity.startTime(stat: "garbage") == nil)
        #expect(ProcessIdentity.startTime(stat: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0") == nil)
    }

    @Test("a real process: its root is read while it runs, refused once it has exited")
    func exitedProcess() throws {
        let child = try Subprocess(["/bin/sleep", "60"], stdout: .discard, stderr: .discard)
        defer { child.stop() }
        let host = HostRoot("/")
        let identity = try ProcessIdentity.read(host: host, pid: child.pid)
        let root = ContainerRoot(host: host, process: identity)
        #expect(try !root.readText("/proc/sys/kernel/osrelease").isEmpty)
        child.stop()
        _ = child.wait(timeout: 60)
        #expect(throws: HostReadError.processExited(pid: child.pid)) { try root.readText("/proc/sys/kernel/osrelease") }
        #expect(throws: HostReadError.processExited(pid: child.pid)) { try identity.confirm(host: host) }
    }

    @Test("a real process with another start time than discovered: the pid was reused, nothing is read")
    func reusedPid() throws {
        let child = try Subprocess(["/bin/sleep", "60"], stdout: .discard, stderr: .discard)
        defer { child.stop() }
        let host = HostRoot("/")
        let now = try ProcessIdentity.read(host: host, pid: child.pid)
        // What discovery would have recorded for an earlier process that had this pid.
        let earlier = ProcessIdentity(pid: child.pid, startTime: now.startTime &- 1)
        let root = ContainerRoot(host: host, process: earlier)
        #expect(throws: HostReadError.processReplaced(pid: child.pid)) {
            try root.readText("/proc/sys/kernel/osrelease")
        }
        #expect(throws: HostReadError.processReplaced(pid: child.pid)) { try root.fileSystem("/dev/shm") }
        #expect(!root.exists("/proc"))
        #expect(HostReadError.processReplaced(pid: child.pid).description == "process \(child.pid) exited (pid reused)")
    }

    @Test("a listing where a FIFO stands is refused (not a directory); a listing is bounded")
    func listings() throws {
        let base = try Fixtures.temporaryDirectory("pgnode-list")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/conf.d", withIntermediateDirectories: true)
        for n in 0..<20 { try Data().write(to: URL(fileURLWithPath: base + "/conf.d/\(n).conf")) }
        try #require(mkfifo(base + "/fifo.d", 0o644) == 0)
        let root = ContainerRoot(rootPath: base)
        #expect(throws: HostReadError.notDirectory(path: "/fifo.d")) { try root.listDirectory("/fifo.d") }
        #expect(throws: HostReadError.notDirectory(path: "/conf.d/1.conf")) { try root.listDirectory("/conf.d/1.conf") }
        #expect(try root.listDirectory("/conf.d").count == 20)
        #expect(try root.listDirectory("/conf.d", limit: 5).count == 5)
    }
}
