import Foundation
import HostFacts
import TestSupport
import Testing

@Suite("Writeback facts: vm.dirty_* and /sys/class/bdi")
struct WritebackFactsTests {
    @Test("vm.dirty_* of this project's test machine, copied")
    func dirtyLimits() {
        let limits = DirtyPageLimits.read(host: HostRoot(Fixtures.node("vm-6.18")))
        #expect(limits.problems.isEmpty, "\(limits.problems)")
        #expect(limits.values["dirty_ratio"] == 20)
        #expect(limits.values["dirty_background_ratio"] == 10)
        #expect(limits.values["dirty_bytes"] == 0)
        #expect(limits.values["dirty_background_bytes"] == 0)
        #expect(limits.values["dirty_expire_centisecs"] == 3000)
        #expect(limits.values["dirty_writeback_centisecs"] == 500)
    }

    @Test("a loop device's bdi, and its block device by /sys/dev/block")
    func backingDevice() {
        let device = BackingDevice.read(host: HostRoot(Fixtures.node("vm-6.18")), name: "7:0")
        #expect(device.problems.isEmpty, "\(device.problems)")
        #expect(device.blockDevice == "loop0")
        #expect(device.strictLimit == 0)
        #expect(device.maxBytes == 4_538_912_768)
        #expect(device.maxRatio == 100)
        #expect(device.minRatio == 0)
        #expect(device.readAheadKB == 128)
    }

    @Test("names that are not a bdi's are never read", arguments: ["", ".", "..", "../7:0", "7:0/..", "a/b", "x\n"])
    func names(name: String) {
        #expect(!BackingDevice.isValidName(name))
        let device = BackingDevice.read(host: HostRoot(Fixtures.node("vm-6.18")), name: name)
        #expect(device.strictLimit == nil)
        #expect(device.problems.count == 1)
    }

    @Test("a missing bdi and missing vm files are problems, not errors")
    func missing() {
        let host = HostRoot(Fixtures.node("acpi-pm"))
        let device = BackingDevice.read(host: host, name: "7:0")
        #expect(device.strictLimit == nil && device.problems.count == 1)
        let limits = DirtyPageLimits.read(host: host)
        #expect(limits.values.isEmpty)
        #expect(limits.problems.count == DirtyPageLimits.names.count)
    }

    @Test("hostile files: a FIFO is refused without blocking, garbage and negatives are problems")
    func hostile() throws {
        let root = try Fixtures.temporaryDirectory("pgnode-writeback")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/proc/sys/vm", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/sys/class/bdi/7:1", withIntermediateDirectories: true)
        #expect(mkfifo(root + "/proc/sys/vm/dirty_ratio", 0o600) == 0)
        try "-5\n".write(toFile: root + "/proc/sys/vm/dirty_bytes", atomically: false, encoding: .utf8)
        try "99999999999999999999999\n".write(
            toFile: root + "/proc/sys/vm/dirty_background_bytes", atomically: false, encoding: .utf8)
        try String(repeating: "1", count: 10_000).write(
            toFile: root + "/proc/sys/vm/dirty_background_ratio", atomically: false, encoding: .utf8)
        #expect(mkfifo(root + "/sys/class/bdi/7:1/strict_limit", 0o600) == 0)
        try "lots\n".write(toFile: root + "/sys/class/bdi/7:1/max_bytes", atomically: false, encoding: .utf8)
        let limits = DirtyPageLimits.read(host: HostRoot(root))
        for name in ["dirty_ratio", "dirty_bytes", "dirty_background_bytes", "dirty_background_ratio"] {
            #expect(limits.values[name] == nil, "\(name)")
        }
        #expect(limits.problems.count == DirtyPageLimits.names.count)
        let device = BackingDevice.read(host: HostRoot(root), name: "7:1")
        #expect(device.strictLimit == nil && device.maxBytes == nil && device.blockDevice == nil)
        #expect(device.problems.count == 5)
    }
}
