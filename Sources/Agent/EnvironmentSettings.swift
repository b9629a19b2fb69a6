import PGNodeModel

/// Flags from environment variables: every flag of a command can also be given as
/// `PGNODE_<FLAG>`, the flag's long name in capitals with `-` as `_` (`--endpoint-token-file` is
/// `PGNODE_ENDPOINT_TOKEN_FILE`). This is how a Kubernetes manifest configures the agent from a
/// ConfigMap (`envFrom`) instead of `$(VAR)` references in its arguments.
///
/// - A flag on the command line wins over its variable (the variable is then not used at all).
/// - An empty variable counts as unset (a ConfigMap key with the value `""`).
/// - An option's variable becomes `--name=value`; a flag with an inversion (`--gzip`/`--no-gzip`)
///   takes `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); a flag without one takes `true`
///   (given) or `false` (not given).
///
/// The flags come from the argument parser's own description of the command (the JSON of
/// `--experimental-dump-help`), so a new flag gets its variable without anything to keep in sync.
public struct EnvironmentSettings: Sendable, Equatable {
    /// The prefix of every variable.
    public static let prefix = "PGNODE_"

    /// A flag or option the command accepts.
    public struct Argument: Sendable, Equatable {
        /// How its variable turns into arguments.
        public enum Kind: Sendable, Equatable {
            /// `--name value`: the variable's value is the option's value.
            case option
            /// `--name`, given or not: `true` gives it, `false` does not.
            case flag
            /// `--name` / `--no-name`: `true` gives the first, `false` the second.
            case invertibleFlag
        }

        /// The long name without dashes (`endpoint-token-file`).
        public var name: String
        /// How it is given.
        public var kind: Kind

        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }

        /// `PGNODE_ENDPOINT_TOKEN_FILE` for `endpoint-token-file`.
        public var variable: String {
            EnvironmentSettings.prefix + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
        }

        /// The long names that give this argument on a command line (`gzip` and `no-gzip`).
        var spellings: [String] { kind == .invertibleFlag ? [name, "no-" + name] : [name] }
    }

    /// The command's flags and options, in the parser's order.
    public var arguments: [Argument]

    /// Flags the parser adds to every command; they get no variable.
    static let builtIn: Set<String> = ["help", "version", "experimental-dump-help"]

    public init(arguments: [Argument]) { self.arguments = arguments }

    /// The flags of a command from the argument parser's JSON description of it
    /// (`ParsableCommand._dumpHelp()`, the output of `--experimental-dump-help`): every argument
    /// with a long name, except `--help` and `--version`; a flag `--no-X` next to a flag `--X` is
    /// `X`'s inversion.
    public init(toolInfo json: String) throws(EnvironmentSettingsError) {
        let root: JSONValue
        do { root = try JSONParser.parse(json) } catch {
            throw EnvironmentSettingsError(message: "the command's description is not JSON: \(error)")
        }
        guard let entries = root["command"]?["arguments"]?.arrayValue else {
            throw EnvironmentSettingsError(message: "the command's description has no arguments")
        }
        var options: [String] = []
        var flags: [String] = []
        var order: [String] = []
        for entry in entries {
            let long = (entry["names"]?.arrayValue ?? []).first { $0["kind"]?.stringValue == "long" }
            guard let name = long?["name"]?.stringValue, !Self.builtIn.contains(name) else { continue }
            switch entry["kind"]?.stringValue {
            case "option": options.append(name)
            case "flag": flags.append(name)
            default: continue
            }
            order.append(name)
        }
        let flagSet = Set(flags)
        var result: [Argument] = []
        for name in order {
            if options.contains(name) {
                result.append(Argument(name: name, kind: .option))
            } else if name.hasPrefix("no-"), flagSet.contains(String(name.dropFirst(3))) {
                continue  // the inversion of another flag: that flag's variable covers it
            } else {
                result.append(Argument(name: name, kind: flagSet.contains("no-" + name) ? .invertibleFlag : .flag))
            }
        }
        self.arguments = result
    }

    /// The arguments to parse: `--name=value` (or the flag) for every variable that is set, not
    /// empty, and whose flag `commandLine` does not give, followed by `commandLine` itself.
    public func merged(commandLine: [String], environment: [String: String]) throws(EnvironmentSettingsError)
        -> Merged
    {
        let given = Self.longNames(in: commandLine)
        var injected: [String] = []
        var sources: [String: String] = [:]
        for argument in arguments {
            guard let value = environment[argument.variable], !value.isEmpty else { continue }
            guard argument.spellings.allSatisfy({ !given.contains($0) }) else { continue }
            switch argument.kind {
            case .option:
                injected.append("--\(argument.name)=\(value)")
            case .flag:
                if try Self.boolean(value, argument.variable) { injected.append("--\(argument.name)") }
            case .invertibleFlag:
                injected.append(
                    try Self.boolean(value, argument.variable) ? "--\(argument.name)" : "--no-\(argument.name)")
            }
            for spelling in argument.spellings { sources[spelling] = argument.variable }
        }
        return Merged(arguments: injected + commandLine, variables: sources)
    }

    /// Variables with the prefix that name no flag of the command (a typo, or a setting of
    /// another version), sorted.
    public func unknownVariables(_ environment: [String: String]) -> [String] {
        let known = Set(arguments.map(\.variable))
        return environment.keys.filter { $0.hasPrefix(Self.prefix) && !known.contains($0) }.sorted()
    }

    /// What `merged` produced.
    public struct Merged: Sendable, Equatable {
        /// The arguments for the parser.
        public var arguments: [String]
        /// The long names (both spellings of an inversion) that were set by a variable → that variable.
        public var variables: [String: String]

        /// The variable behind the first flag that `message` names (`--interval must be …`,
        /// `The value 'x' is invalid for '--interval <seconds>'`), when a variable set it.
        public func variable(blamedBy message: String) -> String? {
            let bytes = Array(message.utf8)
            var index = 0
            while index + 2 < bytes.count {
                if bytes[index] == UInt8(ascii: "-"), bytes[index + 1] == UInt8(ascii: "-"),
                    index == 0 || !Self.isNameByte(bytes[index - 1])
                {
                    var end = index + 2
                    while end < bytes.count, Self.isNameByte(bytes[end]) { end += 1 }
                    let name = String(decoding: bytes[(index + 2)..<end], as: UTF8.self)
                    if let variable = variables[name] { return variable }
                    index = end
                } else {
                    index += 1
                }
            }
            return nil
        }

        static func isNameByte(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-")
        }
    }

    /// The long names a command line gives (`--name` and `--name=value`), up to a `--`.
    static func longNames(in commandLine: [String]) -> Set<String> {
        var names: Set<String> = []
        for argument in commandLine {
            if argument == "--" { break }
            guard argument.hasPrefix("--"), argument.count > 2 else { continue }
            let body = argument.dropFirst(2)
            names.insert(String(body.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]))
        }
        return names
    }

    /// `true`, `1`, `yes`, `on` → true; `false`, `0`, `no`, `off` → false (any case).
    static func boolean(_ value: String, _ variable: String) throws(EnvironmentSettingsError) -> Bool {
        switch value.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            throw EnvironmentSettingsError(
                message: "\(variable) must be true or false (or 1/0, yes/no, on/off), not '\(value)'")
        }
    }
}

/// A variable that cannot be turned into a flag, or a command description that cannot be read.
public struct EnvironmentSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the variable.
    public var message: String
    public var description: String { message }
}
