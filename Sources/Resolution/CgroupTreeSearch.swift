import Glibc
import HostFacts
import OSSupport

/// Finds a container's cgroup by walking a cgroup hierarchy's directories instead of reading
/// every process's cgroup file: one directory listing per cgroup rather than an open, read and
/// close per process. `ContainerResolver` uses it to resolve one id quickly and confirms what it
/// finds through `proc/<pid>/cgroup`; it falls back to the full process scan when this finds
/// nothing.
enum CgroupTreeSearch {
    /// Most directories visited in one walk.
    static let maxDirectories = 200_000
    /// Deepest level descended.
    static let maxDepth = 12

    /// Container cgroups under `mountPoint` (relative to the host root) whose id starts with
    /// `prefix`: id → paths inside the hierarchy. A container's own sub-cgroups are not descended.
    static func find(prefix: String, host: HostRoot, mountPoint: String) -> [String: [String]] {
        var result: [String: [String]] = [:]
        let base = host.resolve(mountPoint)
        var pending: [(String, Int)] = [("", 0)]
        var visited = 0
        while let (relative, depth) = pending.popLast(), visited < maxDirectories {
            visited += 1
            try? DirectoryListing.forEach(base + relative) { entry in
                guard entry.mayBeDirectory else { return true }
                let path = relative + "/" + entry.name
                if entry.name.contains(prefix), let parsed = CgroupPath.parse(path), parsed.id.hasPrefix(prefix),
                    parsed.containerPath == path
                {
                    if parsed.kind == .container { result[parsed.id, default: []].append(path) }
                    return true
                }
                if depth + 1 < maxDepth { pending.append((path, depth + 1)) }
                return true
            }
        }
        return result
    }

    /// Pids in `cgroup.procs` of `path` and its descendants under `mountPoint`.
    static func processes(host: HostRoot, mountPoint: String, path: String) -> [Int32] {
        var result: [Int32] = []
        var pending = [(mountPoint + path, 0)]
        var visited = 0
        while let (directory, depth) = pending.popLast(), visited < 1_000 {
            visited += 1
            if let text = try? host.readText(directory + "/cgroup.procs", limit: 4 << 20) {
                result.append(contentsOf: text.split(separator: "\n").compactMap { Int32($0.trimmingWhitespace()) })
            }
            guard depth < 8, let names = try? host.list(directory) else { continue }
            for name in names where host.isDirectory(directory + "/" + name) {
                pending.append((directory + "/" + name, depth + 1))
            }
        }
        return result
    }
}
