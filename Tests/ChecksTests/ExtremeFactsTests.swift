import Checks
import HostFacts
import PGNodeModel
import TestSupport
import Testing

/// The extreme values outside input can hold, by type.
enum Extremes {
    static let int64: [Int64] = [.max, .min, .max - 1, .min + 1, 1 << 62, -(1 << 62), -1, 0, 1]
    static let int32: [Int32] = [.max, .min, -1, 0, 1]
    static let int: [Int] = [.max, .min, -1, 0, 1]
    static let uint64: [UInt64] = [.max, .max - 1, 1 << 63, 1 << 62, 0, 1]
    static let double: [Double] = [
        .nan, .infinity, -.infinity, 1e308, -1e308, 1e300, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 0,
        -0.0, -1, 1,
    ]
    static let optionalInt64: [Int64?] = [nil] + int64.map { $0 }
    static let timestamps: [Timestamp] = int64.map { Timestamp(nanoseconds: $0) }
    static let text: [String] = ["", " ", "\u{0}", "\u{FFFD}", String(repeating: "x", count: 10_000), "posix\n"]
}

/// One way of making a fact extreme: a label and the change. (The closures capture only
/// constants and key paths.)
struct Mutation<Facts>: CustomStringConvertible, @unchecked Sendable {
    var description: String
    var apply: (inout Facts) -> Void
}

/// Mutations setting the field at `keyPath` to each of `values`.
func mutations<Facts, Value>(_ name: String, _ keyPath: WritableKeyPath<Facts, Value>, _ values: [Value])
    -> [Mutation<Facts>]
{
    values.map { value in Mutation(description: "\(name) = \(value)") { $0[keyPath: keyPath] = value } }
}

/// Every mutation on its own, then all of `groups`' first mutations at once, their second ones at
/// once, and so on (every field extreme together).
func oneAtATimeAndTogether<Facts>(_ groups: [[Mutation<Facts>]]) -> [Mutation<Facts>] {
    let together = (0..<(groups.map(\.count).max() ?? 0)).map { index in
        let chosen = groups.map { $0[index % $0.count] }
        return Mutation<Facts>(description: "together: " + chosen.map(\.description).joined(separator: ", ")) {
            facts in
            for mutation in chosen { mutation.apply(&facts) }
        }
    }
    return groups.flatMap { $0 } + together
}

/// What every observation must be, whatever its facts: a summary, JSON that round-trips, a
/// reason when unavailable, and `evidence.saturated` exactly when a value sits at a 64-bit bound.
func expectSane(
    _ o: Observation, _ label: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(!o.summary.isEmpty, "\(label)", sourceLocation: sourceLocation)
    let text = JSONWriter.string(.object(o.evidence))
    #expect(
        (try? JSONParser.parse(text)) != nil, "\(label): evidence is not JSON: \(text.prefix(200))",
        sourceLocation: sourceLocation)
    if o.severity == .unavailable {
        #expect(o.evidence["reason"]?.stringValue?.isEmpty == false, "\(label)", sourceLocation: sourceLocation)
    }
    var saturated: [String] = []
    func walk(_ value: JSONValue, _ path: String) {
        switch value {
        case .int(let v) where v == .max || v == .min: saturated.append(path)
        case .array(let items): for (i, item) in items.enumerated() { walk(item, "\(path)[\(i)]") }
        case .object(let object):
            for m in object.members where m.key != "saturated" { walk(m.value, "\(path).\(m.key)") }
        default: break
        }
    }
    for member in o.evidence.members where member.key != "saturated" { walk(member.value, member.key) }
    let flagged = o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
    #expect(
        flagged == saturated, "\(label): saturated values \(saturated), flagged \(flagged)",
        sourceLocation: sourceLocation)
}

@Suite("every check's facts at extreme values: no trap, a sane observation")
struct ExtremeFactsTests {
    // MARK: shm.size

    static func shmFacts() -> ShmSizeFacts {
        ShmSizeFacts(
            mount: .success(ShmMount(sizeBytes: 64 << 20, usedBytes: 0, kind: .runtimeDefault, source: "shm")),
            dynamicSharedMemoryType: .success(SettingValue("posix", source: "default")),
            workMem: .success(SettingValue(4 << 20, source: "default")),
            hashMemMultiplier: .success(SettingValue(2.0, source: "default")),
            maxParallelWorkersPerGather: .success(SettingValue(2, source: "default")),
            maxParallelWorkers: .success(SettingValue(8, source: "default")),
            minDynamicSharedMemory: .success(SettingValue(0, source: "default")))
    }

    static func int64Setting(
        _ name: String, _ keyPath: WritableKeyPath<ShmSizeFacts, Result<SettingValue<Int64>, InvalidSetting>>
    ) -> [Mutation<ShmSizeFacts>] {
        Extremes.int64.map { v in
            Mutation(description: "\(name) = \(v)") { $0[keyPath: keyPath] = .success(SettingValue(v, source: "x")) }
        }
            + [
                Mutation(description: "\(name) invalid") {
                    $0[keyPath: keyPath] = .failure(
                        InvalidSetting(name: name, text: "1e300", source: "postgresql.conf:3", reason: "refused"))
                }
            ]
    }

    static var shmMutations: [Mutation<ShmSizeFacts>] {
        oneAtATimeAndTogether([
            Extremes.int64.map { v in
                Mutation(description: "shm size = \(v)") {
                    $0.mount = .success(ShmMount(sizeBytes: v, usedBytes: 0, kind: .runtimeDefault, source: "shm"))
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "shm used = \(v)") {
                    $0.mount = .success(ShmMount(sizeBytes: 64 << 20, usedBytes: v, kind: .other, source: nil))
                }
            },
            int64Setting("work_mem", \.workMem),
            Extremes.double.map { v in
                Mutation(description: "hash_mem_multiplier = \(v)") {
                    $0.hashMemMultiplier = .success(SettingValue(v, source: "x"))
                }
            },
            int64Setting("max_parallel_workers_per_gather", \.maxParallelWorkersPerGather),
            int64Setting("max_parallel_workers", \.maxParallelWorkers),
            int64Setting("min_dynamic_shared_memory", \.minDynamicSharedMemory),
            Extremes.text.map { v in
                Mutation(description: "dynamic_shared_memory_type = \(v.prefix(10))") {
                    $0.dynamicSharedMemoryType = .success(SettingValue(v, source: "x"))
                }
            },
        ])
    }

    @Test("shm.size", arguments: shmMutations)
    func shmSize(_ mutation: Mutation<ShmSizeFacts>) {
        var facts = Self.shmFacts()
        mutation.apply(&facts)
        let o = ShmSizeCheck.evaluate(facts)
        expectSane(o, mutation.description)
        // A setting no server can have is never computed with: the check is unavailable and says which.
        if case .success(let m) = facts.hashMemMultiplier, !(m.value.isFinite && m.value >= 0),
            case .success(let t) = facts.dynamicSharedMemoryType, t.value == "posix", case .success = facts.mount
        {
            #expect(o.severity == .unavailable, "\(mutation)")
            #expect(o.evidence["reason"]?.stringValue?.contains("hash_mem_multiplier") == true, "\(mutation)")
        }
    }

    @Test("shm.size: invalid settings are reported, never computed with; saturated estimates are flagged")
    func shmSizeSpecifics() throws {
        var facts = Self.shmFacts()
        facts.hashMemMultiplier = .failure(
            InvalidSetting(
                name: "hash_mem_multiplier", text: "1e300", source: "postgresql.conf:3",
                reason: "1e+300 is outside the valid range for parameter \"hash_mem_multiplier\" (1 .. 1000)"))
        let invalid = ShmSizeCheck.evaluate(facts)
        #expect(invalid.severity == .unavailable)
        #expect(invalid.evidence["dsm_estimate_bytes"] == nil)
        let setting = try #require(invalid.evidence["settings"]?["hash_mem_multiplier"])
        #expect(setting["invalid_value"] == "1e300" && setting["value"] == .null)
        #expect(setting["source"] == "postgresql.conf:3")
        let reason = try #require(invalid.evidence["reason"]?.stringValue)
        #expect(reason.contains("hash_mem_multiplier = '1e300' (postgresql.conf:3)"), "\(reason)")
        #expect(reason.contains("outside the valid range"), "\(reason)")

        facts = Self.shmFacts()
        facts.workMem = .success(SettingValue(.max, source: "x"))
        let huge = ShmSizeCheck.evaluate(facts)
        #expect(huge.severity == .critical)
        #expect(huge.evidence["dsm_estimate_bytes"] == .int(.max))
        let saturated = huge.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(saturated.contains("dsm_estimate_bytes") && saturated.contains("recommended_shm_bytes"))

        facts = Self.shmFacts()
        facts.workMem = .success(SettingValue(-1, source: "x"))
        #expect(ShmSizeCheck.evaluate(facts).severity == .unavailable)
    }

    // MARK: shm.enospc

    static var enospcMutations: [Mutation<ShmProbeReport>] {
        oneAtATimeAndTogether([
            Extremes.int32.map { v in Mutation(description: "pid = \(v)") { $0.failures[0].pid = v } },
            mutations("requested", \ShmProbeReport.failures[0].requestedBytes, Extremes.int64),
            mutations("count", \ShmProbeReport.failures[0].count, Extremes.int64),
            mutations("first seen", \ShmProbeReport.failures[0].firstSeen, Extremes.timestamps),
            mutations("last seen", \ShmProbeReport.failures[1].lastSeen, Extremes.timestamps),
            mutations("container pid", \ShmProbeReport.failures[0].containerPID, Extremes.int32.map { $0 }),
            mutations("leader", \ShmProbeReport.failures[1].leaderContainerPID, Extremes.int32.map { $0 }),
            mutations("dsm peak", \ShmProbeReport.dsmPeakBytes, Extremes.int64),
            mutations("shm used peak", \ShmProbeReport.shmUsedPeakBytes, Extremes.optionalInt64),
            [Mutation(description: "no failures") { $0.failures = [] }],
        ])
    }

    @Test("shm.enospc", arguments: enospcMutations)
    func shmEnospc(_ mutation: Mutation<ShmProbeReport>) {
        let t = Timestamp(nanoseconds: 1_700_000_000_000_000_000)
        var report = ShmProbeReport(
            failures: [
                .init(pid: 10, requestedBytes: 100 << 20, count: 3, firstSeen: t),
                .init(pid: 11, requestedBytes: 200 << 20, count: 1, firstSeen: t, leaderContainerPID: 1),
            ], dsmPeakBytes: 50 << 20, roles: [10: "client backend"], shmUsedPeakBytes: 60 << 20)
        mutation.apply(&report)
        for size in [nil, Int64.max, Int64.min, 0] {
            let o = ShmEnospcCheck.evaluate(report, shmSizeBytes: size)
            expectSane(o, "\(mutation), size \(String(describing: size))")
            #expect(o.severity == (report.failures.isEmpty ? .ok : .critical), "\(mutation)")
        }
    }

    // MARK: memory.limit

    nonisolated(unsafe) static let statsFields: [(String, WritableKeyPath<MemoryCgroupStats, Int64?>)] = [
        ("limit", \.limitBytes), ("usage", \.usageBytes), ("max usage", \.maxUsageBytes), ("failcnt", \.failCount),
        ("high", \.highBytes), ("low", \.lowBytes), ("min", \.minBytes), ("anon", \.anonBytes),
        ("cache", \.pageCacheBytes), ("shmem", \.shmemBytes), ("mapped", \.mappedFileBytes),
        ("inactive file", \.inactiveFileBytes), ("dirty", \.dirtyBytes), ("major faults", \.majorFaults),
        ("scanned", \.pagesScanned), ("stolen", \.pagesStolen), ("refaults", \.workingsetRefaults),
        ("oom kills", \.oomKills), ("high events", \.highEvents), ("max events", \.maxEvents),
        ("oom events", \.oomEvents), ("oom group kills", \.oomGroupKills),
    ]

    static func stats(_ change: @escaping @Sendable (inout MemoryCgroupStats) -> Void) -> (inout MemoryLimitFacts) ->
        Void
    {
        { facts in
            guard var stats = try? facts.cgroup.get() else { return }
            change(&stats)
            facts.cgroup = .success(stats)
        }
    }

    static var memoryLimitMutations: [Mutation<MemoryLimitFacts>] {
        var groups: [[Mutation<MemoryLimitFacts>]] = []
        for (name, keyPath) in statsFields {
            nonisolated(unsafe) let keyPath = keyPath
            groups.append(
                Extremes.optionalInt64.map { v in
                    Mutation(
                        description: "\(name) = \(String(describing: v))", apply: stats { $0[keyPath: keyPath] = v })
                })
        }
        groups.append(mutations("shared_buffers", \MemoryLimitFacts.sharedBuffersBytes, Extremes.optionalInt64))
        groups.append(mutations("max_connections", \MemoryLimitFacts.maxConnections, Extremes.optionalInt64))
        groups.append(mutations("work_mem", \MemoryLimitFacts.workMemBytes, Extremes.optionalInt64))
        groups.append(
            Extremes.double.map { v in
                Mutation(
                    description: "pressure avg10 = \(v)",
                    apply: stats { stats in
                        var pressure = CgroupFiles.pressure("some avg10=1 total=1\nfull avg10=1 total=1\n")
                        pressure?.some?.avg10 = v
                        pressure?.full?.avg10 = v
                        stats.pressure = pressure
                    })
            })
        groups.append(
            Extremes.int.map { v in Mutation(description: "version = \(v)", apply: stats { $0.version = v }) })
        return oneAtATimeAndTogether(groups)
    }

    @Test("memory.limit", arguments: memoryLimitMutations)
    func memoryLimit(_ mutation: Mutation<MemoryLimitFacts>) throws {
        for version in [1, 2] {
            var stats = MemoryCgroupStats(version: version)
            stats.limitBytes = 1 << 30
            stats.usageBytes = 512 << 20
            stats.inactiveFileBytes = 100 << 20
            stats.oomKills = 0
            var facts = MemoryLimitFacts(
                cgroup: .success(stats), sharedBuffersBytes: 128 << 20, maxConnections: 100, workMemBytes: 4 << 20,
                qosClass: "burstable")
            mutation.apply(&facts)
            let o = MemoryLimitCheck.evaluate(facts)
            expectSane(o, "\(mutation), v\(version)")
            if let kills = try facts.cgroup.get().oomKills, kills > 0 {
                #expect(o.severity == .critical, "\(mutation)")
            }
        }
    }

    @Test("memory.limit: a counter at the 64-bit bound is flagged; invalid settings are listed")
    func memoryLimitSpecifics() {
        var stats = MemoryCgroupStats(version: 2)
        stats.usageBytes = .max
        stats.inactiveFileBytes = .min
        let o = MemoryLimitCheck.evaluate(
            MemoryLimitFacts(
                cgroup: .success(stats), sharedBuffersBytes: nil, maxConnections: 100, workMemBytes: 4 << 20,
                qosClass: nil,
                invalidSettings: [
                    InvalidSetting(
                        name: "shared_buffers", text: "8TB", source: "postgresql.conf:9",
                        reason: "invalid value for parameter \"shared_buffers\": \"8TB\". Value exceeds integer range.")
                ]))
        #expect(o.evidence["working_set_bytes"] == .int(.max))
        #expect(o.evidence["saturated"]?.arrayValue?.contains("working_set_bytes") == true)
        #expect(o.evidence["invalid_settings"]?["shared_buffers"]?["invalid_value"] == "8TB")
        #expect(o.summary.contains("shared_buffers not known"), "\(o.summary)")
    }

    // MARK: memory.reclaim

    static var reclaimMutations: [Mutation<ReclaimReport>] {
        oneAtATimeAndTogether([
            mutations("pid", \ReclaimReport.processes[0].pid, Extremes.int32),
            mutations("events", \ReclaimReport.processes[0].events, Extremes.int64),
            mutations("reclaimed", \ReclaimReport.processes[1].reclaimedBytes, Extremes.int64),
            mutations("stall", \ReclaimReport.processes[0].stallNanoseconds, Extremes.int64),
            mutations("stall 2", \ReclaimReport.processes[1].stallNanoseconds, Extremes.int64),
            mutations("window", \ReclaimReport.windowNanoseconds, Extremes.int64),
            mutations("ns pid", \ReclaimReport.processes[1].namespacePID, Extremes.int32.map { $0 }),
        ])
    }

    @Test("memory.reclaim", arguments: reclaimMutations)
    func memoryReclaim(_ mutation: Mutation<ReclaimReport>) {
        var report = ReclaimReport(
            processes: [
                .init(pid: 1, role: "checkpointer", events: 3, reclaimedBytes: 1 << 20, stallNanoseconds: 1_000_000),
                .init(pid: 2, role: nil, events: 4, reclaimedBytes: 2 << 20, stallNanoseconds: 2_000_000),
            ], windowNanoseconds: 10_000_000_000)
        mutation.apply(&report)
        let o = MemoryReclaimCheck.evaluate(report)
        expectSane(o, mutation.description)
        if report.windowNanoseconds <= 0, o.evidence["events"]?.intValue ?? 0 > 0 {
            #expect(o.severity == .unavailable, "\(mutation)")
        }
    }

    @Test("memory.reclaim: sums saturate and are flagged")
    func reclaimSpecifics() {
        let p = ReclaimReport.Process(pid: .min, role: nil, events: .max, reclaimedBytes: .max, stallNanoseconds: .max)
        let o = MemoryReclaimCheck.evaluate(ReclaimReport(processes: [p, p], windowNanoseconds: 1_000_000_000))
        #expect(o.severity == .critical)
        #expect(o.evidence["stall_ns"] == .int(.max) && o.evidence["reclaimed_bytes"] == .int(.max))
        let saturated = o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(saturated.contains("stall_ns") && saturated.contains("by_pid[1].events"), "\(saturated)")
    }

    // MARK: cpu.migrations

    static var migrationsMutations: [Mutation<MigrationsReport>] {
        oneAtATimeAndTogether([
            mutations("migrations", \MigrationsReport.migrations, Extremes.int64),
            mutations("cross llc", \MigrationsReport.crossLLC, Extremes.int64),
            mutations("cross numa", \MigrationsReport.crossNUMA, Extremes.int64),
            mutations("unknown", \MigrationsReport.unknown, Extremes.int64),
            mutations("role migrations", \MigrationsReport.roles[0].migrations, Extremes.int64),
            mutations("role cross llc", \MigrationsReport.roles[0].crossLLC, Extremes.int64),
            mutations("role cross numa", \MigrationsReport.roles[1].crossNUMA, Extremes.int64),
            mutations("role processes", \MigrationsReport.roles[1].processes, Extremes.int64),
            mutations("window", \MigrationsReport.windowNanoseconds, Extremes.int64),
            mutations("node llcs", \MigrationsReport.nodeLastLevelCaches, Extremes.int64),
            mutations("role name", \MigrationsReport.roles[0].role, Extremes.text),
        ])
    }

    @Test("cpu.migrations", arguments: migrationsMutations)
    func cpuMigrations(_ mutation: Mutation<MigrationsReport>) {
        var report = MigrationsReport(
            migrations: 1000, withinLLC: 900, crossLLC: 80, crossNUMA: 20, unknown: 0,
            roles: [
                .init(role: "client backend", processes: 4, migrations: 900, crossLLC: 70, crossNUMA: 20),
                .init(role: "parallel worker", processes: 2, migrations: 100, crossLLC: 10, crossNUMA: 0),
            ], windowNanoseconds: 10_000_000_000, nodeLastLevelCaches: 2, nodeNUMANodes: 2,
            cpuset: .success(.init(cpus: "0-7", count: 8, lastLevelCaches: 2, nodes: 2)))
        mutation.apply(&report)
        let o = CPUMigrationsCheck.evaluate(report)
        expectSane(o, mutation.description)
        if report.windowNanoseconds <= 0 { #expect(o.severity == .unavailable, "\(mutation)") }
    }

    @Test("cpu.migrations: backends' sums saturate and are flagged")
    func migrationsSpecifics() {
        let r = MigrationsReport.Role(
            role: "client backend", processes: 1, migrations: .max, crossLLC: .max, crossNUMA: .max)
        let o = CPUMigrationsCheck.evaluate(
            MigrationsReport(
                migrations: .max, withinLLC: 0, crossLLC: .max, crossNUMA: .max, unknown: 0, roles: [r, r],
                windowNanoseconds: 1, nodeLastLevelCaches: 1, nodeNUMANodes: 1, cpuset: .failure(CheckUnavailable("x")))
        )
        #expect(o.severity == .warning)
        let saturated = o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(saturated.contains("migrations") && saturated.contains("per_role[1].cross_numa"), "\(saturated)")
    }

    // MARK: writeback.throttle

    static var writebackMutations: [Mutation<WritebackThrottleReport>] {
        oneAtATimeAndTogether([
            mutations("pid", \WritebackThrottleReport.processes[0].pid, Extremes.int32),
            mutations("pauses", \WritebackThrottleReport.processes[0].pauses, Extremes.int64),
            mutations("paused", \WritebackThrottleReport.processes[0].pausedNanoseconds, Extremes.int64),
            mutations("max pause", \WritebackThrottleReport.processes[1].maxPauseNanoseconds, Extremes.int64),
            mutations("device pauses", \WritebackThrottleReport.devices[0].pauses, Extremes.int64),
            mutations("device paused", \WritebackThrottleReport.devices[0].pausedNanoseconds, Extremes.int64),
            mutations("device max", \WritebackThrottleReport.devices[0].maxPauseNanoseconds, Extremes.int64),
            mutations("dirty", \WritebackThrottleReport.devices[0].dirtyBytes, Extremes.int64),
            mutations("limit", \WritebackThrottleReport.devices[0].limitBytes, Extremes.int64),
            mutations("max bytes", \WritebackThrottleReport.devices[0].maxBytes, Extremes.optionalInt64),
            mutations("strict", \WritebackThrottleReport.devices[0].strictLimit, Extremes.optionalInt64),
            mutations("bdi", \WritebackThrottleReport.devices[0].bdi, Extremes.text),
            mutations("window", \WritebackThrottleReport.windowNanoseconds, Extremes.int64),
            mutations("memory limit", \WritebackThrottleReport.memoryLimitBytes, Extremes.optionalInt64),
            mutations("ns pid", \WritebackThrottleReport.processes[1].containerPID, Extremes.int32.map { $0 }),
            mutations(
                "backend_flush_after", \WritebackThrottleReport.flushAfter["backend_flush_after"],
                Extremes.int64.map { .some(.success(SettingValue($0, source: "postgresql.conf:1"))) }),
        ])
    }

    static func writebackReport() -> WritebackThrottleReport {
        WritebackThrottleReport(
            processes: [
                .init(
                    pid: 1, role: "client backend", containerPID: 7, pauses: 3, pausedNanoseconds: 30_000_000,
                    maxPauseNanoseconds: 12_000_000),
                .init(
                    pid: 2, role: "checkpointer", pauses: 1, pausedNanoseconds: 4_000_000,
                    maxPauseNanoseconds: 4_000_000),
            ],
            devices: [
                .init(
                    bdi: "7:0", name: "loop0", strictLimit: 1, maxBytes: 1 << 20, pauses: 4,
                    pausedNanoseconds: 34_000_000, maxPauseNanoseconds: 12_000_000, dirtyBytes: 1 << 20,
                    limitBytes: 2 << 20)
            ], windowNanoseconds: 10_000_000_000, vmDirty: ["dirty_ratio": .max, "dirty_bytes": .min],
            memoryLimitBytes: 1 << 30, cgroupVersion: 2,
            flushAfter: ["backend_flush_after": .some(.success(SettingValue(0, source: "default")))])
    }

    @Test("writeback.throttle", arguments: writebackMutations)
    func writebackThrottle(_ mutation: Mutation<WritebackThrottleReport>) {
        var report = Self.writebackReport()
        mutation.apply(&report)
        let o = WritebackThrottleCheck.evaluate(report)
        expectSane(o, mutation.description)
        if report.windowNanoseconds <= 0, o.evidence["pauses"]?.intValue ?? 0 > 0 {
            #expect(o.severity == .unavailable, "\(mutation)")
        }
    }

    @Test("writeback.throttle: sums saturate and are flagged")
    func writebackSpecifics() {
        var report = Self.writebackReport()
        report.devices.append(report.devices[0])
        for i in report.devices.indices {
            report.devices[i].pauses = .max
            report.devices[i].pausedNanoseconds = .max
        }
        let o = WritebackThrottleCheck.evaluate(report)
        #expect(o.evidence["paused_ns"] == .int(.max) && o.evidence["pauses"] == .int(.max))
        let saturated = o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(saturated.contains("paused_ns") && saturated.contains("pauses"), "\(saturated)")
    }

    // MARK: blkio.noise

    static let histograms: [Log2Histogram] = [
        Log2Histogram(counts: []), Log2Histogram(counts: [.max, .max, .max]),
        Log2Histogram(counts: [UInt64](repeating: .max, count: 64)),
        Log2Histogram(counts: [UInt64](repeating: 1, count: 1000)),
        Log2Histogram(counts: [0, 0, 0] + [UInt64](repeating: 0, count: 60) + [.max]),
        Log2Histogram(counts: [1 << 63, 1 << 63]),
    ]

    static var blockMutations: [Mutation<BlockNoiseReport>] {
        oneAtATimeAndTogether([
            mutations("own", \BlockNoiseReport.ownRequests, Extremes.int64),
            mutations("noise", \BlockNoiseReport.noiseRequests, Extremes.int64),
            mutations("own latency", \BlockNoiseReport.ownLatency, histograms),
            mutations("noise latency", \BlockNoiseReport.noiseLatency, histograms),
            mutations("neighbour", \BlockNoiseReport.neighbours[0].requests, Extremes.int64),
            mutations("device requests", \BlockNoiseReport.devices[0].requests, Extremes.optionalInt64),
            mutations("device hw queues", \BlockNoiseReport.devices[0].hardwareQueues, Extremes.int.map { $0 }),
        ])
    }

    @Test("blkio.noise", arguments: blockMutations)
    func blockNoise(_ mutation: Mutation<BlockNoiseReport>) {
        var report = BlockNoiseReport(
            devices: [.init(dev: "254:0", name: "vda", scheduler: "mq-deadline", hardwareQueues: 2, requests: 10)],
            ownRequests: 10, noiseRequests: 50, ownLatency: Log2Histogram(counts: [0, 0, 0, 10]),
            noiseLatency: Log2Histogram(counts: [0, 0, 0, 50]),
            neighbours: [.init(cgroup: "/x", containerID: nil, podName: nil, namespace: nil, requests: 50)])
        mutation.apply(&report)
        expectSane(BlockNoiseCheck.evaluate(report), mutation.description)
        _ = BlockNoiseCheck.median(report.ownLatency)
    }

    @Test("blkio.noise: medians of histograms whose counts reach 2^64")
    func medians() {
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [.max, .max, .max])) == 2)
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [1, .max])) == 2)
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [0, 3, 1])) == 2)
        #expect(BlockNoiseCheck.median(Log2Histogram(counts: [0, 0])) == nil)
    }

    // MARK: bpf.support and kernel.*

    @Test("bpf.support and kernel checks with extreme numbers")
    func nodeChecks() throws {
        for caps in Extremes.uint64 {
            for disabled in Extremes.int {
                let env = BPFEnvironment(
                    effectiveCapabilities: caps, unprivilegedBPFDisabled: disabled,
                    kernelVersion: KernelVersion(major: .max, minor: .min, patch: .max),
                    programTypes: ["tracepoint": true, "kprobe": false], tracepoints: ["a/b": false])
                let requirement = BPFProbeRequirement(
                    name: "p", checks: ["c"], programTypes: ["kprobe"], mapTypes: [], helpers: [],
                    tracepoints: ["a/b"], needsTracefs: true)
                let o = BPFChecks.support(
                    env,
                    probes: [
                        ProbeStatus(name: requirement.name, checks: requirement.checks, running: false, reason: "x")
                    ])
                expectSane(o, "caps \(caps) disabled \(disabled)")
            }
        }
        var facts = KernelFacts.gather(host: HostRoot(Fixtures.host("bottlerocket")))
        for size in Extremes.int64 {
            facts.btf?.sizeBytes = size
            for version in [
                KernelVersion(major: .max, minor: .max, patch: .max),
                KernelVersion(major: .min, minor: -1, patch: .min),
            ] {
                facts.kernelVersion = version
                for o in KernelChecks.all(facts) { expectSane(o, "btf size \(size), version \(version)") }
            }
        }
    }
}

// MARK: memory.hugepages, memory.budget, and shm.size against the memory limit

extension ExtremeFactsTests {
    static func int64Value(_ v: Int64) -> Result<SettingValue<Int64>, InvalidSetting> {
        .success(SettingValue(v, source: "x"))
    }

    static var hugePagesMutations: [Mutation<HugePagesFacts>] {
        oneAtATimeAndTogether([
            Extremes.int64.map { v in
                Mutation(description: "segment size = \(v)") {
                    $0.segment = .success(
                        SmapsMapping(
                            start: 0, end: 0, permissions: "rw-s", inode: 1, path: "/dev/zero", deleted: true,
                            sizeBytes: v, kernelPageSizeBytes: 4096))
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "segment page = \(v)") {
                    $0.segment = .success(
                        SmapsMapping(
                            start: 0, end: 0, permissions: "rw-s", inode: 1, path: "/anon_hugepage", deleted: true,
                            sizeBytes: 1 << 30, kernelPageSizeBytes: v, mmuPageSizeBytes: v, rssBytes: v,
                            hugetlbBytes: v))
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "huge_page_size = \(v)") {
                    $0.hugePageSize = .success(SettingValue(v, source: "x"))
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "shared_buffers = \(v)") { $0.sharedBuffers = int64Value(v) }
            },
            Extremes.int64.map { v in
                Mutation(description: "pool = \(v)") {
                    $0.pool = HugePagePool(
                        defaultPageSizeBytes: v,
                        sizes: [.init(pageSizeBytes: v, total: v, free: v, reserved: v, surplus: v)])
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "hugetlb limit = \(v)") {
                    $0.cgroup = .success(
                        HugetlbCgroupLimits(
                            version: 2, pageSizeBytes: 2 << 20, limit: .bytes(v), usageBytes: v,
                            reservationLimit: .bytes(v), reservationUsageBytes: v, failCount: v))
                }
            },
            Extremes.optionalInt64.map { v in
                Mutation(description: "VmPTE = \(String(describing: v))") { $0.pageTableBytes = v }
            },
            Extremes.text.map { v in
                Mutation(description: "huge_pages = \(v.prefix(10))") {
                    $0.hugePages = .success(SettingValue(v, source: "x"))
                }
            },
        ])
    }

    @Test("memory.hugepages", arguments: hugePagesMutations)
    func hugePages(_ mutation: Mutation<HugePagesFacts>) {
        var facts = HugePagesFacts(
            hugePages: .success(SettingValue("try", source: "default")),
            hugePageSize: .success(SettingValue(0, source: "default")),
            sharedBuffers: Self.int64Value(128 << 20),
            segment: .success(
                SmapsMapping(
                    start: 0, end: 0, permissions: "rw-s", inode: 1, path: "/anon_hugepage", deleted: true,
                    sizeBytes: 144 << 20, kernelPageSizeBytes: 2 << 20)),
            pool: HugePagePool(
                defaultPageSizeBytes: 2 << 20,
                sizes: [.init(pageSizeBytes: 2 << 20, total: 1024, free: 1024, reserved: 0, surplus: 0)]),
            cgroup: .success(
                HugetlbCgroupLimits(version: 1, pageSizeBytes: 2 << 20, limit: .bytes(0), reservationLimit: .unlimited)),
            pageTableBytes: 1 << 20, pageTableProcesses: 5)
        mutation.apply(&facts)
        expectSane(HugePagesCheck.evaluate(facts), mutation.description)
    }

    static var budgetMutations: [Mutation<MemoryBudgetFacts>] {
        func setting(
            _ name: String, _ keyPath: WritableKeyPath<MemoryBudgetFacts, Result<SettingValue<Int64>, InvalidSetting>>
        )
            -> [Mutation<MemoryBudgetFacts>]
        {
            Extremes.int64.map { v in Mutation(description: "\(name) = \(v)") { $0[keyPath: keyPath] = int64Value(v) } }
        }
        return oneAtATimeAndTogether([
            Extremes.optionalInt64.map { v in
                Mutation(description: "limit = \(String(describing: v))") { $0.limit = .success(v) }
            },
            setting("shared_buffers", \.sharedBuffers), setting("wal_buffers", \.walBuffers),
            setting("work_mem", \.workMem), setting("max_connections", \.maxConnections),
            setting("autovacuum_max_workers", \.autovacuumMaxWorkers),
            setting("autovacuum_work_mem", \.autovacuumWorkMem),
            setting("maintenance_work_mem", \.maintenanceWorkMem),
            setting("max_parallel_workers", \.maxParallelWorkers),
            setting("max_worker_processes", \.maxWorkerProcesses),
        ])
    }

    @Test("memory.budget", arguments: budgetMutations)
    func memoryBudget(_ mutation: Mutation<MemoryBudgetFacts>) {
        var facts = MemoryBudgetFacts(
            limit: .success(512 << 20), sharedBuffers: Self.int64Value(256 << 20), walBuffers: Self.int64Value(-8192),
            workMem: Self.int64Value(64 << 20), maxConnections: Self.int64Value(100),
            autovacuumMaxWorkers: Self.int64Value(3),
            autovacuumWorkMem: Self.int64Value(-1024), maintenanceWorkMem: Self.int64Value(64 << 20),
            maxParallelWorkers: Self.int64Value(8), maxWorkerProcesses: Self.int64Value(8))
        mutation.apply(&facts)
        let o = MemoryBudgetCheck.evaluate(facts)
        expectSane(o, mutation.description)
        if let terms = MemoryBudgetCheck.terms(facts).terms, case .success(let limit?) = facts.limit,
            terms.peakBytes > limit
        {
            #expect(o.severity == .warning, "\(mutation)")
        }
    }

    static var shmLimitMutations: [Mutation<ShmSizeFacts>] {
        oneAtATimeAndTogether([
            Extremes.optionalInt64.map { v in
                Mutation(description: "memory limit = \(String(describing: v))") {
                    $0.memoryLimit = ShmMemoryLimit(limitBytes: v, sharedBuffersBytes: 256 << 20, walBuffersBytes: 0)
                }
            },
            Extremes.int64.map { v in
                Mutation(description: "shared_buffers under the limit = \(v)") {
                    $0.memoryLimit = ShmMemoryLimit(limitBytes: 512 << 20, sharedBuffersBytes: v, walBuffersBytes: v)
                }
            },
            int64Setting("work_mem", \.workMem),
        ])
    }

    @Test("shm.size against the memory limit", arguments: shmLimitMutations)
    func shmSizeAgainstLimit(_ mutation: Mutation<ShmSizeFacts>) {
        var facts = Self.shmFacts()
        mutation.apply(&facts)
        let o = ShmSizeCheck.evaluate(facts)
        expectSane(o, mutation.description)
        if !o.remedy.isEmpty { #expect(o.remedy.contains("counts against the pod's memory limit"), "\(mutation)") }
    }
}
