/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
public struct ProcCgroupEntry: Sendable, Equatable {
    /// The hierarchy id (0 for the unified v2 hierarchy).
    public var hierarchyID: Int
    /// The v1 controllers of the hierarchy (`["cpu", "cpuacct"]`, `["name=systemd"]`); empty on v2.
    public var controllers: [String]
    /// The cgroup path, relative to the reader's cgroup namespace root (`/../..` when the reader
    /// sits in a different namespace).
    public var path: String

    /// Whether this is the unified (v2) hierarchy.
    public var isUnified: Bool { hierarchyID == 0 && controllers.isEmpty }

    /// Whether the path climbs above the reader's cgroup namespace root (`/../…`), so it is not
    /// an absolute path on the host.
    public var isNamespaceRelative: Bool { path == "/.." || path.hasPrefix("/../") }
}

/// Parses `/proc/<pid>/cgroup` (cgroups(7)).
public enum ProcCgroup {
    /// Why a cgroup file could not be parsed.
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The file had no line at all.
        case empty
        /// A line did not have the `id:controllers:path` shape.
        case malformedLine(number: Int, text: String)

        public var description: String {
            switch self {
            case .empty: "empty cgroup file"
            case .malformedLine(let number, let text):
                "line \(number) is not 'id:controllers:path': \(text.prefix(120))"
            }
        }
    }

    /// The entries of `text`. Any malformed line is an error: a half-read file would give a
    /// wrong container.
    public static func parse(_ text: String) throws(ParseError) -> [ProcCgroupEntry] {
        var entries: [ProcCgroupEntry] = []
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            number += 1
            guard let first = line.firstIndex(of: ":") else {
                throw .malformedLine(number: number, text: String(line))
            }
            let afterFirst = line.index(after: first)
            guard let second = line[afterFirst...].firstIndex(of: ":"),
                let id = Int(line[..<first]), id >= 0
            else { throw .malformedLine(number: number, text: String(line)) }
            let controllers = line[afterFirst..<second].split(separator: ",").map(String.init)
            let path = String(line[line.index(after: second)...])
            guard path.hasPrefix("/") else { throw .malformedLine(number: number, text: String(line)) }
            entries.append(ProcCgroupEntry(hierarchyID: id, controllers: controllers, path: path))
        }
        guard !entries.isEmpty else { throw .empty }
        return entries
    }
}
