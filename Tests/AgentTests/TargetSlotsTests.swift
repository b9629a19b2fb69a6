import Diagnosis
import Testing

@Suite("Probe slots of the agent's containers")
struct TargetSlotsTests {
    @Test("a container keeps its slot while it runs; new ones take the free slots in order")
    func stable() {
        var slots = TargetSlots(capacity: 4)
        #expect(slots.assign(["a", "b", "c"]) == ["a": 0, "b": 1, "c": 2])
        #expect(slots.assign(["c", "d", "a", "b"]) == ["a": 0, "b": 1, "c": 2, "d": 3])
    }

    @Test("a released slot rests one window before another container gets it")
    func rest() {
        var slots = TargetSlots(capacity: 3)
        slots.assign(["a", "b", "c"])
        // b leaves; e arrives in the same window: slot 1 rests, and no other is free.
        #expect(slots.assign(["a", "c", "e"]) == ["a": 0, "c": 2])
        // The next window slot 1 has rested: e gets it.
        #expect(slots.assign(["a", "c", "e"]) == ["a": 0, "c": 2, "e": 1])
    }

    @Test("more containers than slots: the first ones are followed, the rest when slots free up")
    func overflow() {
        var slots = TargetSlots(capacity: 2, restWindows: 0)
        #expect(slots.assign(["a", "b", "c"]) == ["a": 0, "b": 1])
        // Those that hold a slot keep it even when listed after the one without.
        #expect(slots.assign(["c", "b", "a"]) == ["a": 0, "b": 1])
        #expect(slots.assign(["c", "b"]) == ["b": 1, "c": 0])
        #expect(slots.assign([]) == [:])
    }
}
