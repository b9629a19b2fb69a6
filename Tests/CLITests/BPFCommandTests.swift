import Foundation
import PGNodeModel
import Probes
import TestSupport
import Testing

/// Parses NDJSON findings into (check → finding).
private func findings(_ stdout: String) throws -> [String: JSONValue] {
    var result: [String: JSONValue] = [:]
    for line in stdout.split(separator: "\n") where !line.isEmpty {
        let value = try JSONParser.parse(String(line))
        if let check = value["check"]?.stringValue { result[check] = value }
    }
    return result
}

private let bpfChecks = ["shm.enospc", "memory.reclaim", "blkio.noise", "cpu.migrations", "writeback.throttle"]

/// The ids of the BPF programs loaded in the kernel (bpftool), nil when it cannot list them.
private func loadedProgramIDs() -> Set<Int64>? {
    guard let result = try? Command.run(["bpftool", "prog", "show", "--json"]), result.status == 0,
        let value = try? JSONParser.parse(result.stdout), case .array(let programs) = value
    else { return nil }
    return Set(programs.compactMap { $0["id"]?.intValue })
}

/// The ids of the BPF programs a process holds open (its fdinfo says `prog_id:`).
private func programIDs(ofProcess pid: Int32) -> Set<Int64> {
    let dir = "/proc/\(pid)/fdinfo"
    var ids: Set<Int64> = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let text = try? String(contentsOfFile: "\(dir)/\(entry)", encoding: .utf8) else { continue }
        for line in text.split(separator: "\n") where line.hasPrefix("prog_id:") {
            if let id = Int64(line.dropFirst("prog_id:".count).trimmingCharacters(in: .whitespaces)) { ids.insert(id) }
        }
    }
    return ids
}

@Suite("pgnode check with BPF", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct BPFCheckCommandTests {
    var canRun: Bool {
        // The shm and reclaim probes attach through tracefs (scripts/setup mounts it too).
        if TestEnvironment.isRoot && !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") {
            _ = try? Command.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
        return TestEnvironment.require(
            TestEnvironment.isRoot && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"),
            "root and kernel BTF")
    }

    /// Runs `body` with one real PostgreSQL container to point `--container` at.
    func withContainer(_ body: (PostgresContainer) throws -> Void) throws {
        guard Containers.available() else { return }
        try Containers.withPostgres([("bpfcli", PostgresContainerOptions())]) { try body($0[0]) }
    }

    @Test("as root: bpf.support ok, every probe loads, every BPF check of a container runs")
    func supported() throws {
        guard canRun else { return }
        try withContainer { container in
            let result = try Command.pgnode([
                "check", "--container", container.id, "--duration", "0.5", "--format", "json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let found = try findings(result.stdout)
            let support = try #require(found["bpf.support"])
            #expect(support["severity"]?.stringValue == "ok", "\(result.stdout)")
            guard case .array(let probes) = support["evidence"]?["probes"] else {
                Issue.record("no probes in \(support)")
                return
            }
            #expect(probes.count == ProbeCatalog.probes.count)
            #expect(probes.allSatisfy { $0["available"] == .bool(true) })
            for check in bpfChecks {
                let finding = try #require(found[check], "\(check) missing")
                #expect(finding["severity"]?.stringValue != "unavailable", "\(finding)")
                #expect(finding["resource"]?["container.id"]?.stringValue == container.id)
            }
        }
    }

    @Test("--btf with a copy of the kernel's BTF loads everything")
    func customBTF() throws {
        guard canRun else { return }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-cli-\(UUID()).btf").path
        try FileManager.default.copyItem(atPath: "/sys/kernel/btf/vmlinux", toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let result = try Command.pgnode(["check", "--duration", "0", "--btf", copy, "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let found = try findings(result.stdout)
        #expect(found["bpf.support"]?["severity"]?.stringValue == "ok", "\(result.stdout)")
        #expect(found["bpf.support"]?["evidence"]?["btf"]?["origin"]?.stringValue == "option")
        #expect(found["kernel.btf"]?["evidence"]?["source"]?.stringValue == "option")
    }

    @Test("a bogus --btf: every BPF check unavailable with libbpf's reason, static findings still there, exit 0")
    func bogusBTF() throws {
        guard canRun else { return }
        let bogus = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-cli-\(UUID()).btf").path
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: bogus))
        defer { try? FileManager.default.removeItem(atPath: bogus) }
        try withContainer { container in
            let result = try Command.pgnode([
                "check", "--container", container.id, "--duration", "0.2", "--btf", bogus, "--format", "json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let found = try findings(result.stdout)
            #expect(found["kernel.headers"] != nil)
            #expect(found["kernel.btf"]?["severity"]?.stringValue == "critical")
            #expect(found["kernel.btf"]?["evidence"]?["problem"]?.stringValue?.contains("libbpf cannot parse") == true)
            #expect(found["bpf.support"]?["severity"]?.stringValue == "warning")
            for check in bpfChecks {
                let finding = try #require(found[check], "\(check) missing")
                #expect(finding["severity"]?.stringValue == "unavailable")
                let reason = finding["evidence"]?["reason"]?.stringValue ?? ""
                #expect(reason.contains("libbpf"), "\(reason)")
                #expect(finding["resource"]?["container.id"]?.stringValue == container.id)
            }
            // The static container checks still ran.
            #expect(found["shm.size"]?["severity"]?.stringValue == "warning")
        }
    }

    @Test("as an unprivileged user: every BPF check unavailable naming the missing capability, exit 0")
    func unprivileged() throws {
        guard canRun else { return }
        try withContainer { container in
            let result = try Command.run(
                [
                    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                    TestEnvironment.pgnodeBinary, "check", "--container", container.id, "--duration", "0.2", "--format",
                    "json",
                ])
            #expect(result.status == 0, "\(result.stderr)")
            let found = try findings(result.stdout)
            #expect(found["kernel.headers"] != nil)
            let support = try #require(found["bpf.support"])
            #expect(support["severity"]?.stringValue == "warning")
            #expect(support["evidence"]?["capabilities"]?["cap_bpf"] == .bool(false))
            for check in bpfChecks {
                let reason = found[check]?["evidence"]?["reason"]?.stringValue ?? ""
                #expect(found[check]?["severity"]?.stringValue == "unavailable")
                #expect(reason.contains("CAP_BPF") && reason.contains("CAP_PERFMON"), "\(reason)")
            }
        }
    }

    @Test("SIGTERM during the window: findings still printed, exit 143, nothing left loaded or attached")
    func sigterm() throws {
        guard canRun else { return }
        try withContainer { container in
            let process = try Subprocess(
                [
                    TestEnvironment.pgnodeBinary, "check", "--container", container.id, "--duration", "60", "--format",
                    "json",
                ],
                stderr: .discard)
            defer { process.stop() }
            var held: Set<Int64> = []
            var links = 0
            let deadline = Date().addingTimeInterval(20)
            // Wait until all probes are attached: the process holds 13 programs (shm 6, reclaim 4,
            // blkio 3) and 15 links (shm's 8 uprobes on the container's glibc: posix_fallocate,
            // posix_fallocate64, ftruncate and unlink at entry and return; one per other program).
            while Date() < deadline {
                held = programIDs(ofProcess: process.pid)
                links = bpfLinkCount(ofProcess: process.pid)
                if held.count >= 13 && links >= 15 { break }
                usleep(100_000)
            }
            #expect(held.count >= 13, "pgnode never loaded its programs: \(held)")
            #expect(links >= 15, "pgnode never attached its programs: \(links) links")
            #expect(loadedProgramIDs().map { held.isSubset(of: $0) } ?? false)
            usleep(300_000)
            process.signal(SIGTERM)
            let (status, _) = process.wait(timeout: 120)
            #expect(status == 143)
            let found = try findings(process.standardOutput)
            #expect(found["bpf.support"] != nil && found["kernel.btf"] != nil)
            // A program stays loaded while anything (a uprobe's perf event too) holds it.
            var remaining = held
            for _ in 0..<50 {
                remaining = held.intersection(loadedProgramIDs() ?? held)
                if remaining.isEmpty { break }
                usleep(100_000)
            }
            #expect(remaining.isEmpty, "still loaded after exit: \(remaining)")
        }
    }

    @Test("--btf-archive: a node without BTF uses the archive's .btf.tar.xz for its release")
    func btfArchive() throws {
        guard canRun else { return }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-archive-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // A host root with no sys/kernel/btf: only the release and os-release.
        let host = base + "/host"
        try FileManager.default.createDirectory(atPath: host + "/proc/sys/kernel", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: host + "/etc", withIntermediateDirectories: true)
        try (release + "\n").write(toFile: host + "/proc/sys/kernel/osrelease", atomically: true, encoding: .utf8)
        try "ID=debian\nVERSION_ID=\"12\"\n".write(toFile: host + "/etc/os-release", atomically: true, encoding: .utf8)
        let arch = base + "/archive/debian/12/x86_64"
        try FileManager.default.createDirectory(atPath: arch, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/sys/kernel/btf/vmlinux", toPath: base + "/\(release).btf")
        let tar = try Command.run(["tar", "-cJf", "\(arch)/\(release).btf.tar.xz", "-C", base, "\(release).btf"])
        #expect(tar.status == 0, "\(tar.stderr)")

        let none = try Command.pgnode(["check", "--host-root", host, "--duration", "0", "--format", "json"])
        #expect(none.status == 0)
        let withoutArchive = try findings(none.stdout)
        #expect(withoutArchive["kernel.btf"]?["severity"]?.stringValue == "critical")
        guard case .array(let blocked) = withoutArchive["bpf.support"]?["evidence"]?["probes"] else {
            Issue.record("no probes in bpf.support")
            return
        }
        #expect(blocked.count == ProbeCatalog.probes.count && blocked.allSatisfy { $0["available"] == .bool(false) })

        let result = try Command.pgnode([
            "check", "--host-root", host, "--btf-archive", base + "/archive", "--duration", "0", "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let found = try findings(result.stdout)
        #expect(found["kernel.btf"]?["severity"]?.stringValue == "ok", "\(result.stdout)")
        #expect(found["kernel.btf"]?["evidence"]?["source"]?.stringValue == "archive")
        #expect(found["bpf.support"]?["severity"]?.stringValue == "ok", "\(result.stdout)")
        // Without the kernel's own BTF, blk-mq falls back to raw tracepoints.
        guard case .array(let probes) = found["bpf.support"]?["evidence"]?["probes"] else {
            Issue.record("no probes")
            return
        }
        let blkio = probes.first { $0["name"]?.stringValue == "blkio" }
        #expect(blkio?["programs"] == .array(["pgn_blk_ins_raw", "pgn_blk_iss_raw", "pgn_blk_cmp_raw"]))
    }
}

@Suite("pgnode kernel fixups")
struct KernelFixupCommandTests {
    func kernelCode() throws -> Int64 {
        try #require(JSONParser.parse(try Command.pgnode(["kernel"]).stdout)["version_code"]?.intValue)
    }

    @Test("--bcc-env prints this node's version code")
    func bccEnv() throws {
        let result = try Command.pgnode(["kernel", "--bcc-env"])
        #expect(result.status == 0)
        let first = result.stdout.split(separator: "\n").first.map(String.init)
        #expect(first == "BCC_LINUX_VERSION_CODE=\(try kernelCode())")
    }

    @Test("--set-version rewrites a wrong version to this kernel's, keeping a backup")
    func setVersion() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-sv-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/legacy.o"
        let original = ELFBuilder.legacyObject(version: 0x040E60)  // 4.14.96
        try Data(original).write(to: URL(fileURLWithPath: path))
        let result = try Command.pgnode(["kernel", "--set-version", path])
        #expect(result.status == 0, "\(result.stderr)")
        let updated = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let code = try kernelCode()
        #expect(updated.count == original.count)
        let backup = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + ".orig")))
        #expect(backup == original)
        // Read the section back where the builder put it (little-endian u32), not through pgnode's parser.
        let offset = ELFBuilder.legacyVersionOffset64
        let stored = (0..<4).reduce(Int64(0)) { $0 | Int64(updated[offset + $1]) << (8 * Int64($1)) }
        #expect(stored == code)
        #expect(Array(updated[..<offset]) == Array(original[..<offset]))
        #expect(Array(updated[(offset + 4)...]) == Array(original[(offset + 4)...]))
        #expect(result.stdout.contains("-> \(code)"))
    }

    @Test("--set-version on a truncated object fails cleanly and writes nothing")
    func setVersionTruncated() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-sv-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/truncated.o"
        let truncated = Array(ELFBuilder.legacyObject(version: 1).prefix(100))
        try Data(truncated).write(to: URL(fileURLWithPath: path))
        let result = try Command.pgnode(["kernel", "--set-version", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("truncated.o") && result.stderr.contains("nothing written"), "\(result.stderr)")
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == truncated)
        #expect(!FileManager.default.fileExists(atPath: path + ".orig"))
    }

    @Test("--link-headers links the node's headers and refuses a foreign link")
    func linkHeaders() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-lh-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let host = base + "/host"
        let modules = base + "/modules"
        try FileManager.default.createDirectory(atPath: host + "/proc/sys/kernel", withIntermediateDirectories: true)
        try "5.10.0-pgnode\n".write(toFile: host + "/proc/sys/kernel/osrelease", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(
            atPath: host + "/usr/src/linux-headers-5.10.0-pgnode", withIntermediateDirectories: true)
        let args = ["kernel", "--host-root", host, "--link-headers", "--modules-dir", modules]
        let first = try Command.pgnode(args)
        #expect(first.status == 0, "\(first.stderr)")
        let link = modules + "/5.10.0-pgnode/build"
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: link) == host
                + "/usr/src/linux-headers-5.10.0-pgnode")
        #expect(try Command.pgnode(args).stdout.contains("already points"))
        // A link pgnode did not make is left alone.
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.removeItem(atPath: modules + "/5.10.0-pgnode/.pgnode-build-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/usr/src/other")
        let refused = try Command.pgnode(args)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("refusing"), "\(refused.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "/usr/src/other")
    }
}
