import HostFacts
import PGNodeModel
import TestSupport
import Testing

@Suite("Kernel facts from fixture host roots (copies of real nodes' files)")
struct KernelFactsFixtureTests {
    struct Expected: Sendable, CustomTestStringConvertible {
        var host: String
        var code: Int
        var cgroupMode: CgroupLayout.Mode
        var osID: String
        var osVersion: String
        var btf: Bool
        var headers: Int
        var testDescription: String { host }
    }

    @Test(
        "version code, cgroup mode, OS, BTF and headers",
        arguments: [
            Expected(
                host: "debian10", code: 267_263, cgroupMode: .hybrid, osID: "debian", osVersion: "10", btf: false,
                headers: 1),
            Expected(
                host: "debian12", code: 393_584, cgroupMode: .v2, osID: "debian", osVersion: "12", btf: true,
                headers: 0),
            Expected(
                host: "ubuntu-focal-5.4", code: 328_712, cgroupMode: .hybrid, osID: "ubuntu", osVersion: "20.04",
                btf: false, headers: 2),
            Expected(
                host: "ubuntu-jammy-hwe", code: 395_276, cgroupMode: .v2, osID: "ubuntu", osVersion: "22.04",
                btf: true, headers: 0),
            Expected(
                host: "aks-ubuntu", code: 331_684, cgroupMode: .v2, osID: "ubuntu", osVersion: "22.04", btf: true,
                headers: 0),
            Expected(
                host: "amazonlinux2", code: 330_466, cgroupMode: .v1, osID: "amzn", osVersion: "2", btf: true,
                headers: 0),
            Expected(
                host: "amazonlinux2023", code: 393_584, cgroupMode: .v2, osID: "amzn", osVersion: "2023",
                btf: true, headers: 0),
            Expected(
                host: "rhel8", code: 266_752, cgroupMode: .v1, osID: "rhel", osVersion: "8.10", btf: true,
                headers: 1),
            Expected(
                host: "rhel9", code: 331_264, cgroupMode: .v2, osID: "rhel", osVersion: "9.4", btf: true,
                headers: 0),
            Expected(
                host: "gke-cos", code: 393_572, cgroupMode: .v2, osID: "cos", osVersion: "113", btf: true,
                headers: 0),
            Expected(
                host: "bottlerocket", code: 393_574, cgroupMode: .v2, osID: "bottlerocket", osVersion: "1.21.1",
                btf: true, headers: 0),
            Expected(
                host: "flatcar", code: 394_806, cgroupMode: .v2, osID: "flatcar", osVersion: "3975.2.2",
                btf: true, headers: 0),
        ]
    )
    func fixture(_ expected: Expected) throws {
        let facts = KernelFacts.gather(host: HostRoot(Fixtures.host(expected.host)))
        #expect(facts.kernelVersion?.code == expected.code)
        #expect(facts.cgroups.mode == expected.cgroupMode)
        #expect(facts.cgroups.detectedBy == "mountinfo")
        #expect(facts.os.id == expected.osID)
        #expect(facts.os.versionID == expected.osVersion)
        #expect((facts.btf != nil) == expected.btf)
        #expect(facts.headers.count == expected.headers)
        #expect(facts.problems.isEmpty)
        // The JSON form carries the same numbers.
        #expect(facts.json["version_code"]?.intValue == Int64(expected.code))
        #expect(facts.json["cgroup_mode"]?.stringValue == expected.cgroupMode.rawValue)
    }

    @Test("v1 controllers map to their mount points, co-mounted ones included")
    func v1Controllers() {
        let facts = KernelFacts.gather(host: HostRoot(Fixtures.host("amazonlinux2")))
        #expect(facts.cgroups.v1Controllers["memory"] == "/sys/fs/cgroup/memory")
        #expect(facts.cgroups.v1Controllers["cpu"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(facts.cgroups.v1Controllers["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(facts.cgroups.v1Controllers["systemd"] == nil)
        #expect(facts.cgroups.v2MountPoint == nil)
        #expect(facts.tracefs == "/sys/kernel/debug/tracing")
        let hybrid = KernelFacts.gather(host: HostRoot(Fixtures.host("debian10")))
        #expect(hybrid.cgroups.v2MountPoint == "/sys/fs/cgroup/unified")
        #expect(hybrid.cgroups.memoryHierarchy?.version == 1)
        let v2 = KernelFacts.gather(host: HostRoot(Fixtures.host("bottlerocket")))
        #expect(v2.cgroups.memoryHierarchy?.version == 2)
        #expect(v2.cgroups.memoryHierarchy?.mountPoint == "/sys/fs/cgroup")
    }

    @Test("an empty host root gives unknowns and problems, not a crash")
    func emptyHost() {
        let facts = KernelFacts.gather(host: HostRoot(Fixtures.host("empty")))
        #expect(facts.release == nil)
        #expect(facts.kernelVersion == nil)
        #expect(facts.btf == nil)
        #expect(!facts.problems.isEmpty)
        #expect(facts.json["version_code"] == .null)
    }

    @Test("garbage files give unknowns, not a crash")
    func garbageHost() {
        let facts = KernelFacts.gather(host: HostRoot(Fixtures.host("garbage")))
        #expect(facts.kernelVersion == nil)
        #expect(facts.os.id == nil)
        #expect(facts.cgroups.v1Controllers.isEmpty)
        let huge = KernelFacts.gather(host: HostRoot(Fixtures.host("huge")))
        #expect(huge.kernelVersion == nil)
    }

    @Test("a missing host root is handled")
    func missingHost() {
        let facts = KernelFacts.gather(host: HostRoot("/nonexistent/pgnode-host-root"))
        #expect(facts.release == nil)
        #expect(!facts.problems.isEmpty)
    }
}

@Suite("Kernel facts of this machine")
struct LiveKernelFactsTests {
    @Test("the real root: statfs detection and a version code")
    func live() throws {
        let facts = KernelFacts.gather(host: HostRoot("/"))
        #expect(facts.cgroups.detectedBy == "statfs")
        let release = try #require(facts.release)
        let parsed = try #require(KernelVersion.fromRelease(release))
        #expect(facts.kernelVersion?.code == parsed.code || facts.kernelVersion?.source != .release)
        #expect(facts.pageSize >= 4096)
    }
}
