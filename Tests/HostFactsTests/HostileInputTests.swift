import Foundation
import HostFacts
import TestSupport
import Testing

/// Text a tenant or a broken kernel can put in the files pgnode parses: numbers past 64 bits,
/// signs, 10,000 digits, bytes that are not UTF-8, truncated lines.
enum HostileText {
    static let tenThousandDigits = "1" + String(repeating: "0", count: 10_000)
    static let notUTF8 = String(decoding: [0x66, 0xFF, 0xFE, 0xC3, 0x28, 0x80, 0x20, 0x31], as: UTF8.self)
    static let numbers = [
        "", " ", "-1", "-0", "+1", "0", "9223372036854775807", "9223372036854775808", "18446744073709551615",
        "18446744073709551616", tenThousandDigits, "-" + tenThousandDigits, "1e308", "nan", "inf", "0x10", "１", notUTF8,
        "1\u{0}2",
    ]

    /// `count` strings of random bytes (decoded as UTF-8 with replacement), from a fixed seed.
    static func random(count: Int, maxLength: Int, alphabet: [UInt8]? = nil, seed: UInt64) -> [String] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { _ in
            let length = Int(generator.next() % UInt64(maxLength + 1))
            let bytes = (0..<length).map { _ -> UInt8 in
                let r = generator.next()
                return alphabet.map { $0[Int(r % UInt64($0.count))] } ?? UInt8(truncatingIfNeeded: r)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

@Suite("host files with hostile contents: parsed or skipped, never a trap")
struct HostileInputTests {
    @Test("cgroup counters: unsigned 64-bit, past Int64.max saturated, anything else left out")
    func cgroupCounters() {
        let s = CgroupFiles.keyValues(
            HostileText.numbers.enumerated().map { "k\($0.offset) \($0.element)" }.joined(separator: "\n"))
        #expect(s["k5"] == 0)  // "0"
        #expect(s["k6"] == .max && s["k7"] == .max && s["k8"] == .max)  // up to 2^64 - 1: saturated
        #expect(s["k9"] == nil && s["k10"] == nil && s["k2"] == nil && s["k11"] == nil)  // past 2^64, signs
        #expect(CgroupFiles.integer("18446744073709551615\n") == .max)
        #expect(CgroupFiles.integer("-5") == nil)
        #expect(CgroupFiles.limit("18446744073709551615") == .unlimited)
        for text in HostileText.numbers {
            _ = CgroupFiles.limit(text)
            _ = CgroupFiles.integer(text)
        }
    }

    @Test("PSI: averages that are not finite shares of time are left out; totals saturate")
    func pressure() throws {
        let p = try #require(
            CgroupFiles.pressure(
                "some avg10=nan avg60=inf avg300=-1 total=18446744073709551615\nfull avg10=1e308 total=-1\n"))
        #expect(p.some?.avg10 == nil && p.some?.avg60 == nil && p.some?.avg300 == nil)
        #expect(p.some?.totalMicroseconds == .max)
        #expect(p.full?.avg10 == 1e308 && p.full?.totalMicroseconds == nil)
    }

    @Test("a v2 memory cgroup whose counters are all 2^64 - 1: sums saturate, nothing traps")
    func extremeMemoryCgroup() throws {
        let root = try Fixtures.temporaryDirectory("pgnode-hostile-cgroup")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/sys/fs/cgroup/x"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let max = "18446744073709551615"
        let stat = [
            "anon", "file", "shmem", "file_mapped", "inactive_file", "file_dirty", "pgmajfault", "pgscan", "pgsteal",
            "workingset_refault_anon", "workingset_refault_file",
        ].map { "\($0) \(max)" }.joined(separator: "\n")
        let files = [
            "memory.max": max, "memory.high": "max", "memory.low": max, "memory.min": "-1", "memory.current": max,
            "memory.peak": HostileText.tenThousandDigits, "memory.stat": stat,
            "memory.events": "high \(max)\nmax \(max)\noom \(max)\noom_kill \(max)\noom_group_kill \(max)\n",
            "memory.pressure": "some avg10=nan avg60=0 avg300=0 total=\(max)\n",
        ]
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: false, encoding: .utf8) }
        let stats = try MemoryCgroupStats.readV2(host: HostRoot(root), mountPoint: "/sys/fs/cgroup", path: "/x")
        #expect(stats.limitBytes == nil)  // at or above 2^62: no limit
        #expect(stats.usageBytes == .max && stats.inactiveFileBytes == .max)
        #expect(stats.workingSetBytes == 0)
        #expect(stats.workingsetRefaults == .max)
        #expect(stats.minBytes == nil && stats.maxUsageBytes == nil)
        #expect(stats.oomKills == .max && stats.oomGroupKills == .max)
    }

    @Test("/proc/<pid>/maps lines with hostile fields")
    func maps() {
        let lines = [
            "ffffffffffffffffffff-1 r-xp 00000000 fd:01 123 /usr/lib/libc.so.6",
            "7f00-7f01 r-xp 00000000 fffffffff:01 123 /usr/lib/libc.so.6",
            "7f00-7f01 r-xp 00000000 fd:01 \(HostileText.tenThousandDigits) /usr/lib/libc.so.6",
            "7f00-7f01 r-xp 00000000 fd:01 -1 /usr/lib/libc.so.6",
            "7f00-7f01 r-xp 00000000 fd:01 18446744073709551615 / (deleted)",
            "7f00-7f01 r 0 fd:01 5 /a\\777\\",
            "7f00-7f01 r-xp 00000000 fd 5 /x", "7f00", "", "- - - - -", "7f00-7f01 r-xp 0 1:2 3 \(HostileText.notUTF8)",
            "7f00-7f01 r-xp 0 1:2 3 /" + String(repeating: "a", count: 100_000),
        ]
        let parsed = ProcessMaps.parse(lines.joined(separator: "\n"))
        #expect(parsed.map(\.inode) == [18_446_744_073_709_551_615, 5, 3])
        #expect(parsed.first?.path == "/" && parsed.first?.deleted == true)
        for text in HostileText.random(
            count: 2000, maxLength: 80, alphabet: Array("0123456789abcdef-: /rwxp\\(\n".utf8), seed: 7)
        {
            _ = ProcessMaps.parse(text)
        }
    }

    @Test("mountinfo lines with hostile fields and escapes")
    func mountInfo() {
        let lines = [
            "99999999999999999999 1 0:1 / / rw - ext4 /dev/x rw",
            "1 2 0:1 /\\ /\\0 rw - tmpfs shm\\777 rw",
            "1 2 0:1 / /\\04 rw - tmpfs shm rw", "1 2 0:1 / /x rw -", "1 2 - x y", "-", "",
            "1 2 0:1 / / rw " + String(repeating: "opt ", count: 10_000) + "- tmpfs shm rw",
            "1 2 0:1 \(HostileText.notUTF8) / rw - tmpfs shm rw",
        ]
        let (entries, malformed) = MountInfo.parse(lines.joined(separator: "\n"))
        #expect(entries.count + malformed == lines.filter { !$0.isEmpty }.count)
        #expect(entries.contains { $0.mountPoint == "/\\0" && $0.source == "shm\\777" })
        for text in HostileText.random(
            count: 2000, maxLength: 80, alphabet: Array("0123456789 -/\\:rwx\n".utf8), seed: 8)
        {
            _ = MountInfo.parse(text)
        }
    }

    @Test("kernel versions: huge components are garbage, extreme ones never overflow the code")
    func kernelVersions() {
        #expect(KernelVersion.fromRelease("99999999999999999999.1.1") == nil)
        #expect(KernelVersion.fromRelease("16777216.0.0") == nil)
        #expect(KernelVersion.fromRelease("6.18.0-1-amd64")?.code == 6 << 16 | 18 << 8)
        #expect(KernelVersion.fromVersionSignature("Ubuntu x \(HostileText.tenThousandDigits).1.2") == nil)
        #expect(KernelVersion.fromDebianVersion("#1 SMP Debian") == nil)
        #expect(KernelVersion.fromDebianVersion("#1 SMP Debian \(HostileText.notUTF8)") == nil)
        #expect(KernelVersion(major: 4, minor: 9, patch: 300).code == 4 << 16 | 9 << 8 | 255)
        for major in [Int.max, Int.min, -1] {
            for minor in [Int.max, Int.min, -1] {
                _ = KernelVersion(major: major, minor: minor, patch: .max).code
            }
        }
        for text in HostileText.random(
            count: 2000, maxLength: 40, alphabet: Array("0123456789.-+ #SMPDebian".utf8), seed: 9)
        {
            _ = KernelVersion.detect(release: text, version: text, versionSignature: text)
        }
    }
}

@Suite("ELF: crafted section headers are refused, never a trap")
struct CraftedELFTests {
    /// A valid 64-bit little-endian object and where its section table starts.
    static func object() -> (bytes: [UInt8], shoff: Int) {
        let bytes = ELFBuilder.legacyObject(version: 7)
        let shoff = (0..<8).reduce(0) { $0 | Int(bytes[0x28 + $1]) << (8 * $1) }
        return (bytes, shoff)
    }

    static func write(_ value: UInt64, width: Int, at offset: Int, in bytes: inout [UInt8]) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    @Test("the null section claiming to be the string table, far past the end of the file")
    func stringTableAtIndexZero() {
        var (bytes, shoff) = Self.object()
        Self.write(0, width: 2, at: 0x3E, in: &bytes)  // e_shstrndx = 0
        Self.write(3, width: 4, at: shoff + 4, in: &bytes)  // section 0: SHT_STRTAB
        Self.write(0xFFFF_FF00, width: 8, at: shoff + 0x18, in: &bytes)
        Self.write(16, width: 8, at: shoff + 0x20, in: &bytes)
        #expect(throws: ELFFile.Error.self) { try ELFFile(bytes) }
    }

    @Test("offsets and sizes at 64-bit bounds, in every section; huge tables")
    func extremes() {
        let (original, shoff) = Self.object()
        let count = (original.count - shoff) / 64
        for index in 0..<count {
            for field in [0, 4, 0x18, 0x20] {
                for value in [UInt64.max, UInt64(Int64.max), UInt64(Int64.max) - 3, 1 << 63, UInt64(original.count), 0]
                {
                    var bytes = original
                    Self.write(value, width: field < 8 ? 4 : 8, at: shoff + index * 64 + field, in: &bytes)
                    if let elf = try? ELFFile(bytes) {
                        for section in elf.sections where section.occupiesFile {
                            #expect(section.offset >= 0 && section.offset + section.size <= bytes.count)
                        }
                    }
                    _ = try? LegacyBPFObject.version(of: bytes)
                    _ = try? LegacyBPFObject.settingVersion(bytes, to: 1)
                }
            }
        }
        for (field, width) in [(0x28, 8), (0x3A, 2), (0x3C, 2), (0x3E, 2)] {
            for value in [UInt64.max, 0, 1, UInt64(original.count)] {
                var bytes = original
                Self.write(value, width: width, at: field, in: &bytes)
                _ = try? ELFFile(bytes)
            }
        }
    }

    @Test("a version section of type SHT_NULL is not read")
    func nullVersionSection() throws {
        var (bytes, shoff) = Self.object()
        let elf = try ELFFile(bytes)
        let index = try #require(elf.sections.firstIndex { $0.name == "version" })
        Self.write(0, width: 4, at: shoff + index * 64 + 4, in: &bytes)  // SHT_NULL
        Self.write(UInt64(Int64.max), width: 8, at: shoff + index * 64 + 0x18, in: &bytes)
        #expect(throws: ELFFile.Error.noSection(name: "version")) { try LegacyBPFObject.version(of: bytes) }
        #expect(throws: ELFFile.Error.noSection(name: "version")) { try LegacyBPFObject.settingVersion(bytes, to: 1) }
    }

    @Test("random corruption anywhere, 32- and 64-bit, both byte orders")
    func fuzz() {
        var generator = SplitMix(seed: 12)
        for (is64Bit, littleEndian) in [(true, true), (true, false), (false, true), (false, false)] {
            let original = ELFBuilder.legacyObject(version: 7, is64Bit: is64Bit, littleEndian: littleEndian)
            for _ in 0..<3000 {
                var bytes = original
                for _ in 0..<(1 + Int(generator.next() % 8)) {
                    bytes[6 + Int(generator.next() % UInt64(bytes.count - 6))] = UInt8(
                        truncatingIfNeeded: generator.next())
                }
                _ = try? LegacyBPFObject.settingVersion(bytes, to: 3)
            }
        }
    }
}
