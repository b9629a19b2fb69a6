import Foundation
import HostFacts
import TestSupport
import Testing

/// Inputs `scripts/fuzz` found that made a HostFacts parser trap, kept in `Fuzz/Corpus/<target>/`
/// as `regression-*`: each is fed to the same parser here, which must neither trap nor make
/// something up.
@Suite("Fuzz regressions: HostFacts")
struct HostFactsFuzzRegressionTests {
    /// The section-name string table is section 0, whose header nothing checked: an offset near
    /// `Int.max` overflowed `offset + name` or `offset + size`, one past the end indexed out of range.
    @Test(
        "ELF: a string table (section 0) outside the file is a malformed section table, not a trap",
        arguments: [
            "regression-strtab-offset-plus-name-overflows", "regression-strtab-offset-plus-size-overflows",
            "regression-strtab-past-the-end",
        ])
    func elfStringTableOutsideTheFile(name: String) throws {
        let bytes = try FuzzCorpus.input("elf", name)
        #expect(throws: ELFFile.Error.self) { try ELFFile(bytes) }
        #expect(throws: ELFFile.Error.self) { try LegacyBPFObject.version(of: bytes) }
    }

    /// Section 0 (never bounds-checked) named `version`: past the end, reading it force-unwrapped
    /// nil; at an offset near `Int.max`, its byte range overflowed.
    @Test(
        "ELF: a version section outside the file is refused, not a trap",
        arguments: ["regression-version-section-0-past-the-end", "regression-version-section-0-offset-int-max"])
    func elfVersionOutsideTheFile(name: String) throws {
        let bytes = try FuzzCorpus.input("elf", name)
        #expect(throws: ELFFile.Error.self) { try LegacyBPFObject.version(of: bytes) }
        #expect(throws: ELFFile.Error.self) { try LegacyBPFObject.settingVersion(bytes, to: 0x0004_1200) }
    }

    /// The version's four bytes lie inside the section-name string table: writing them renamed
    /// sections, so the rewritten file had no `version` section any more.
    @Test("ELF: a version inside the section names reads, but is not rewritten")
    func elfVersionInsideTheStringTable() throws {
        let bytes = try FuzzCorpus.input("elf", "regression-version-inside-the-string-table")
        #expect(try LegacyBPFObject.version(of: bytes) == 0x7372_6576)  // "vers", of the name "version"
        #expect(throws: ELFFile.Error.overlapsSectionNames(section: "version")) {
            try LegacyBPFObject.settingVersion(bytes, to: 0x0004_1200)
        }
    }

    /// A cgroup whose files say what the test writes, the others ordinary.
    func memoryCgroup(version: Int, _ files: [String: String]) throws -> MemoryCgroupStats {
        let root = try Fixtures.temporaryDirectory("pgnode-fuzz-regression")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ordinary: [String: String] =
            version == 1
            ? [
                "memory.limit_in_bytes": "536870912\n", "memory.usage_in_bytes": "268435456\n",
                "memory.max_usage_in_bytes": "402653184\n", "memory.failcnt": "0\n",
                "memory.stat": "total_rss 67108864\ntotal_cache 134217728\ntotal_inactive_file 33554432\n",
                "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ]
            : [
                "memory.max": "536870912\n", "memory.high": "max\n", "memory.low": "0\n", "memory.min": "0\n",
                "memory.current": "268435456\n",
                "memory.stat": "anon 67108864\nfile 134217728\ninactive_file 33554432\n",
                "memory.events": "high 0\nmax 0\noom 0\noom_kill 0\n",
                "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ]
        let dir = "\(root)/cgroup/pod/c"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in ordinary.merging(files, uniquingKeysWith: { $1 }) {
            try text.write(toFile: "\(dir)/\(name)", atomically: false, encoding: .utf8)
        }
        let host = HostRoot(root)
        return version == 1
            ? try MemoryCgroupStats.readV1(host: host, mountPoint: "/cgroup", path: "/pod/c")
            : try MemoryCgroupStats.readV2(host: host, mountPoint: "/cgroup", path: "/pod/c")
    }

    /// `regression-v1-…` and `regression-v2-workingset-refaults-sum-overflows`: anon + file refaults.
    @Test("memory cgroup: refault counters whose sum passes Int64.max saturate or are left out", arguments: [1, 2])
    func refaultSum(version: Int) throws {
        let stat =
            version == 1
            ? "total_workingset_refault_anon 9223372036854775807\ntotal_workingset_refault_file 1\n"
            : "workingset_refault_anon 9223372036854775807\nworkingset_refault_file 1\n"
        let stats = try memoryCgroup(version: version, ["memory.stat": stat])
        #expect((stats.workingsetRefaults ?? Int64.max) == Int64.max)
        #expect(stats.missing.isEmpty)
    }

    /// `regression-v1-usage-int64-min`, `regression-v2-usage-int64-min`: usage minus inactive file pages.
    @Test("memory cgroup: a usage of Int64.min gives no working set below zero", arguments: [1, 2])
    func workingSetOfNegativeUsage(version: Int) throws {
        let file = version == 1 ? "memory.usage_in_bytes" : "memory.current"
        let stats = try memoryCgroup(version: version, [file: "-9223372036854775808\n"])
        let workingSet = stats.workingSetBytes
        #expect(workingSet == nil || workingSet! >= 0)
    }
}
