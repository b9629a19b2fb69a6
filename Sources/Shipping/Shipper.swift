import Logging
import OSSupport
import PGNodeModel

/// How the shipper delivers.
public struct ShipperConfiguration: Sendable {
    /// The receiver's URL (with the format's default path already applied).
    public var url: String
    /// The payload format.
    public var format: EndpointFormat
    /// The Elasticsearch index or data stream.
    public var index: String
    /// Whether bodies are gzip-compressed (`Content-Encoding: gzip`).
    public var gzip: Bool
    /// The bearer-token file, if any.
    public var tokenFile: String?
    /// The bound on one request, in seconds (connect included).
    public var requestTimeout: Double
    /// A batch holds at most this many findings…
    public var batchMaxFindings: Int
    /// …and at most this many bytes of findings…
    public var batchMaxBytes: Int
    /// …and is closed this many seconds after its first finding arrived.
    public var batchWait: Double
    /// The in-memory queue between diagnosis and delivery, in findings; when full the oldest are dropped.
    public var queueCapacity: Int
    /// Backoff between attempts.
    public var backoff: Backoff
    /// The longest `Retry-After` honoured, in seconds: a longer one (or a date further ahead) waits
    /// this long.
    public var maxRetryAfter: Double
    /// Headers every request carries (`--endpoint-header`), after pgnode's own.
    public var headers: [EndpointHeader] = []

    /// A configuration with the agent's defaults.
    public init(
        url: String, format: EndpointFormat, index: String = "pgnode-findings", gzip: Bool = true,
        tokenFile: String? = nil, requestTimeout: Double = 30, batchMaxFindings: Int = 500,
        batchMaxBytes: Int = 1 << 20, batchWait: Double = 1, queueCapacity: Int = 10_000,
        backoff: Backoff = Backoff(), maxRetryAfter: Double = RetryAfter.defaultMaximum
    ) {
        self.url = url
        self.format = format
        self.index = index
        self.gzip = gzip
        self.tokenFile = tokenFile
        self.requestTimeout = requestTimeout
        self.batchMaxFindings = batchMaxFindings
        self.batchMaxBytes = batchMaxBytes
        self.batchWait = batchWait
        self.queueCapacity = queueCapacity
        self.backoff = backoff
        self.maxRetryAfter = maxRetryAfter
    }
}

/// Delivers findings to a receiver from its own thread: diagnosis hands findings to a bounded
/// in-memory queue (`submit` never blocks); the thread cuts batches (by count, bytes and time),
/// writes each to the spool, and sends spooled batches oldest first, one at a time, so order is
/// kept. A batch leaves the spool only when the receiver accepted it, or refused it for good
/// (then it goes to the dead-letter file).
public final class Shipper: @unchecked Sendable {
    /// The shipper's metric names.
    public enum Metric {
        public static let queued = "pgnode_shipping_queue_findings"
        public static let spoolBytes = "pgnode_spool_bytes"
        public static let spoolSegments = "pgnode_spool_segments"
        public static let spoolFindings = "pgnode_spool_findings"
        public static let deliveries = "pgnode_deliveries_total"
        public static let delivered = "pgnode_delivered_findings_total"
        public static let duplicates = "pgnode_duplicate_findings_total"
        public static let failures = "pgnode_delivery_failures_total"
        public static let retries = "pgnode_delivery_retries_total"
        public static let dropped = "pgnode_dropped_findings_total"
        public static let deadLetter = "pgnode_dead_letter_findings_total"
        public static let quarantined = "pgnode_spool_quarantined_segments_total"
    }

    private let configuration: ShipperConfiguration
    private let transport: any HTTPTransport
    private let spool: Spool
    private let deadLetter: DeadLetterFile
    private let encoder: any PayloadEncoder
    private let token: TokenFile?
    private let metrics: MetricsRegistry
    private let logger: Logger

    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var queue: [FindingRecord] = []
    private var queueHead = 0
    private var stopping = false
    private var deadline = Double.infinity
    private var finished = false
    private var started = false

    // Owned by the delivery thread.
    private var buffer: [FindingRecord] = []
    private var bufferSince: Double?
    private var attempt = 0
    private var nextAttempt = 0.0

    /// A shipper; call `start()` to begin delivering (segments already in the spool go first).
    public init(
        configuration: ShipperConfiguration, transport: any HTTPTransport, spool: Spool,
        deadLetter: DeadLetterFile, metrics: MetricsRegistry, logger: Logger
    ) {
        self.configuration = configuration
        self.transport = transport
        self.spool = spool
        self.deadLetter = deadLetter
        self.encoder = configuration.format.encoder(index: configuration.index)
        self.token = configuration.tokenFile.map(TokenFile.init(path:))
        self.metrics = metrics
        self.logger = logger
        Self.declare(metrics)
        if spool.quarantined > 0 { metrics.add(Metric.quarantined, [], Double(spool.quarantined)) }
        for segment in spool.quarantinedAtOpen {
            logger.error(
                "damaged spool segment quarantined",
                metadata: [
                    "segment": "\(segment.name)", "reason": "\(segment.reason)", "spool_dir": "\(spool.directory)",
                ])
        }
        if spool.quarantined > spool.quarantinedAtOpen.count {
            logger.error(
                "more damaged spool segments quarantined",
                metadata: [
                    "segments": "\(spool.quarantined - spool.quarantinedAtOpen.count)",
                    "spool_dir": "\(spool.directory)",
                ])
        }
        updateSpoolGauges()
    }

    /// Declares the shipper's metrics so that /metrics lists them from the start.
    public static func declare(_ metrics: MetricsRegistry) {
        metrics.declare(Metric.queued, .gauge, help: "Findings waiting in memory for the delivery thread.", initial: 0)
        metrics.declare(Metric.spoolBytes, .gauge, help: "Bytes of undelivered findings in the spool.", initial: 0)
        metrics.declare(Metric.spoolSegments, .gauge, help: "Batches waiting in the spool.", initial: 0)
        metrics.declare(Metric.spoolFindings, .gauge, help: "Findings waiting in the spool.", initial: 0)
        metrics.declare(Metric.deliveries, .counter, help: "Batches the receiver accepted.", initial: 0)
        metrics.declare(Metric.delivered, .counter, help: "Findings the receiver accepted.", initial: 0)
        metrics.declare(
            Metric.duplicates, .counter, help: "Findings the receiver already had (Elasticsearch 409).", initial: 0)
        metrics.declare(Metric.failures, .counter, help: "Failed delivery attempts, by reason.")
        metrics.declare(
            Metric.retries, .counter, help: "Delivery attempts scheduled again after a failure.", initial: 0)
        metrics.declare(Metric.dropped, .counter, help: "Findings dropped undelivered, by reason.")
        metrics.declare(Metric.deadLetter, .counter, help: "Findings written to the dead-letter file.", initial: 0)
        metrics.declare(
            Metric.quarantined, .counter, help: "Damaged spool segments moved to quarantine.", initial: 0)
    }

    /// Starts the delivery thread.
    public func start() {
        let go = lock.withLock {
            defer { started = true }
            return !started
        }
        guard go else { return }
        startThread(name: "pgnode-ship") { [self] in run() }
    }

    public func submit(_ findings: [Finding]) {
        guard !findings.isEmpty else { return }
        let records = findings.map(FindingRecord.init)
        var dropped = 0
        let depth = lock.withLock {
            queue.append(contentsOf: records)
            let live = queue.count - queueHead
            if live > configuration.queueCapacity {
                dropped = live - configuration.queueCapacity
                queueHead += dropped
            }
            if queueHead > 4096 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            lock.broadcast()
            return queue.count - queueHead
        }
        metrics.set(Metric.queued, [], Double(depth))
        if dropped > 0 {
            metrics.add(Metric.dropped, [("reason", "queue_full")], Double(dropped))
            logger.warning("shipping queue full: oldest findings dropped", metadata: ["dropped": "\(dropped)"])
        }
    }

    public func shutdown(grace: Double) {
        let wasStarted = lock.withLock {
            stopping = true
            deadline = MonotonicClock.now() + max(0, grace)
            lock.broadcast()
            return started
        }
        if !wasStarted { start() }
        lock.withLock {
            // The thread bounds each request by the deadline; one more second covers its last step.
            let limit = deadline + 1
            while !finished && MonotonicClock.now() < limit { lock.wait(until: limit) }
        }
    }

    /// Whether the delivery thread has ended (after `shutdown`).
    public var isFinished: Bool { lock.withLock { finished } }

    // MARK: - The delivery thread

    private func run() {
        while true {
            let (incoming, stop, deadline) = lock.withLock {
                let items = Array(queue[queueHead...])
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
                return (items, stopping, self.deadline)
            }
            if !incoming.isEmpty {
                metrics.set(Metric.queued, [], 0)
                if buffer.isEmpty { bufferSince = MonotonicClock.now() }
                buffer += incoming
            }
            var now = MonotonicClock.now()
            spoolBuffer(all: stop || (bufferSince.map { now >= $0 + configuration.batchWait } ?? false))
            if stop && (spool.isEmpty || now >= deadline || nextAttempt >= deadline) { break }
            if !spool.isEmpty && now >= nextAttempt {
                deliverOldest(deadline: stop ? deadline : nil)
                continue
            }
            lock.withLock {
                guard queue.count == queueHead, stopping == stop else { return }
                now = MonotonicClock.now()
                var wake: [Double] = []
                if let since = bufferSince { wake.append(since + configuration.batchWait) }
                if !spool.isEmpty { wake.append(nextAttempt) }
                if stop { wake.append(deadline) }
                lock.wait(until: wake.min())
            }
        }
        let left = spool.findingCount
        if left > 0 {
            logger.warning(
                "shutting down with undelivered findings kept in the spool",
                metadata: ["findings": "\(left)", "spool_dir": "\(spool.directory)"])
        } else {
            logger.info("shipping stopped; everything delivered")
        }
        lock.withLock {
            finished = true
            lock.broadcast()
        }
    }

    /// Cuts the buffer into batches and spools them: full batches always, the remainder when `all`.
    private func spoolBuffer(all: Bool) {
        while !buffer.isEmpty {
            var count = 0
            var bytes = 0
            while count < buffer.count, count < configuration.batchMaxFindings,
                count == 0 || bytes + buffer[count].size <= configuration.batchMaxBytes
            {
                bytes += buffer[count].size
                count += 1
            }
            let full = count == configuration.batchMaxFindings || count < buffer.count
            guard full || all else { break }
            let batch = Array(buffer[0..<count])
            buffer.removeFirst(count)
            let dropped = spool.append(batch) { error in
                logger.error(
                    "cannot write spool segment; keeping the batch in memory",
                    metadata: ["error": "\(error)", "spool_dir": "\(spool.directory)"])
            }
            if dropped > 0 {
                metrics.add(Metric.dropped, [("reason", "spool_full")], Double(dropped))
                logger.warning(
                    "spool full: oldest findings dropped",
                    metadata: ["dropped": "\(dropped)", "spool_max_bytes": "\(spool.maxBytes)"])
            }
        }
        if buffer.isEmpty { bufferSince = nil }
        updateSpoolGauges()
    }

    private func updateSpoolGauges() {
        metrics.set(Metric.spoolBytes, [], Double(spool.totalBytes))
        metrics.set(Metric.spoolSegments, [], Double(spool.segments.count))
        metrics.set(Metric.spoolFindings, [], Double(spool.findingCount))
    }

    /// Sends the oldest spooled batch once.
    private func deliverOldest(deadline: Double?) {
        defer { updateSpoolGauges() }
        guard let segment = spool.oldest else { return }
        let records: [FindingRecord]
        switch spool.load(segment) {
        case .records(let loaded):
            records = loaded
        case .corrupt(let reason):
            metrics.add(Metric.quarantined)
            logger.error(
                "damaged spool segment quarantined and skipped",
                metadata: ["segment": "\(segment.path ?? "memory")", "reason": "\(reason)"])
            return
        case .unavailable(let reason):
            // Nothing wrong with the segment: read it again after the backoff.
            retry(
                reason: "spool_read", message: "cannot read spool segment \(segment.path ?? ""): \(reason)",
                retryAfter: nil)
            return
        case .gone(let reason):
            metrics.add(Metric.dropped, [("reason", "spool_gone")], Double(segment.count))
            logger.error(
                "spool segment removed by something else; its findings are lost",
                metadata: ["segment": "\(segment.path ?? "")", "findings": "\(segment.count)", "error": "\(reason)"])
            return
        }
        if records.isEmpty {
            spool.remove(segment)
            return
        }
        var timeout = configuration.requestTimeout
        if let deadline {
            timeout = min(timeout, deadline - MonotonicClock.now())
            if timeout < 0.05 {
                nextAttempt = .infinity
                return
            }
        }
        var headers: [(String, String)] = [("Content-Type", encoder.contentType)]
        var body = encoder.encode(records)
        if configuration.gzip {
            body = Gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        }
        if let token {
            do {
                headers.append(("Authorization", "Bearer \(try token.current())"))
            } catch {
                retry(reason: "token", message: "cannot read the token file \(token.path)", retryAfter: nil)
                return
            }
        }
        for header in configuration.headers { headers.append((header.name, header.value)) }
        let response: HTTPResponse
        do {
            response = try transport.post(url: configuration.url, headers: headers, body: body, timeout: timeout)
        } catch {
            retry(reason: error.isTimeout ? "timeout" : "connection", message: error.description, retryAfter: nil)
            return
        }
        switch response.status {
        case 200..<300:
            accepted(segment, records, response)
        case 408, 429, 500...599:
            let retryAfter = response.header("retry-after").flatMap {
                RetryAfter.seconds($0, now: Timestamp.now(), maximum: configuration.maxRetryAfter)
            }
            retry(reason: "http_\(response.status)", message: Self.message(response), retryAfter: retryAfter)
        default:
            let message = Self.message(response)
            logger.error(
                "receiver refused a batch; written to the dead-letter file",
                metadata: [
                    "status": "\(response.status)", "receiver_message": "\(message)",
                    "findings": "\(records.count)", "dead_letter": "\(deadLetter.path)",
                ])
            metrics.add(Metric.failures, [("reason", "http_\(response.status)")])
            writeDeadLetter(records, status: response.status, reason: message)
            spool.remove(segment)
            attempt = 0
            nextAttempt = 0
        }
    }

    private func accepted(_ segment: Spool.Segment, _ records: [FindingRecord], _ response: HTTPResponse) {
        guard let items = encoder.itemResults(response: response.body, records: records) else {
            spool.remove(segment)
            metrics.add(Metric.deliveries)
            metrics.add(Metric.delivered, [], Double(records.count))
            attempt = 0
            nextAttempt = 0
            return
        }
        var again: [FindingRecord] = []
        var retryReason = ""
        var delivered = 0
        var duplicates = 0
        for (record, item) in zip(records, items) {
            switch item {
            case .created:
                delivered += 1
            case .duplicate:
                duplicates += 1
            case .retry(let status, let reason):
                again.append(record)
                retryReason = "item status \(status): \(reason)"
            case .rejected(let status, let reason):
                logger.error(
                    "receiver refused a finding; written to the dead-letter file",
                    metadata: [
                        "status": "\(status)", "receiver_message": "\(reason)", "id": "\(record.id)",
                        "dead_letter": "\(deadLetter.path)",
                    ])
                writeDeadLetter([record], status: status, reason: reason)
            }
        }
        metrics.add(Metric.deliveries)
        metrics.add(Metric.delivered, [], Double(delivered + duplicates))
        if duplicates > 0 { metrics.add(Metric.duplicates, [], Double(duplicates)) }
        if again.isEmpty {
            spool.remove(segment)
            attempt = 0
            nextAttempt = 0
        } else {
            spool.replace(segment, with: again)
            retry(reason: "item_retry", message: retryReason, retryAfter: nil)
        }
    }

    private func writeDeadLetter(_ records: [FindingRecord], status: Int, reason: String) {
        metrics.add(Metric.deadLetter, [], Double(records.count))
        do {
            try deadLetter.write(records, status: status, reason: reason)
        } catch {
            metrics.add(Metric.dropped, [("reason", "dead_letter_error")], Double(records.count))
            logger.error("cannot write the dead-letter file", metadata: ["error": "\(error)"])
        }
    }

    private func retry(reason: String, message: String, retryAfter: Double?) {
        metrics.add(Metric.failures, [("reason", reason)])
        metrics.add(Metric.retries)
        var delay = configuration.backoff.delay(attempt: attempt)
        if let retryAfter, !retryAfter.isNaN { delay = min(max(retryAfter, 0), configuration.maxRetryAfter) }
        // A policy that gives no finite wait must neither stall delivery for ever nor spin.
        if !delay.isFinite || delay < 0 { delay = Backoff().maximum }
        attempt = min(attempt, 1 << 20) + 1
        nextAttempt = MonotonicClock.now() + delay
        logger.warning(
            "delivery failed; will retry",
            metadata: [
                "reason": "\(reason)", "error": "\(message)", "attempt": "\(attempt)",
                "retry_in_s": "\((delay * 1000).rounded() / 1000)",
            ])
    }

    /// The receiver's message: the body's first 512 characters, on one line.
    static func message(_ response: HTTPResponse) -> String {
        let text = String(decoding: response.body.prefix(512), as: UTF8.self)
        let line = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
        return line.isEmpty ? "HTTP \(response.status) with an empty body" : line
    }
}
