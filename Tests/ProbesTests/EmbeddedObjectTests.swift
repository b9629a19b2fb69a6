import HostFacts
import Probes
import Testing

@Suite("embedded BPF objects")
struct EmbeddedObjectTests {
    @Test("one object per probe, each a BPF ELF with BTF and CO-RE relocations but no DWARF")
    func objects() throws {
        #expect(Set(EmbeddedObject.all.map(\.name)) == Set(ProbeCatalog.all.map(\.name)))
        for object in EmbeddedObject.all {
            let elf = try ELFFile(Array(object.bytes))
            #expect(elf.machine == 247, "\(object.name) is not an EM_BPF object")
            let names = Set(elf.sections.map(\.name))
            #expect(names.contains(".BTF") && names.contains(".BTF.ext"), "\(object.name): \(names.sorted())")
            #expect(!names.contains { $0.hasPrefix(".debug_") }, "\(object.name) still carries DWARF")
            #expect(names.contains("license") && names.contains(".maps"))
        }
    }

    @Test("libbpf opens every object from memory and finds the catalog's programs (no privileges needed)")
    func open() throws {
        for probe in ProbeCatalog.all {
            let object = try BPFObject(embedded: #require(EmbeddedObject.named(probe.name)))
            let programs = Set(object.programNames)
            for program in probe.programs + (probe.rawTracepointPrograms ?? []) {
                #expect(programs.contains(program), "\(probe.name) lacks \(program)")
                #expect(program.hasPrefix(BPFSystem.programPrefix) && program.utf8.count <= 15)
            }
            #expect(object.mapNames.contains("targets"))
            object.close()
            #expect(object.programNames.isEmpty)
        }
    }

    @Test("the generated program and map names (scripts/gen-bpf) are exactly each object's")
    func generatedNames() throws {
        func check<P: BPFProgramName & CaseIterable, M: BPFMapName & CaseIterable>(
            _ name: String, _ programs: P.Type, _ maps: M.Type
        ) throws {
            let object = try BPFObject(embedded: #require(EmbeddedObject.named(name)))
            defer { object.close() }
            #expect(Set(P.allCases.map(\.rawValue)) == Set(object.programNames), "\(name)")
            // libbpf's own maps (its USDT specs, the .kconfig of its externs) are not named.
            let ours = object.mapNames.filter { !$0.hasPrefix("__bpf_usdt_") && !$0.contains(".") }
            #expect(Set(M.allCases.map(\.rawValue)) == Set(ours), "\(name)")
            #expect(Set(ProbeCommonMap.allCases.map(\.rawValue)).isSubset(of: Set(object.mapNames)), "\(name)")
        }
        try check(ShmObject.name, ShmObject.Program.self, ShmObject.Map.self)
        try check(ReclaimObject.name, ReclaimObject.Program.self, ReclaimObject.Map.self)
        try check(BlkioObject.name, BlkioObject.Program.self, BlkioObject.Map.self)
        try check(MigrationsObject.name, MigrationsObject.Program.self, MigrationsObject.Map.self)
        try check(SchedObject.name, SchedObject.Program.self, SchedObject.Map.self)
        try check(WritebackObject.name, WritebackObject.Program.self, WritebackObject.Map.self)
        try check(QueryObject.name, QueryObject.Program.self, QueryObject.Map.self)
        #expect(Set(ProbeCatalog.optIn.map { $0.name }) == [QueryObject.name])
        #expect(
            Set(ProbeCatalog.probes.map { $0.name }) == [
                ShmObject.name, ReclaimObject.name, BlkioObject.name, MigrationsObject.name, SchedObject.name,
                WritebackObject.name,
            ])
    }

    @Test("opening garbage fails with a typed error")
    func openGarbage() {
        let garbage: [UInt8] = Array(repeating: 0x5A, count: 256)
        _ = garbage.withUnsafeBytes { bytes in
            #expect {
                _ = try BPFObject(name: "garbage", bytes: bytes)
            } throws: { error in
                guard let error = error as? BPFError, case .open(let object, let code, _) = error else { return false }
                return object == "garbage" && code != 0
            }
        }
    }
}
