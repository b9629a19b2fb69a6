import Checks
import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import TestSupport
import Testing

/// `memory.hugepages` end to end on fixture host roots: the SIGBUS case that this machine (no
/// huge page pool, no hugetlb controller) cannot produce. A container resolved from its
/// processes and cgroups, a node with a pool of 2 MiB pages, the container's hugetlb files as
/// runc before 1.2 leaves them (cgroup v1 and v2), the postmaster's smaps with its segment on
/// huge pages; then the readers and the check, as `ContainerDiagnosis` runs them.
@Suite("memory.hugepages on fixture host roots")
struct HugePagesDiagnosisFixtureTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/hugepages")
        .path

    /// Copies every file under `Fixtures/hugepages/<source>` to `target` in the fixture host.
    static func copy(_ source: String, to target: String, in fixture: FixtureHost) throws {
        let base = "\(fixtures)/\(source)"
        guard let walker = FileManager.default.enumerator(atPath: base) else { return }
        for case let relative as String in walker {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: "\(base)/\(relative)", isDirectory: &isDirectory),
                !isDirectory.boolValue
            else { continue }
            try fixture.write(
                "\(target)/\(relative)", try String(contentsOfFile: "\(base)/\(relative)", encoding: .utf8))
        }
    }

    /// A host with the server of `FixtureHostTests.addServer` (postmaster 4242) in `cgroup`, the
    /// node's pools from `pool`, the postmaster's smaps from `smaps`, and the processes' VmPTE.
    static func host(mounts: String, cgroup: String, pool: String, smaps: String, autoConfig: String) throws
        -> FixtureHost
    {
        let fixture = try FixtureHost(mounts: mounts)
        try FixtureHostTests.addServer(fixture, cgroup: cgroup)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs", autoConfig: autoConfig)
        try copy(pool, to: "", in: fixture)
        try fixture.write(
            "proc/4242/smaps", try String(contentsOfFile: "\(fixtures)/\(smaps)", encoding: .utf8))
        for pid: Int32 in 4242...4246 {
            try fixture.write("proc/\(pid)/status", "Name:\tpostgres\nPid:\t\(pid)\nVmPTE:\t     164 kB\n")
        }
        return fixture
    }

    static func hugePages(_ fixture: FixtureHost) throws -> Observation {
        let resolution = try ContainerResolver(host: fixture.host).resolve(
            ContainerReference.parse(FixtureIDs.container))
        let observations = ContainerDiagnosis.staticObservations(resolution, host: fixture.host)
        #expect(observations.map(\.check) == ContainerDiagnosis.staticChecks)
        return try #require(observations.first { $0.check == HugePagesCheck.id })
    }

    @Test("cgroup v1, runc before 1.2: hugetlb.2MB.limit_in_bytes 0, rsvd unlimited, a pool, huge_pages=try: critical")
    func sigbusV1() throws {
        let fixture = try Self.host(
            mounts: "v1", cgroup: try cgroupFixture("containerd-cgroupfs-v1"), pool: "pool",
            smaps: "postmaster-hugetlb.smaps", autoConfig: "huge_pages = try\n")
        let path = "/kubepods/burstable/pod\(FixtureIDs.podUID)/\(FixtureIDs.container)"
        try fixture.cgroupDirectories(
            path, hierarchies: ["sys/fs/cgroup/memory", "sys/fs/cgroup/pids", "sys/fs/cgroup/hugetlb"],
            procs: [4242, 4243, 4244, 4245, 4246])
        try Self.copy("cgroup-v1-runc", to: "sys/fs/cgroup/hugetlb\(path)", in: fixture)

        let o = try Self.hugePages(fixture)
        #expect(o.severity == .critical, "\(o.summary)")
        #expect(o.summary.contains("SIGBUS"), "\(o.summary)")
        #expect(
            o.summary.contains("no hugetlb reservation limit (rsvd.limit_in_bytes unlimited), while huge_pages = try"),
            "\(o.summary)")
        print("memory.hugepages on the v1 fixture: \(o.summary)")
        #expect(o.evidence["hugetlb"]?["cgroup_version"] == .int(1))
        #expect(o.evidence["hugetlb"]?["limit_bytes"] == .int(0))
        #expect(o.evidence["hugetlb"]?["rsvd_limit_bytes"] == "max")
        #expect(o.evidence["segment"]?["path"] == "/anon_hugepage")
        #expect(o.evidence["segment"]?["kernel_page_size_bytes"] == .int(2 << 20))
        #expect(o.evidence["shared_memory_size_in_huge_pages"] == .int(72))
        #expect(o.evidence["pools"]?.arrayValue?.first?["total"] == .int(1024))
        #expect(o.evidence["page_tables_bytes"] == .int(5 * (Int64(164) << 10)))
        #expect(o.evidence["settings"]?["huge_pages"]?["source"] == "/var/lib/postgresql/data/postgresql.auto.conf:1")
        #expect(o.remedy.contains("hugepages-2Mi: 144Mi"), "\(o.remedy)")
    }

    @Test("cgroup v2, runc before 1.2 (hugetlb.2MB.max 0, rsvd.max max): critical; with rsvd.max 0 (runc 1.2): ok")
    func sigbusV2() throws {
        let id = FixtureIDs.container
        let path =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e3b2a_5d4f_4e8a_9b6c_1d2e3f4a5b6c.slice/cri-containerd-\(id).scope"
        // With the reservation limit the mmap of huge pages fails: huge_pages=try falls back to 4 KiB pages.
        for (files, smaps, mode, expected) in [
            ("cgroup-v2-runc", "postmaster-hugetlb.smaps", "on", Severity.critical),
            ("cgroup-v2-rsvd", "postmaster-4k.smaps", "try", .ok),
            ("cgroup-v2-requested", "postmaster-hugetlb.smaps", "on", .ok),
        ] {
            let fixture = try Self.host(
                mounts: "v2", cgroup: "0::\(path)\n", pool: "pool", smaps: smaps, autoConfig: "huge_pages = \(mode)\n")
            try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242, 4243, 4244, 4245, 4246])
            try Self.copy(files, to: "sys/fs/cgroup\(path)", in: fixture)
            let o = try Self.hugePages(fixture)
            #expect(o.severity == expected, "\(files): \(o.summary)")
            #expect(o.evidence["hugetlb"]?["cgroup_version"] == .int(2), "\(files)")
        }
    }

    @Test("no pool and no hugetlb controller (this machine's shape): the 4 KiB segment, ok")
    func noPool() throws {
        let id = FixtureIDs.container
        let path = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-\(id).scope"
        let fixture = try Self.host(
            mounts: "v2", cgroup: "0::\(path)\n", pool: "no-pool", smaps: "postmaster-4k.smaps", autoConfig: "")
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242])
        let o = try Self.hugePages(fixture)
        #expect(o.severity == .ok, "\(o.summary)")
        #expect(o.evidence["hugetlb"] == .null)
        #expect(o.evidence["segment"]?["kernel_page_size_bytes"] == .int(4096))
        #expect(o.evidence["settings"]?["huge_pages"]?["value"] == "try")  // initdb's default
    }
}
