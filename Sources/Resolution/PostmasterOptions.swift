/// The postmaster's command line, parsed as `postgres` parses it (getopt string
/// `B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:W:-:`): settings given with `-c name=value` or
/// `--name=value`, and the switches that are shorthands for settings.
public struct PostmasterOptions: Sendable, Equatable {
    /// `-D`: the configuration directory (usually the data directory).
    public var configDirectory: String?
    /// Settings from the command line, in order (later ones win), names lower-cased with `-` → `_`.
    public var settings: [Setting]
    /// Arguments that could not be parsed.
    public var problems: [String]

    /// One `name=value` from the command line.
    public struct Setting: Sendable, Equatable {
        /// The name.
        public var name: String
        /// The value.
        public var value: String
    }

    /// Single-letter switches that set a setting (postgres.c, process_postgres_switches).
    static let shorthands: [Character: String] = [
        "B": "shared_buffers", "N": "max_connections", "S": "work_mem", "p": "port", "k": "unix_socket_directories",
        "h": "listen_addresses", "d": "log_min_messages", "r": "log_filename", "W": "post_auth_delay",
    ]
    static let withArgument: Set<Character> = [
        "B", "c", "C", "D", "d", "f", "h", "k", "N", "p", "r", "S", "t", "W", "-",
    ]

    /// Parses `arguments` (without argv[0]).
    public static func parse(_ arguments: [String]) -> PostmasterOptions {
        var result = PostmasterOptions(configDirectory: nil, settings: [], problems: [])
        var index = 0
        func add(_ text: String) {
            guard let eq = text.firstIndex(of: "=") else {
                result.problems.append("'\(text)' is not name=value")
                return
            }
            let name = text[..<eq].lowercased().replacing("-", with: "_")
            result.settings.append(Setting(name: name, value: String(text[text.index(after: eq)...])))
        }
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument.count > 1 else {
                // getopt stops at the first non-option (postgres then complains); so do we.
                result.problems.append("unexpected argument '\(argument)'")
                break
            }
            if argument.hasPrefix("--") {
                let body = String(argument.dropFirst(2))
                if body.isEmpty { break }
                add(body)
                continue
            }
            var letters = Substring(argument.dropFirst())
            while let letter = letters.first {
                letters = letters.dropFirst()
                guard withArgument.contains(letter) else { continue }  // flags such as -i, -F, -s
                let value: String
                if !letters.isEmpty {
                    value = String(letters)
                    letters = ""
                } else if index < arguments.count {
                    value = arguments[index]
                    index += 1
                } else {
                    result.problems.append("-\(letter) needs a value")
                    break
                }
                switch letter {
                case "D": result.configDirectory = value
                case "c", "-": add(value)
                default:
                    if let name = shorthands[letter] { result.settings.append(Setting(name: name, value: value)) }
                }
            }
        }
        return result
    }

    /// The last value given for `name`.
    public func value(_ name: String) -> String? { settings.last(where: { $0.name == name })?.value }

    /// Splits `postmaster.opts` (`/path/postgres "-D" "/data" "-c" "a=b"`) into arguments, argv[0] first.
    public static func splitOpts(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var inQuotes = false
        var hasToken = false
        for character in text {
            if character == "\"" {
                inQuotes.toggle()
                hasToken = true
            } else if !inQuotes && (character == " " || character == "\n" || character == "\t") {
                if hasToken { result.append(current) }
                current = ""
                hasToken = false
            } else {
                current.append(character)
                hasToken = true
            }
        }
        if hasToken { result.append(current) }
        return result
    }
}
