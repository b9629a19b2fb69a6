/// The node's dirty-page thresholds, `/proc/sys/vm/dirty_*`: when background writeback starts
/// and when the kernel starts pausing the tasks that dirty pages (`balance_dirty_pages`). Each
/// threshold is either a ratio of the node's dirtyable memory or, when its `_bytes` twin is
/// non-zero, a byte count (the kernel keeps one of the pair at 0). Node-wide: a pod cannot set
/// them (they are not namespaced sysctls).
public struct DirtyPageLimits: Sendable, Equatable {
    /// The directory, relative to the host root.
    public static let directory = "proc/sys/vm"
    /// The files read, in the order they are reported.
    public static let names = [
        "dirty_background_ratio", "dirty_background_bytes", "dirty_ratio", "dirty_bytes",
        "dirty_expire_centisecs", "dirty_writeback_centisecs",
    ]

    /// Each file's value by its name (`dirty_ratio` → 20); a file not read is absent.
    public var values: [String: Int64]
    /// Why a file could not be read or understood.
    public var problems: [String]

    /// Values as given.
    public init(values: [String: Int64], problems: [String] = []) {
        self.values = values
        self.problems = problems
    }

    /// Reads them under `host`: each file at most 256 bytes, a non-regular file refused
    /// (`FileIO`), an unreadable or garbled one a problem, never an error.
    public static func read(host: HostRoot) -> DirtyPageLimits {
        var values: [String: Int64] = [:]
        var problems: [String] = []
        for name in names {
            let path = "\(directory)/\(name)"
            do {
                let text = try host.readText(path, limit: 256).trimmingWhitespace()
                guard let value = Int64(text), value >= 0 else {
                    problems.append("\(host.resolve(path)): not a non-negative integer: '\(text.prefix(40))'")
                    continue
                }
                values[name] = value
            } catch {
                problems.append(error.description)
            }
        }
        return DirtyPageLimits(values: values, problems: problems)
    }
}
