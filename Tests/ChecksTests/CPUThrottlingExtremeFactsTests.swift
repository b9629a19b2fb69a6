import Checks
import HostFacts
import PGNodeModel
import Testing

/// What `cpu.throttling` is computed from: two samples (the window is made from them, as the
/// agent makes it) and the settings.
struct CPUThrottlingInput: Sendable {
    var earlier: CPUCgroupSample
    var later: CPUCgroupSample
    var qosClass: String?
    var maxParallelWorkers: CPUThrottlingFacts.Setting
    var maxParallelWorkersPerGather: CPUThrottlingFacts.Setting
    var maxWorkerProcesses: CPUThrottlingFacts.Setting

    var facts: CPUThrottlingFacts {
        CPUThrottlingFacts(
            window: .success(CPUCgroupWindow(from: earlier, to: later)), qosClass: qosClass,
            maxParallelWorkers: maxParallelWorkers, maxParallelWorkersPerGather: maxParallelWorkersPerGather,
            maxWorkerProcesses: maxWorkerProcesses)
    }
}

@Suite("cpu.throttling's facts at extreme values: no trap, a sane observation")
struct CPUThrottlingExtremeFactsTests {
    static func input() -> CPUThrottlingInput {
        let earlier = CPUFacts.sample(at: 0, quota: 50000, pressureTotal: 0)
        let later = CPUFacts.sample(
            at: 10 * CPUFacts.second, quota: 50000, periods: 100, throttled: 40, throttledNs: 2_000_000_000,
            usageNs: 4_000_000_000, pressureTotal: 1_000_000)
        return CPUThrottlingInput(
            earlier: earlier, later: later, qosClass: "burstable", maxParallelWorkers: CPUFacts.setting(8),
            maxParallelWorkersPerGather: CPUFacts.setting(2), maxWorkerProcesses: CPUFacts.setting(8))
    }

    nonisolated(unsafe) static let counters: [(String, WritableKeyPath<CPUCgroupSample, Int64?>)] = [
        ("periods", \.periods), ("throttled periods", \.throttledPeriods), ("throttled ns", \.throttledNanoseconds),
        ("bursts", \.bursts), ("burst ns", \.burstNanoseconds), ("usage ns", \.usageNanoseconds),
        ("burst us", \.burstMicroseconds),
    ]

    static func setting(_ name: String, _ keyPath: WritableKeyPath<CPUThrottlingInput, CPUThrottlingFacts.Setting>)
        -> [Mutation<CPUThrottlingInput>]
    {
        Extremes.int64.map { v in
            Mutation(description: "\(name) = \(v)") { $0[keyPath: keyPath] = .success(SettingValue(v, source: "x")) }
        }
            + [
                Mutation(description: "\(name) unknown") { $0[keyPath: keyPath] = nil },
                Mutation(description: "\(name) invalid") {
                    $0[keyPath: keyPath] = .failure(
                        InvalidSetting(name: name, text: "1e300", source: "postgresql.conf:3", reason: "refused"))
                },
            ]
    }

    static var mutations: [Mutation<CPUThrottlingInput>] {
        var groups: [[Mutation<CPUThrottlingInput>]] = []
        for (name, keyPath) in counters {
            nonisolated(unsafe) let keyPath = keyPath
            groups.append(
                Extremes.optionalInt64.map { v in
                    Mutation(description: "later \(name) = \(String(describing: v))") {
                        $0.later[keyPath: keyPath] = v
                    }
                })
            groups.append(
                Extremes.optionalInt64.map { v in
                    Mutation(description: "earlier \(name) = \(String(describing: v))") {
                        $0.earlier[keyPath: keyPath] = v
                    }
                })
        }
        groups.append(
            Extremes.optionalInt64.map { v in
                Mutation(description: "quota = \(String(describing: v))") {
                    $0.later.bandwidth?.quotaMicroseconds = v
                }
            })
        groups.append(
            Extremes.int64.map { v in
                Mutation(description: "period = \(v)") { $0.later.bandwidth?.periodMicroseconds = v }
            } + [Mutation(description: "no bandwidth") { $0.later.bandwidth = nil }])
        groups.append(
            Extremes.int64.map { v in Mutation(description: "later time = \(v)") { $0.later.monotonicNanoseconds = v } }
        )
        groups.append(
            Extremes.int64.map { v in
                Mutation(description: "earlier time = \(v)") { $0.earlier.monotonicNanoseconds = v }
            })
        groups.append(
            Extremes.double.map { v in
                Mutation(description: "pressure avg = \(v)") {
                    $0.later.pressure?.some?.avg10 = v
                    $0.later.pressure?.full?.avg300 = v
                }
            })
        groups.append(
            Extremes.optionalInt64.map { v in
                Mutation(description: "pressure total = \(String(describing: v))") {
                    $0.later.pressure?.some?.totalMicroseconds = v
                    $0.earlier.pressure?.full?.totalMicroseconds = v
                }
            })
        groups.append(
            Extremes.int.map { v in
                Mutation(description: "version = \(v)") {
                    $0.later.version = v
                    $0.earlier.version = v
                }
            })
        groups.append(
            [nil, 0, UInt64.max].map { v in
                Mutation(description: "inode = \(String(describing: v))") { $0.later.cgroupInode = v }
            })
        groups.append(setting("max_parallel_workers", \.maxParallelWorkers))
        groups.append(setting("max_parallel_workers_per_gather", \.maxParallelWorkersPerGather))
        groups.append(setting("max_worker_processes", \.maxWorkerProcesses))
        groups.append(
            (Extremes.text.map { Optional($0) } + [nil]).map { v in
                Mutation(description: "qos = \(String(describing: v?.prefix(10)))") { $0.qosClass = v }
            })
        return oneAtATimeAndTogether(groups)
    }

    @Test("cpu.throttling", arguments: mutations)
    func cpuThrottling(_ mutation: Mutation<CPUThrottlingInput>) {
        var input = Self.input()
        mutation.apply(&input)
        let facts = input.facts
        let o = CPUThrottlingCheck.evaluate(facts)
        expectSane(o, mutation.description)
        #expect(o.check == CPUThrottlingCheck.id)
        guard case .success(let window) = facts.window else { return }
        // A window without length never gives a rate: the check says it cannot run.
        if window.durationNanoseconds <= 0 { #expect(o.severity == .unavailable, "\(mutation)") }
        // A ratio above the critical share over a real window is critical, whatever else is extreme.
        if window.durationNanoseconds > 0, window.bandwidth != nil, let p = window.periods,
            let t = window.throttledPeriods,
            p > 0, Double(t) / Double(p) > CPUThrottlingCheck.criticalThrottledRatio
        {
            #expect(o.severity == .critical, "\(mutation): \(o.summary)")
        }
        // Every double in the evidence is a number JSON can carry, or null.
        for key in ["quota_cores", "throttled_periods_ratio", "throttled_seconds_per_second", "usage_cores"] {
            if case .double(let d)? = o.evidence[key] { #expect(d.isFinite, "\(mutation): \(key) = \(d)") }
        }
    }

    @Test("cpu.throttling: saturated counters are flagged")
    func saturated() {
        var input = Self.input()
        input.later.throttledNanoseconds = .max
        input.later.usageNanoseconds = .max
        let o = CPUThrottlingCheck.evaluate(input.facts)
        let saturated = o.evidence["saturated"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(saturated.contains("throttled_ns") && saturated.contains("usage_ns"), "\(saturated)")
        #expect(o.severity == .warning)
    }
}
