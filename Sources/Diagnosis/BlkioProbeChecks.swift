import Checks
import PGNodeModel
import Probes

/// `blkio.noise` from the blkio probe's window.
extension BlkioProbe: ProbeCheckFeeding {
    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        [
            BlockNoiseCheck.evaluate(
                ProbeReports.blkio(
                    context.window.results.blkio[slot] ?? BlkioResult(), devices: context.devices,
                    names: context.cgroupNames))
        ]
    }
}

extension ProbeReports {
    /// The blkio probe's result as the `blkio.noise` report, naming neighbours with `names`.
    /// `devices` are the node's disks (sysfs); the report keeps those the target's requests went
    /// to, with their request counts (a device sysfs does not list keeps only its number).
    public static func blkio(
        _ result: BlkioResult, devices: [BlockNoiseReport.Device], names: CgroupNames
    ) -> BlockNoiseReport {
        BlockNoiseReport(
            devices: usedDevices(result.devices, known: devices), ownRequests: Int64(clamping: result.ownRequests),
            noiseRequests: Int64(clamping: result.noiseRequests),
            ownLatency: Log2Histogram(counts: result.ownLatencyUs),
            noiseLatency: Log2Histogram(counts: result.noiseLatencyUs),
            neighbours: result.neighbours.map { names.neighbour($0.cgroup, requests: Int64(clamping: $0.requests)) })
    }

    /// The devices of `used` (what the probe recorded), described by the matching `known` one.
    public static func usedDevices(_ used: [BlkioResult.Device], known: [BlockNoiseReport.Device])
        -> [BlockNoiseReport.Device]
    {
        used.map { device in
            var described =
                known.first { $0.dev == device.majorMinor }
                ?? BlockNoiseReport.Device(dev: device.majorMinor, name: nil, scheduler: nil, hardwareQueues: nil)
            described.requests = Int64(clamping: device.ownRequests)
            described.noiseRequests = Int64(clamping: device.noiseRequests)
            return described
        }
    }
}
