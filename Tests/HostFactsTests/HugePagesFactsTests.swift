import Foundation
import HostFacts
import TestSupport
import Testing

/// The readers `memory.hugepages` needs: smaps, the node's pools, the hugetlb cgroup, VmPTE; on
/// the fixtures of `Fixtures/hugepages` (README.md there says where each comes from).
@Suite("huge page facts")
struct HugePagesFactsTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/hugepages")
        .path

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: "\(fixtures)/\(name)", encoding: .utf8)
    }

    @Test("a real postmaster's smaps on 4 KiB pages: the /dev/zero mapping is the main segment, not SysV or /dev/shm")
    func smaps4k() throws {
        let mappings = ProcessSmaps.parse(try Self.text("postmaster-4k.smaps"))
        #expect(mappings.count == 246, "\(mappings.count)")  // 6150 lines, 25 a mapping on 6.18
        #expect(mappings.allSatisfy { $0.sizeBytes != nil && $0.kernelPageSizeBytes != nil })
        let main = try #require(ProcessSmaps.mainSegment(mappings))
        #expect(main.path == "/dev/zero" && main.deleted && main.isShared)
        #expect(main.sizeBytes == Int64(146_016) << 10)
        #expect(main.kernelPageSizeBytes == 4096 && main.mmuPageSizeBytes == 4096)
        #expect(main.rssBytes == Int64(10_796) << 10)
        #expect(main.hugetlbBytes == 0)
        #expect(main.flags == ["rd", "wr", "sh", "mr", "mw", "me", "ms"])
        let candidates = mappings.filter(\.isMainSegmentCandidate).map(\.path)
        #expect(candidates == ["/dev/zero", "/SYSV0010c047"], "\(candidates)")
        #expect(mappings.contains { $0.path.hasPrefix("/dev/shm/PostgreSQL.") && !$0.isMainSegmentCandidate })
    }

    @Test("the main segment on 2 MiB huge pages: /anon_hugepage, KernelPageSize 2048 kB, hugetlb pages apart from Rss")
    func smapsHugetlb() throws {
        let main = try #require(ProcessSmaps.mainSegment(ProcessSmaps.parse(try Self.text("postmaster-hugetlb.smaps"))))
        #expect(main.path == "/anon_hugepage" && main.deleted)
        #expect(main.sizeBytes == 72 << 21)
        #expect(main.kernelPageSizeBytes == 2 << 20)
        #expect(main.rssBytes == 0 && main.hugetlbBytes == Int64(18_432) << 10)
        #expect(main.flags.contains("ht"))
    }

    @Test("garbled smaps: headers and fields that do not parse are skipped, sizes saturate")
    func smapsGarbled() {
        let text = """
            Size: 4 kB
            zz-yy rw-s 0 00:01 1 /dev/zero (deleted)
            7f00-7f10 rw-s 00000000 00:01 6181 /dev/zero (deleted)
            Size: 99999999999999999999 kB
            KernelPageSize: 18446744073709551615 kB
            MMUPageSize: -4 kB
            Rss: 4 MB
            Shared_Hugetlb: 9223372036854775807 kB
            Private_Hugetlb: 9223372036854775807 kB
            7f10-7f20 r--p 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6
            """
        let mappings = ProcessSmaps.parse(text)
        #expect(mappings.count == 2)
        #expect(mappings[0].sizeBytes == nil)
        #expect(mappings[0].kernelPageSizeBytes == .max)
        #expect(mappings[0].mmuPageSizeBytes == nil && mappings[0].rssBytes == nil)
        #expect(mappings[0].hugetlbBytes == .max)
        #expect(!mappings[1].isShared && mappings[1].path == "/usr/lib/x86_64-linux-gnu/libc.so.6")
    }

    @Test("this machine's pools (none) and a node with 1024 pages of 2 MiB")
    func pools() throws {
        let none = HugePagePool.read(host: HostRoot("\(Self.fixtures)/no-pool"))
        #expect(none.problems.isEmpty, "\(none.problems)")
        #expect(none.defaultPageSizeBytes == 2 << 20)
        #expect(none.sizes.map(\.pageSizeBytes) == [2 << 20, 1 << 30])
        #expect(none.sizes.allSatisfy { $0.total == 0 && $0.free == 0 })

        let pool = HugePagePool.read(host: HostRoot("\(Self.fixtures)/pool"))
        #expect(pool.problems.isEmpty, "\(pool.problems)")
        let two = try #require(pool.pool(pageSizeBytes: 2 << 20))
        #expect(two.total == 1024 && two.free == 1024 && two.reserved == 0 && two.available == 1024)
        #expect(pool.pool(pageSizeBytes: 1 << 30)?.total == 0)

        let meminfo = HugePagePool.parseMeminfo(try Self.text("pool/proc/meminfo"))
        #expect(meminfo["HugePages_Total"] == 1024 && meminfo["Hugepagesize"] == 2 << 20)
        #expect(meminfo["Hugetlb"] == 2 << 30)
        #expect(meminfo["MemTotal"] == nil)
    }

    @Test("this node: the reader agrees with /proc/meminfo")
    func realNode() throws {
        let pool = HugePagePool.read(host: HostRoot("/"))
        let meminfo = HugePagePool.parseMeminfo(try String(contentsOfFile: "/proc/meminfo", encoding: .utf8))
        #expect(pool.defaultPageSizeBytes == meminfo["Hugepagesize"])
        #expect(pool.pool(pageSizeBytes: pool.defaultPageSizeBytes ?? 0)?.total == meminfo["HugePages_Total"])
    }

    @Test("hugetlb cgroup v1 and v2 as runc before 1.2 leaves them: limit 0, no reservation limit")
    func hugetlbCgroups() throws {
        let host = HostRoot(Self.fixtures)
        let v1 = try HugetlbCgroupLimits.readV1(
            host: host, mountPoint: "/", path: "cgroup-v1-runc", pageSizeBytes: 2 << 20)
        #expect(v1.missing.isEmpty, "\(v1.missing)")
        #expect(v1.limit == .bytes(0) && v1.reservationLimit == .unlimited && v1.usageBytes == 0 && v1.failCount == 0)
        let v2 = try HugetlbCgroupLimits.readV2(
            host: host, mountPoint: "/", path: "cgroup-v2-runc", pageSizeBytes: 2 << 20)
        #expect(v2.missing.isEmpty, "\(v2.missing)")
        #expect(v2.limit == .bytes(0) && v2.reservationLimit == .unlimited && v2.failCount == 0)
        let gib = try HugetlbCgroupLimits.readV2(
            host: host, mountPoint: "/", path: "cgroup-v2-rsvd", pageSizeBytes: 1 << 30)
        #expect(gib.limit == .bytes(0) && gib.reservationLimit == .bytes(0))
        let missing = try HugetlbCgroupLimits.readV2(
            host: host, mountPoint: "/", path: "cgroup-v2-runc", pageSizeBytes: 64 << 10)
        #expect(missing.limit == nil && missing.missing.contains("hugetlb.64KB.max"))
        #expect(throws: HostReadError.self) {
            try HugetlbCgroupLimits.readV1(host: host, mountPoint: "/", path: "absent", pageSizeBytes: 2 << 20)
        }
        #expect(HugetlbCgroupLimits.sizeName(pageSizeBytes: 2 << 20) == "2MB")
        #expect(HugetlbCgroupLimits.sizeName(pageSizeBytes: 1 << 30) == "1GB")
        #expect(HugetlbCgroupLimits.sizeName(pageSizeBytes: 64 << 10) == "64KB")
        #expect(HugetlbCgroupLimits.sizeName(pageSizeBytes: .min) == "0KB")
    }

    @Test("VmPTE of a real status file and of this process")
    func pageTables() throws {
        #expect(
            ProcessPageTables.parse(status: "Name:\tpostgres\nVmPTE:\t     164 kB\nVmSwap:\t0 kB\n") == Int64(164) << 10
        )
        #expect(ProcessPageTables.parse(status: "VmPTE:\t-1 kB\n") == nil)
        #expect(ProcessPageTables.parse(status: "VmPTE:\t18446744073709551615 kB\n") == .max)
        #expect(ProcessPageTables.parse(status: "Name:\tkthreadd\n") == nil)
        let own = try #require(try ProcessPageTables.read(host: HostRoot("/"), pid: getpid()))
        #expect(own > 0)
    }
}
