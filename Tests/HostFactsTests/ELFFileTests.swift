import HostFacts
import TestSupport
import Testing

@Suite("ELF parsing and the version section")
struct ELFFileTests {
    @Test(
        "reads and rewrites the version section in every class and byte order",
        arguments: [(true, true), (true, false), (false, true), (false, false)])
    func rewrite(is64Bit: Bool, littleEndian: Bool) throws {
        let original = ELFBuilder.legacyObject(version: 0x040E60, is64Bit: is64Bit, littleEndian: littleEndian)
        let elf = try ELFFile(original)
        #expect(elf.is64Bit == is64Bit)
        #expect(elf.isLittleEndian == littleEndian)
        #expect(elf.machine == 247)
        #expect(elf.sections.map(\.name) == ["", "kprobe/sys_write", "license", "version", ".shstrtab"])
        #expect(try LegacyBPFObject.version(of: original) == 0x040E60)
        let updated = try LegacyBPFObject.settingVersion(original, to: 397_868)
        #expect(try LegacyBPFObject.version(of: updated) == 397_868)
        #expect(updated.count == original.count)
        // Only the four bytes of the section changed.
        let changed = zip(original, updated).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        let section = try #require(elf.section(named: "version"))
        #expect(changed.allSatisfy { (section.offset..<section.offset + 4).contains($0) })
    }

    @Test("every truncation of a valid object is refused, never a crash")
    func truncated() {
        let original = ELFBuilder.legacyObject(version: 1)
        var refused = 0
        for length in 0..<original.count {
            if (try? LegacyBPFObject.version(of: Array(original.prefix(length)))) == nil { refused += 1 }
        }
        // The section table is at the end: every strict prefix lacks part of it.
        #expect(refused == original.count)
    }

    @Test("garbage is refused with a reason")
    func garbage() throws {
        #expect(throws: ELFFile.Error.tooShort(size: 3)) { try ELFFile([1, 2, 3]) }
        #expect(throws: ELFFile.Error.notELF) { try ELFFile([UInt8](repeating: 0x41, count: 100)) }
        var badClass = ELFBuilder.legacyObject(version: 1)
        badClass[4] = 9
        #expect(throws: ELFFile.Error.unsupportedClass(9)) { try ELFFile(badClass) }
        var generator = SplitMix(seed: 42)
        for _ in 0..<2000 {
            var bytes = ELFBuilder.legacyObject(version: 7)
            // Corrupt a few bytes past the identification: parsing must fail or succeed, never trap.
            for _ in 0..<3 {
                let index = 16 + Int(generator.next() % UInt64(bytes.count - 16))
                bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            }
            if let version = try? LegacyBPFObject.version(of: bytes) {
                do {
                    #expect(try LegacyBPFObject.version(of: LegacyBPFObject.settingVersion(bytes, to: 5)) == 5)
                } catch .overlapsSectionNames {
                    // The corruption moved the version into the section names: writing it would
                    // rename a section (`license` became `lic\u{5}` once), so it is refused.
                }
                _ = version
            }
        }
    }

    @Test("a missing or oversized version section is named")
    func missingVersion() throws {
        var builder = ELFBuilder()
        builder.sections = [(name: "license", type: 1, data: Array("GPL\0".utf8))]
        #expect(throws: ELFFile.Error.noSection(name: "version")) { try LegacyBPFObject.version(of: builder.build()) }
        builder.sections.append((name: "version", type: 1, data: [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(throws: ELFFile.Error.badVersionSection(size: 8)) { try LegacyBPFObject.version(of: builder.build()) }
    }
}

/// A small deterministic generator for the fuzz loop.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
