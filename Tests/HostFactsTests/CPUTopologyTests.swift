import Foundation
import TestSupport
import Testing

@testable import HostFacts

@Suite("CPU topology and cpusets: CPU lists, sysfs of this machine, faithful fixtures with 2 LLCs and 2 NUMA nodes")
struct CPUTopologyTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/HostFactsTests/Fixtures/topology")
        .path

    @Test("CPU lists: the forms sysfs prints parse, anything else is refused")
    func cpuLists() {
        #expect(CPUList.parse("0-3,8-11\n") == [0, 1, 2, 3, 8, 9, 10, 11])
        #expect(CPUList.parse("0") == [0])
        #expect(CPUList.parse("0-1,4-5") == [0, 1, 4, 5])
        #expect(CPUList.parse("") == [])
        #expect(CPUList.parse("\n") == [])
        #expect(CPUList.parse("2,0-2") == [0, 1, 2])
        #expect(CPUList.parse("8191") == [8191])
        for bad in [
            "3-1", "a", "0-", "-1", "0,,1", "0-3:2/4", "8192", "0-99999999999999999999", " 1 2", "+1", "0x1", "1-2-3",
        ] {
            #expect(CPUList.parse(bad) == nil, "\(bad)")
        }
        #expect(CPUList.parse(String(repeating: "0,", count: CPUList.textLimit)) == nil)
    }

    @Test("formatting a list in the kernel's form, and back")
    func format() {
        #expect(CPUList.format([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11")
        #expect(CPUList.format([]) == "")
        #expect(CPUList.format([5]) == "5")
        for text in ["0-3,8-11", "0,2,4", "7"] { #expect(CPUList.parse(text).map(CPUList.format) == text) }
    }

    @Test("two sockets: 8 CPUs, one LLC and one NUMA node each, a memory-only node, cpufreq beside the CPUs")
    func twoSockets() throws {
        let topology = try CPUTopology.read(host: HostRoot(Self.fixtures + "/two-sockets"))
        #expect(topology.cpus == Array(0...7))
        #expect((0...3).allSatisfy { topology.lastLevelCache[$0] == 0 && topology.node[$0] == 0 })
        #expect((4...7).allSatisfy { topology.lastLevelCache[$0] == 1 && topology.node[$0] == 1 })
        #expect(topology.lastLevelCaches(of: topology.cpus) == 2 && topology.nodes(of: topology.cpus) == 2)
        #expect(topology.lastLevelCaches(of: [2, 3]) == 1 && topology.nodes(of: [3, 4]) == 2)
    }

    @Test(
        "two CCXs on one node, SMT siblings interleaved, no cache id files (before 4.14): the lowest CPU names the LLC")
    func twoCCX() throws {
        let topology = try CPUTopology.read(host: HostRoot(Self.fixtures + "/two-ccx"))
        #expect(topology.cpus == Array(0...7))
        #expect([0, 1, 4, 5].allSatisfy { topology.lastLevelCache[$0] == 0 })
        #expect([2, 3, 6, 7].allSatisfy { topology.lastLevelCache[$0] == 2 })
        #expect(topology.lastLevelCaches(of: topology.cpus) == 2 && topology.nodes(of: topology.cpus) == 1)
    }

    @Test("this machine: every CPU has a last-level cache and a node; one LLC")
    func thisMachine() throws {
        let topology = try CPUTopology.read(host: HostRoot())
        let online = try CPUList.parse(String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8))
        #expect(topology.cpus == online)
        #expect(topology.cpus.allSatisfy { topology.lastLevelCache[$0] != nil && topology.node[$0] != nil })
        #expect(topology.lastLevelCaches(of: topology.cpus) == 1)
    }

    @Test("hostile sysfs: a FIFO for a list does not block, a list without its own CPU, a huge file, junk names")
    func hostile() throws {
        let root = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        func write(_ relative: String, _ text: String) throws {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        }
        let cpu = "sys/devices/system/cpu"
        try FileManager.default.createDirectory(
            atPath: "\(root)/\(cpu)/cpu0/cache/index3", withIntermediateDirectories: true)
        try #require(mkfifo("\(root)/\(cpu)/cpu0/cache/index3/shared_cpu_list", 0o644) == 0)
        try write("\(cpu)/cpu1/cache/index3/shared_cpu_list", "2-3\n")
        try write("\(cpu)/cpu2/cache/index3/shared_cpu_list", String(repeating: "2,", count: 40_000) + "2\n")
        try write("\(cpu)/cpu3/cache/index3/shared_cpu_list", "3\n")
        try write("\(cpu)/cpu3/cache/index3/id", "99999999999999999999999\n")
        try write("\(cpu)/cpu99999/cache/index3/shared_cpu_list", "0\n")
        try write("\(cpu)/cpux/cache/index3/shared_cpu_list", "0\n")
        try write("sys/devices/system/node/node0/cpulist", "0-8191\n")
        try write("sys/devices/system/node/node1/cpulist", "junk\n")
        try write("sys/devices/system/node/node1x/cpulist", "1\n")
        let topology = try CPUTopology.read(host: HostRoot(root))
        #expect(topology.cpus == [0, 1, 2, 3])
        #expect(topology.lastLevelCache == [3: 3])
        #expect(topology.node.count == 8192 && topology.node.values.allSatisfy { $0 == 0 })
        #expect(throws: HostReadError.self) { try CPUTopology.read(host: HostRoot(root + "/nothing")) }
    }

    @Test("cpusets: v1 effective_cpus, v1 without it, v2 cpuset.cpus.effective, junk, nothing")
    func cpusets() throws {
        let host = HostRoot(Self.fixtures + "/cpuset")
        #expect(
            try CPUSetCgroup.read(host: host, directory: "v1/kubepods/pod1/c1", version: 1)
                == CPUSetCgroup(file: "v1/kubepods/pod1/c1/cpuset.effective_cpus", cpus: [2, 3]))
        #expect(try CPUSetCgroup.read(host: host, directory: "v1-old/c", version: 1).cpus == [0, 1, 4, 5])
        #expect(
            try CPUSetCgroup.read(host: host, directory: "v2/kubepods.slice/c.scope", version: 2).cpus == Array(0...7))
        #expect(throws: CPUSetError.notACPUList(path: host.resolve("bad/c/cpuset.effective_cpus"))) {
            try CPUSetCgroup.read(host: host, directory: "bad/c", version: 1)
        }
        #expect(throws: CPUSetError.self) { try CPUSetCgroup.read(host: host, directory: "none", version: 2) }
        #expect(
            CPUSetCgroup.locate(
                v1: [("cpuset", "/kubepods/p/c", "/sys/fs/cgroup/cpuset")], v2Path: "/x", v2MountPoint: "/u")!
                == ("/sys/fs/cgroup/cpuset/kubepods/p/c", 1))
        #expect(
            CPUSetCgroup.locate(v1: [("cpu", "/a", "/c")], v2Path: "/x", v2MountPoint: "/sys/fs/cgroup")! == (
                "/sys/fs/cgroup/x", 2
            ))
        #expect(CPUSetCgroup.locate(v1: [], v2Path: nil, v2MountPoint: nil) == nil)
    }

    @Test("this machine's v1 cpuset root holds every online CPU")
    func realCPUSet() throws {
        guard FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpuset/cpuset.cpus") else { return }
        let set = try CPUSetCgroup.read(host: HostRoot(), directory: "sys/fs/cgroup/cpuset", version: 1)
        #expect(set.cpus == (try CPUTopology.read(host: HostRoot())).cpus)
    }
}
