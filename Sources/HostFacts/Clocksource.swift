/// The node's clocksource, from `/sys/devices/system/clocksource/clocksource0`: the one the
/// kernel keeps time with (`current_clocksource`) and those it could switch to
/// (`available_clocksource`).
public struct Clocksource: Sendable, Equatable {
    /// The directory, relative to the host root.
    public static let directory = "sys/devices/system/clocksource/clocksource0"

    /// The clocksource in use (`tsc`, `kvm-clock`, `hpet`, …); nil when unreadable.
    public var current: String?
    /// The clocksources the kernel offers, in its order; empty when unreadable.
    public var available: [String]
    /// Why a file could not be read or understood.
    public var problems: [String]

    /// A clocksource as given.
    public init(current: String?, available: [String], problems: [String] = []) {
        self.current = current
        self.available = available
        self.problems = problems
    }

    /// The longest clocksource name accepted (the kernel's are under 32 characters).
    public static let maxNameLength = 64

    /// The names in `text`, separated by white space (the kernel ends the list with a space and
    /// a newline); nil when one is not a plausible clocksource name (too long, or with control
    /// characters or brackets) or there are more than 64.
    public static func parseNames(_ text: String) -> [String]? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        guard words.count <= 64 else { return nil }
        var names: [String] = []
        for word in words {
            guard word.count <= maxNameLength,
                word.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "[" && $0 != "]" })
            else { return nil }
            names.append(String(word))
        }
        return names
    }

    /// Reads both files under `host` (each at most 4 KiB, non-regular files refused).
    public static func read(host: HostRoot) -> Clocksource {
        var problems: [String] = []
        func names(_ file: String) -> [String]? {
            let path = "\(directory)/\(file)"
            do {
                let text = try host.readText(path, limit: 4096)
                guard let parsed = parseNames(text) else {
                    problems.append("\(host.resolve(path)): not a list of clocksource names")
                    return nil
                }
                return parsed
            } catch {
                problems.append(error.description)
                return nil
            }
        }
        var current: String? = nil
        if let found = names("current_clocksource") {
            if found.count == 1 {
                current = found[0]
            } else {
                problems.append("\(host.resolve("\(directory)/current_clocksource")): \(found.count) names, not one")
            }
        }
        return Clocksource(current: current, available: names("available_clocksource") ?? [], problems: problems)
    }
}
