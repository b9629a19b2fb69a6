import Checks
import HostFacts
import PGNodeModel
import Testing

/// `memory.hugepages` on facts.
@Suite("memory.hugepages")
struct HugePagesCheckTests {
    static let twoMiB: Int64 = 2 << 20

    static func segment(bytes: Int64, page: Int64) -> SmapsMapping {
        SmapsMapping(
            start: 0x7f68_9dc0_0000, end: 0x7f68_9dc0_0000 + UInt64(bytes), permissions: "rw-s", inode: 6181,
            path: page > 4096 ? "/anon_hugepage" : "/dev/zero", deleted: true, sizeBytes: bytes,
            kernelPageSizeBytes: page, mmuPageSizeBytes: page, rssBytes: 0, hugetlbBytes: 0)
    }

    static func pool(pages: Int64) -> HugePagePool {
        HugePagePool(
            defaultPageSizeBytes: twoMiB,
            sizes: [
                .init(pageSizeBytes: twoMiB, total: pages, free: pages, reserved: 0, surplus: 0),
                .init(pageSizeBytes: 1 << 30, total: 0, free: 0, reserved: 0, surplus: 0),
            ])
    }

    static func facts(
        mode: String = "try", segment: SmapsMapping = segment(bytes: 146_016 << 10, page: 4096),
        pool: HugePagePool =
            pool(pages: 0), cgroup: HugetlbCgroupLimits? = nil, pageTables: Int64? = 164 << 10
    ) -> HugePagesFacts {
        HugePagesFacts(
            hugePages: .success(SettingValue(mode, source: "command line")),
            hugePageSize: .success(SettingValue(0, source: "default")),
            sharedBuffers: .success(SettingValue(128 << 20, source: "default")), segment: .success(segment),
            pool: pool, cgroup: .success(cgroup), pageTableBytes: pageTables, pageTableProcesses: 6)
    }

    /// runc before 1.2 for a pod without huge page requests: fault limit 0, no reservation limit.
    static let runcV2 = HugetlbCgroupLimits(
        version: 2, pageSizeBytes: twoMiB, limit: .bytes(0), usageBytes: 0, reservationLimit: .unlimited,
        reservationUsageBytes: 0, failCount: 0)

    @Test("a small server on 4 KiB pages without a pool: ok, the page size in the evidence")
    func smallFallBack() {
        let o = HugePagesCheck.evaluate(Self.facts())
        #expect(o.severity == .ok, "\(o.summary)")
        #expect(o.evidence["segment"]?["kernel_page_size_bytes"] == .int(4096))
        #expect(o.evidence["shared_memory_size_mb"] == .int(143))
        #expect(o.evidence["shared_memory_size_in_huge_pages"] == .int(72))
        #expect(o.evidence["segment_needs_bytes"] == .int(72 * Self.twoMiB))
    }

    @Test("huge_pages=try fell back with a 1 GiB segment: info; page tables past 10 % of it: warning")
    func largeFallBack() throws {
        var facts = Self.facts(segment: Self.segment(bytes: 1_100 << 20, page: 4096))
        let info = HugePagesCheck.evaluate(facts)
        #expect(info.severity == .info, "\(info.summary)")
        #expect(info.summary.contains("fell back to 4 KiB pages"), "\(info.summary)")
        #expect(info.summary.contains("the node has no 2 MiB huge pages"), "\(info.summary)")
        #expect(info.summary.contains("The 6 processes' page tables take 0.2 MiB (VmPTE)"), "\(info.summary)")
        let remedy = info.remedy
        #expect(remedy.contains("hugepages-2Mi: 1100Mi"), "\(remedy)")
        #expect(remedy.contains("huge_pages = off"), "\(remedy)")
        #expect(info.evidence["page_tables_bytes"] == .int(164 << 10))

        facts.pageTableBytes = 200 << 20
        let warning = HugePagesCheck.evaluate(facts)
        #expect(warning.severity == .warning, "\(warning.summary)")
    }

    @Test("SIGBUS: a pool, a hugetlb limit of 0 below the segment, no reservation limit, huge_pages=try: critical")
    func sigbus() throws {
        let facts = Self.facts(
            segment: Self.segment(bytes: 72 * Self.twoMiB, page: Self.twoMiB), pool: Self.pool(pages: 1024),
            cgroup: Self.runcV2)
        let o = HugePagesCheck.evaluate(facts)
        #expect(o.severity == .critical, "\(o.summary)")
        #expect(o.summary.contains("SIGBUS"), "\(o.summary)")
        #expect(o.summary.contains("hugetlb limit is 0 MiB"), "\(o.summary)")
        #expect(o.summary.contains("rsvd.max absent") == false, "\(o.summary)")  // present, but unlimited
        #expect(o.evidence["hugetlb"]?["limit_bytes"] == .int(0))
        #expect(o.evidence["hugetlb"]?["rsvd_limit_bytes"] == "max")
        #expect(o.evidence["segment"]?["kernel_page_size_bytes"] == .int(Self.twoMiB))
        let remedy = o.remedy
        #expect(remedy.contains("hugepages-2Mi: 144Mi"), "\(remedy)")

        // huge_pages=on: the same.
        var on = facts
        on.hugePages = .success(SettingValue("on", source: "postgresql.conf:129"))
        #expect(HugePagesCheck.evaluate(on).severity == .critical)

        // The same cgroup on v1 without the reservation files (before 5.7): still critical, and said.
        var v1 = facts
        v1.cgroup = .success(
            HugetlbCgroupLimits(
                version: 1, pageSizeBytes: Self.twoMiB, limit: .bytes(0), reservationLimit: nil,
                missing: ["hugetlb.2MB.rsvd.limit_in_bytes"]))
        let old = HugePagesCheck.evaluate(v1)
        #expect(old.severity == .critical)
        #expect(old.summary.contains("rsvd.limit_in_bytes absent"), "\(old.summary)")

        // The segment fell back to 4 KiB pages (the pool was full at start): a warning, for the next restart.
        var fellBack = facts
        fellBack.segment = .success(Self.segment(bytes: 146_016 << 10, page: 4096))
        let later = HugePagesCheck.evaluate(fellBack)
        #expect(later.severity == .warning, "\(later.summary)")
        #expect(later.summary.contains("after a restart"), "\(later.summary)")
    }

    @Test("no SIGBUS: huge_pages=off, no pool, a reservation limit that fails the mmap, or pages requested")
    func noSigbus() {
        let base = Self.facts(
            segment: Self.segment(bytes: 72 * Self.twoMiB, page: Self.twoMiB), pool: Self.pool(pages: 1024),
            cgroup: Self.runcV2)
        var off = base
        off.hugePages = .success(SettingValue("off", source: "command line"))
        off.segment = .success(Self.segment(bytes: 146_016 << 10, page: 4096))
        #expect(HugePagesCheck.evaluate(off).severity == .ok)

        var noPool = base
        noPool.pool = Self.pool(pages: 0)
        #expect(HugePagesCheck.evaluate(noPool).severity == .ok)

        var reserved = base
        reserved.cgroup = .success(
            HugetlbCgroupLimits(version: 2, pageSizeBytes: Self.twoMiB, limit: .bytes(0), reservationLimit: .bytes(0)))
        reserved.segment = .success(Self.segment(bytes: 146_016 << 10, page: 4096))
        #expect(HugePagesCheck.evaluate(reserved).severity == .ok)

        var requested = base
        requested.cgroup = .success(
            HugetlbCgroupLimits(
                version: 2, pageSizeBytes: Self.twoMiB, limit: .bytes(256 << 20), reservationLimit: .bytes(256 << 20)))
        let o = HugePagesCheck.evaluate(requested)
        #expect(o.severity == .ok, "\(o.summary)")
        #expect(o.summary.contains("2 MiB huge pages (72)"), "\(o.summary)")

        var unlimited = base
        unlimited.cgroup = .success(nil)
        #expect(HugePagesCheck.evaluate(unlimited).severity == .ok)
    }

    @Test("invalid settings are named, never computed with; an unreadable smaps is in the evidence")
    func unavailable() throws {
        var facts = Self.facts()
        facts.hugePages = .failure(
            InvalidSetting(
                name: "huge_pages", text: "maybe", source: "postgresql.conf:3",
                reason: "invalid value for parameter \"huge_pages\": \"maybe\""))
        let o = HugePagesCheck.evaluate(facts)
        #expect(o.severity == .unavailable)
        #expect(o.evidence["reason"]?.stringValue?.contains("huge_pages = 'maybe'") == true)

        facts = Self.facts(pool: Self.pool(pages: 1024), cgroup: Self.runcV2)
        facts.segment = .failure(CheckUnavailable("cannot read /proc/4242/smaps: permission denied"))
        let blind = HugePagesCheck.evaluate(facts)
        // shared_buffers stands for the segment: 128 MiB needs 64 pages, over the limit of 0.
        #expect(blind.severity == .critical, "\(blind.summary)")
        #expect(blind.evidence["segment_unavailable_reason"]?.stringValue?.contains("permission denied") == true)
        #expect(blind.evidence["segment_needs_bytes"] == .int(128 << 20))
    }
}
