/// The kernel's boot parameters, from `/proc/cmdline`, split as the kernel splits them
/// (`next_arg` in lib/cmdline.c): at white space outside double quotes, each `name` or
/// `name=value` with its quotes removed; everything after a bare `--` is for init, not the kernel.
public struct KernelCommandLine: Sendable, Equatable {
    /// Each parameter in order (`value` nil for a bare name).
    public var parameters: [(name: String, value: String?)]

    /// The most parameters kept; the kernel's command line is at most a few KiB.
    public static let maxParameters = 1024

    /// Parses `text` (at most `maxParameters` parameters; the rest are dropped).
    public init(_ text: String) {
        var parameters: [(name: String, value: String?)] = []
        var token = ""
        var quoted = false
        var inToken = false
        func finish() -> Bool {
            defer {
                token = ""
                inToken = false
            }
            guard inToken, !token.isEmpty else { return true }
            if token == "--" { return false }
            guard parameters.count < Self.maxParameters else { return false }
            if let equals = token.firstIndex(of: "=") {
                parameters.append((String(token[..<equals]), String(token[token.index(after: equals)...])))
            } else {
                parameters.append((token, nil))
            }
            return true
        }
        for character in text {
            if character == "\"" {
                quoted.toggle()
                inToken = true
            } else if !quoted && (character == " " || character == "\t" || character == "\n" || character == "\r") {
                if !finish() { break }
            } else {
                token.append(character)
                inToken = true
            }
        }
        if inToken { _ = finish() }
        self.parameters = parameters
    }

    /// The value of the last `name=` (the kernel applies each in turn, so the last wins); nil when
    /// the parameter is absent or given without a value.
    public func value(of name: String) -> String? {
        parameters.last(where: { $0.name == name })?.value
    }

    public static func == (lhs: KernelCommandLine, rhs: KernelCommandLine) -> Bool {
        lhs.parameters.map(\.name) == rhs.parameters.map(\.name)
            && lhs.parameters.map(\.value) == rhs.parameters.map(\.value)
    }
}
