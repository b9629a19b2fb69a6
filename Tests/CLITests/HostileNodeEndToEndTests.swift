import Foundation
import PGNodeModel
import TestSupport
import Testing

/// 100 connections to the status port that never finish a request: each sends one byte of a
/// request line per second, and one that the server closes is opened again, so that the server
/// always has about 100 slow clients holding connections.
final class SlowClients: @unchecked Sendable {
    private let port: Int
    private let count: Int
    private let lock = NSLock()
    private var running = true
    private var thread: Thread?
    /// How many times the server closed a slow connection (it saw the end of the stream or a reset).
    private(set) var closedByServer = 0
    /// Connections opened in all.
    private(set) var opened = 0

    init(port: Int, count: Int = 100) {
        self.port = port
        self.count = count
    }

    private func connectOne() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return -1
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        lock.withLock { opened += 1 }
        return fd
    }

    /// Opens the connections and starts trickling.
    func start() {
        let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n".utf8)
        let thread = Thread { [self] in
            var sockets = (0..<count).map { _ in (fd: connectOne(), sent: 0) }
            while lock.withLock({ running }) {
                for index in sockets.indices {
                    var (fd, sent) = sockets[index]
                    if fd >= 0 {
                        // The server closing the connection shows as end of stream or a reset.
                        var scratch = [UInt8](repeating: 0, count: 512)
                        let n = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
                        let closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                        var byte = request[sent % request.count]
                        let wrote = closed ? -1 : send(fd, &byte, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                        if closed || wrote < 0 {
                            close(fd)
                            lock.withLock { closedByServer += 1 }
                            fd = -1
                        } else {
                            sent += 1
                        }
                    }
                    if fd < 0 { (fd, sent) = (connectOne(), 0) }
                    sockets[index] = (fd, sent)
                }
                usleep(1_000_000)
            }
            for socket in sockets where socket.fd >= 0 { close(socket.fd) }
        }
        self.thread = thread
        thread.start()
    }

    /// Stops trickling and closes every connection.
    func stop() {
        lock.withLock { running = false }
    }
}

/// The peak resident set of a process (VmHWM in /proc/<pid>/status), in bytes.
func peakResidentBytes(_ pid: pid_t) -> Int64? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let kib = Int64(fields[1]) { return kib * 1024 }
    }
    return nil
}

/// The DaemonSet's memory limit (`resources.limits.memory` in manifests/daemonset.yaml), in bytes.
func daemonSetMemoryLimit() throws -> Int64 {
    let path = TestEnvironment.packageRoot.appendingPathComponent("manifests/daemonset.yaml").path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var inLimits = false
    for line in text.split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed == "limits:" {
            inLimits = true
        } else if inLimits, trimmed.hasPrefix("memory:") {
            let value = trimmed.dropFirst("memory:".count).trimmingCharacters(in: .whitespaces)
            if value.hasSuffix("Mi"), let mib = Int64(value.dropLast(2)) { return mib << 20 }
            if value.hasSuffix("Gi"), let gib = Int64(value.dropLast(2)) { return gib << 30 }
        }
    }
    Issue.record("no resources.limits.memory in \(path)")
    return 0
}

/// The agent on a node where tenants and the network are hostile: one healthy PostgreSQL
/// container beside containers holding inputs that hung, crashed or bloated earlier versions,
/// a receiver that answers 503 with an absurd Retry-After, and slow clients on the status port.
@Suite("hostile node, end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct HostileNodeEndToEndTests {
    func podOptions(_ pod: String) -> PostgresContainerOptions {
        var options = PostgresContainerOptions()
        options.podName = "\(pod)-\(UUID().uuidString.prefix(6).lowercased())"
        options.namespace = "pgnode-hostile"
        return options
    }

    @Test(
        "the healthy container is diagnosed every window; /healthz answers; RSS under the DaemonSet's limit; SIGTERM ends it"
    )
    func hostileNode() throws {
        guard TestEnvironment.requireRoot(), Containers.available() else { return }
        let memoryLimit = try daemonSetMemoryLimit()

        // The healthy container.
        let healthyOptions = podOptions("healthy")
        let healthy = try Containers.start("hostile-healthy", options: healthyOptions)
        defer { Containers.remove(healthy.name) }

        // A FIFO at postgresql.conf (the server already read its configuration at start).
        let fifoOptions = podOptions("fifo-conf")
        let fifo = try Containers.start("hostile-fifo", options: fifoOptions)
        defer { Containers.remove(fifo.name) }
        let fifoData = try Containers.rootfs(fifo) + "/var/lib/postgresql/data"
        try FileManager.default.removeItem(atPath: fifoData + "/postgresql.conf")
        #expect(mkfifo(fifoData + "/postgresql.conf", 0o644) == 0)
        // … and a character device at postmaster.opts.
        try? FileManager.default.removeItem(atPath: fifoData + "/postmaster.opts")
        let devNull = dev_t((1 << 8) | 3)  // makedev(1, 3)
        #expect(mknod(fifoData + "/postmaster.opts", S_IFCHR | 0o644, devNull) == 0)

        // An include bomb: a 1 MiB file that includes itself twice, and a setting out of any range.
        let bombOptions = podOptions("include-bomb")
        let bomb = try Containers.start("hostile-bomb", options: bombOptions)
        defer { Containers.remove(bomb.name) }
        let bombData = try Containers.rootfs(bomb) + "/var/lib/postgresql/data"
        let filler = String(
            repeating: "# padding padding padding padding padding padding padding padding\n", count: 16_384)
        try (filler + "include 'bomb.conf'\ninclude 'bomb.conf'\nhash_mem_multiplier = '1e300'\n").write(
            toFile: bombData + "/bomb.conf", atomically: true, encoding: .utf8)
        let conf = try FileHandle(forWritingTo: URL(fileURLWithPath: bombData + "/postgresql.conf"))
        try conf.seekToEnd()
        try conf.write(contentsOf: Data("include 'bomb.conf'\n".utf8))
        try conf.close()

        // A process called `postgres` whose command line holds settings PostgreSQL would refuse.
        let fakeDirectory = try Fixtures.temporaryDirectory("pgnode-fake-postgres")
        defer { try? FileManager.default.removeItem(atPath: fakeDirectory) }
        try "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n".write(
            toFile: fakeDirectory + "/fake.c", atomically: true, encoding: .utf8)
        let compiled = try Command.run(["cc", "-O1", "-o", fakeDirectory + "/postgres", fakeDirectory + "/fake.c"])
        try #require(compiled.status == 0, "cc: \(compiled.stderr)")
        var fakeOptions = CommandContainerOptions()
        fakeOptions.podName = "fake-postgres-\(UUID().uuidString.prefix(6).lowercased())"
        fakeOptions.namespace = "pgnode-hostile"
        fakeOptions.containerName = "postgres"
        fakeOptions.mounts = ["type=bind,src=\(fakeDirectory),dst=/opt/fake,options=rbind:ro"]
        let fake = try Containers.run(
            "hostile-fake", options: fakeOptions,
            command: [
                "/opt/fake/postgres", "-D", "/nonexistent", "-c", "hash_mem_multiplier=1e300", "-c",
                "work_mem=99999999999999999999TB", "-c", "max_parallel_workers_per_gather=-9223372036854775808",
                "-c", "shared_buffers=nan",
            ])
        defer { Containers.remove(fake.name) }

        // A receiver that refuses everything with a Retry-After far beyond any clamp.
        let receiver = try Receiver(
            mode: "ndjson",
            options: [
                "--fail-first", "1000000", "--fail-status", "503", "--retry-after", "Fri, 31 Dec 9999 23:59:59 GMT",
            ])
        defer { receiver.stop() }

        let directory = try Fixtures.temporaryDirectory("pgnode-hostile")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = Receiver.freePort()
        let agent = try AgentProcess(
            [
                "--interval", "2", "--emit", "all", "--listen", "127.0.0.1:\(port)", "--node-name", "hostile-node",
                "--endpoint", receiver.url(), "--spool-dir", "\(directory)/spool", "--batch-wait", "0.2",
            ], directory: directory)
        defer { _ = agent.stop(SIGKILL) }
        try #require(agent.waitForLog("serving /healthz /readyz /metrics") != nil, "\(agent.stderr)")

        let slow = SlowClients(port: port)
        slow.start()
        defer { slow.stop() }

        // Watch ten windows: /healthz answers every time it is asked while the slow clients hold
        // connections, the healthy container's findings keep coming, the agent keeps running.
        var healthAnswers = 0
        var healthAsked = 0
        var windowsWithHealthyFindings = Set<String>()
        let deadline = Date().addingTimeInterval(120)
        while windowsWithHealthyFindings.count < 10, Date() < deadline, agent.process.isRunning {
            healthAsked += 1
            if let health = try? curl("http://127.0.0.1:\(port)/healthz"), health.status == "200" { healthAnswers += 1 }
            for line in spooledLines("\(directory)/spool") where line.contains("\"\(healthyOptions.podName)\"") {
                guard let finding = try? JSONParser.parse(line), finding["check"]?.stringValue == "shm.size",
                    let time = finding["time"]?.stringValue
                else { continue }
                windowsWithHealthyFindings.insert(time)
            }
            usleep(1_000_000)
        }
        #expect(agent.process.isRunning, "the agent died: \(agent.stderr.suffix(4000))")
        #expect(
            windowsWithHealthyFindings.count >= 10,
            "healthy container diagnosed in \(windowsWithHealthyFindings.count) windows")
        #expect(healthAnswers == healthAsked, "/healthz answered \(healthAnswers) of \(healthAsked) times")
        #expect(slow.closedByServer > 0, "the server never closed a slow connection")

        // What the hostile containers got: findings that say what was wrong, not a crash.
        let lines = spooledLines("\(directory)/spool")
        func of(_ pod: String) -> String { lines.filter { $0.contains("\"\(pod)\"") }.joined(separator: "\n") }
        #expect(of(fifoOptions.podName).contains("not a regular file"), "\(of(fifoOptions.podName).prefix(3000))")
        #expect(of(bombOptions.podName).contains("shm.size"), "no findings for the include bomb's container")
        #expect(of(fakeOptions.podName).contains("hash_mem_multiplier"), "\(of(fakeOptions.podName).prefix(3000))")

        // The receiver refused, and the retry it asked for (the year 9999) was clamped: the
        // shipper scheduled it no further ahead than its documented maximum (600 s).
        #expect(receiver.requests().map(\.status).allSatisfy { $0 == "503" } && !receiver.requests().isEmpty)
        let delays = agent.logs.filter { $0["message"]?.stringValue == "delivery failed; will retry" }.compactMap {
            $0["retry_in_s"]?.stringValue.flatMap(Double.init)
        }
        #expect(!delays.isEmpty && delays.allSatisfy { $0 > 0 && $0 <= 600 }, "retry delays: \(delays)")

        let peak = try #require(peakResidentBytes(agent.process.pid))
        #expect(peak < memoryLimit, "peak RSS \(peak) bytes, DaemonSet limit \(memoryLimit)")

        slow.stop()
        let stopped = agent.stop(SIGTERM, timeout: 60)
        #expect(stopped == 0, "SIGTERM: \(String(describing: stopped)) \(agent.stderr.suffix(2000))")
    }
}

/// Every finding line in a spool directory's segments (their first line is a header), oldest
/// segment first.
func spooledLines(_ directory: String) -> [String] {
    let names =
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("segment-") }
        .sorted()
    return names.flatMap { name -> [String] in
        guard let text = try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().map(String.init)
    }
}
