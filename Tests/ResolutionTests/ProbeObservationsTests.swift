import Checks
import Diagnosis
import HostFacts
import PGNodeModel
import Probes
import Resolution
import Testing

/// The probe checks of one container as `ContainerDiagnosis` emits them from a window's statuses:
/// the `unavailable` observations are those production writes, not a helper's text.
@Suite("probe checks from the window's probe statuses")
struct ProbeObservationsTests {
    func observations(_ statuses: [ProbeStatus], results: ProbeResults = ProbeResults()) throws -> [Observation] {
        let (fixture, resolution) = try ProbeReportsExtremeTests.resolution()
        let mounts = MountInfo.parse(try fixture.host.readText("proc/1/mountinfo")).entries
        let names = CgroupNames(
            host: fixture.host, layout: CgroupLayout.detect(host: fixture.host, mounts: mounts), known: [resolution])
        return ContainerDiagnosis.probeObservations(
            resolution, index: 0, host: fixture.host,
            window: ProbeWindow(results: results, statuses: statuses, nanoseconds: 1_000_000_000), names: names,
            pageSize: 4096, clock: ProbeReports.Clock(), devices: [])
    }

    @Test("a probe that does not run: each check it feeds is unavailable with the reason the plan or libbpf gave")
    func notRunning() throws {
        let o = try observations([
            ProbeStatus(
                name: ReclaimProbe.name, checks: ReclaimProbe.checks, running: false, reason: "pgnode lacks CAP_BPF"),
            ProbeStatus(name: BlkioProbe.name, checks: BlkioProbe.checks, running: false),
        ])
        #expect(o.map(\.check) == ["memory.reclaim", "blkio.noise"])
        #expect(o.allSatisfy { $0.severity == .unavailable })
        #expect(o[0].evidence["reason"]?.stringValue == "pgnode lacks CAP_BPF")
        #expect(o[0].evidence["probe"]?.stringValue == "reclaim")
        #expect(o[1].evidence["reason"]?.stringValue == "the blkio probe is not running")
        #expect(o[1].evidence["probe"]?.stringValue == "blkio")
    }

    @Test("a running probe that cannot watch the target: its checks are unavailable with why; the others are fed")
    func unwatched() throws {
        var results = ProbeResults()
        results.shmUnwatched[0] = "the server maps no C library"
        let o = try observations(
            [
                ProbeStatus(name: ShmProbe.name, checks: ShmProbe.checks, running: true),
                ProbeStatus(name: BlkioProbe.name, checks: BlkioProbe.checks, running: true),
            ], results: results)
        #expect(o.map(\.check) == ["shm.enospc", "blkio.noise"])
        #expect(o[0].severity == .unavailable)
        #expect(o[0].evidence["reason"]?.stringValue == "the server maps no C library")
        #expect(o[0].evidence["probe"]?.stringValue == "shm")
        #expect(o[1].severity != .unavailable)
    }

    @Test("a container without a probe slot: every probe check unavailable, saying so")
    func unfollowed() {
        let o = ContainerDiagnosis.unfollowedObservations(
            statuses: [ProbeStatus(name: ShmProbe.name, checks: ShmProbe.checks, running: true)], slots: 64)
        #expect(o.map(\.check) == ["shm.enospc"])
        #expect(
            o.first?.evidence["reason"]?.stringValue
                == "the probes follow at most 64 containers at once on a node and this one has no slot")
    }
}
