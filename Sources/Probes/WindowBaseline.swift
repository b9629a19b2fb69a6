/// Turns what the probes' maps hold since they were created into what happened in one window,
/// for a session that stays attached across windows (the agent).
///
/// Counters and histograms in the kernel only grow (BPF programs increment them; user space never
/// writes them while a target holds the slot, which would race with those increments), so a
/// window's value is the difference from the previous reading. Hash-map entries (failures,
/// reclaiming threads, neighbours) are drained by the reader instead: they arrive here already
/// per window and pass through. State that is not a count passes through as it is: the bytes a
/// target holds in `/dev/shm` now. Each probe says how (`Probe.window`); this keeps their
/// baselines.
struct WindowBaseline {
    /// Each probe's `Baseline`, by probe name.
    private var baselines: [String: any Sendable] = [:]
    /// The probes it differences.
    private let probes: [any Probe.Type]

    /// No reading yet, for `probes`.
    init(probes: [any Probe.Type] = ProbeCatalog.probes) {
        self.probes = probes
    }

    /// The window since the previous call, from `cumulative`; remembers `cumulative` for the next.
    mutating func window(_ cumulative: ProbeResults) -> ProbeResults {
        var result = ProbeResults()
        result.unwatched = cumulative.unwatched
        for probe in probes { window(probe, cumulative, into: &result) }
        return result
    }

    private mutating func window<P: Probe>(_ probe: P.Type, _ cumulative: ProbeResults, into result: inout ProbeResults)
    {
        var baseline = baselines[P.name] as? P.Baseline ?? P.initialBaseline
        result[P.self] = P.window(cumulative[P.self], baseline: &baseline)
        baselines[P.name] = baseline
    }

    /// Forgets what the probes keep for `slot`: its kernel state was cleared for a new target.
    mutating func forget(slot: Int) {
        for probe in probes { forget(probe, slot: slot) }
    }

    private mutating func forget<P: Probe>(_ probe: P.Type, slot: Int) {
        guard var baseline = baselines[P.name] as? P.Baseline else { return }
        P.forget(slot: slot, baseline: &baseline)
        baselines[P.name] = baseline
    }

    /// `now - before`; a counter below its baseline was reset, so all of it is new.
    static func delta(_ now: UInt64, _ before: UInt64) -> UInt64 {
        now >= before ? now - before : now
    }

    /// Slot by slot.
    static func delta(_ now: [UInt64], _ before: [UInt64]) -> [UInt64] {
        now.indices.map { delta(now[$0], $0 < before.count ? before[$0] : 0) }
    }
}
