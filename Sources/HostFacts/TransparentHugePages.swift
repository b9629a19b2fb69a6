/// The node's transparent huge page settings, from `/sys/kernel/mm/transparent_hugepage`:
/// `enabled` (which anonymous memory gets huge pages at fault), `defrag` (whether a fault that
/// finds no free huge page waits for reclaim and compaction) and `shmem_enabled` (the same for
/// shared memory, PostgreSQL's main segment among it).
public struct TransparentHugePages: Sendable, Equatable {
    /// The directory, relative to the host root.
    public static let directory = "sys/kernel/mm/transparent_hugepage"

    /// Whether the kernel has transparent huge pages at all (the directory exists); nil when
    /// `sys/kernel/mm` itself cannot be seen, so that nothing can be said.
    public var configured: Bool?
    /// `enabled`, when read and understood.
    public var enabled: SysfsChoice?
    /// `defrag`, when read and understood.
    public var defrag: SysfsChoice?
    /// `shmem_enabled`, when read and understood (kernels without shmem THP have none).
    public var shmemEnabled: SysfsChoice?
    /// Why a file could not be read or understood.
    public var problems: [String]

    /// Settings as given.
    public init(
        configured: Bool?, enabled: SysfsChoice?, defrag: SysfsChoice?, shmemEnabled: SysfsChoice?,
        problems: [String] = []
    ) {
        self.configured = configured
        self.enabled = enabled
        self.defrag = defrag
        self.shmemEnabled = shmemEnabled
        self.problems = problems
    }

    /// Reads the settings under `host`: each file at most 4 KiB, a non-regular file refused
    /// (`FileIO`), an unreadable or garbled one a problem, never an error.
    public static func read(host: HostRoot) -> TransparentHugePages {
        guard host.isDirectory(directory) else {
            let mm = host.isDirectory("sys/kernel/mm")
            return TransparentHugePages(
                configured: mm ? false : nil, enabled: nil, defrag: nil, shmemEnabled: nil,
                problems: mm ? [] : ["\(host.resolve("sys/kernel/mm")): not readable"])
        }
        var problems: [String] = []
        func choice(_ name: String, optional: Bool = false) -> SysfsChoice? {
            let path = "\(directory)/\(name)"
            do {
                let text = try host.readText(path, limit: 4096)
                guard let parsed = SysfsChoice.parse(text) else {
                    problems.append(
                        "\(host.resolve(path)): not one bracketed choice: '\(text.trimmingWhitespace().prefix(80))'")
                    return nil
                }
                return parsed
            } catch {
                if !(optional && error == .notFound(path: host.resolve(path))) { problems.append(error.description) }
                return nil
            }
        }
        return TransparentHugePages(
            configured: true, enabled: choice("enabled"), defrag: choice("defrag"),
            shmemEnabled: choice("shmem_enabled", optional: true), problems: problems)
    }
}
