import CLibBPF
import Glibc
import TestSupport

/// Why the witness could not be set up.
struct BlockCompletionWitnessError: Error, CustomStringConvertible {
    var description: String
}

/// A BPF program of the test's own on `block_rq_complete` that counts the completions of
/// requests on one disk whose first sector lies in given ranges (a file's extents): a witness of
/// how many of a workload's completions the kernel ran BPF programs for.
///
/// The kernel does not always run them. On the CI machine a completion handled in a softirq that
/// interrupted one of the machine's own threads reached no BPF program at all: not the blkio
/// probe's, not this one, and not as a recursion miss (`run_cnt` fell short of the tracepoint's
/// hits counted by ftrace by exactly those completions). A probe cannot count what it is not
/// shown, so its counts are compared with this witness, which shares nothing with it but the
/// tracepoint: no state, no cgroups, only the request's own fields (read with
/// `bpf_probe_read_kernel` at offsets taken from the kernel's BTF).
///
/// Written as raw instructions so that the test needs no BPF toolchain and ships nothing in
/// the binary.
final class BlockCompletionWitness {
    private var programFD: Int32 = -1
    private var mapFD: Int32 = -1
    private var linkFD: Int32 = -1

    /// Loads and attaches the witness for the requests of `sectors`' disk and ranges.
    init(counting sectors: FileSectors) throws(BlockCompletionWitnessError) {
        let offsets = try Self.offsets()
        mapFD = bpf_map_create(BPF_MAP_TYPE_ARRAY, "witness_count", 4, 8, 1, nil)
        guard mapFD >= 0 else { throw Self.failure("creating the witness's map") }
        let instructions = Self.program(sectors: sectors, offsets: offsets, mapFD: mapFD)
        programFD = try Self.load(instructions)
        linkFD = bpf_raw_tracepoint_open("block_rq_complete", programFD)
        guard linkFD >= 0 else {
            close()
            throw Self.failure("attaching the witness to block_rq_complete")
        }
    }

    deinit { close() }

    /// The completions counted so far.
    var count: UInt64 {
        var key: UInt32 = 0
        var value: UInt64 = 0
        return bpf_map_lookup_elem(mapFD, &key, &value) == 0 ? value : 0
    }

    /// What the kernel counted for the witness itself (its runs need statistics enabled).
    func stats() throws(BPFProgramStatsError) -> BPFProgramStats.Counts {
        try BPFProgramStats.counts(fd: programFD)
    }

    /// Detaches and unloads it.
    func close() {
        for fd in [linkFD, programFD, mapFD] where fd >= 0 { Glibc.close(fd) }
        linkFD = -1
        programFD = -1
        mapFD = -1
    }

    // MARK: - The program

    /// Byte offsets of the fields read, from the running kernel's BTF.
    struct Offsets {
        var requestQueue: Int32  // struct request.q
        var requestSector: Int32  // struct request.__sector
        var queueDisk: Int32  // struct request_queue.disk
        var diskMajor: Int32  // struct gendisk.major
        var diskFirstMinor: Int32  // struct gendisk.first_minor
    }

    /// The program: r6 = the request (args[0]); its queue's disk must be the file's disk and its
    /// first sector inside one of the ranges; then the map's only counter is incremented.
    static func program(sectors: FileSectors, offsets: Offsets, mapFD: Int32) -> [UInt64] {
        var a = BPFAssembler()
        a.loadField(dst: 6, base: 1, offset: 0, size: .doubleWord)  // r6 = ctx->args[0]
        a.probeRead(from: 6, offset: offsets.requestQueue, size: 8, into: 7)  // r7 = rq->q
        a.jumpIfEqual(7, 0, to: "out")
        a.probeRead(from: 7, offset: offsets.queueDisk, size: 8, into: 7)  // r7 = q->disk
        a.jumpIfEqual(7, 0, to: "out")
        a.probeRead(from: 7, offset: offsets.diskMajor, size: 4, into: 8)
        a.jumpIfNotEqual(8, Int32(bitPattern: sectors.major), to: "out")
        a.probeRead(from: 7, offset: offsets.diskFirstMinor, size: 4, into: 8)
        a.jumpIfNotEqual(8, Int32(bitPattern: sectors.minor), to: "out")
        a.probeRead(from: 6, offset: offsets.requestSector, size: 8, into: 8)  // r8 = rq->__sector
        for (index, range) in sectors.ranges.enumerated() {
            a.loadImmediate64(dst: 9, range.lowerBound)
            a.jumpIfBelow(8, 9, to: "next\(index)")
            a.loadImmediate64(dst: 9, range.upperBound)
            a.jumpIfAtLeast(8, 9, to: "next\(index)")
            a.jump(to: "count")
            a.label("next\(index)")
        }
        a.jump(to: "out")
        a.label("count")
        a.storeWordZero(base: 10, offset: -12)  // key = 0
        a.loadMapFD(dst: 1, mapFD)
        a.move(dst: 2, src: 10)
        a.add(dst: 2, -12)
        a.call(1)  // bpf_map_lookup_elem
        a.jumpIfEqual(0, 0, to: "out")
        a.move(dst: 1, 1)
        a.atomicAdd(base: 0, src: 1)  // lock *(u64 *)(r0 + 0) += r1
        a.label("out")
        a.move(dst: 0, 0)
        a.exit()
        return a.assembled()
    }

    private static func load(_ instructions: [UInt64]) throws(BlockCompletionWitnessError) -> Int32 {
        var log = [CChar](repeating: 0, count: 1 << 16)
        let fd = log.withUnsafeMutableBufferPointer { logBuffer in
            var options = bpf_prog_load_opts()
            options.sz = MemoryLayout<bpf_prog_load_opts>.size
            options.log_buf = logBuffer.baseAddress
            options.log_size = UInt32(logBuffer.count)
            options.log_level = 1
            return instructions.withUnsafeBufferPointer { raw in
                raw.withMemoryRebound(to: bpf_insn.self) { insns in
                    bpf_prog_load(
                        BPF_PROG_TYPE_RAW_TRACEPOINT, "witness_rq_done", "GPL", insns.baseAddress, insns.count,
                        &options)
                }
            }
        }
        guard fd >= 0 else {
            let verifier = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw Self.failure("loading the witness (verifier: \(verifier.suffix(2000)))")
        }
        return fd
    }

    private static func offsets() throws(BlockCompletionWitnessError) -> Offsets {
        guard let btf = btf__load_vmlinux_btf() else { throw failure("loading the kernel's BTF") }
        defer { btf__free(btf) }
        func offset(_ structName: String, _ member: String) throws(BlockCompletionWitnessError) -> Int32 {
            let id = btf__find_by_name_kind(btf, structName, UInt32(BTF_KIND_STRUCT))
            guard id > 0, let type = btf__type_by_id(btf, UInt32(id)),
                let bits = memberBitOffset(btf, type, member)
            else { throw BlockCompletionWitnessError(description: "no \(structName).\(member) in the kernel's BTF") }
            return Int32(bits / 8)
        }
        return Offsets(
            requestQueue: try offset("request", "q"), requestSector: try offset("request", "__sector"),
            queueDisk: try offset("request_queue", "disk"), diskMajor: try offset("gendisk", "major"),
            diskFirstMinor: try offset("gendisk", "first_minor"))
    }

    /// The bit offset of `member` in the struct or union `type`, looking into anonymous members.
    private static func memberBitOffset(_ btf: OpaquePointer, _ type: UnsafePointer<btf_type>, _ member: String)
        -> UInt32?
    {
        guard let members = btf_members(type) else { return nil }
        for index in 0..<UInt32(btf_vlen(type)) {
            let field = members[Int(index)]
            let bits = btf_member_bit_offset(type, index)
            let name = String(cString: btf__name_by_offset(btf, field.name_off))
            if name == member { return bits }
            if name.isEmpty {
                let resolved = btf__resolve_type(btf, field.type)
                guard resolved > 0, let inner = btf__type_by_id(btf, UInt32(resolved)) else { continue }
                let kind = btf_kind(inner)
                if kind == UInt16(BTF_KIND_STRUCT) || kind == UInt16(BTF_KIND_UNION),
                    let found = memberBitOffset(btf, inner, member)
                {
                    return bits + found
                }
            }
        }
        return nil
    }

    private static func failure(_ what: String) -> BlockCompletionWitnessError {
        BlockCompletionWitnessError(description: "\(what): \(String(cString: strerror(errno)))")
    }
}
