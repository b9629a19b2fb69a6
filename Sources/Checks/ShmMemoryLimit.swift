import PGNodeModel

/// The container's memory limit and the shared memory already charged against it, for a
/// remedy that adds memory-backed `/dev/shm`: the tmpfs pages a parallel query writes there are
/// charged to the pod's memory cgroup, beside `shared_buffers`, so a larger `/dev/shm` without a
/// larger limit trades "No space left on device" for the OOM killer.
public struct ShmMemoryLimit: Sendable, Equatable {
    /// The memory limit in bytes; nil when the container has none.
    public var limitBytes: Int64?
    /// `shared_buffers` in bytes.
    public var sharedBuffersBytes: Int64
    /// `wal_buffers` in bytes, as the server sizes it.
    public var walBuffersBytes: Int64

    /// A limit and the shared memory under it.
    public init(limitBytes: Int64?, sharedBuffersBytes: Int64, walBuffersBytes: Int64) {
        self.limitBytes = limitBytes
        self.sharedBuffersBytes = sharedBuffersBytes
        self.walBuffersBytes = walBuffersBytes
    }

    /// What the pod needs at least with `shmBytes` of `/dev/shm`: that, `shared_buffers`,
    /// `wal_buffers`, and the headroom `memory.limit` asks for the backends
    /// (`MemoryLimitCheck.floorBytes`). `memory.budget` models the backends in full.
    public func neededBytes(shmBytes: Int64) -> Int64 {
        [max(0, shmBytes), max(0, sharedBuffersBytes), max(0, walBuffersBytes), MemoryLimitCheck.floorBytes]
            .saturatingSum()
    }

    /// The sentence a `/dev/shm` remedy ends with: it counts against the memory limit, and when
    /// `shmBytes` with the shared memory does not fit the limit, how far to raise it (in the
    /// operator's terms) or what to lower instead (the remedy's last line: what makes /dev/shm need less). `limit` nil: the limit is not known.
    public static func note(shmBytes: Int64, limit: ShmMemoryLimit?, operator op: PostgresOperator) -> String {
        let shm = "\(ShmSizeCheck.roundUpToMiB(max(0, shmBytes)) >> 20)Mi"
        guard let limit else {
            return "A memory-backed /dev/shm counts against the pod's memory limit: the limit must hold \(shm) of it "
                + "besides shared_buffers and the backends."
        }
        guard let bytes = limit.limitBytes else {
            return "A memory-backed /dev/shm counts against the pod's memory limit; this container has none, so its "
                + "\(shm) come out of the node's memory."
        }
        let needed = limit.neededBytes(shmBytes: shmBytes)
        let parts =
            "\(shm) of /dev/shm + shared_buffers \(ShmSizeCheck.mib(limit.sharedBuffersBytes)) + wal_buffers "
            + "\(ShmSizeCheck.mib(limit.walBuffersBytes)) + \(MemoryLimitCheck.floorBytes >> 20) MiB for the backends"
        guard needed > bytes else {
            return "A memory-backed /dev/shm counts against the pod's memory limit: \(parts) = "
                + "\(ShmSizeCheck.mib(needed)), within the limit (\(ShmSizeCheck.mib(bytes)))."
        }
        let raiseTo = MemoryLimitCheck.roundUpTo256MiB(needed)
        return "A memory-backed /dev/shm counts against the pod's memory limit: \(parts) = "
            + "\(ShmSizeCheck.mib(needed)), more than the limit (\(ShmSizeCheck.mib(bytes))). Raise the limit by "
            + "\(raiseTo.subtractingSaturating(bytes) >> 20)Mi to at least \(raiseTo >> 20)Mi (see memory.budget for "
            + "the backends in full), or lower shared_buffers. "
            + OperatorRemedies.memory("\(raiseTo >> 20)Mi", operator: op)
    }
}
