/// Test helper: small ELF files built section by section (legacy BPF objects for --set-version).
/// Builds small ELF files section by section, in either class and byte order.
public struct ELFBuilder {
    public var is64Bit = true
    public var littleEndian = true
    public var sections: [(name: String, type: UInt32, data: [UInt8])] = []

    public init(is64Bit: Bool = true, littleEndian: Bool = true) {
        self.is64Bit = is64Bit
        self.littleEndian = littleEndian
    }

    public func integer(_ value: UInt64, _ width: Int) -> [UInt8] {
        let le = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        return littleEndian ? le : le.reversed()
    }

    public func build() -> [UInt8] {
        var names: [UInt8] = [0]
        var nameOffsets: [Int] = []
        for section in sections + [(name: ".shstrtab", type: 3, data: [])] {
            nameOffsets.append(names.count)
            names += Array(section.name.utf8) + [0]
        }
        let all = sections + [(name: ".shstrtab", type: UInt32(3), data: names)]
        let headerSize = is64Bit ? 64 : 52
        var body: [UInt8] = []
        var offsets: [Int] = []
        for section in all {
            offsets.append(headerSize + body.count)
            body += section.data
        }
        let shoff = headerSize + body.count
        let entrySize = is64Bit ? 64 : 40
        var header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, is64Bit ? 2 : 1, littleEndian ? 1 : 2, 1, 0]
        header += [UInt8](repeating: 0, count: 8)
        header += integer(1, 2) + integer(247, 2) + integer(1, 4)  // e_type, e_machine (BPF), e_version
        if is64Bit {
            header += integer(0, 8) + integer(0, 8) + integer(UInt64(shoff), 8)
        } else {
            header += integer(0, 4) + integer(0, 4) + integer(UInt64(shoff), 4)
        }
        header += integer(0, 4) + integer(UInt64(headerSize), 2) + integer(0, 2) + integer(0, 2)
        header += integer(UInt64(entrySize), 2) + integer(UInt64(all.count + 1), 2) + integer(UInt64(all.count), 2)
        var table = [UInt8](repeating: 0, count: entrySize)  // the null section
        for (index, section) in all.enumerated() {
            var entry = integer(UInt64(nameOffsets[index]), 4) + integer(UInt64(section.type), 4)
            if is64Bit {
                entry += integer(0, 8) + integer(0, 8) + integer(UInt64(offsets[index]), 8)
                entry += integer(UInt64(section.data.count), 8) + integer(0, 4) + integer(0, 4)
                entry += integer(1, 8) + integer(0, 8)
            } else {
                entry += integer(0, 4) + integer(0, 4) + integer(UInt64(offsets[index]), 4)
                entry += integer(UInt64(section.data.count), 4) + integer(0, 4) + integer(0, 4)
                entry += integer(1, 4) + integer(0, 4)
            }
            table += entry
        }
        return header + body + table
    }

    /// Where `legacyObject(version:)` (64-bit) stores the version: after the 64-byte header, the
    /// 16-byte program and the 4-byte license.
    public static let legacyVersionOffset64 = 64 + 16 + 4

    /// A legacy BPF object (one kprobe program, license, version) with `version` in its section.
    public static func legacyObject(version: UInt32, is64Bit: Bool = true, littleEndian: Bool = true) -> [UInt8] {
        var builder = ELFBuilder(is64Bit: is64Bit, littleEndian: littleEndian)
        builder.sections = [
            (name: "kprobe/sys_write", type: 1, data: [0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]),
            (name: "license", type: 1, data: Array("GPL\0".utf8)),
            (name: "version", type: 1, data: builder.integer(UInt64(version), 4)),
        ]
        return builder.build()
    }
}
