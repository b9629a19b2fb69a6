import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `blkio.noise` end to end: real containerd containers running fio on a file on the node's
/// disk (under /var/tmp, not tmpfs), observed by `pgnode check --container`.
@Suite("blkio.noise end to end", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct BlockNoiseEndToEndTests {
    /// How long pgnode observes; the fio jobs run longer than that (they are removed at the end).
    static let window = 8
    static let fioRuntime = 60

    var canRun: Bool {
        guard
            TestEnvironment.require(
                TestEnvironment.isRoot && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"),
                "root and kernel BTF")
        else { return false }
        return Containers.available()
            && TestEnvironment.require(FileManager.default.isExecutableFile(atPath: "/usr/bin/fio"), "fio")
    }

    /// A scratch directory on the disk that holds /var/tmp, with a 256 MiB file laid out for
    /// the random reads (written from the test process, before the window).
    func scratch() throws -> String {
        let dir = "/var/tmp/pgnode-blk-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let layout = try Command.run([
            "fio", "--name=layout", "--filename=\(dir)/target", "--size=256M", "--rw=write", "--bs=1M",
            "--direct=1", "--output=/dev/null",
        ])
        guard layout.status == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw EndToEndError("fio layout: \(layout.stderr)")
        }
        return dir
    }

    /// `MAJ:MIN` of the whole disk behind `path` (a partition's parent).
    func disk(of path: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw EndToEndError("stat \(path)") }
        let raw = UInt64(st.st_dev)  // glibc's encoding (gnu_dev_major/minor)
        let dev = "\(((raw >> 8) & 0xFFF) | ((raw >> 32) & ~0xFFF)):\((raw & 0xFF) | ((raw >> 12) & ~0xFF))"
        let sys = "/sys/dev/block/\(dev)"
        if FileManager.default.fileExists(atPath: sys + "/partition"),
            let parent = try? String(contentsOfFile: sys + "/../dev", encoding: .utf8)
        {
            return parent.trimmingWhitespaceForTest()
        }
        return dev
    }

    /// The target: random 4 KiB direct reads, one at a time, for the whole window.
    func startReader(_ dir: String) throws -> PostgresContainer {
        var options = CommandContainerOptions()
        options.podName = "blk-db-0"
        options.containerName = "reader"
        options.mounts = ["type=bind,src=\(dir),dst=/data,options=rbind:rw"]
        return try Containers.run(
            "blk-reader", options: options,
            command: [
                "/usr/bin/fio", "--name=reads", "--filename=/data/target", "--size=256M", "--rw=randread", "--bs=4k",
                "--direct=1", "--ioengine=psync", "--time_based", "--runtime=\(Self.fioRuntime)", "--output=/dev/null",
            ])
    }

    /// The neighbour: large direct sequential writes, 16 in flight.
    func startWriter(_ dir: String) throws -> PostgresContainer {
        var options = CommandContainerOptions()
        options.podName = "noisy-loader"
        options.containerName = "loader"
        options.mounts = ["type=bind,src=\(dir),dst=/data,options=rbind:rw"]
        return try Containers.run(
            "blk-loader", options: options,
            command: [
                "/usr/bin/fio", "--name=load", "--filename=/data/noise", "--size=1G", "--rw=write", "--bs=1M",
                "--direct=1", "--ioengine=libaio", "--iodepth=16", "--time_based", "--runtime=\(Self.fioRuntime)",
                "--output=/dev/null",
            ])
    }

    /// Runs `pgnode check` on the reader and returns its `blkio.noise` finding.
    func observe(_ reader: PostgresContainer) throws -> JSONValue {
        Thread.sleep(forTimeInterval: 1.5)  // fio is running
        let result = try Command.pgnode([
            "check", "--container", reader.id, "--duration", String(Self.window), "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        for line in result.stdout.split(separator: "\n") {
            let finding = try JSONParser.parse(String(line))
            if finding["check"] == "blkio.noise" { return finding }
        }
        throw EndToEndError("no blkio.noise finding in: \(result.stdout)\n\(result.stderr)")
    }

    func checkDevices(_ finding: JSONValue, disk: String) {
        guard let devices = finding["evidence"]?["devices"]?.arrayValue else {
            Issue.record("no devices: \(finding)")
            return
        }
        // Only the devices the reader's requests went to: the disk under /var/tmp, with the counts.
        #expect(devices.first?["dev"]?.stringValue == disk, "\(devices)")
        #expect(devices.allSatisfy { ($0["requests"]?.intValue ?? 0) > 0 }, "\(devices)")
        #expect(devices.first?["scheduler"]?.stringValue != nil)
    }

    @Test("a neighbour writing 1 MiB direct blocks: warning or worse, the neighbour's pod named first")
    func noisyNeighbour() throws {
        guard canRun else { return }
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try disk(of: dir)
        var started: [PostgresContainer] = []
        defer { for container in started { Containers.remove(container.name) } }
        let writer = try startWriter(dir)
        started.append(writer)
        let reader = try startReader(dir)
        started.append(reader)
        let finding = try observe(reader)
        let evidence = try #require(finding["evidence"])
        let severity = finding["severity"]?.stringValue
        #expect(severity == "warning" || severity == "critical", "\(finding)")
        #expect(finding["resource"]?["k8s.pod.name"] == "blk-db-0")
        let own = evidence["own_requests"]?.intValue ?? 0
        let noise = evidence["noise_requests"]?.intValue ?? 0
        #expect(own > 0, "\(evidence)")
        #expect(noise > own, "\(evidence)")
        let top = try #require(evidence["neighbours"]?.arrayValue?.first, "\(evidence)")
        #expect(top["k8s.pod.name"] == "noisy-loader", "\(evidence)")
        #expect(top["k8s.namespace.name"] == "pgnode-test")
        #expect(top["container.id"]?.stringValue == writer.id)
        #expect((top["requests"]?.intValue ?? 0) * 2 > noise, "the loader makes most of the noise: \(evidence)")
        checkDevices(finding, disk: disk)
        // The histograms hold every request counted.
        let ownHist = Log2Histogram.buckets(from: evidence["own_latency_us"] ?? .null) ?? []
        let noiseHist = Log2Histogram.buckets(from: evidence["noise_latency_us"] ?? .null) ?? []
        #expect(ownHist.reduce(0) { $0 + Int64($1.count) } == own)
        #expect(noiseHist.reduce(0) { $0 + Int64($1.count) } == noise)
        #expect(Containers.console(reader).isEmpty, "fio: \(Containers.console(reader))")
        #expect(Containers.console(writer).isEmpty, "fio: \(Containers.console(writer))")
    }

    @Test("the reader alone: noise near zero, ok")
    func alone() throws {
        guard canRun else { return }
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try disk(of: dir)
        let reader = try startReader(dir)
        defer { Containers.remove(reader.name) }
        let finding = try observe(reader)
        let evidence = try #require(finding["evidence"])
        #expect(finding["severity"] == "ok", "\(finding)")
        let own = evidence["own_requests"]?.intValue ?? 0
        let noise = evidence["noise_requests"]?.intValue ?? 0
        #expect(own > 1000, "\(evidence)")
        // The machine is shared: other I/O may complete meanwhile, but it stays marginal.
        #expect(noise * 20 < own, "\(evidence)")
        checkDevices(finding, disk: disk)
        #expect(Containers.console(reader).isEmpty, "fio: \(Containers.console(reader))")
    }
}

private struct EndToEndError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
