import HostFacts

extension Harness {
    /// `/proc/<pid>/mountinfo` (mount points a container chooses, octal escapes), and the cgroup
    /// layout read from it.
    static let mountinfo = Harness(
        name: "mountinfo", maxLength: 4096, summary: "/proc/<pid>/mountinfo (MountInfo.parse) and CgroupLayout.detect"
    ) { bytes in
        let input = text(bytes)
        let (entries, malformed) = MountInfo.parse(input)
        consume(entries)
        let lines = input.split(separator: "\n", omittingEmptySubsequences: true).count
        require(
            entries.count + malformed == lines, "\(entries.count) entries + \(malformed) malformed ≠ \(lines) lines")
        // An empty host root: no live cgroup mount, so the layout comes from the table alone.
        let layout = CgroupLayout.detect(host: HostRoot(Scratch.root), mounts: entries)
        consume(layout)
        consume(layout.memoryHierarchy)
    }
}
