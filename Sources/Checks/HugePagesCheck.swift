import HostFacts
import PGNodeModel

/// What `memory.hugepages` looks at for one PostgreSQL server.
public struct HugePagesFacts: Sendable, Equatable {
    /// `huge_pages`: `off`, `on`, `try`.
    public var hugePages: Result<SettingValue<String>, InvalidSetting>
    /// `huge_page_size` in bytes (0: the node's default huge page size); `.success(nil)` for a
    /// version without the setting (before 14), which always uses the default.
    public var hugePageSize: Result<SettingValue<Int64>?, InvalidSetting>
    /// `shared_buffers` in bytes: the segment's size when its mapping cannot be read.
    public var sharedBuffers: Result<SettingValue<Int64>, InvalidSetting>
    /// The main shared memory segment as the postmaster's smaps shows it, or why it could not be read.
    public var segment: Result<SmapsMapping, CheckUnavailable>
    /// The node's huge page pools.
    public var pool: HugePagePool
    /// The container's hugetlb cgroup for the page size the server uses: `.success(nil)` when
    /// the container has no hugetlb controller (nothing limits it), a failure when it could not be read.
    public var cgroup: Result<HugetlbCgroupLimits?, CheckUnavailable>
    /// The sum of `VmPTE` over the server's processes (their page tables), when read.
    public var pageTableBytes: Int64?
    /// How many processes that sum is over.
    public var pageTableProcesses: Int
    /// The operator that runs the server: the remedy names its `resources` field.
    public var runBy: PostgresOperator

    /// The facts for one server.
    public init(
        hugePages: Result<SettingValue<String>, InvalidSetting>,
        hugePageSize: Result<SettingValue<Int64>?, InvalidSetting>,
        sharedBuffers: Result<SettingValue<Int64>, InvalidSetting>, segment: Result<SmapsMapping, CheckUnavailable>,
        pool: HugePagePool, cgroup: Result<HugetlbCgroupLimits?, CheckUnavailable>, pageTableBytes: Int64? = nil,
        pageTableProcesses: Int = 0, runBy: PostgresOperator = .none
    ) {
        self.hugePages = hugePages
        self.hugePageSize = hugePageSize
        self.sharedBuffers = sharedBuffers
        self.segment = segment
        self.pool = pool
        self.cgroup = cgroup
        self.pageTableBytes = pageTableBytes
        self.pageTableProcesses = pageTableProcesses
        self.runBy = runBy
    }
}

/// `memory.hugepages`: did the server's main shared memory segment get the huge pages it asks
/// for, and can it use them without dying? A container whose hugetlb fault limit is below the
/// segment, on a node with a pool and a kernel or runtime that sets no reservation limit
/// (runc#4077), maps the segment (the reservation succeeds) and gets SIGBUS when a process first
/// touches a page past the limit: "Bus error" at initdb or at any later query.
public enum HugePagesCheck {
    /// The check id.
    public static let id = "memory.hugepages"
    /// The base page size: a segment on pages of this size or smaller has no huge pages.
    public static let basePageBytes: Int64 = 4096
    /// A segment at least this large that fell back to base pages under `huge_pages = try` is
    /// reported (info): each process that touches all of it needs 2 MiB of page tables per GiB.
    public static let largeSegmentBytes: Int64 = 1 << 30
    /// Page tables (the processes' `VmPTE` summed) above this fraction of the segment make the
    /// fall-back a warning: the node spends that much memory mapping the same buffers again
    /// in every backend.
    public static let pageTableWarningFraction = 0.1

    /// The observation for one server.
    public static func evaluate(_ facts: HugePagesFacts) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: HugePagesFacts) -> Observation {
        var evidence: JSONObject = [:]
        facts.runBy.addEvidence(to: &evidence)
        var settings: JSONObject = [
            "huge_pages": ShmSizeCheck.setting(facts.hugePages) { .string($0) },
            "shared_buffers_bytes": ShmSizeCheck.setting(facts.sharedBuffers) { .int($0) },
        ]
        switch facts.hugePageSize {
        case .success(let s?):
            settings["huge_page_size_bytes"] = .object(["value": .int(s.value), "source": .string(s.source)])
        case .success(nil): settings["huge_page_size_bytes"] = .null
        case .failure(let invalid): settings["huge_page_size_bytes"] = invalid.json
        }
        evidence["settings"] = .object(settings)
        evidence["pools"] = .array(facts.pool.sizes.map(poolJSON))
        evidence["default_huge_page_size_bytes"] = .from(facts.pool.defaultPageSizeBytes)
        if !facts.pool.problems.isEmpty { evidence["pool_problems"] = .array(facts.pool.problems.map { .string($0) }) }
        if let pte = facts.pageTableBytes {
            evidence["page_tables_bytes"] = .int(pte)
            evidence["page_tables_processes"] = .int(Int64(facts.pageTableProcesses))
        }

        var invalid: [InvalidSetting] = []
        var mode: String? = nil
        switch facts.hugePages {
        case .success(let s): mode = s.value
        case .failure(let why): invalid.append(why)
        }
        var requestedSize: Int64? = nil
        switch facts.hugePageSize {
        case .success(let s?) where s.value < 0:
            invalid.append(
                InvalidSetting(
                    name: "huge_page_size", text: "\(s.value)", source: s.source,
                    reason: "no PostgreSQL server has this value (negative)"))
        case .success(let s): requestedSize = s?.value ?? 0
        case .failure(let why): invalid.append(why)
        }
        guard invalid.isEmpty, let mode, let requestedSize else {
            return .unavailable(check: id, reason: InvalidSetting.reason(invalid), evidence: evidence)
        }

        // The size the server asks for: huge_page_size, or the node's default.
        let pageSize = requestedSize > 0 ? requestedSize : facts.pool.defaultPageSizeBytes
        evidence["huge_page_size_used_bytes"] = .from(pageSize)

        var segmentBytes: Int64? = nil
        var segmentPage: Int64? = nil
        switch facts.segment {
        case .success(let m):
            segmentBytes = m.sizeBytes.map { max(0, $0) }
            segmentPage = m.kernelPageSizeBytes
            evidence["segment"] = .object([
                "path": .string(m.path), "size_bytes": .from(m.sizeBytes),
                "kernel_page_size_bytes": .from(m.kernelPageSizeBytes),
                "mmu_page_size_bytes": .from(m.mmuPageSizeBytes),
                "rss_bytes": .from(m.rssBytes), "hugetlb_bytes": .from(m.hugetlbBytes),
            ])
        case .failure(let why):
            evidence["segment"] = .null
            evidence["segment_unavailable_reason"] = .string(why.reason)
        }
        // What the segment needs: its mapping's size, else at least shared_buffers.
        let fallbackBytes: Int64? =
            if case .success(let s) = facts.sharedBuffers, s.value >= 0 { s.value } else { nil }
        let neededBase = segmentBytes ?? fallbackBytes
        if let segmentBytes {
            // shared_memory_size is reported by PostgreSQL in whole MB, rounded up.
            evidence["shared_memory_size_mb"] = .int(ceilingDivide(segmentBytes, 1 << 20))
        }
        var neededBytes: Int64? = nil
        if let neededBase, let pageSize, pageSize > 0 {
            let pages = ceilingDivide(neededBase, pageSize)
            evidence["shared_memory_size_in_huge_pages"] = .int(pages)
            neededBytes = pages.multipliedSaturating(by: pageSize)
        }
        evidence["segment_needs_bytes"] = .from(neededBytes)

        let pool = pageSize.flatMap { facts.pool.pool(pageSizeBytes: $0) }
        var cgroupLimits: HugetlbCgroupLimits? = nil
        switch facts.cgroup {
        case .success(let limits?):
            cgroupLimits = limits
            evidence["hugetlb"] = hugetlbJSON(limits)
        case .success(nil): evidence["hugetlb"] = .null
        case .failure(let why):
            evidence["hugetlb"] = .null
            evidence["hugetlb_unavailable_reason"] = .string(why.reason)
        }

        let onHugePages = segmentPage.map { $0 > basePageBytes }
        let pageText = segmentPage.map { kib($0) } ?? "unknown"

        if mode == "off" {
            return Observation(
                check: id, severity: .ok,
                summary: "huge_pages = off: the main shared memory segment is on \(pageText) pages, as configured.",
                evidence: evidence)
        }

        // SIGBUS: a pool to reserve from, a fault limit below the segment, no reservation limit
        // that would fail the mmap first.
        if let pool, (pool.total ?? 0) > 0, let limits = cgroupLimits, let limit = limits.limit?.bytes,
            let neededBytes, limit < neededBytes
        {
            let reservationStops = limits.reservationLimit?.bytes.map { $0 < neededBytes } ?? false
            if !reservationStops {
                let file = limits.version == 1 ? "rsvd.limit_in_bytes" : "rsvd.max"
                let rsvd: String
                switch limits.reservationLimit {
                case nil: rsvd = "no hugetlb reservation limit (\(file) absent)"
                case .unlimited?: rsvd = "no hugetlb reservation limit (\(file) unlimited)"
                case .bytes(let b)?: rsvd = "a reservation limit (\(mib(b))) that does not stop the mapping"
                }
                let sizeName = HugetlbCgroupLimits.sizeName(pageSizeBytes: pool.pageSizeBytes)
                let now =
                    onHugePages == false
                    ? "The segment is on \(pageText) pages now (the pool had no room when the server started); "
                        + "after a restart that finds free huge pages, "
                    : "The segment's mapping reserves \(mib(neededBytes)) of huge pages; "
                let summary =
                    "The node has a \(sizeName) huge page pool (\(pool.total ?? 0) pages), the container's hugetlb "
                    + "limit is \(mib(limit)) and there is \(rsvd), while huge_pages = \(mode). \(now)a process "
                    + "that touches a page past \(mib(limit)) gets SIGBUS ('Bus error') and the postmaster restarts "
                    + "every backend."
                return Observation(
                    check: id, severity: onHugePages == false ? .warning : .critical, summary: summary,
                    evidence: evidence, remedy: remedy(neededBytes: neededBytes, pageSize: pool.pageSizeBytes, facts))
            }
        }

        if onHugePages == true {
            let pages = segmentBytes.flatMap { bytes in segmentPage.map { ceilingDivide(bytes, $0) } } ?? 0
            return Observation(
                check: id, severity: .ok,
                summary:
                    "The main shared memory segment (\(mib(segmentBytes ?? 0))) is on \(pageText) huge pages "
                    + "(\(pages)).",
                evidence: evidence)
        }

        if mode == "try", onHugePages == false, let segmentBytes, segmentBytes >= largeSegmentBytes {
            let pte = facts.pageTableBytes ?? 0
            let heavy = Double(pte) > Double(segmentBytes) * pageTableWarningFraction
            let why: String
            if let pool {
                why =
                    (pool.total ?? 0) == 0
                    ? "the node has no \(mib(pool.pageSizeBytes)) huge pages" : "the pool had no room when it started"
            } else {
                why = "the node has no pool of that page size"
            }
            let tables =
                facts.pageTableBytes.map {
                    " The \(facts.pageTableProcesses) processes' page tables take \(mib($0)) (VmPTE)."
                } ?? ""
            return Observation(
                check: id, severity: heavy ? .warning : .info,
                summary:
                    "huge_pages = try fell back to \(pageText) pages for the \(mib(segmentBytes)) main shared memory "
                    + "segment: \(why).\(tables)",
                evidence: evidence,
                remedy: remedy(
                    neededBytes: neededBytes ?? segmentBytes, pageSize: pageSize ?? (2 << 20), facts))
        }

        return Observation(
            check: id, severity: .ok,
            summary:
                "huge_pages = \(mode); the main shared memory segment\(segmentBytes.map { " (\(mib($0)))" } ?? "") is on "
                + "\(pageText) pages.",
            evidence: evidence)
    }

    /// Huge pages of the right size for the pod, or none at all.
    static func remedy(neededBytes: Int64, pageSize: Int64, _ facts: HugePagesFacts) -> String {
        let resource = "hugepages-\(quantity(pageSize))"
        let amount = quantity(neededBytes)
        return "Give the container huge pages of its own: \(resource) requests equal to limits of at least \(amount) "
            + "(the segment rounded up to whole pages) in the \(OperatorRemedies.resourcesField(facts.runBy)), "
            + "on a node whose pool has them free:\n"
            + "  resources: {requests: {\(resource): \(amount)}, limits: {\(resource): \(amount)}}\n"
            + "Or do without: huge_pages = off in the server's configuration (the operator's PostgreSQL parameters)."
    }

    /// A Kubernetes quantity: whole Gi when exact, else Mi rounded up.
    static func quantity(_ bytes: Int64) -> String {
        let gib: Int64 = 1 << 30
        if bytes >= gib, bytes % gib == 0 { return "\(bytes / gib)Gi" }
        return "\(ceilingDivide(bytes, 1 << 20))Mi"
    }

    static func poolJSON(_ size: HugePagePool.Size) -> JSONValue {
        .object([
            "page_size_bytes": .int(size.pageSizeBytes), "total": .from(size.total), "free": .from(size.free),
            "reserved": .from(size.reserved), "surplus": .from(size.surplus),
        ])
    }

    static func hugetlbJSON(_ limits: HugetlbCgroupLimits) -> JSONValue {
        func limit(_ l: CgroupFiles.Limit?) -> JSONValue {
            switch l {
            case .bytes(let b)?: .int(b)
            case .unlimited?: .string("max")
            case nil: .null
            }
        }
        var object: JSONObject = [
            "cgroup_version": .int(Int64(limits.version)), "page_size_bytes": .int(limits.pageSizeBytes),
            "limit_bytes": limit(limits.limit), "usage_bytes": .from(limits.usageBytes),
            "rsvd_limit_bytes": limit(limits.reservationLimit), "rsvd_usage_bytes": .from(limits.reservationUsageBytes),
            "failcnt": .from(limits.failCount),
        ]
        if !limits.missing.isEmpty { object["missing_files"] = .array(limits.missing.map { .string($0) }) }
        return .object(object)
    }

    /// ⌈a / b⌉ for a ≥ 0, b > 0, without overflow.
    static func ceilingDivide(_ a: Int64, _ b: Int64) -> Int64 {
        guard b > 0, a > 0 else { return 0 }
        return a / b + (a % b == 0 ? 0 : 1)
    }

    static func mib(_ bytes: Int64) -> String { ShmSizeCheck.mib(bytes) }

    static func kib(_ bytes: Int64) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes / 1024) KiB"
    }
}
