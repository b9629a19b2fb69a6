import PGNodeModel

/// What the blk-mq probe saw for one container during the observation window.
public struct BlockNoiseReport: Sendable, Equatable {
    /// A block device the container's requests went to.
    public struct Device: Sendable, Equatable {
        /// `MAJ:MIN`.
        public var dev: String
        /// The kernel's name (`vda`, `nvme0n1`), when known.
        public var name: String?
        /// The active I/O scheduler (`none`, `mq-deadline`, `kyber`, `bfq`).
        public var scheduler: String?
        /// Number of hardware queues.
        public var hardwareQueues: Int?
        /// The container's requests completed on this device during the window, when measured.
        public var requests: Int64?
        /// Other cgroups' requests that completed on it while the container's waited, when measured.
        public var noiseRequests: Int64?

        /// A device.
        public init(
            dev: String, name: String?, scheduler: String?, hardwareQueues: Int?, requests: Int64? = nil,
            noiseRequests: Int64? = nil
        ) {
            self.dev = dev
            self.name = name
            self.scheduler = scheduler
            self.hardwareQueues = hardwareQueues
            self.requests = requests
            self.noiseRequests = noiseRequests
        }
    }

    /// A cgroup whose requests completed while the container's requests waited in the same queue.
    public struct Neighbour: Sendable, Equatable {
        /// The neighbour's cgroup path (or `cgroup id N` when it could not be named).
        public var cgroup: String
        /// Its container, when it is one.
        public var containerID: String?
        /// Its pod, when known.
        public var podName: String?
        /// Its namespace, when known.
        public var namespace: String?
        /// How many of its requests completed ahead of the container's waiting ones.
        public var requests: Int64

        /// A neighbour.
        public init(cgroup: String, containerID: String?, podName: String?, namespace: String?, requests: Int64) {
            self.cgroup = cgroup
            self.containerID = containerID
            self.podName = podName
            self.namespace = namespace
            self.requests = requests
        }
    }

    /// The devices the container's requests went to, most requests first.
    public var devices: [Device]
    /// The container's own completed requests.
    public var ownRequests: Int64
    /// Other cgroups' requests that completed while the container's waited in the same queue.
    public var noiseRequests: Int64
    /// The container's request latency (insert or issue → complete), log2 µs.
    public var ownLatency: Log2Histogram
    /// The noise requests' latency, log2 µs.
    public var noiseLatency: Log2Histogram
    /// Neighbours, in any order.
    public var neighbours: [Neighbour]

    /// A report.
    public init(
        devices: [Device], ownRequests: Int64, noiseRequests: Int64, ownLatency: Log2Histogram,
        noiseLatency: Log2Histogram, neighbours: [Neighbour]
    ) {
        self.devices = devices
        self.ownRequests = ownRequests
        self.noiseRequests = noiseRequests
        self.ownLatency = ownLatency
        self.noiseLatency = noiseLatency
        self.neighbours = neighbours
    }
}

/// `blkio.noise`: how much of the container's I/O waited behind other cgroups' requests in the
/// same blk-mq queue.
public enum BlockNoiseCheck {
    /// The check id.
    public static let id = "blkio.noise"
    /// Noise requests at least this many times the container's own requests (when the noise
    /// explains the container's wait) is critical.
    public static let criticalFactor: Int64 = 4

    /// Whether the neighbours' requests that completed ahead of the container's can explain its
    /// latency: served one after another at their median latency, they would take at least half
    /// the container's median (`noise × noiseP50 ≥ own × ownP50 / 2`).
    ///
    /// Comparing the medians alone fails exactly when a neighbour dominates: a request that waits
    /// behind k of the neighbour's takes about k of their service times, so the container's
    /// median moves several log2 buckets above the neighbour's (whose own latency reflects only
    /// its own queue depth). A few fast neighbour requests ahead of a slow request of the
    /// container's (say 4 KiB reads ahead of its 1 MiB writes) do not explain its latency and
    /// stay below this bound. Products in 128 bits: no overflow on any counter values.
    public static func noiseExplainsWait(
        ownRequests: Int64, ownP50: UInt64, noiseRequests: Int64, noiseP50: UInt64
    ) -> Bool {
        guard ownRequests > 0, noiseRequests > 0 else { return false }
        let ahead = UInt128(UInt64(noiseRequests)) * UInt128(noiseP50) * 2
        let own = UInt128(UInt64(ownRequests)) * UInt128(ownP50)
        return ahead >= own
    }

    /// The median of a log2 histogram as the lower bound of the bucket holding it; nil when empty.
    public static func median(_ histogram: Log2Histogram) -> UInt64? {
        let buckets = histogram.buckets
        // Counts from a BPF map may each be near 2^64: summed in 128 bits (at most 64 buckets),
        // so the median is exact, never an overflow.
        let total = buckets.reduce(UInt128(0)) { $0 + UInt128($1.count) }
        guard total > 0 else { return nil }
        var seen: UInt128 = 0
        for bucket in buckets {
            seen += UInt128(bucket.count)
            if seen * 2 >= total { return bucket.low }
        }
        return buckets.last?.low
    }

    /// The observation for one container.
    public static func evaluate(_ report: BlockNoiseReport) -> Observation {
        observe(report).flaggingSaturatedValues()
    }

    static func observe(_ report: BlockNoiseReport) -> Observation {
        let neighbours = report.neighbours.sorted { ($0.requests, $1.cgroup) > ($1.requests, $0.cgroup) }
        let ownP50 = median(report.ownLatency)
        let noiseP50 = median(report.noiseLatency)
        let evidence: JSONObject = [
            "devices": .array(
                report.devices.map {
                    var device: JSONObject = [
                        "dev": .string($0.dev), "name": .from($0.name), "scheduler": .from($0.scheduler),
                        "hw_queues": .from($0.hardwareQueues),
                    ]
                    if let requests = $0.requests { device["requests"] = .int(requests) }
                    if let noise = $0.noiseRequests { device["noise_requests"] = .int(noise) }
                    return .object(device)
                }),
            "own_requests": .int(report.ownRequests),
            "noise_requests": .int(report.noiseRequests),
            "own_p50_us": .from(ownP50),
            "noise_p50_us": .from(noiseP50),
            "own_latency_us": report.ownLatency.json,
            "noise_latency_us": report.noiseLatency.json,
            "neighbours": .array(
                neighbours.map {
                    .object([
                        "cgroup": .string($0.cgroup), "container.id": .from($0.containerID),
                        "k8s.pod.name": .from($0.podName), "k8s.namespace.name": .from($0.namespace),
                        "requests": .int($0.requests),
                    ])
                }),
        ]
        let schedulers = Set(report.devices.compactMap(\.scheduler)).sorted().joined(separator: ", ")
        let remedy =
            "Separate the database's I/O from its neighbours: give it its own disk or volume, move the noisy pod "
            + "(anti-affinity, a dedicated node pool), or limit the neighbour's I/O (blkio/io.max throttling). "
            + "On a shared queue the I/O scheduler (now '\(schedulers.isEmpty ? "unknown" : schedulers)') decides "
            + "who waits: bfq shares the disk between cgroups by weight (io.bfq.weight, blkio.bfq.weight); none, "
            + "mq-deadline and kyber order requests without regard to their cgroup."
        guard report.ownRequests > 0 else {
            return Observation(
                check: id, severity: .ok, summary: "The container issued no block I/O during the window.",
                evidence: evidence)
        }
        let top = neighbours.first.map { n in
            n.podName.map { "pod \(n.namespace.map { "\($0)/" } ?? "")\($0)" } ?? n.cgroup
        }
        // Noise dominates when the neighbours' completions outnumber the container's own and,
        // taken together, can explain its wait (see noiseExplainsWait).
        if let ownP50, let noiseP50, report.noiseRequests > report.ownRequests,
            noiseExplainsWait(
                ownRequests: report.ownRequests, ownP50: ownP50, noiseRequests: report.noiseRequests,
                noiseP50: noiseP50)
        {
            let critical = report.noiseRequests >= report.ownRequests.multipliedSaturating(by: criticalFactor)
            return Observation(
                check: id, severity: critical ? .critical : .warning,
                summary:
                    "\(report.noiseRequests) requests of other cgroups completed while this container's "
                    + "\(report.ownRequests) waited in the same queue (noise p50 ≥ \(noiseP50) µs vs own p50 ≥ "
                    + "\(ownP50) µs)\(top.map { "; most from \($0)" } ?? "").",
                evidence: evidence, remedy: remedy)
        }
        return Observation(
            check: id, severity: .ok,
            summary:
                "\(report.ownRequests) requests; \(report.noiseRequests) of other cgroups completed ahead of them in "
                + "the same queue — not enough to dominate their latency.",
            evidence: evidence)
    }
}
