/// Which probe slot each container holds while the agent's probes stay attached.
///
/// The kernel-side maps are indexed by slot (0 ..< capacity). A container keeps its slot for as
/// long as it is discovered; a slot it leaves rests for `restWindows` windows before another
/// container gets it, so that the leaving container's last requests (in flight, completing late)
/// are not counted for the next one. Containers beyond the capacity get no slot (their probe
/// checks say so) until one frees up; the ones that already hold a slot keep it.
public struct TargetSlots: Sendable, Equatable {
    /// How many slots there are.
    public let capacity: Int
    /// Windows a released slot waits before it is given again.
    public let restWindows: Int
    /// Container id → slot.
    public private(set) var slots: [String: Int] = [:]
    /// Released slot → the window it was released in.
    private var resting: [Int: Int] = [:]
    private var window = 0

    /// No slot given yet.
    public init(capacity: Int, restWindows: Int = 1) {
        self.capacity = capacity
        self.restWindows = restWindows
    }

    /// Assigns slots for a new window's `containers` (in the order given: the first ones win when
    /// there are more containers than slots); returns container id → slot for those that have one.
    @discardableResult
    public mutating func assign(_ containers: [String]) -> [String: Int] {
        window += 1
        let present = Set(containers)
        for (id, slot) in slots where !present.contains(id) {
            slots[id] = nil
            resting[slot] = window
        }
        let used = Set(slots.values)
        var free = (0..<capacity).filter { slot in
            guard !used.contains(slot) else { return false }
            guard let since = resting[slot] else { return true }
            return window - since >= restWindows
        }
        for id in containers where slots[id] == nil {
            guard !free.isEmpty else { break }
            let slot = free.removeFirst()
            resting[slot] = nil
            slots[id] = slot
        }
        return slots
    }
}
