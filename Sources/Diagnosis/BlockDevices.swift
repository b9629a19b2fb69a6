import Checks
import HostFacts

/// The node's block devices as sysfs describes them: `MAJ:MIN`, name, active I/O scheduler and
/// number of blk-mq hardware queues.
public enum BlockDevices {
    /// Every whole disk under `sys/block` (partitions share their disk's queue), skipping loop
    /// and ram devices with no I/O.
    public static func read(host: HostRoot) -> [BlockNoiseReport.Device] {
        guard let names = try? host.list("sys/block") else { return [] }
        var devices: [BlockNoiseReport.Device] = []
        for name in names.sorted() where !name.hasPrefix("loop") && !name.hasPrefix("ram") {
            let base = "sys/block/\(name)"
            guard let dev = try? host.readLine(base + "/dev") else { continue }
            let scheduler = (try? host.readLine(base + "/queue/scheduler")).flatMap(activeScheduler)
            let queues = (try? host.list(base + "/mq")).map { $0.filter { Int($0) != nil }.count }
            devices.append(
                BlockNoiseReport.Device(dev: dev, name: name, scheduler: scheduler, hardwareQueues: queues))
        }
        return devices
    }

    /// `[mq-deadline] kyber none` → `mq-deadline`; `none` alone → `none`.
    public static func activeScheduler(_ text: String) -> String? {
        let words = text.split(separator: " ")
        if let chosen = words.first(where: { $0.hasPrefix("[") && $0.hasSuffix("]") }) {
            return String(chosen.dropFirst().dropLast())
        }
        return words.count == 1 ? String(words[0]) : nil
    }
}
