import PGNodeModel

/// The node's pools of huge pages (hugetlb), one per page size: `/proc/meminfo` gives the
/// default size's (`HugePages_*`, `Hugepagesize`), `/sys/kernel/mm/hugepages/hugepages-<N>kB/`
/// every size's.
public struct HugePagePool: Sendable, Equatable {
    /// The pool of one page size.
    public struct Size: Sendable, Equatable {
        /// The page size in bytes.
        public var pageSizeBytes: Int64
        /// `nr_hugepages`: pages in the pool.
        public var total: Int64?
        /// `free_hugepages`: pages not faulted in by any process (reserved ones among them).
        public var free: Int64?
        /// `resv_hugepages`: pages promised to mappings but not faulted in yet.
        public var reserved: Int64?
        /// `surplus_hugepages`: pages above `nr_hugepages` from overcommit.
        public var surplus: Int64?

        /// A pool.
        public init(pageSizeBytes: Int64, total: Int64?, free: Int64?, reserved: Int64?, surplus: Int64?) {
            self.pageSizeBytes = pageSizeBytes
            self.total = total
            self.free = free
            self.reserved = reserved
            self.surplus = surplus
        }

        /// Pages a new mapping can reserve: free less reserved (never below zero).
        public var available: Int64? {
            guard let free else { return nil }
            return max(0, free.subtractingSaturating(reserved ?? 0))
        }
    }

    /// `Hugepagesize` of `/proc/meminfo` in bytes: the size `huge_page_size = 0` means.
    public var defaultPageSizeBytes: Int64?
    /// The pools by page size, smallest first.
    public var sizes: [Size]
    /// Why a file could not be read or understood.
    public var problems: [String]

    /// A node's pools.
    public init(defaultPageSizeBytes: Int64?, sizes: [Size], problems: [String] = []) {
        self.defaultPageSizeBytes = defaultPageSizeBytes
        self.sizes = sizes
        self.problems = problems
    }

    /// The pool of `pageSizeBytes`, if the node has that size.
    public func pool(pageSizeBytes: Int64) -> Size? { sizes.first { $0.pageSizeBytes == pageSizeBytes } }

    /// The directory of the per-size pools, relative to the host root.
    public static let directory = "sys/kernel/mm/hugepages"

    /// Reads the pools under `host`: `/proc/meminfo` (at most 64 KiB) and each size's four
    /// counters (at most 4 KiB each); a file that cannot be read or parsed is a problem, never
    /// an error. At most 16 page sizes are read (x86 has two, arm64 four).
    public static func read(host: HostRoot) -> HugePagePool {
        var problems: [String] = []
        var meminfo: [String: Int64] = [:]
        do {
            meminfo = parseMeminfo(try host.readText("proc/meminfo", limit: 64 << 10))
        } catch {
            problems.append(error.description)
        }
        var sizes: [Size] = []
        let names: [String]
        do {
            names = try host.list(directory, limit: 64)
        } catch {
            if error != .notFound(path: host.resolve(directory)) { problems.append(error.description) }
            names = []
        }
        for name in names.sorted() {
            guard let pageSize = pageSize(directoryName: name), sizes.count < 16 else { continue }
            func counter(_ file: String) -> Int64? {
                let path = "\(directory)/\(name)/\(file)"
                do {
                    let text = try host.readText(path, limit: 4096)
                    guard let value = CgroupFiles.integer(text) else {
                        problems.append("\(host.resolve(path)): not a number")
                        return nil
                    }
                    return value
                } catch {
                    problems.append(error.description)
                    return nil
                }
            }
            sizes.append(
                Size(
                    pageSizeBytes: pageSize, total: counter("nr_hugepages"), free: counter("free_hugepages"),
                    reserved: counter("resv_hugepages"), surplus: counter("surplus_hugepages")))
        }
        let defaultSize = meminfo["Hugepagesize"]
        // A kernel without the sysfs directory still shows the default pool in meminfo.
        if let defaultSize, !sizes.contains(where: { $0.pageSizeBytes == defaultSize }),
            meminfo["HugePages_Total"] != nil
        {
            sizes.append(
                Size(
                    pageSizeBytes: defaultSize, total: meminfo["HugePages_Total"], free: meminfo["HugePages_Free"],
                    reserved: meminfo["HugePages_Rsvd"], surplus: meminfo["HugePages_Surp"]))
        }
        sizes.sort { $0.pageSizeBytes < $1.pageSizeBytes }
        return HugePagePool(defaultPageSizeBytes: defaultSize, sizes: sizes, problems: problems)
    }

    /// `hugepages-2048kB` → 2 MiB in bytes; nil for any other name.
    public static func pageSize(directoryName name: String) -> Int64? {
        guard name.hasPrefix("hugepages-"), name.hasSuffix("kB") else { return nil }
        let digits = name.dropFirst("hugepages-".count).dropLast(2)
        guard let kilobytes = UInt64(digits), kilobytes > 0 else { return nil }
        return Int64(clamping: kilobytes).multipliedSaturating(by: 1024)
    }

    /// The huge page lines of `/proc/meminfo`: `HugePages_*` as counts, `Hugepagesize` and
    /// `Hugetlb` in bytes; other lines and garbled ones are left out.
    public static func parseMeminfo(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            guard key.hasPrefix("HugePages_") || key == "Hugepagesize" || key == "Hugetlb" else { continue }
            let fields = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first, let value = CgroupFiles.counter(first) else { continue }
            if fields.count == 2, fields[1] == "kB" {
                result[key] = value.multipliedSaturating(by: 1024)
            } else if fields.count == 1 {
                result[key] = value
            }
        }
        return result
    }
}
