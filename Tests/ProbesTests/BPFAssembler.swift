/// Just enough of a BPF assembler for the tests' own programs (`BlockCompletionWitness`): instructions as their 64-bit encoding
/// (code, dst and src registers, 16-bit offset, 32-bit immediate; x86-64 and arm64 are little
/// endian), with jumps to labels resolved at the end.
struct BPFAssembler {
    enum Size: UInt8 {
        case word = 0x00  // BPF_W
        case doubleWord = 0x18  // BPF_DW
    }

    private var slots: [UInt64] = []
    private var labels: [String: Int] = [:]
    private var jumps: [(slot: Int, label: String)] = []

    static func encode(_ code: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, imm: Int32 = 0) -> UInt64 {
        UInt64(code) | UInt64(dst & 0xF) << 8 | UInt64(src & 0xF) << 12
            | UInt64(UInt16(bitPattern: offset)) << 16 | UInt64(UInt32(bitPattern: imm)) << 32
    }

    private mutating func emit(_ code: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, imm: Int32 = 0) {
        slots.append(Self.encode(code, dst: dst, src: src, offset: offset, imm: imm))
    }

    private mutating func emitJump(_ code: UInt8, dst: UInt8, src: UInt8 = 0, imm: Int32 = 0, to label: String) {
        jumps.append((slots.count, label))
        emit(code, dst: dst, src: src, imm: imm)
    }

    mutating func label(_ name: String) { labels[name] = slots.count }

    /// dst = *(size *)(base + offset)
    mutating func loadField(dst: UInt8, base: UInt8, offset: Int16, size: Size) {
        emit(0x61 | size.rawValue, dst: dst, src: base, offset: offset)  // BPF_LDX | BPF_MEM | size
    }

    /// dst = bpf_probe_read_kernel(size bytes at base + offset), through the stack at fp-8.
    mutating func probeRead(from base: UInt8, offset: Int32, size: Int32, into dst: UInt8) {
        move(dst: 1, src: 10)
        add(dst: 1, -8)
        move(dst: 2, size)
        move(dst: 3, src: base)
        add(dst: 3, offset)
        call(113)  // bpf_probe_read_kernel
        loadField(dst: dst, base: 10, offset: -8, size: size == 8 ? .doubleWord : .word)
    }

    mutating func move(dst: UInt8, src: UInt8) { emit(0xBF, dst: dst, src: src) }  // BPF_ALU64 | BPF_MOV | BPF_X
    mutating func move(dst: UInt8, _ imm: Int32) { emit(0xB7, dst: dst, imm: imm) }  // BPF_ALU64 | BPF_MOV | BPF_K
    mutating func add(dst: UInt8, _ imm: Int32) { emit(0x07, dst: dst, imm: imm) }  // BPF_ALU64 | BPF_ADD | BPF_K

    /// dst = a 64-bit immediate (two slots).
    mutating func loadImmediate64(dst: UInt8, _ value: UInt64) {
        emit(0x18, dst: dst, imm: Int32(bitPattern: UInt32(truncatingIfNeeded: value)))
        emit(0, imm: Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32)))
    }

    /// dst = the map behind `fd` (BPF_PSEUDO_MAP_FD).
    mutating func loadMapFD(dst: UInt8, _ fd: Int32) {
        emit(0x18, dst: dst, src: 1, imm: fd)
        emit(0)
    }

    /// *(u32 *)(base + offset) = 0
    mutating func storeWordZero(base: UInt8, offset: Int16) { emit(0x62, dst: base, offset: offset) }

    /// lock *(u64 *)(base + 0) += src
    mutating func atomicAdd(base: UInt8, src: UInt8) { emit(0xDB, dst: base, src: src) }

    mutating func call(_ helper: Int32) { emit(0x85, imm: helper) }
    mutating func exit() { emit(0x95) }

    mutating func jump(to label: String) { emitJump(0x05, dst: 0, to: label) }  // BPF_JA
    mutating func jumpIfEqual(_ reg: UInt8, _ imm: Int32, to label: String) {
        emitJump(0x15, dst: reg, imm: imm, to: label)  // BPF_JEQ | BPF_K
    }
    mutating func jumpIfNotEqual(_ reg: UInt8, _ imm: Int32, to label: String) {
        emitJump(0x55, dst: reg, imm: imm, to: label)  // BPF_JNE | BPF_K
    }
    mutating func jumpIfBelow(_ reg: UInt8, _ other: UInt8, to label: String) {
        emitJump(0xAD, dst: reg, src: other, to: label)  // BPF_JLT | BPF_X (unsigned)
    }
    mutating func jumpIfAtLeast(_ reg: UInt8, _ other: UInt8, to label: String) {
        emitJump(0x3D, dst: reg, src: other, to: label)  // BPF_JGE | BPF_X (unsigned)
    }

    /// The instructions, with every jump's offset (in slots, from the next instruction) filled in.
    func assembled() -> [UInt64] {
        var result = slots
        for (slot, label) in jumps {
            guard let target = labels[label] else { preconditionFailure("no label \(label)") }
            let offset = Int16(target - slot - 1)
            result[slot] = (result[slot] & ~(UInt64(0xFFFF) << 16)) | UInt64(UInt16(bitPattern: offset)) << 16
        }
        return result
    }
}
