import HostFacts

extension Harness {
    /// The kernel facts read as text (there is no `/proc/stat` parser): `osrelease`, `version`,
    /// `version_signature`, `os-release`, `lockdown`.
    static let kernel = Harness(
        name: "kernel", maxLength: 1024,
        summary: "KernelVersion (release, Debian version, version_signature), OSRelease, lockdown"
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
    }
}
