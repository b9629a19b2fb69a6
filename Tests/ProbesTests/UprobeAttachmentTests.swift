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
            let attachments = UprobeAttachments(object: object)
            #expect(attachments.update(libraries: [library]).isEmpty)
            #expect(attachments.linkCount == UprobeAttachments.shmFunctions.count, "glibc has every function")
            // The same file again (another container of the same image) adds nothing; an empty
            // list detaches it.
            #expect(attachments.update(libraries: [library, library]).isEmpty)
            #expect(attachments.linkCount == UprobeAttachments.shmFunctions.count, "glibc has every function")
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

    /// CPU seconds (user + system) of `dd bs=1` copying `bytes` bytes: two system calls per byte,
    /// none of them through the probed functions.
    func ddSeconds(bytes: Int) throws -> Double {
        let result = try Command.run([
            "sh", "-c", "dd if=/dev/zero of=/dev/null bs=1 count=\(bytes) status=none; times",
        ])
        // `times`: the shell's user and system time, then its children's.
        let children = result.stdout.split(separator: "\n").last?.split(separator: " ") ?? []
        let seconds = children.compactMap { field -> Double? in
            let parts = field.dropLast().split(separator: "m")
            guard parts.count == 2, let minutes = Double(parts[0]), let secs = Double(parts[1]) else { return nil }
            return minutes * 60 + secs
        }
        try #require(seconds.count == 2, "times printed \(result.stdout)")
        return seconds[0] + seconds[1]
    }

    @Test("system calls of other processes cost the same with the shm uprobes attached")
    func unrelatedSyscalls() async throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let cgroup = try TestCgroup(["unified"])
        let target = ProbeTarget(
            v2: try cgroup.id("unified"), libraries: CLibraryFiles.files(pid: getpid(), host: HostRoot("/")))
        let definition = try #require(ProbeCatalog.named("shm"))
        var without: [Double] = []
        var with: [Double] = []
        // Interleaved rounds (A B B A A B), so that other load on the machine hits both sides.
        for round in 0..<6 {
            let attached = [false, true, true, false, false, true][round]
            if attached {
                let session = ProbeSession(
                    probes: [definition], environment: ProbeTestSupport.environment(), btfPath: nil)
                defer { session.close() }
                try session.setTargets([target])
                session.attach()
                try #require(session.outcomes.allSatisfy(\.running) && session.uprobeFailures.isEmpty)
                with.append(try ddSeconds(bytes: 400_000))
            } else {
                without.append(try ddSeconds(bytes: 400_000))
            }
        }
        let median: ([Double]) -> Double = { $0.sorted()[$0.count / 2] }
        let ratio = median(with) / median(without)
        // The syscall tracepoints cost +40 % per system call here; the uprobes cost nothing outside
        // the probed functions. The bound leaves room for a shared machine's noise.
        #expect(ratio < 1.15, "CPU per dd run: without \(without), with \(with)")
    }
}
