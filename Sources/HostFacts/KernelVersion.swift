/// A kernel version `a.b.c` and its `LINUX_VERSION_CODE`, found the way libbpf finds it.
public struct KernelVersion: Sendable, Equatable, Comparable, CustomStringConvertible {
    /// Where the version was read from.
    public enum Source: String, Sendable {
        /// Ubuntu's `/proc/version_signature` ("Ubuntu 5.4.0-12.15-generic 5.4.8": the last field).
        case versionSignature = "version_signature"
        /// Debian's `uname -v` ("#1 SMP Debian 4.19.260-1 (2022-09-29)").
        case debianVersion = "debian_version"
        /// The release string (`uname -r`).
        case release
    }

    /// Major, minor and patch (sublevel).
    public var major: Int, minor: Int, patch: Int
    /// Where it came from.
    public var source: Source

    /// A version.
    public init(major: Int, minor: Int, patch: Int, source: Source = .release) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.source = source
    }

    /// `KERNEL_VERSION(a,b,c) = a*65536 + b*256 + min(c,255)`, as the kernel and libbpf compute it.
    /// Components outside what a version can hold (negative, or 2^24 and above, which
    /// `parseTriple` never produces) are clamped first, so the sum cannot overflow.
    public var code: Int {
        func clamp(_ value: Int, _ limit: Int) -> Int { min(max(value, 0), limit) }
        return (clamp(major, 1 << 24) << 16) + (clamp(minor, 1 << 24) << 8) + clamp(patch, 255)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    public static func == (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor, a.patch) == (b.major, b.minor, b.patch)
    }

    /// The version as libbpf determines it: Ubuntu's signature first, then a Debian `uname -v`,
    /// then the release. Nil when none of them holds a version.
    public static func detect(release: String, version: String?, versionSignature: String?) -> KernelVersion? {
        if let signature = versionSignature, let v = fromVersionSignature(signature) { return v }
        if let version, let v = fromDebianVersion(version) { return v }
        return fromRelease(release)
    }

    /// "Ubuntu 5.4.0-12.15-generic 5.4.8" → 5.4.8 (the third whitespace-separated field).
    public static func fromVersionSignature(_ text: String) -> KernelVersion? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.count >= 3 else { return nil }
        return parseTriple(fields[2], source: .versionSignature, requirePatch: true)
    }

    /// "#1 SMP Debian 4.19.260-1 (2022-09-29)" → 4.19.260. libbpf matches only
    /// "#N SMP Debian"; newer Debian kernels say "#1 SMP PREEMPT_DYNAMIC Debian 6.1.123-1", so any
    /// "Debian" word followed by a version counts.
    public static func fromDebianVersion(_ text: String) -> KernelVersion? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.first?.hasPrefix("#") == true else { return nil }
        for (index, field) in fields.enumerated() where field == "Debian" && index + 1 < fields.count {
            if let v = parseTriple(fields[index + 1], source: .debianVersion, requirePatch: true) { return v }
        }
        return nil
    }

    /// "4.18.0-553.16.1.el8_10.x86_64" → 4.18.0; "6.1.100+" → 6.1.100; "6.8-rc1" → 6.8.0.
    public static func fromRelease(_ text: String) -> KernelVersion? {
        parseTriple(Substring(text.trimmingWhitespace()), source: .release, requirePatch: false)
    }

    /// Reads leading `a.b[.c]` digits, stopping at the first character that is not part of them.
    static func parseTriple(_ text: Substring, source: Source, requirePatch: Bool) -> KernelVersion? {
        var numbers: [Int] = []
        var current: Int? = nil
        for ch in text {
            if let digit = ch.wholeNumberValue, ch.isASCII {
                let next = (current ?? 0) * 10 + digit
                guard next < 1 << 24 else { return nil }  // huge values are garbage, not versions
                current = next
            } else if ch == ".", let value = current, numbers.count < 2 {
                numbers.append(value)
                current = nil
            } else {
                break
            }
        }
        if let current { numbers.append(current) }
        guard numbers.count >= 2 else { return nil }
        if numbers.count == 2 {
            guard !requirePatch else { return nil }
            numbers.append(0)
        }
        return KernelVersion(major: numbers[0], minor: numbers[1], patch: numbers[2], source: source)
    }
}
