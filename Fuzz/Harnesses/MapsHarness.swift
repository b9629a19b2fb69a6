import HostFacts

extension Harness {
    /// `/proc/<pid>/maps` of a process in a container: its paths are the container's to choose.
    static let maps = Harness(name: "maps", maxLength: 4096, summary: "/proc/<pid>/maps (ProcessMaps.parse)") { bytes in
        let files = ProcessMaps.parse(text(bytes))
        consume(files)
        for file in files {
            require(file.path.hasPrefix("/") && file.inode != 0, "mapped file \(file)")
            consume(file.baseName)
        }
    }
}
