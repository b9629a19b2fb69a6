import Checks
import HostFacts
import PGNodeModel
import Probes
import Resolution

/// `writeback.throttle` from the writeback probe's window, with the node's `vm.dirty_*`, the
/// devices' `/sys/class/bdi` knobs, the container's memory cgroup and the server's
/// `*_flush_after` settings, read now.
extension WritebackProbe: ProbeCheckFeeding {
    public static func processes(slot: Int, in results: ProbeResults) -> [Int32] {
        (results.writeback[slot]?.threads ?? []).map { Int32(bitPattern: $0.tgid) }
    }

    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] {
        let result = context.window.results.writeback[slot] ?? WritebackResult()
        context.step("/proc/sys/vm/dirty_* and /sys/class/bdi (writeback.throttle)")
        let vm = DirtyPageLimits.read(host: context.host)
        let devices = result.devices.prefix(ProbeReports.writebackDeviceLimit).map {
            BackingDevice.read(host: context.host, name: $0.bdi)
        }
        context.step("the memory cgroup (writeback.throttle)")
        let memory = try? MemoryFactsReader.read(resolution: context.resolution, host: context.host).get()
        var report = ProbeReports.writeback(
            result, names: context.processNames, pageSize: context.pageSize,
            windowNanoseconds: context.window.nanoseconds, devices: Array(devices))
        report.vmDirty = vm.values
        report.memoryLimitBytes = memory?.limitBytes
        report.memoryDirtyBytes = memory?.dirtyBytes
        report.cgroupVersion = memory?.version
        report.flushAfter = ProbeReports.flushAfter(context.resolution.postgres.first)
        return [WritebackThrottleCheck.evaluate(report)]
    }
}

extension ProbeReports {
    /// The devices of one window whose `/sys/class/bdi` knobs are read (the map holds at most
    /// 1024 entries across targets; one container rarely writes to more than a few).
    public static let writebackDeviceLimit = 32

    /// The writeback probe's entries as the `writeback.throttle` report, per process, named by
    /// `names` (falling back on the command name the probe recorded), its devices joined with the
    /// knobs read in `devices` (by bdi name); page counts become bytes of `pageSize`.
    public static func writeback(
        _ result: WritebackResult, names: ProcessNames, pageSize: Int, windowNanoseconds: Int64,
        devices knobs: [BackingDevice] = []
    ) -> WritebackThrottleReport {
        var byProcess: [Int32: WritebackThrottleReport.Process] = [:]
        for thread in result.threads {
            let pid = Int32(bitPattern: thread.tgid)
            let name = names.byPID[pid]
            var p =
                byProcess[pid]
                ?? WritebackThrottleReport.Process(
                    pid: pid, role: name?.role, command: name?.command ?? (thread.comm.isEmpty ? nil : thread.comm),
                    containerPID: name?.namespacePID, pauses: 0, pausedNanoseconds: 0, maxPauseNanoseconds: 0)
            // Per-thread counters from a BPF map, summed saturating (flagged in the evidence if one
            // reaches Int64.max).
            p.pauses = p.pauses.addingSaturating(Int64(clamping: thread.pauses))
            p.pausedNanoseconds = p.pausedNanoseconds.addingSaturating(Int64(clamping: thread.pausedNs))
            p.maxPauseNanoseconds = max(p.maxPauseNanoseconds, Int64(clamping: thread.maxPauseNs))
            byProcess[pid] = p
        }
        let page = Int64(max(pageSize, 1))
        func bytes(_ pages: UInt64) -> Int64 { Int64(clamping: pages).multipliedSaturating(by: page) }
        let devices = result.devices.map { d in
            let knob = knobs.first { $0.name == d.bdi }
            return WritebackThrottleReport.Device(
                bdi: d.bdi, name: knob?.blockDevice, strictLimit: knob?.strictLimit, maxBytes: knob?.maxBytes,
                maxRatio: knob?.maxRatio, pauses: Int64(clamping: d.pauses),
                pausedNanoseconds: Int64(clamping: d.pausedNs),
                maxPauseNanoseconds: Int64(clamping: d.maxPauseNs), dirtyBytes: bytes(d.dirty),
                limitBytes: bytes(d.limit), wbDirtyBytes: bytes(d.wbDirty), wbSetpointBytes: bytes(d.wbSetpoint),
                pid: Int32(bitPattern: d.tgid), writebackCgroupInode: Int64(clamping: d.cgroupInode))
        }
        return WritebackThrottleReport(
            processes: Array(byProcess.values), devices: devices, windowNanoseconds: windowNanoseconds)
    }

    /// The server's `*_flush_after` settings in bytes, by name (nil values when unknown).
    public static func flushAfter(_ server: PostgresServer?) -> [String: WritebackThrottleReport.Setting] {
        var settings: [String: WritebackThrottleReport.Setting] = [:]
        for name in WritebackThrottleCheck.flushAfterSettings {
            guard let s = server?.setting(name) else {
                settings[name] = .some(nil)
                continue
            }
            if let error = s.error {
                settings[name] = .failure(InvalidSetting(name: name, text: s.value, source: s.source, reason: error))
            } else if let bytes = s.bytes {
                settings[name] = .success(SettingValue(bytes, source: s.source))
            } else {
                settings[name] = .some(nil)
            }
        }
        return settings
    }
}
