import Checks
import Diagnosis
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import Testing

@testable import Probes

/// What the probes aggregated in their BPF maps, at the bounds of its types (UInt64.max counts,
/// sizes and times, UInt32.max pids), through `ProbeReports` into the checks: conversions clamp,
/// sums saturate and are flagged, nothing traps.
@Suite("BPF map values at their bounds, through ProbeReports into the checks")
struct ProbeReportsExtremeTests {
    static func resolution() throws -> (FixtureHost, Resolution) {
        let fixture = try FixtureHost(mounts: "v2")
        let id = FixtureIDs.container
        let path = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-\(id).scope"
        try FixtureHostTests.addServer(fixture, id: id, cgroup: "0::\(path)\n")
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        try fixture.cgroupDirectories(path, hierarchies: ["sys/fs/cgroup"], procs: [4242, 4243, 4244, 4245, 4246])
        return (fixture, try ContainerResolver(host: fixture.host).resolve(ContainerReference.parse(id)))
    }

    /// The evidence is JSON, and every value at a 64-bit bound is listed in `saturated`.
    func expectFlagged(_ o: Observation, _ keys: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(
            (try? JSONParser.parse(JSONWriter.string(.object(o.evidence)))) != nil, sourceLocation: sourceLocation)
        let flagged = Set(o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        for key in keys { #expect(flagged.contains(key), "\(key) not in \(flagged)", sourceLocation: sourceLocation) }
    }

    @Test("shm: sizes, counts and times at UInt64.max, pids at UInt32.max")
    func shm() throws {
        let (_, resolution) = try Self.resolution()
        var result = ShmResult()
        result.peakBytes = .min
        for tgid in [UInt32.max, 4243] {
            result.failed.append(
                ShmResult.Failure(
                    tgid: tgid, pid: .max, comm: "postgres", sizeBytes: .max, count: .max, syscall: "fallocate",
                    firstNs: .max, lastNs: 0, namespaceTGID: .max,
                    title: "postgres: parallel worker for PID 99999999999999999999"))
        }
        let report = ProbeReports.shm(
            result, roles: ProcessNames(resolution).roles, namespacePIDs: [.max: .min], clock: ProbeReports.Clock(),
            shmUsedPeakBytes: .max)
        #expect(report.failures.map(\.requestedBytes) == [.max, .max])
        #expect(report.failures.first?.pid == -1 && report.dsmPeakBytes == 0)
        let o = ShmEnospcCheck.evaluate(report, shmSizeBytes: .max)
        #expect(o.severity == .critical)
        #expect(o.evidence["failures"] == .int(.max))
        expectFlagged(o, ["failures", "failed_request_bytes[0]", "shm_used_peak_bytes", "shm_size_bytes"])
        #expect(o.remedy.contains("Mi"))
        _ = ProbeReports.Clock().wall(.max).rfc3339
    }

    @Test("reclaim: per-thread counters at UInt64.max, summed per process")
    func reclaim() throws {
        let (_, resolution) = try Self.resolution()
        let entries = [4243, 4243, 4244].map { pid in
            ReclaimEntry(
                pid: UInt32(pid), tgid: UInt32(pid), comm: "postgres", memcgEvents: .max, directEvents: .max,
                reclaimedPages: .max, stallNs: .max)
        }
        let report = ProbeReports.reclaim(
            entries, names: ProcessNames(resolution), pageSize: 65536, windowNanoseconds: 1_000_000_000)
        #expect(report.processes.count == 2)
        #expect(
            report.processes.allSatisfy {
                $0.events == .max && $0.reclaimedBytes == .max && $0.stallNanoseconds == .max
            })
        let o = MemoryReclaimCheck.evaluate(report)
        #expect(o.severity == .critical)
        expectFlagged(o, ["events", "reclaimed_bytes", "stall_ns", "by_pid[0].events"])
    }

    @Test("writeback: pauses, times and page counts at UInt64.max, pids at UInt32.max")
    func writeback() throws {
        let (_, resolution) = try Self.resolution()
        let threads = [4243, 4243, 4244, Int(UInt32.max)].map { pid in
            WritebackThread(
                pid: UInt32(pid), tgid: UInt32(pid), comm: "postgres", pauses: .max, pausedNs: .max, maxPauseNs: .max)
        }
        let devices = ["7:0", "253:1"].map {
            WritebackDevice(
                bdi: $0, pauses: .max, pausedNs: .max, maxPauseNs: .max, periodNs: .max, pausedBeforeNs: .max,
                dirty: .max, limit: .max, setpoint: .max, wbDirty: .max, wbSetpoint: .max, cgroupInode: .max,
                tgid: .max)
        }
        let report = ProbeReports.writeback(
            WritebackResult(threads: threads, devices: devices), names: ProcessNames(resolution), pageSize: 65536,
            windowNanoseconds: 1_000_000_000)
        #expect(report.processes.count == 3)
        #expect(report.processes.allSatisfy { $0.pauses == .max && $0.pausedNanoseconds == .max })
        #expect(report.devices.allSatisfy { $0.dirtyBytes == .max && $0.limitBytes == .max && $0.pid == -1 })
        let o = WritebackThrottleCheck.evaluate(report)
        #expect(o.severity == .critical || o.severity == .warning)
        expectFlagged(o, ["pauses", "paused_ns", "max_pause_ns"])
    }

    @Test("blkio: requests and latency counts at UInt64.max")
    func blkio() throws {
        let (fixture, resolution) = try Self.resolution()
        var result = BlkioResult()
        result.ownRequests = .max
        result.noiseRequests = .max
        result.ownLatencyUs = [UInt64](repeating: .max, count: 64)
        result.noiseLatencyUs = [.max, .max, 0, .max]
        result.neighbours = [BlkioResult.Neighbour(cgroup: CgroupRef(id: .max, kind: .v2), requests: .max)]
        result.devices = [BlkioResult.Device(dev: .max, ownRequests: .max, noiseRequests: .max)]
        let mounts = MountInfo.parse(try fixture.host.readText("proc/1/mountinfo")).entries
        let names = CgroupNames(
            host: fixture.host, layout: CgroupLayout.detect(host: fixture.host, mounts: mounts), known: [resolution])
        let report = ProbeReports.blkio(result, devices: [], names: names)
        #expect(report.ownRequests == .max && report.neighbours.first?.requests == .max)
        let o = BlockNoiseCheck.evaluate(report)
        expectFlagged(o, ["own_requests", "noise_requests", "neighbours[0].requests", "devices[0].requests"])
        #expect(o.evidence["own_p50_us"] != nil)
    }
}
