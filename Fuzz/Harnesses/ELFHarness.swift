import HostFacts

extension Harness {
    /// An ELF file: the container's C library (uprobe targets) and legacy BPF objects.
    static let elf = Harness(
        name: "elf", maxLength: 4096, summary: "ELFFile section table, LegacyBPFObject version read and rewrite"
    ) { bytes in
        if let file = try? ELFFile(bytes) {
            consume(file)
            for section in file.sections where section.occupiesFile && section.type != 0 {
                require(section.offset >= 0 && section.size >= 0, "section \(section)")
            }
            consume(file.section(named: "version"))
        }
        if let version = try? LegacyBPFObject.version(of: bytes) {
            consume(version)
            let code = version ^ 0x0006_1200
            // It may refuse; what it writes must be the same file with the new version.
            if let rewritten = try? LegacyBPFObject.settingVersion(bytes, to: code) {
                require(rewritten.count == bytes.count, "rewriting changed the size")
                require(
                    (try? LegacyBPFObject.version(of: rewritten)) == code, "the rewritten version does not read back")
            }
        }
    }
}
