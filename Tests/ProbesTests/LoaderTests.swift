import Diagnosis
import Foundation
import HostFacts
import ProbeObjects
import Probes
import TestSupport
import Testing

@Suite("loading and attaching on this kernel", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct LoaderTests {
    @Test("every embedded program loads, attaches, its maps read, and nothing stays loaded after close")
    func loadAttachAll() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        ProbeTestSupport.ensureTracefs()
        let libraries = CLibraryFiles.files(pid: getpid(), host: HostRoot("/"))
        var ids: Set<UInt32> = []
        for embedded in EmbeddedObject.all {
            let object = try BPFObject(embedded: embedded)
            try object.load()
            try object.attach()
            // Uprobes without a target in the object are attached per file: shm's to the C
            // library, query's USDT programs to PostgreSQL's executable.
            let targetless = object.programNames.filter(object.needsUprobeTarget)
            let (functions, files): ([UprobeAttachments.Function], [LibraryFile]) =
                embedded.name == QueryObject.name
                ? (QueryProbe.functions, [try Self.file("/usr/lib/postgresql/15/bin/postgres")])
                : (ShmProbe.functions, libraries)
            let uprobes = UprobeAttachments(object: object, functions: functions)
            if !targetless.isEmpty {
                #expect(uprobes.update(libraries: files).isEmpty, "\(embedded.name)")
                #expect(uprobes.linkCount >= targetless.count, "\(embedded.name)")
            }
            #expect(
                Set(object.attachedPrograms) == Set(object.programNames).subtracting(targetless), "\(embedded.name)")
            let loaded = object.programIDs
            #expect(loaded.count == object.programNames.count)
            ids.formUnion(loaded.values)
            // Read every map: iterate keys, look values up (summing per-CPU ones).
            for name in object.mapNames {
                let map = try object.map(name)
                // Ring buffers have no keys; libbpf's own maps (USDT specs, .kconfig) are not ours.
                if name.hasSuffix("_events") || name.hasPrefix("__bpf_usdt_") || name.contains(".") { continue }
                let keys = try map.keys(rawKeyType(map.keySize))
                _ = keys
            }
            let kernelNames = Set(
                (BPFSystem.loadedPrograms() ?? []).filter { loaded.values.contains($0.id) }.map(\.name))
            #expect(kernelNames == Set(loaded.keys))
            uprobes.detachAll()
            object.close()
        }
        #expect(!ids.isEmpty)
        #expect(ProbeTestSupport.waitUntilUnloaded(ids).isEmpty, "still loaded after close")
    }

    /// `path` on the host as a file to attach to.
    static func file(_ path: String) throws -> LibraryFile {
        var st = stat()
        try #require(stat(path, &st) == 0, "stat \(path)")
        let dev = UInt64(st.st_dev)
        return LibraryFile(
            identity: LibraryFile.Identity(
                major: UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)),
                minor: UInt32((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)), inode: UInt64(st.st_ino)),
            rootPath: "/", path: path)
    }

    /// An opaque key type of `size` bytes, for iterating any map.
    private func rawKeyType(_ size: Int) -> any BitwiseCopyable.Type {
        switch size {
        case 4: UInt32.self
        case 8: UInt64.self
        case 16: (UInt64, UInt64).self
        case 40: (UInt64, UInt64, UInt64, UInt64, UInt64).self
        default: fatalError("no test key type of \(size) bytes")
        }
    }

    @Test("typed map access: update, lookup, iterate, delete, per-CPU values, size checks")
    func mapAccess() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let object = try BPFObject(
            embedded: #require(EmbeddedObject.named("blkio")),
            options: BPFOpenOptions(programs: ["pgn_blk_cmp_raw"]))
        defer { object.close() }
        try object.load()
        let targets = try object.map("targets")
        let a = pgn_target_key(cgroup_id: 1234, kind: PGN_CGROUP_V2.rawValue, pad: 0)
        let b = pgn_target_key(cgroup_id: 1234, kind: PGN_CGROUP_V1_BLKIO.rawValue, pad: 0)
        try targets.update(a, UInt32(3))
        try targets.update(b, UInt32(5))
        #expect(try targets.lookup(a, as: UInt32.self) == 3)
        #expect(try targets.lookup(b, as: UInt32.self) == 5)
        let entries = try targets.entries(pgn_target_key.self, UInt32.self)
        #expect(Set(entries.map(\.value)) == [3, 5])
        #expect(try targets.delete(a))
        #expect(try !targets.delete(a))
        #expect(try targets.lookup(a, as: UInt32.self) == nil)
        #expect(throws: BPFError.sizeMismatch(map: "targets", what: "key", expected: 16, actual: 8)) {
            try targets.lookup(UInt64(1), as: UInt32.self)
        }
        let counts = try object.map("blk_counts")
        #expect(counts.isPerCPU)
        let perCPU = try #require(try counts.lookupPerCPU(UInt32(0), as: pgn_blk_counts.self))
        #expect(perCPU.count == BPFMap.possibleCPUs)
        #expect(perCPU.reduce(0) { $0 + $1.own_requests } == 0)
        #expect(throws: BPFError.self) { try counts.lookup(UInt32(0), as: pgn_blk_counts.self) }
    }

    @Test("a copy of this kernel's BTF given as a custom BTF loads every probe")
    func customBTF() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-vmlinux-\(UUID()).btf").path
        try FileManager.default.copyItem(atPath: "/sys/kernel/btf/vmlinux", toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let env = ProbeTestSupport.environment(btf: BTFLocation(path: copy, origin: .option))
        #expect(env.btf?.origin == .option)
        let session = ProbeSession(environment: env, btfPath: copy)
        defer { session.close() }
        for outcome in session.statuses {
            #expect(outcome.running, "\(outcome.name): \(outcome.reason ?? "")")
        }
    }

    @Test("a bogus BTF file fails the load with libbpf's reason")
    func bogusBTF() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        let bogus = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-bogus-\(UUID()).btf").path
        try Data("this is not BTF".utf8).write(to: URL(fileURLWithPath: bogus))
        defer { try? FileManager.default.removeItem(atPath: bogus) }
        let session = ProbeSession(environment: ProbeTestSupport.environment(), btfPath: bogus)
        defer { session.close() }
        for outcome in session.statuses {
            #expect(!outcome.running)
            let reason = outcome.reason ?? ""
            #expect(reason.contains("libbpf:"), "\(reason)")
            #expect(reason.contains(outcome.name))
        }
    }

    @Test("a program the verifier rejects gives a load error with the verifier log's tail")
    func verifierRejection() throws {
        guard TestEnvironment.require(ProbeTestSupport.canRunBPF, "root and kernel BTF") else { return }
        // Corrupt the last instruction (exit) of one program of the reclaim object.
        let embedded = try #require(EmbeddedObject.named("reclaim"))
        var bytes = Array(embedded.bytes)
        let elf = try ELFFile(bytes)
        let section = try #require(elf.section(named: "tracepoint/vmscan/mm_vmscan_memcg_reclaim_begin"))
        let last = section.offset + section.size - 8
        #expect(bytes[last] == 0x95)  // BPF_JMP | BPF_EXIT
        bytes[last] = 0xB7  // BPF_MOV64_IMM: the program no longer ends with exit
        try bytes.withUnsafeBytes { raw in
            let object = try BPFObject(
                name: "broken", bytes: raw, options: BPFOpenOptions(programs: ["pgn_rcl_mcg_in"]))
            defer { object.close() }
            #expect {
                try object.load()
            } throws: { error in
                guard let error = error as? BPFError,
                    case .load(let name, let program, let code, let message, let log) = error
                else { return false }
                return name == "broken" && program == "pgn_rcl_mcg_in" && code == EINVAL && !message.isEmpty
                    && message.contains("pgn_rcl_mcg_in")
                    && log.contains("last insn is not an exit or jmp")
            }
        }
    }
}
