import Checks
import PGNodeModel
import Testing

@Suite("writeback.throttle: facts in, finding out")
struct WritebackThrottleCheckTests {
    typealias Report = WritebackThrottleReport
    static let window: Int64 = 10_000_000_000

    static func backend(_ paused: Int64, max: Int64 = 10_000_000, pid: Int32 = 100) -> Report.Process {
        .init(
            pid: pid, role: "client backend", command: "postgres", containerPID: 42, pauses: 5,
            pausedNanoseconds: paused, maxPauseNanoseconds: max)
    }

    static func device(paused: Int64, max: Int64 = 10_000_000, strict: Int64? = 1) -> Report.Device {
        .init(
            bdi: "7:3", name: "loop3", strictLimit: strict, maxBytes: 2 << 20, maxRatio: 1, pauses: 5,
            pausedNanoseconds: paused, maxPauseNanoseconds: max, dirtyBytes: 3 << 20, limitBytes: 400 << 20,
            wbDirtyBytes: 1 << 20, wbSetpointBytes: 512 << 10, pid: 100, writebackCgroupInode: 1)
    }

    @Test("no pause: ok, with the node's and the server's facts in the evidence")
    func idle() throws {
        let o = WritebackThrottleCheck.evaluate(
            Report(
                processes: [], devices: [], windowNanoseconds: Self.window, vmDirty: ["dirty_ratio": 20],
                memoryLimitBytes: 1 << 30, cgroupVersion: 1,
                flushAfter: ["backend_flush_after": .success(SettingValue(0, source: "default"))]))
        #expect(o.severity == .ok)
        #expect(o.evidence["pauses"] == .int(0))
        #expect(o.evidence["vm"]?["vm.dirty_ratio"] == .int(20))
        #expect(o.evidence["settings"]?["backend_flush_after"]?["value"] == .int(0))
        #expect(o.evidence["settings"]?["wal_writer_flush_after"] == .null)
        #expect(o.remedy.isEmpty)
    }

    @Test("a client backend paused 1 % of the window or more: warning; 10 %: critical")
    func backendFraction() {
        let warn = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(200_000_000)], devices: [Self.device(paused: 200_000_000)],
                windowNanoseconds: Self.window))
        #expect(warn.severity == .warning)
        #expect(warn.summary.contains("loop3"), "\(warn.summary)")
        #expect(warn.summary.contains("client backend"), "\(warn.summary)")
        let critical = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(1_000_000_000)], devices: [Self.device(paused: 1_000_000_000)],
                windowNanoseconds: Self.window))
        #expect(critical.severity == .critical)
        let info = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(50_000_000)], devices: [Self.device(paused: 50_000_000)],
                windowNanoseconds: Self.window))
        #expect(info.severity == .info)
    }

    @Test("one pause over 100 ms is a warning whoever took it; others' short pauses are info")
    func singlePause() {
        var checkpointer = Self.backend(150_000_000, max: 150_000_000)
        checkpointer.role = "checkpointer"
        let o = WritebackThrottleCheck.evaluate(
            Report(
                processes: [checkpointer], devices: [Self.device(paused: 150_000_000, max: 150_000_000)],
                windowNanoseconds: Self.window))
        #expect(o.severity == .warning)
        checkpointer.maxPauseNanoseconds = 20_000_000
        let short = WritebackThrottleCheck.evaluate(
            Report(
                processes: [checkpointer], devices: [Self.device(paused: 150_000_000, max: 20_000_000)],
                windowNanoseconds: Self.window))
        #expect(short.severity == .info, "a checkpointer's pauses delay no query directly")
    }

    @Test("evidence: per process and per device, with the dirty state at the longest pause")
    func evidence() throws {
        let o = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(200_000_000), Self.backend(1_000_000, pid: 101)],
                devices: [Self.device(paused: 201_000_000)], windowNanoseconds: Self.window,
                flushAfter: ["backend_flush_after": .success(SettingValue(262_144, source: "postgresql.conf:3"))]))
        let byPID = try #require(o.evidence["by_pid"]?.arrayValue)
        #expect(byPID.count == 2)
        #expect(byPID[0]["pid"] == .int(100) && byPID[0]["role"] == "client backend")
        #expect(byPID[0]["container_pid"] == .int(42) && byPID[0]["pauses"] == .int(5))
        let device = try #require(o.evidence["devices"]?.arrayValue?.first)
        #expect(device["bdi"] == "7:3" && device["name"] == "loop3")
        #expect(device["strict_limit"] == .int(1) && device["max_bytes"] == .int(2 << 20))
        #expect(device["at_max_pause"]?["wb_dirty_bytes"] == .int(1 << 20))
        #expect(device["at_max_pause"]?["limit_bytes"] == .int(400 << 20))
        #expect(device["at_max_pause"]?["wb_cgroup_ino"] == .int(1))
        #expect(o.evidence["pauses"] == .int(5) && o.evidence["paused_ns"] == .int(201_000_000))
        let remedy = o.remedy
        #expect(remedy.contains("backend_flush_after is 256kB (postgresql.conf:3)"), "\(remedy)")
        #expect(remedy.contains("strict_limit=1"), "\(remedy)")
        #expect(remedy.contains("vm.dirty_background_bytes"), "\(remedy)")
    }

    @Test("remedy: backend_flush_after off, the v2 memory limit, no device advice without strict_limit")
    func remedy() throws {
        let o = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(200_000_000)], devices: [Self.device(paused: 200_000_000, strict: 0)],
                windowNanoseconds: Self.window, cgroupVersion: 2,
                flushAfter: ["backend_flush_after": .success(SettingValue(0, source: "default"))]))
        let remedy = o.remedy
        #expect(remedy.contains("Set backend_flush_after (256kB–2MB)"), "\(remedy)")
        #expect(remedy.contains("larger memory limit"), "\(remedy)")
        #expect(!remedy.contains("strict_limit"), "\(remedy)")
    }

    @Test("an invalid setting is reported as such, never as a number")
    func invalid() {
        let invalid = InvalidSetting(
            name: "backend_flush_after", text: "3MB", source: "postgresql.conf:9",
            reason: "384 8kB is outside the valid range for parameter \"backend_flush_after\" (0 .. 256)")
        let o = WritebackThrottleCheck.evaluate(
            Report(
                processes: [Self.backend(200_000_000)], devices: [Self.device(paused: 200_000_000)],
                windowNanoseconds: Self.window, flushAfter: ["backend_flush_after": .failure(invalid)]))
        #expect(o.evidence["settings"]?["backend_flush_after"]?["invalid_value"] == "3MB")
        #expect(o.evidence["settings"]?["backend_flush_after"]?["value"] == .null)
    }

    @Test("pauses in a window of no length: unavailable")
    func noWindow() {
        let o = WritebackThrottleCheck.evaluate(
            Report(processes: [Self.backend(1)], devices: [Self.device(paused: 1)], windowNanoseconds: 0))
        #expect(o.severity == .unavailable)
    }
}
