import Foundation
import TestSupport

/// A real FUSE file system that answers the kernel's INIT and nothing else: every lookup, open or
/// read under its mount point waits, in the kernel, for an answer that never comes — what a
/// stuck NFS or FUSE mount does to a reader, `O_NONBLOCK` or not. It records what it was asked
/// and by which process. `unmount()` ends it: the requests still waiting then fail.
///
/// Needs root (mount) and `/dev/fuse`; written against the kernel's FUSE protocol directly
/// (`linux/fuse.h`), no libfuse.
final class StalledFileSystem: @unchecked Sendable {
    /// A request the kernel sent.
    struct Request: Sendable {
        /// The FUSE opcode (1 LOOKUP, 3 GETATTR, 14 OPEN, 15 READ, 27 OPENDIR, …).
        var opcode: UInt32
        /// The thread on whose behalf it came.
        var thread: Int32
        /// Its process (thread group), while the thread lived.
        var process: Int32?
        /// For a LOOKUP, the name looked up.
        var name: String?
    }

    struct MountError: Error, CustomStringConvertible {
        var operation: String
        var code: Int32
        var description: String { "\(operation): \(String(cString: strerror(code)))" }
    }

    let mountPoint: String
    private let device: Int32
    private let lock = NSLock()
    private var received: [Request] = []
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    private var mounted = true

    static let opcodeInit: UInt32 = 26

    /// Mounts a stalled file system on the existing directory `mountPoint`.
    init(mountPoint: String) throws {
        self.mountPoint = mountPoint
        device = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard device >= 0 else { throw MountError(operation: "open /dev/fuse", code: errno) }
        let options = "fd=\(device),rootmode=40000,user_id=0,group_id=0"
        let rc = options.withCString {
            mount("pgnode-stalled", mountPoint, "fuse", UInt(MS_NOSUID | MS_NODEV), $0)
        }
        guard rc == 0 else {
            let code = errno
            close(device)
            throw MountError(operation: "mount fuse on \(mountPoint)", code: code)
        }
        Thread.detachNewThread { [self] in serve() }
    }

    deinit { unmount() }

    /// What the kernel asked so far (INIT excepted).
    var requests: [Request] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// The requests that came from process `pid`.
    func requests(from pid: Int32) -> [Request] { requests.filter { $0.process == pid } }

    /// Waits (at most `guardSeconds`, a hang guard) for a request from process `pid`.
    func waitForRequest(from pid: Int32, guardSeconds: Double = 30) -> Request? {
        let limit = Date().addingTimeInterval(guardSeconds)
        while Date() < limit {
            if let request = requests(from: pid).first { return request }
            usleep(20_000)
        }
        return nil
    }

    /// The thread group of thread `tid` (from its status file; it is alive: it waits for us).
    static func threadGroup(of tid: Int32) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(tid)/status", encoding: .utf8) else { return nil }
        let line = text.split(separator: "\n").first { $0.hasPrefix("Tgid:") }
        return line.flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) }
    }

    /// Stops answering the kernel and unmounts; requests still waiting fail (ENOTCONN).
    func unmount() {
        lock.lock()
        let wasMounted = mounted
        mounted = false
        stopping = true
        lock.unlock()
        guard wasMounted else { return }
        stopped.wait()
        umount2(mountPoint, Int32(MNT_DETACH))
        close(device)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func serve() {
        defer { stopped.signal() }
        var buffer = [UInt8](repeating: 0, count: (1 << 20) + 4096)
        while !isStopping {
            var entry = pollfd(fd: device, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(device, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == ENOENT { continue }
                return
            }
            guard n >= 40 else { continue }
            let opcode = load(UInt32.self, buffer, 4)
            let unique = load(UInt64.self, buffer, 8)
            let tid = Int32(bitPattern: load(UInt32.self, buffer, 32))
            if opcode == Self.opcodeInit {
                answerInit(unique: unique, kernelMaxReadahead: load(UInt32.self, buffer, 48))
                continue
            }
            var name: String?
            if opcode == 1 {
                let bytes = buffer[40..<n].prefix(while: { $0 != 0 })
                name = String(decoding: bytes, as: UTF8.self)
            }
            let request = Request(opcode: opcode, thread: tid, process: Self.threadGroup(of: tid), name: name)
            lock.lock()
            received.append(request)
            lock.unlock()
            // No answer: the process that asked waits.
        }
    }

    /// FUSE 7.31, no optional features, 4 KiB writes.
    private func answerInit(unique: UInt64, kernelMaxReadahead: UInt32) {
        var reply = [UInt8](repeating: 0, count: 16 + 64)
        store(UInt32(reply.count), &reply, 0)
        store(unique, &reply, 8)
        store(UInt32(7), &reply, 16)  // major
        store(UInt32(31), &reply, 20)  // minor
        store(kernelMaxReadahead, &reply, 24)
        store(UInt32(4096), &reply, 36)  // max_write
        store(UInt32(1), &reply, 40)  // time_gran
        _ = reply.withUnsafeBytes { write(device, $0.baseAddress, $0.count) }
    }

    private func load<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
        return value
    }

    private func store<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8], _ offset: Int) {
        for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}
