import Resolution

extension Harness {
    /// `/proc/<pid>/cgroup` of any process on the node, and the container ids read from its paths.
    static let procCgroup = Harness(
        name: "proc-cgroup", maxLength: 2048,
        summary: "/proc/<pid>/cgroup (ProcCgroup.parse) and CgroupPath.parse of each path"
    ) { bytes in
        let input = text(bytes)
        if let entries = try? ProcCgroup.parse(input) {
            consume(entries)
            require(!entries.isEmpty, "no entries and no error")
            for entry in entries {
                require(entry.path.hasPrefix("/") && entry.hierarchyID >= 0, "entry \(entry)")
                consume(entry.isUnified)
                consume(entry.isNamespaceRelative)
                if let cgroup = CgroupPath.parse(entry.path) {
                    consume(cgroup)
                    require(cgroup.containerPath.hasPrefix("/") && !cgroup.id.isEmpty, "container \(cgroup)")
                }
            }
        }
        consume(CgroupPath.parse(input))
    }
}
