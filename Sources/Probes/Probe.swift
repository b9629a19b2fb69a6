/// One BPF probe as one unit: what it is (its embedded object `bpf/<name>.bpf.c`, its programs,
/// its kernel requirements and the checks it feeds, in `definition`), how a window of its maps
/// becomes its per-target `Result`, how it clears a target slot, and whatever it does once
/// attached (a ring buffer to drain, uprobes to place). `ProbeSession` drives every registered
/// probe (`ProbeCatalog.probes`) through this protocol and never asks which one it is.
///
/// An instance lives as long as its loaded object in one session: created once the object is
/// loaded, closed with it. Not `Sendable`: it owns libbpf state; the session's task drives it.
/// Its type is (`SendableMetatype`): the catalog and the plans that list probe types, and their
/// static definitions, are shared between tasks.
public protocol Probe: AnyObject, SendableMetatype {
    /// What the probe saw for one target (slot) in one window.
    associatedtype Result: Sendable, Equatable
    /// What `window` keeps between windows to turn cumulative counters into differences.
    associatedtype Baseline: Sendable

    /// Its name, requirements, the checks it feeds, and its program sets.
    static var definition: ProbeDefinition { get }
    /// The v1 controller whose cgroup ids its `targets` map holds on v1 and hybrid nodes.
    static var v1Controller: CgroupRef.Kind { get }
    /// The baseline before the first window.
    static var initialBaseline: Baseline { get }

    /// The window from `cumulative` (what `read(drain: true)` returned), against `baseline`,
    /// which it updates for the next window. Counters become differences; drained entries pass.
    static func window(_ cumulative: [Int: Result], baseline: inout Baseline) -> [Int: Result]
    /// Forgets what `baseline` keeps for `slot` after `clear(slot:)` reset its kernel state.
    static func forget(slot: Int, baseline: inout Baseline)
    /// The events it counted in `results` (calls, passes, requests), for the agent's metrics.
    static func events(in results: [Int: Result]) -> UInt64

    /// The probe over its loaded `object` (not yet attached).
    init(object: BPFObject)
    /// Its loaded object.
    var object: BPFObject { get }
    /// Clears what it keeps in the kernel for the target in `slot` beyond counters (which windows
    /// subtract): the slot was given to another cgroup.
    func clear(slot: Int) throws(BPFError)
    /// Called once its programs are attached.
    func attached()
    /// Called after the `targets` map was set to `slots` (slot → target).
    func targetsChanged(_ slots: [Int: ProbeTarget])
    /// Reads its maps: `drain` takes per-event entries out and starts the next window (the agent's
    /// persistent session); without it the maps are read as they are (the last window).
    func read(drain: Bool) throws(BPFError) -> [Int: Result]
    /// The targets of `slots` it cannot watch, with the reason (their empty result then does not
    /// mean "nothing happened").
    func unwatched(_ slots: [Int: ProbeTarget]) -> [Int: String]
    /// The task receiving its asynchronous records (a ring buffer), which ends once the probe is
    /// detached; `finish` waits for it before the last reading.
    var receiving: Task<Void, Never>? { get }
    /// Links it holds besides its object's (uprobes), handed over for destruction.
    func releaseLinks() -> [OpaquePointer]
    /// Stops whatever it started besides its object (tasks); the session closes the object.
    func stop()
    /// Ring-buffer events it dropped since it was attached because nobody read them in time.
    var droppedEvents: UInt64 { get }
    /// The uprobe attachments that failed at the last `attached` or `targetsChanged`.
    var uprobeFailures: [UprobeAttachments.Failure] { get }
}

extension Probe {
    /// The probe's name: its embedded object's and `bpf/<name>.bpf.c`'s.
    public static var name: String { definition.name }
    /// The checks it feeds.
    public static var checks: [String] { definition.requirement.checks }

    public static func forget(slot: Int, baseline: inout Baseline) {}
    public func attached() {}
    public func targetsChanged(_ slots: [Int: ProbeTarget]) {}
    public func unwatched(_ slots: [Int: ProbeTarget]) -> [Int: String] { [:] }
    public var receiving: Task<Void, Never>? { nil }
    public func releaseLinks() -> [OpaquePointer] { [] }
    public func stop() {}
    public var droppedEvents: UInt64 { 0 }
    public var uprobeFailures: [UprobeAttachments.Failure] { [] }

    /// Reads its maps into `results` (its entry, and the targets it cannot watch); a map that
    /// cannot be read gives no entries.
    func read(drain: Bool, slots: [Int: ProbeTarget], into results: inout ProbeResults) {
        results[Self.self] = (try? read(drain: drain)) ?? [:]
        let unwatched = unwatched(slots)
        results.unwatched[Self.name] = unwatched.isEmpty ? nil : unwatched
    }
}
