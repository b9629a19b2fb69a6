import CLibBPF
import Dispatch
import Glibc
import OSSupport
import Synchronization

/// The records of a BPF ring buffer, as raw bytes, in the order the kernel committed them.
/// Ends when its object is detached or closed.
public struct RingBufferEvents: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let stream: AsyncStream<[UInt8]>

    public func makeAsyncIterator() -> AsyncStream<[UInt8]>.AsyncIterator { stream.makeAsyncIterator() }
}

/// Polls one ring buffer on a dedicated thread and feeds a stream.
///
/// `@unchecked Sendable` because the libbpf `ring_buffer` pointer crosses to the polling
/// thread: after `start()` only that thread touches it, `stop()` sets an atomic flag and waits
/// for the thread to finish before freeing it, so it is never used by two threads at once.
final class RingBufferPoller: @unchecked Sendable {
    private let ring: OpaquePointer
    private let sink: Sink
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    private var stopped = false
    let mapName: String

    /// Holds the continuation for the C callback (passed to libbpf as its context pointer).
    final class Sink: Sendable {
        let continuation: AsyncStream<[UInt8]>.Continuation
        init(_ continuation: AsyncStream<[UInt8]>.Continuation) { self.continuation = continuation }
    }

    init(mapFD: Int32, mapName: String, continuation: AsyncStream<[UInt8]>.Continuation) throws(BPFError) {
        self.mapName = mapName
        sink = Sink(continuation)
        let context = Unmanaged.passUnretained(sink).toOpaque()
        errno = 0
        let ring = ring_buffer__new(
            mapFD,
            { context, data, size in
                guard let context, let data else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                let bytes = [UInt8](UnsafeRawBufferPointer(start: data, count: size))
                sink.continuation.yield(bytes)
                return 0
            }, context, nil)
        guard let ring else {
            continuation.finish()
            throw .map(map: mapName, operation: "ring_buffer__new", errno: errno == 0 ? EINVAL : errno)
        }
        self.ring = ring
    }

    func start() {
        guard !started else { return }
        started = true
        // A thread of its own: the poll loop blocks for as long as the window lasts.
        let thread = PollThread { [self] in
            while !stopping.load(ordering: .acquiring) {
                let rc = ring_buffer__poll(ring, 100)
                if rc < 0 && rc != -EINTR {
                    LibBPFLog.logger.debug("ring buffer poll failed", metadata: ["map": "\(mapName)", "rc": "\(rc)"])
                    break
                }
            }
            // Deliver what was committed before the stop.
            _ = ring_buffer__consume(ring)
            finished.signal()
        }
        thread.start()
    }

    /// Stops polling, waits for the thread, frees the ring buffer and ends the stream. Idempotent.
    func stop() {
        guard !stopped else { return }
        stopped = true
        stopping.store(true, ordering: .releasing)
        if started { finished.wait() }
        ring_buffer__free(ring)
        sink.continuation.finish()
    }

    deinit { stop() }
}

/// A plain POSIX thread running one closure (Foundation's `Thread` would pull Foundation into
/// the binary).
final class PollThread: @unchecked Sendable {
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
    }

    /// Starts the thread, detached: it ends when `body` returns.
    func start() {
        let me = self
        if tryStartThread({ me.body() }) != 0 { body() }
    }
}
