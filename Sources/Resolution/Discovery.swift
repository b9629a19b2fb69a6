import Glibc
import HostFacts

/// A container found in the process table: its id and the processes seen in its cgroup.
public struct DiscoveredContainer: Sendable, Equatable {
    /// What the cgroup path says (id, runtime, pod UID, QoS, paths).
    public var cgroup: ContainerCgroup
    /// The `/proc/<pid>/cgroup` entries of the first process seen (all hierarchies).
    public var entries: [ProcCgroupEntry]
    /// The pids seen in the container's cgroup (or below it), ascending.
    public var pids: [Int32]
    /// Distinct paths (below the container's cgroup) the processes were in, per hierarchy id.
    public var leafPaths: [Int: Set<String>]
}

/// The result of one scan of the host's process table.
public struct ProcessScan: Sendable {
    /// Containers by full id.
    public var containers: [String: DiscoveredContainer]
    /// CRI-O and Podman monitor processes by the id of the container they watch (not containers).
    public var monitors: [String: [Int32]]
    /// How many processes were examined.
    public var processesScanned: Int
    /// Processes that exited between listing and reading: normal on a busy node, never an error.
    public var vanished: Int
    /// Processes whose cgroup file could not be read or parsed for another reason.
    public var unreadable: Int

    /// Scans `proc/*/cgroup` under `host`. When `prefix` is given, only processes whose cgroup
    /// file contains it are parsed (the fast path for resolving one id).
    public static func scan(host: HostRoot, prefix: String? = nil) throws(ResolutionError) -> ProcessScan {
        let names: [String]
        do { names = try host.list("proc") } catch { throw .processTableUnreadable(error.description) }
        var scan = ProcessScan(containers: [:], monitors: [:], processesScanned: 0, vanished: 0, unreadable: 0)
        let needle = prefix.map { Array($0.utf8) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        let procPath = host.resolve("proc")
        // Opening `<pid>/cgroup` relative to the proc directory spares the kernel a walk of the
        // host root's path for each of tens of thousands of processes.
        let procFD = open(procPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard procFD >= 0 else {
            throw .processTableUnreadable(HostReadError.from(errno: errno, path: procPath).description)
        }
        defer { close(procFD) }
        for name in names {
            guard let pid = Int32(name), pid > 0 else { continue }
            scan.processesScanned += 1
            let bytes: [UInt8]
            switch readSmall(directory: procFD, name + "/cgroup", buffer: &buffer) {
            case .success(let b): bytes = b
            case .failure(let error):
                if case .notFound = error { scan.vanished += 1 } else { scan.unreadable += 1 }
                continue
            }
            if let needle, !contains(bytes, needle) { continue }
            guard let entries = try? ProcCgroup.parse(String(decoding: bytes, as: UTF8.self)) else {
                scan.unreadable += 1
                continue
            }
            guard let (entry, cgroup) = bestMatch(entries) else { continue }
            if cgroup.kind == .conmon {
                scan.monitors[cgroup.id, default: []].append(pid)
                continue
            }
            if var existing = scan.containers[cgroup.id] {
                existing.pids.append(pid)
                existing.leafPaths[entry.hierarchyID, default: []].insert(entry.path)
                scan.containers[cgroup.id] = existing
            } else {
                scan.containers[cgroup.id] = DiscoveredContainer(
                    cgroup: cgroup, entries: entries, pids: [pid], leafPaths: [entry.hierarchyID: [entry.path]])
            }
        }
        for key in scan.containers.keys { scan.containers[key]?.pids.sort() }
        return scan
    }

    /// The entry whose path names a container, preferring the unified hierarchy, then memory,
    /// then systemd's named hierarchy, then any other.
    public static func bestMatch(_ entries: [ProcCgroupEntry]) -> (ProcCgroupEntry, ContainerCgroup)? {
        func rank(_ e: ProcCgroupEntry) -> Int {
            if e.isUnified { return 0 }
            if e.controllers.contains("memory") { return 1 }
            if e.controllers.contains("name=systemd") { return 2 }
            return 3
        }
        for entry in entries.sorted(by: { rank($0) < rank($1) }) {
            if let cgroup = CgroupPath.parse(entry.path) { return (entry, cgroup) }
        }
        return nil
    }

    /// Reads a small file (relative to `directory`). procfs produces a cgroup file in one go, so a
    /// read that does not fill the buffer has reached the end; a full buffer means read on.
    static func readSmall(directory: Int32, _ path: String, buffer: inout [UInt8]) -> Result<[UInt8], HostReadError> {
        let fd = openat(directory, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(.from(errno: errno, path: path)) }
        defer { close(fd) }
        var result: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.from(errno: errno, path: path))
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
            if n < buffer.count { break }
            if result.count > 1 << 20 { return .failure(.tooLarge(path: path, limit: 1 << 20)) }
        }
        return .success(result)
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                guard let hBase = h.baseAddress, let nBase = n.baseAddress else { return false }
                let first = Int32(needle[0])
                var offset = 0
                let last = h.count - n.count
                while offset <= last {
                    guard let hit = memchr(hBase + offset, first, last - offset + 1) else { return false }
                    let position = hBase.distance(to: UnsafeRawPointer(hit))
                    if memcmp(hBase + position, nBase, n.count) == 0 { return true }
                    offset = position + 1
                }
                return false
            }
        }
    }
}
