/// One cgroup to observe, as the kernel knows it. On cgroup v2 nodes `v2` alone is enough; on
/// v1 and hybrid nodes give the controller cgroups too (ids are directory inode numbers).
public struct ProbeTarget: Sendable, Equatable {
    /// The unified-hierarchy cgroup id (what `bpf_get_current_cgroup_id()` returns).
    public var v2: UInt64?
    /// The v1 memory controller's cgroup id (the probes whose `v1Controller` is `.memoryV1`).
    public var memoryV1: UInt64?
    /// The v1 blkio controller's cgroup id (the probes whose `v1Controller` is `.blkioV1`).
    public var blkioV1: UInt64?
    /// The C library files its processes map (shm's uprobes are attached to them); empty for a
    /// statically linked server, which the shm probe then does not see.
    public var libraries: [LibraryFile]
    /// The PostgreSQL server executables its postmasters run (the query probe's USDT probes are
    /// attached to them); empty when no server was found.
    public var servers: [LibraryFile]

    public init(
        v2: UInt64? = nil, memoryV1: UInt64? = nil, blkioV1: UInt64? = nil, libraries: [LibraryFile] = [],
        servers: [LibraryFile] = []
    ) {
        self.v2 = v2
        self.memoryV1 = memoryV1
        self.blkioV1 = blkioV1
        self.libraries = libraries
        self.servers = servers
    }
}

/// A cgroup id together with its hierarchy.
public struct CgroupRef: Sendable, Equatable, Hashable {
    public enum Kind: UInt32, Sendable {
        case v2 = 0
        case memoryV1 = 1
        case blkioV1 = 2
    }

    public var id: UInt64
    public var kind: Kind
}

/// Everything one run read, by probe, each probe's results by target slot; a probe that did not
/// run has no entry. Each probe's file gives it a named accessor (`results.shm`, …).
public struct ProbeResults: Sendable, Equatable {
    private var byProbe: [String: Entry] = [:]
    /// By probe name: the targets (by slot) the probe could not watch, with the reason. Their
    /// result, empty, does not mean "nothing happened".
    public var unwatched: [String: [Int: String]] = [:]

    /// Nothing read.
    public init() {}

    /// `probe`'s results by slot (empty when it did not run or saw nothing).
    public subscript<P: Probe>(_ probe: P.Type) -> [Int: P.Result] {
        get { byProbe[P.name]?.value as? [Int: P.Result] ?? [:] }
        set { byProbe[P.name] = newValue.isEmpty ? nil : Entry(newValue) }
    }

    /// One probe's results, compared by their own type's equality.
    private struct Entry: Sendable, Equatable {
        let value: any Sendable
        let equals: @Sendable (any Sendable) -> Bool

        init<T: Sendable & Equatable>(_ value: T) {
            self.value = value
            equals = { ($0 as? T) == value }
        }

        static func == (a: Entry, b: Entry) -> Bool { a.equals(b.value) }
    }
}
