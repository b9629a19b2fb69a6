import Glibc
import OSSupport
import PGNodeModel
import Shipping

/// Findings as NDJSON on stdout (the agent without `--endpoint`), for the node's log collector.
/// A thread does the writing, so a slow reader of stdout never stalls diagnosis; the queue is
/// bounded and drops its oldest findings (counted) when full.
public final class StdoutSink: FindingSink, @unchecked Sendable {
    private let lock = ConditionLock()
    private var queue: [String] = []
    private var stopping = false
    private var finished = false
    private let capacity: Int
    private let fd: Int32
    private let metrics: MetricsRegistry

    /// A sink writing to `fd`, holding at most `capacity` findings.
    public init(fd: Int32 = 1, capacity: Int = 10_000, metrics: MetricsRegistry) {
        self.fd = fd
        self.capacity = capacity
        self.metrics = metrics
        metrics.declare(
            Shipper.Metric.delivered, .counter, help: "Findings written or accepted by the receiver.", initial: 0)
        metrics.declare(Shipper.Metric.dropped, .counter, help: "Findings dropped undelivered, by reason.")
        startThread(name: "pgnode-stdout") { [self] in run() }
    }

    public func submit(_ findings: [Finding]) {
        let lines = findings.map { $0.jsonLine + "\n" }
        var dropped = 0
        lock.withLock {
            queue += lines
            if queue.count > capacity {
                dropped = queue.count - capacity
                queue.removeFirst(dropped)
            }
            lock.broadcast()
        }
        if dropped > 0 { metrics.add(Shipper.Metric.dropped, [("reason", "queue_full")], Double(dropped)) }
    }

    public func shutdown(grace: Double) {
        let deadline = MonotonicClock.now() + grace
        lock.withLock {
            stopping = true
            lock.broadcast()
            while !finished && MonotonicClock.now() < deadline { lock.wait(until: deadline) }
        }
    }

    private func run() {
        while true {
            let (lines, stop) = lock.withLock {
                while queue.isEmpty && !stopping { lock.wait(until: nil) }
                defer { queue.removeAll() }
                return (queue, stopping)
            }
            if !lines.isEmpty {
                var bytes = Array(lines.joined().utf8)
                var offset = 0
                bytes.withUnsafeMutableBytes { raw in
                    while offset < raw.count {
                        let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { return }
                        offset += n
                    }
                }
                metrics.add(Shipper.Metric.delivered, [], Double(lines.count))
            }
            if stop {
                lock.withLock {
                    finished = true
                    lock.broadcast()
                }
                return
            }
        }
    }
}
