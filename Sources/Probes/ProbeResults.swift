/// The aggregated maps of one probe run, as plain Swift values. Indexed by target: the
/// `index`-th `ProbeTarget` given to the run.

/// One cgroup to observe, as the kernel knows it. On cgroup v2 nodes `v2` alone is enough; on
/// v1 and hybrid nodes give the controller cgroups too (ids are directory inode numbers).
public struct ProbeTarget: Sendable, Equatable {
    /// The unified-hierarchy cgroup id (what `bpf_get_current_cgroup_id()` returns).
    public var v2: UInt64?
    /// The v1 memory controller's cgroup id (shm, reclaim).
    public var memoryV1: UInt64?
    /// The v1 blkio controller's cgroup id (blkio).
    public var blkioV1: UInt64?
    /// The C library files its processes map (shm's uprobes are attached to them); empty for a
    /// statically linked server, which the shm probe then does not see.
    public var libraries: [LibraryFile]

    public init(
        v2: UInt64? = nil, memoryV1: UInt64? = nil, blkioV1: UInt64? = nil, libraries: [LibraryFile] = []
    ) {
        self.v2 = v2
        self.memoryV1 = memoryV1
        self.blkioV1 = blkioV1
        self.libraries = libraries
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

/// shm: one target's result.
public struct ShmResult: Sendable, Equatable {
    public struct Failure: Sendable, Equatable {
        public var tgid: UInt32
        public var pid: UInt32
        public var comm: String
        public var sizeBytes: UInt64
        public var count: UInt64
        public var syscall: String
        public var firstNs: UInt64
        public var lastNs: UInt64
        /// The process id in its own (innermost) pid namespace (the container's view), 0 if unknown.
        public var namespaceTGID: UInt32
        /// The start of the process title (argv as the process rewrote it) at its first failure.
        public var title: String
    }

    /// A failure as sent through the ring buffer.
    public struct Event: Sendable, Equatable {
        public var timeNs: UInt64
        public var sizeBytes: UInt64
        public var cgroupID: UInt64
        public var target: Int
        public var tgid: UInt32
        public var pid: UInt32
        public var syscall: String
        public var fd: Int32
        public var ret: Int32
        public var device: UInt32
        public var comm: String
        public var file: String
        /// The process id in its own (innermost) pid namespace, 0 if unknown.
        public var namespaceTGID: UInt32
        /// The start of the process title at the failure.
        public var title: String
    }

    public var calls: UInt64 = 0
    public var failures: UInt64 = 0
    public var firstFailureNs: UInt64?
    public var lastFailureNs: UInt64?
    /// Bytes of tmpfs segments the target held at the end, and at most during the window:
    /// pages allocated by fallocate (not the sparse sizes ftruncate sets), less what truncation
    /// and unlink released.
    public var heldBytes: Int64 = 0
    public var peakBytes: Int64 = 0
    /// Each failing (process, size), largest size first.
    public var failed: [Failure] = []
    /// Failures received through the ring buffer during the window.
    public var events: [Event] = []

    /// An empty result: nothing seen.
    public init() {}
}

/// reclaim: one thread's reclaim in one target.
public struct ReclaimEntry: Sendable, Equatable {
    public var pid: UInt32
    public var tgid: UInt32
    public var comm: String
    public var memcgEvents: UInt64
    public var directEvents: UInt64
    public var reclaimedPages: UInt64
    public var stallNs: UInt64
}

/// blkio: one target's result.
public struct BlkioResult: Sendable, Equatable {
    public struct Neighbour: Sendable, Equatable {
        public var cgroup: CgroupRef
        public var requests: UInt64
    }

    /// A device the target's requests went to.
    public struct Device: Sendable, Equatable {
        /// The kernel's encoding: `major << 20 | minor` (the disk's first minor).
        public var dev: UInt32
        /// The target's requests completed there.
        public var ownRequests: UInt64
        /// Other cgroups' requests that completed there while the target waited.
        public var noiseRequests: UInt64

        /// `MAJ:MIN`.
        public var majorMinor: String { "\(dev >> 20):\(dev & 0xF_FFFF)" }
    }

    public var ownRequests: UInt64 = 0
    public var noiseRequests: UInt64 = 0
    /// log2 µs slots: slot i counts latencies in [2^i, 2^(i+1)) µs (slot 0 includes 0).
    public var ownLatencyUs: [UInt64] = []
    public var noiseLatencyUs: [UInt64] = []
    /// By requests, most first.
    public var neighbours: [Neighbour] = []
    /// By own requests, most first.
    public var devices: [Device] = []
    /// Target requests (of every target) whose state the bounded per-request map evicted before
    /// they completed; their waiting counts were given back at completion. The same in every
    /// target's result.
    public var evictedRequests: UInt64 = 0

    /// An empty result: no requests.
    public init() {}
}

/// Everything one run read, by probe; a probe that did not run has no entry.
public struct ProbeResults: Sendable, Equatable {
    public var shm: [Int: ShmResult] = [:]
    public var reclaim: [Int: [ReclaimEntry]] = [:]
    public var blkio: [Int: BlkioResult] = [:]
    /// Targets (by index) whose processes the shm probe could not watch, with the reason: no C
    /// library mapped by the server (statically linked), or every one of its libraries refused
    /// the uprobes. Their `shm` result, empty, does not mean "nothing failed".
    public var shmUnwatched: [Int: String] = [:]

    public init() {}
}
