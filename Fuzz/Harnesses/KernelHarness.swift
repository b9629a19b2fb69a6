import HostFacts

extension Harness {
    /// The kernel facts read as text (there is no `/proc/stat` parser): `osrelease`, `version`,
    /// `version_signature`, `os-release`, `lockdown`; and the node tuning files: sysfs choices
    /// (`transparent_hugepage/*`), clocksource names, `/proc/cmdline`; the writeback facts
    /// (`/proc/sys/vm/dirty_*`, a `/sys/class/bdi` entry) through their real readers, and the input
    /// as a bdi name.
    static let kernel = Harness(
        name: "kernel", maxLength: 1024,
        summary:
            "KernelVersion (release, Debian version, version_signature), OSRelease, lockdown, SysfsChoice, "
            + "Clocksource names, KernelCommandLine, DirtyPageLimits, BackingDevice"
    ) { bytes in
        let input = text(bytes)
        let lines = input.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let versions = [
            KernelVersion.fromRelease(input), KernelVersion.fromDebianVersion(input),
            KernelVersion.fromVersionSignature(input),
            KernelVersion.detect(
                release: lines.first ?? "", version: lines.count > 1 ? lines[1] : nil,
                versionSignature: lines.count > 2 ? lines[2] : nil),
        ]
        consume(versions)
        for version in versions.compactMap({ $0 }) {
            require(version.major >= 0 && version.minor >= 0 && version.patch >= 0, "version \(version)")
            consume(version.code)
            consume(version.description)
        }
        consume(OSRelease.parse(input))
        consume(BPFEnvironment.parseLockdown(input))
        if let choice = SysfsChoice.parse(input) {
            require(choice.choices.contains(choice.selected), "choice \(choice) without its selection")
            require(choice.choices.count <= SysfsChoice.maxChoices, "choice \(choice) too long")
        }
        if let names = Clocksource.parseNames(input) {
            require(names.allSatisfy { !$0.isEmpty && $0.count <= Clocksource.maxNameLength }, "names \(names)")
        }
        let commandLine = KernelCommandLine(input)
        require(commandLine.parameters.count <= KernelCommandLine.maxParameters, "too many parameters")
        consume(commandLine.value(of: "mitigations"))

        Scratch.remove("writeback")
        for name in DirtyPageLimits.names { Scratch.store("writeback/proc/sys/vm/\(name)", bytes) }
        for name in ["strict_limit", "max_bytes", "max_ratio", "min_ratio", "read_ahead_kb"] {
            Scratch.store("writeback/sys/class/bdi/7:0/\(name)", bytes)
        }
        let host = HostRoot(Scratch.root + "/writeback")
        let limits = DirtyPageLimits.read(host: host)
        require(limits.values.values.allSatisfy { $0 >= 0 }, "negative \(limits.values)")
        require(limits.values.count + limits.problems.count == DirtyPageLimits.names.count, "\(limits)")
        let device = BackingDevice.read(host: host, name: "7:0")
        require(device.strictLimit.map { $0 >= 0 } ?? true, "strict_limit \(device)")
        consume(device)
        let named = BackingDevice.read(host: host, name: input)
        require(BackingDevice.isValidName(input) || named.strictLimit == nil, "read a bad name: \(input)")
        require(!input.contains("/") || !BackingDevice.isValidName(input), "a name with a slash: \(input)")
    }
}
