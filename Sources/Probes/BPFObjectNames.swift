/// A program's name in an embedded object, as `scripts/gen-bpf` generates them from the object
/// (`ProbeObjectNames.swift`): a misspelt name does not compile.
public protocol BPFProgramName: RawRepresentable, Sendable, Hashable where RawValue == String {}

/// A map's name in an embedded object, generated like `BPFProgramName`.
public protocol BPFMapName: RawRepresentable, Sendable, Hashable where RawValue == String {}

extension BPFObject {
    /// The map `name`.
    public func map(_ name: some BPFMapName) throws(BPFError) -> BPFMap { try map(name.rawValue) }

    /// Starts polling the ring buffer `name` (see `ringBuffer(_:)` by string).
    public func ringBuffer(_ name: some BPFMapName) throws(BPFError) -> RingBufferEvents {
        try ringBuffer(name.rawValue)
    }
}
