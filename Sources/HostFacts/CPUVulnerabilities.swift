/// What the kernel says of the CPU's speculative-execution vulnerabilities and their
/// mitigations: each file of `/sys/devices/system/cpu/vulnerabilities` (`mds`, `meltdown`,
/// `retbleed`, `spec_rstack_overflow`, …) with its one line as the kernel wrote it, and the
/// `mitigations=` boot parameter.
public struct CPUVulnerabilities: Sendable, Equatable {
    /// The directory, relative to the host root.
    public static let directory = "sys/devices/system/cpu/vulnerabilities"

    /// One vulnerability file.
    public struct Entry: Sendable, Equatable {
        /// The file's name (`mds`, `spectre_v2`).
        public var name: String
        /// Its text, trimmed (`Mitigation: Clear CPU buffers; SMT vulnerable`).
        public var state: String

        /// An entry.
        public init(name: String, state: String) {
            self.name = name
            self.state = state
        }
    }

    /// Whether the directory exists (kernels before 4.15 and some architectures have none).
    public var present: Bool
    /// The files, sorted by name.
    public var entries: [Entry]
    /// `mitigations=` from the boot parameters (`auto`, `auto,nosmt`, `off`); nil when not given.
    public var mitigationsParameter: String?
    /// Whether `/proc/cmdline` could be read (when not, `mitigationsParameter` says nothing).
    public var commandLineRead: Bool
    /// Files that could not be read, or entries that were skipped.
    public var problems: [String]

    /// Facts as given.
    public init(
        present: Bool, entries: [Entry], mitigationsParameter: String?, commandLineRead: Bool,
        problems: [String] = []
    ) {
        self.present = present
        self.entries = entries
        self.mitigationsParameter = mitigationsParameter
        self.commandLineRead = commandLineRead
        self.problems = problems
    }

    /// The state of the vulnerability `name`, if the kernel lists it.
    public func state(_ name: String) -> String? { entries.first { $0.name == name }?.state }

    /// The most files read (the kernel has about twenty); more is a problem, not a longer read.
    public static let maxEntries = 64

    /// Whether `name` looks like a vulnerability file's name: lower-case letters, digits, `_`.
    static func isEntryName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy {
                (0x61...0x7A).contains($0.value) || (0x30...0x39).contains($0.value) || $0 == "_"
            }
    }

    /// Reads the directory and `proc/cmdline` under `host`: at most `maxEntries` files of at most
    /// 4 KiB each, non-regular files refused, the command line at most 64 KiB.
    public static func read(host: HostRoot) -> CPUVulnerabilities {
        var problems: [String] = []
        var commandLineRead = false
        var parameter: String? = nil
        do {
            let text = try host.readText("proc/cmdline", limit: 64 << 10)
            parameter = KernelCommandLine(text).value(of: "mitigations")
            commandLineRead = true
        } catch {
            problems.append(error.description)
        }
        guard host.isDirectory(directory) else {
            return CPUVulnerabilities(
                present: false, entries: [], mitigationsParameter: parameter, commandLineRead: commandLineRead,
                problems: problems)
        }
        var entries: [Entry] = []
        do {
            let names = try host.list(directory, limit: maxEntries).sorted()
            for name in names {
                guard isEntryName(name) else {
                    problems.append("\(host.resolve(directory)): skipped an entry named '\(name.prefix(40))'")
                    continue
                }
                do {
                    let state = try host.readText("\(directory)/\(name)", limit: 4096).trimmingWhitespace()
                    entries.append(Entry(name: name, state: state))
                } catch {
                    problems.append(error.description)
                }
            }
        } catch {
            problems.append(error.description)
        }
        return CPUVulnerabilities(
            present: true, entries: entries, mitigationsParameter: parameter, commandLineRead: commandLineRead,
            problems: problems)
    }
}
