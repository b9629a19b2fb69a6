import Diagnosis
import Foundation
import HostFacts
import Probes
import TestSupport
import Testing

/// The shm probe's uprobes on real library files: attached in a container's root and only to the
/// file its processes map, and free for system calls that do not go through the probed functions.
@Suite("shm uprobes on library files", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct UprobeAttachmentTests {
    /// Runs `body` with the shm object loaded (not attached).
    func withShmObject(_ body: (BPFObject) throws -> Void) throws {
        let embedded = try #require(EmbeddedObject.named("shm"))
        let object = try BPFObject(embedded: embedded)
        defer { object.close() }
        try object.load()
        try body(object)
    }

    /// The identity `stat` gives for `path` (following links, as the host would).
    func identity(_ path: String) throws -> LibraryFile.Identity {
        var st = stat()
        try #require(stat(path, &st) == 0, "stat \(path): \(String(cString: strerror(errno)))")
        let dev = UInt64(st.st_dev)
        return LibraryFile.Identity(
            major: UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)),
            minor: UInt32((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)), inode: UInt64(st.st_ino))
    }

    @Test("a link planted in the container for the mapped library cannot make pgnode attach to a host file")
    func plantedLink() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF"), Containers.available()
        else { return }
        // A copy of the C library in a directory the container sees as /opt/lib, and a hard link to
        // the same inode in a host directory the container does not see.
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let hostLibrary = try #require(CLibraryFiles.files(pid: getpid(), host: HostRoot("/")).first)
        try FileManager.default.createDirectory(atPath: scratch + "/lib", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: scratch + "/hostonly", withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: hostLibrary.path, toPath: scratch + "/lib/libc.so.6")
        try FileManager.default.linkItem(atPath: scratch + "/lib/libc.so.6", toPath: scratch + "/hostonly/libc.so.6")
        let copy = try identity(scratch + "/hostonly/libc.so.6")

        var options = CommandContainerOptions()
        options.podName = "uprobe-link"
        options.mounts = ["type=bind,src=\(scratch)/lib,dst=/opt/lib,options=rbind:rw"]
        options.environment = ["LD_LIBRARY_PATH=/opt/lib"]
        let container = try Containers.run("uprobe-link", options: options, command: ["/usr/bin/sleep", "600"])
        defer { Containers.remove(container.name) }
        let pid = try #require(Int32(try Containers.script(["pid", container.name])))

        // The container's process maps the copy at /opt/lib/libc.so.6.
        var libraries: [LibraryFile] = []
        for _ in 0..<50 {
            libraries = CLibraryFiles.files(pid: pid, host: HostRoot("/"))
            if !libraries.isEmpty { break }
            usleep(100_000)
        }
        let library = try #require(libraries.first, "no C library mapped by pid \(pid)")
        #expect(libraries.count == 1)
        #expect(library.path == "/opt/lib/libc.so.6")
        #expect(library.identity == copy)
        #expect(library.rootPath == "/proc/\(pid)/root")

        try withShmObject { object in
            // Untouched, it attaches: every function, entry and return.
            let attachments = UprobeAttachments(object: object, functions: ShmProbe.functions)
            #expect(attachments.update(libraries: [library]).isEmpty)
            #expect(attachments.linkCount == ShmProbe.functions.count, "glibc has every function")
            // The same file again (another container of the same image) adds nothing; an empty
            // list detaches it.
            #expect(attachments.update(libraries: [library, library]).isEmpty)
            #expect(attachments.linkCount == ShmProbe.functions.count, "glibc has every function")
            attachments.update(libraries: [])
            #expect(attachments.linkCount == 0)

            // The container replaces the file with a link to the host directory's hard link: the
            // same inode as the mapped file, so only resolving inside the container's root stops it.
            try FileManager.default.removeItem(atPath: scratch + "/lib/libc.so.6")
            try FileManager.default.createSymbolicLink(
                atPath: scratch + "/lib/libc.so.6", withDestinationPath: scratch + "/hostonly/libc.so.6")
            #expect(
                try identity(library.rootPath + library.path) == library.identity,
                "a host-side open through /proc/<pid>/root would reach the host file")
            #expect(throws: LibraryFileError.self) { _ = try library.open() }
            var failures = attachments.update(libraries: [library])
            #expect(failures.count == 1)
            if case .open(.unreadable) = failures.first?.reason {} else { Issue.record("\(failures)") }
            #expect(attachments.linkCount == 0)

            // A link to another file inside the container (the host's /usr is the container's):
            // found, but not the mapped file.
            try FileManager.default.removeItem(atPath: scratch + "/lib/libc.so.6")
            try FileManager.default.createSymbolicLink(
                atPath: scratch + "/lib/libc.so.6", withDestinationPath: hostLibrary.path)
            failures = attachments.update(libraries: [library])
            #expect(failures.count == 1)
            if case .open(.differentFile) = failures.first?.reason {} else { Issue.record("\(failures)") }
            #expect(attachments.linkCount == 0)
        }
    }

    @Test("a file mapped by two processes is attached through the second's root when the first process is gone")
    func rootOfAGoneProcess() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let own = try #require(CLibraryFiles.files(pid: getpid(), host: HostRoot("/")).first)
        // No process has pid `pid_max` (pids are below it): the root of a process that exited
        // between the reading of its maps and the attach.
        let pidMax = try String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var gone = own
        gone.rootPath = "/proc/\(pidMax)/root"
        #expect(!FileManager.default.fileExists(atPath: gone.rootPath))

        try withShmObject { object in
            let attachments = UprobeAttachments(object: object, functions: ShmProbe.functions)
            // Only the gone process's root: the file cannot be opened, and says so.
            var failures = attachments.update(libraries: [gone])
            #expect(failures.count == 1)
            if case .open(.unreadable) = failures.first?.reason {} else { Issue.record("\(failures)") }
            #expect(attachments.linkCount == 0)
            // The same file through a live process's root too: attached through that one.
            failures = attachments.update(libraries: [gone, own])
            #expect(failures.isEmpty, "\(failures)")
            #expect(attachments.linkCount == ShmProbe.functions.count)
            #expect(attachments.libraries == [own])
            attachments.update(libraries: [])
            #expect(attachments.linkCount == 0)
        }
    }

    /// A program that calls the three probed functions of the C library it maps, `rounds`
    /// times each, on a scratch file (`argv[1]`), and prints the path of that C library.
    static let probedCalls = """
        import ctypes, os, sys
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        path = sys.argv[1]
        for _ in range(int(sys.argv[2])):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if libc.posix_fallocate(fd, ctypes.c_long(0), ctypes.c_long(4096)) != 0:
                sys.exit("posix_fallocate failed")
            if libc.ftruncate(fd, ctypes.c_long(0)) != 0:
                sys.exit("ftruncate failed")
            os.close(fd)
            if libc.unlink(path.encode()) != 0:
                sys.exit("unlink failed")
        for line in open("/proc/self/maps"):
            if "/libc.so" in line or "/libc-" in line:
                print(line.split()[-1])
                break
        """

    @Test("system calls of other processes run none of the shm programs; the probed functions of the probed file do")
    func unrelatedSyscalls() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        // The kernel counts every run of every program while this is open.
        let stats = try BPFProgramStats.Collection()
        defer { stats.close() }
        // The probed file: a copy of the host's C library that only this test's processes map
        // (through LD_LIBRARY_PATH), so no other process on the node can run the programs.
        let scratch = try ProbeTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let hostLibrary = try #require(CLibraryFiles.files(pid: getpid(), host: HostRoot("/")).first)
        let libraryName = try #require(hostLibrary.path.split(separator: "/").last.map(String.init))
        try FileManager.default.createDirectory(atPath: scratch + "/lib", withIntermediateDirectories: false)
        let copy = scratch + "/lib/" + libraryName
        try FileManager.default.copyItem(atPath: hostLibrary.path, toPath: copy)
        let program = scratch + "/calls.py"
        try Self.probedCalls.write(toFile: program, atomically: true, encoding: .utf8)
        let rounds = 3

        let cgroup = try TestCgroup(["unified"])
        let target = ProbeTarget(
            v2: try cgroup.id("unified"),
            libraries: [LibraryFile(identity: try identity(copy), rootPath: "/", path: copy)])
        let definition = try #require(ProbeCatalog.named("shm"))
        let session = ProbeSession(probes: [definition], environment: ProbeTestSupport.environment(), btfPath: nil)
        defer { session.close() }
        try session.setTargets([target])
        session.attach()
        try #require(session.statuses.allSatisfy { $0.running }, "\(session.statuses)")
        try #require(session.uprobeFailures.isEmpty, "\(session.uprobeFailures)")
        let programs = session.statuses.reduce(into: [String: UInt32]()) { $0.merge($1.programIDs) { a, _ in a } }
        try #require(Set(programs.keys) == Set(ShmProbe.functions.map(\.program)), "\(programs)")
        let start = try BPFProgramStats.counts(programs)

        // Another process with the host's C library, outside the target, making the same calls.
        let other = try Command.run(["/usr/bin/python3", program, scratch + "/other", String(rounds)])
        #expect(other.status == 0, "\(other.stderr)")
        #expect(other.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == hostLibrary.path)
        #expect(try BPFProgramStats.counts(programs) == start, "the host's C library is not probed")

        // A process in the target that maps the probed copy: 800,000 system calls (dd bs=1: a
        // read and a write per byte) that do not go through the probed functions.
        let copyMapped = try cgroup.run("LD_LIBRARY_PATH=\(scratch)/lib exec cat /proc/self/maps")
        #expect(copyMapped.stdout.contains(copy), "LD_LIBRARY_PATH makes processes map the copy")
        let dd = try cgroup.run(
            "LD_LIBRARY_PATH=\(scratch)/lib exec dd if=/dev/zero of=/dev/null bs=1 count=400000 status=none")
        #expect(dd.status == 0, "\(dd.stderr)")
        #expect(try BPFProgramStats.counts(programs) == start, "system calls outside the probed functions")

        // The target's process making the calls through the probed copy: each program runs, at
        // least once per call (entry and return).
        let own = try cgroup.run(
            "LD_LIBRARY_PATH=\(scratch)/lib exec /usr/bin/python3 \(program) \(scratch)/own \(rounds)")
        #expect(own.status == 0, "\(own.stderr)")
        #expect(own.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == copy)
        let end = try BPFProgramStats.counts(programs)
        for name in programs.keys.sorted() {
            let ran = (end[name]?.runs ?? 0) &- (start[name]?.runs ?? 0)
            #expect(ran >= UInt64(rounds), "\(name) ran \(ran) times for \(rounds) calls")
        }
    }
}
