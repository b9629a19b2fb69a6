/// A minimal, defensive ELF reader: the header and the section table, enough to find and
/// rewrite a legacy BPF object's `version` section. Pure: bytes in, values out. Every offset
/// is checked against the file's length, so truncated or garbage input is an error, never a
/// crash.
public struct ELFFile: Sendable, Equatable {
    /// Why bytes are not a usable ELF file.
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        case tooShort(size: Int)
        case notELF
        case unsupportedClass(UInt8)
        case unsupportedEncoding(UInt8)
        case badSectionTable(String)
        case badSection(index: Int, reason: String)
        case noSection(name: String)
        case badVersionSection(size: Int)
        case overlapsHeaders(section: String)
        case overlapsSectionNames(section: String)

        public var description: String {
            switch self {
            case .tooShort(let size): "not an ELF file: only \(size) bytes"
            case .notELF: "not an ELF file (bad magic number)"
            case .unsupportedClass(let c): "unsupported ELF class \(c) (expected 1 = 32-bit or 2 = 64-bit)"
            case .unsupportedEncoding(let e): "unsupported ELF data encoding \(e) (expected 1 = LSB or 2 = MSB)"
            case .badSectionTable(let reason): "malformed ELF section table: \(reason)"
            case .badSection(let index, let reason): "malformed ELF section \(index): \(reason)"
            case .noSection(let name): "the ELF file has no '\(name)' section"
            case .badVersionSection(let size): "the 'version' section has \(size) bytes, not 4"
            case .overlapsHeaders(let name): "the '\(name)' section overlaps the ELF or section headers"
            case .overlapsSectionNames(let name): "the '\(name)' section overlaps the section names"
            }
        }
    }

    /// One section header.
    public struct Section: Sendable, Equatable {
        public var name: String
        public var type: UInt32
        /// File offset of its contents.
        public var offset: Int
        /// Size in bytes.
        public var size: Int

        /// Whether its contents are in the file (and inside it, as `ELFFile.init` checks):
        /// not SHT_NOBITS (.bss, no file space) nor SHT_NULL (no contents).
        public var occupiesFile: Bool { type != 8 && type != 0 }
    }

    /// 64-bit (ELFCLASS64) or 32-bit.
    public var is64Bit: Bool
    /// Little-endian (ELFDATA2LSB) or big-endian.
    public var isLittleEndian: Bool
    /// `e_machine` (247 = EM_BPF).
    public var machine: UInt16
    /// The sections, in table order (index 0 is the null section).
    public var sections: [Section]
    /// The bytes the ELF header and the section header table occupy.
    public var headerRanges: [Range<Int>]

    /// The section named `name`.
    public func section(named name: String) -> Section? { sections.first { $0.name == name } }

    /// Parses the header and section table of `bytes`.
    public init(_ bytes: [UInt8]) throws(Error) {
        guard bytes.count >= 16 else { throw .tooShort(size: bytes.count) }
        guard bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else { throw .notELF }
        switch bytes[4] {
        case 1: is64Bit = false
        case 2: is64Bit = true
        default: throw .unsupportedClass(bytes[4])
        }
        switch bytes[5] {
        case 1: isLittleEndian = true
        case 2: isLittleEndian = false
        default: throw .unsupportedEncoding(bytes[5])
        }
        let reader = Reader(bytes: bytes, littleEndian: isLittleEndian)
        let headerSize = is64Bit ? 64 : 52
        guard bytes.count >= headerSize else { throw .tooShort(size: bytes.count) }
        // Every read below is bounds-checked; nil (never a trap) means it fell outside the file.
        func field(_ value: Int?) throws(Error) -> Int {
            guard let value else { throw .tooShort(size: bytes.count) }
            return value
        }
        machine = UInt16(truncatingIfNeeded: try field(reader.u16(18)))
        let shoff: Int
        let shentsize: Int
        let shnum: Int
        let shstrndx: Int
        if is64Bit {
            shoff = try field(reader.u64(0x28).map { Int(clamping: $0) })
            shentsize = try field(reader.u16(0x3A))
            shnum = try field(reader.u16(0x3C))
            shstrndx = try field(reader.u16(0x3E))
        } else {
            shoff = try field(reader.u32(0x20))
            shentsize = try field(reader.u16(0x2E))
            shnum = try field(reader.u16(0x30))
            shstrndx = try field(reader.u16(0x32))
        }
        let minimumEntry = is64Bit ? 64 : 40
        guard shnum > 0 else { throw .badSectionTable("no sections") }
        guard shentsize >= minimumEntry else { throw .badSectionTable("entry size \(shentsize) < \(minimumEntry)") }
        let (tableSize, overflow) = shentsize.multipliedReportingOverflow(by: shnum)
        guard !overflow, shoff >= 0, shoff <= bytes.count, tableSize <= bytes.count - shoff else {
            throw .badSectionTable(
                "\(shnum) entries at offset \(shoff) run past the end of the \(bytes.count)-byte file")
        }
        headerRanges = [0..<headerSize, shoff..<(shoff + tableSize)]
        guard shstrndx < shnum else { throw .badSectionTable("string table index \(shstrndx) ≥ \(shnum) sections") }

        struct Raw {
            var nameOffset: Int, type: UInt32, offset: Int, size: Int
        }
        var raws: [Raw] = []
        for index in 0..<shnum {
            // Inside the table checked above: index < shnum and shentsize ≥ the fields read.
            let base = shoff + index * shentsize
            let raw: Raw
            if is64Bit {
                raw = Raw(
                    nameOffset: try field(reader.u32(base)),
                    type: UInt32(truncatingIfNeeded: try field(reader.u32(base + 4))),
                    offset: try field(reader.u64(base + 0x18).map { Int(clamping: $0) }),
                    size: try field(reader.u64(base + 0x20).map { Int(clamping: $0) }))
            } else {
                raw = Raw(
                    nameOffset: try field(reader.u32(base)),
                    type: UInt32(truncatingIfNeeded: try field(reader.u32(base + 4))),
                    offset: try field(reader.u32(base + 0x10)), size: try field(reader.u32(base + 0x14)))
            }
            // Every section whose contents are in the file (not SHT_NULL or SHT_NOBITS) must lie
            // inside it — the null section at index 0 included, should a crafted one claim to be
            // the string table.
            if raw.type != 8 && raw.type != 0 {
                guard raw.offset >= 0, raw.size >= 0, raw.offset <= bytes.count, raw.size <= bytes.count - raw.offset
                else {
                    throw .badSection(
                        index: index, reason: "\(raw.size) bytes at offset \(raw.offset) run past the end of the file")
                }
            }
            raws.append(raw)
        }
        let strtab = raws[shstrndx]
        guard strtab.type == 3 else { throw .badSectionTable("section \(shstrndx) is not a string table") }
        // strtab lies inside the file (checked above), so these sums stay below bytes.count.
        let limit = strtab.offset + strtab.size
        sections = try raws.enumerated().map { (index, raw) throws(Error) -> Section in
            guard raw.nameOffset >= 0, raw.nameOffset < strtab.size else {
                throw .badSection(index: index, reason: "name offset \(raw.nameOffset) outside the string table")
            }
            let start = strtab.offset + raw.nameOffset
            var end = start
            while end < limit && bytes[end] != 0 { end += 1 }
            guard end < limit else { throw .badSection(index: index, reason: "unterminated name") }
            let name = String(decoding: bytes[start..<end], as: UTF8.self)
            return Section(name: name, type: raw.type, offset: raw.offset, size: raw.size)
        }
    }

    /// Bounds-checked integer reads in the file's byte order.
    struct Reader {
        let bytes: [UInt8]
        let littleEndian: Bool

        func unsigned(_ offset: Int, _ width: Int) -> UInt64? {
            guard offset >= 0, width <= bytes.count, offset <= bytes.count - width else { return nil }
            var value: UInt64 = 0
            for i in 0..<width {
                let byte = UInt64(bytes[littleEndian ? offset + width - 1 - i : offset + i])
                value = value << 8 | byte
            }
            return value
        }

        func u16(_ offset: Int) -> Int? { unsigned(offset, 2).map { Int($0) } }
        func u32(_ offset: Int) -> Int? { unsigned(offset, 4).map { Int($0) } }
        func u64(_ offset: Int) -> UInt64? { unsigned(offset, 8) }
    }
}

/// A legacy (pre-CO-RE) BPF object whose `version` section holds the LINUX_VERSION_CODE the
/// kernel checked for kprobe programs before 5.0.
public enum LegacyBPFObject {
    /// The code stored in the `version` section.
    public static func version(of bytes: [UInt8]) throws(ELFFile.Error) -> UInt32 {
        let elf = try ELFFile(bytes)
        let section = try versionSection(elf)
        let reader = ELFFile.Reader(bytes: bytes, littleEndian: elf.isLittleEndian)
        // The section is 4 bytes inside the file (checked by ELFFile and versionSection).
        guard let code = reader.u32(section.offset) else { throw .badVersionSection(size: section.size) }
        return UInt32(truncatingIfNeeded: code)
    }

    /// `bytes` with the `version` section set to `code` (in the file's byte order).
    public static func settingVersion(_ bytes: [UInt8], to code: UInt32) throws(ELFFile.Error) -> [UInt8] {
        let elf = try ELFFile(bytes)
        let section = try versionSection(elf)
        var result = bytes
        guard section.offset >= 0, section.offset <= bytes.count - 4 else {
            throw .badVersionSection(size: section.size)
        }
        for i in 0..<4 {
            let shift = UInt32(elf.isLittleEndian ? i * 8 : (3 - i) * 8)
            result[section.offset + i] = UInt8(truncatingIfNeeded: code >> shift)
        }
        // Nor may it change the sections (a `version` inside the section-name string table).
        guard let rewritten = try? ELFFile(result), rewritten.sections == elf.sections else {
            throw .overlapsSectionNames(section: "version")
        }
        return result
    }

    private static func versionSection(_ elf: ELFFile) throws(ELFFile.Error) -> ELFFile.Section {
        guard let section = elf.section(named: "version"), section.occupiesFile else {
            throw .noSection(name: "version")
        }
        guard section.size == 4 else { throw .badVersionSection(size: section.size) }
        // Writing it must not change how the file itself is read.
        guard !elf.headerRanges.contains(where: { $0.overlaps(section.offset..<section.offset + 4) }) else {
            throw .overlapsHeaders(section: "version")
        }
        return section
    }
}
