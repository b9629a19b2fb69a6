import HostFacts

/// One `name = value` line of a configuration file.
public struct ConfigEntry: Sendable, Equatable {
    /// The parameter name, lower-cased (names are case-insensitive).
    public var name: String
    /// The value, with quotes removed and escapes resolved.
    public var value: String
    /// The file the line is in (a path inside the container).
    public var file: String
    /// The line number, from 1.
    public var line: Int
}

/// The lexical rules of `postgresql.conf` (guc-file.l), applied to one file's text. Include
/// directives are returned as entries named `include`, `include_if_exists` or `include_dir`;
/// following them is the caller's job.
public enum ConfigFileSyntax {
    /// A syntax error, as PostgreSQL reports it.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The file.
        public var file: String
        /// The line, from 1.
        public var line: Int
        /// What was wrong.
        public var message: String
        public var description: String { "syntax error in file \"\(file)\" line \(line), \(message)" }
    }

    enum Token: Equatable {
        case identifier(String)  // ID or QUALIFIED_ID
        case string(String)  // quoted, unescaped
        case number(String)  // INTEGER or REAL
        case unquoted(String)  // UNQUOTED_STRING
        case equals
        case invalid(String)
    }

    /// One file's text as parsed, within bounds on the lines and errors kept.
    public struct ParsedFile: Sendable, Equatable {
        /// The `name = value` lines and include directives, in order.
        public var entries: [ConfigEntry]
        /// The first syntax errors (at most the bound given to `parse`).
        public var errors: [SyntaxError]
        /// How many syntax errors there were in all, kept or not.
        public var errorCount: Int
        /// How many lines were parsed.
        public var lines: Int
        /// Whether the text has more lines than were parsed.
        public var truncated: Bool
    }

    /// The entries of `text`; lines with errors are reported and skipped (PostgreSQL refuses the
    /// whole file: the caller decides what that means for a server already running).
    public static func parse(_ text: String, file: String) -> (entries: [ConfigEntry], errors: [SyntaxError]) {
        let parsed = parse(text, file: file, maxLines: .max, maxErrors: .max)
        return (parsed.entries, parsed.errors)
    }

    /// The entries of the first `maxLines` lines of `text`, keeping at most `maxErrors` syntax
    /// errors. Lines end at each newline byte (a carriage return before it is white space, as
    /// for PostgreSQL's scanner).
    public static func parse(_ text: String, file: String, maxLines: Int, maxErrors: Int) -> ParsedFile {
        var result = ParsedFile(entries: [], errors: [], errorCount: 0, lines: 0, truncated: false)
        var rest = text.utf8[...]
        while !rest.isEmpty {
            guard result.lines < maxLines else {
                result.truncated = true
                break
            }
            let end = rest.firstIndex(of: 10) ?? rest.endIndex
            let rawLine = rest[rest.startIndex..<end]
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
            result.lines += 1
            parseLine(Array(rawLine), number: result.lines, file: file, into: &result, maxErrors: maxErrors)
        }
        return result
    }

    /// One line: an entry, an error, or nothing (blank or a comment).
    private static func parseLine(
        _ line: [UInt8], number lineNumber: Int, file: String, into result: inout ParsedFile, maxErrors: Int
    ) {
        let tokens = lex(line)
        if tokens.isEmpty { return }
        func fail(_ message: String) {
            result.errorCount += 1
            if result.errors.count < maxErrors {
                result.errors.append(SyntaxError(file: file, line: lineNumber, message: message))
            }
        }
        guard case .identifier(let name) = tokens[0] else {
            fail("near token \"\(describe(tokens[0]))\"")
            return
        }
        var index = 1
        if index < tokens.count, tokens[index] == .equals { index += 1 }
        guard index < tokens.count else {
            fail("near end of line")
            return
        }
        let value: String
        switch tokens[index] {
        case .identifier(let v), .string(let v), .number(let v), .unquoted(let v): value = v
        case .equals, .invalid:
            fail("near token \"\(describe(tokens[index]))\"")
            return
        }
        guard index + 1 == tokens.count else {
            fail("near token \"\(describe(tokens[index + 1]))\"")
            return
        }
        result.entries.append(ConfigEntry(name: name.lowercased(), value: value, file: file, line: lineNumber))
    }

    private static func describe(_ token: Token) -> String {
        switch token {
        case .identifier(let s), .number(let s), .unquoted(let s), .invalid(let s): s
        case .string(let s): "'\(s)'"
        case .equals: "="
        }
    }

    static func isLetter(_ b: UInt8) -> Bool { (65...90).contains(b) || (97...122).contains(b) || b == 95 || b >= 128 }
    static func isDigit(_ b: UInt8) -> Bool { (48...57).contains(b) }
    static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (65...70).contains(b) || (97...102).contains(b) }

    /// Tokens of one line, longest match first as flex does; `#` starts a comment.
    static func lex(_ line: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var i = 0
        let n = line.count
        func text(_ from: Int, _ to: Int) -> String { String(decoding: line[from..<to], as: UTF8.self) }
        while i < n {
            let b = line[i]
            if b == 32 || b == 9 || b == 13 || b == 12 || b == 11 {
                i += 1
                continue
            }
            if b == 35 { break }  // '#'
            if b == 61 {  // '='
                tokens.append(.equals)
                i += 1
                continue
            }
            if b == 39 {  // quote
                guard let (value, end) = quoted(line, from: i) else {
                    tokens.append(.invalid(text(i, n)))
                    return tokens
                }
                tokens.append(.string(value))
                i = end
                continue
            }
            if isLetter(b) {
                // ID, QUALIFIED_ID (ID.ID) or UNQUOTED_STRING: take the longest.
                var idEnd = i + 1
                while idEnd < n, isLetter(line[idEnd]) || isDigit(line[idEnd]) { idEnd += 1 }
                var qualifiedEnd = idEnd
                if idEnd + 1 < n, line[idEnd] == 46, isLetter(line[idEnd + 1]) {
                    qualifiedEnd = idEnd + 2
                    while qualifiedEnd < n, isLetter(line[qualifiedEnd]) || isDigit(line[qualifiedEnd]) {
                        qualifiedEnd += 1
                    }
                }
                var unquotedEnd = i + 1
                while unquotedEnd < n {
                    let c = line[unquotedEnd]
                    guard isLetter(c) || isDigit(c) || c == 45 || c == 46 || c == 95 || c == 58 || c == 47 else {
                        break
                    }
                    unquotedEnd += 1
                }
                let longestID = max(idEnd, qualifiedEnd)
                if unquotedEnd > longestID {
                    tokens.append(.unquoted(text(i, unquotedEnd)))
                    i = unquotedEnd
                } else {
                    tokens.append(.identifier(text(i, longestID)))
                    i = longestID
                }
                continue
            }
            if isDigit(b) || b == 45 || b == 43 || b == 46 {
                if let end = number(line, from: i) {
                    tokens.append(.number(text(i, end)))
                    i = end
                    continue
                }
            }
            tokens.append(.invalid(text(i, i + 1)))
            i += 1
        }
        return tokens
    }

    /// INTEGER `{SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*` or REAL
    /// `{SIGN}?{DIGIT}*"."{DIGIT}*{EXPONENT}?`, whichever is longer; nil when neither matches.
    static func number(_ line: [UInt8], from start: Int) -> Int? {
        let n = line.count
        var i = start
        if i < n, line[i] == 45 || line[i] == 43 { i += 1 }
        let afterSign = i
        // INTEGER
        var integerEnd: Int? = nil
        if i + 2 < n, line[i] == 48, line[i + 1] == 120 || line[i + 1] == 88, isHex(line[i + 2]) {
            var j = i + 2
            while j < n, isHex(line[j]) { j += 1 }
            while j < n, (65...90).contains(line[j]) || (97...122).contains(line[j]) { j += 1 }
            integerEnd = j
        }
        if integerEnd == nil, i < n, isDigit(line[i]) {
            var j = i
            while j < n, isDigit(line[j]) { j += 1 }
            while j < n, (65...90).contains(line[j]) || (97...122).contains(line[j]) { j += 1 }
            integerEnd = j
        }
        // REAL
        var realEnd: Int? = nil
        var j = afterSign
        while j < n, isDigit(line[j]) { j += 1 }
        if j < n, line[j] == 46 {
            j += 1
            while j < n, isDigit(line[j]) { j += 1 }
            if j < n, line[j] == 101 || line[j] == 69 {
                var k = j + 1
                if k < n, line[k] == 45 || line[k] == 43 { k += 1 }
                if k < n, isDigit(line[k]) {
                    while k < n, isDigit(line[k]) { k += 1 }
                    j = k
                }
            }
            realEnd = j
        }
        switch (integerEnd, realEnd) {
        case (nil, nil): return nil
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (let a?, let b?): return max(a, b)
        }
    }

    /// A quoted string `'…'` with `''` and backslash escapes (`\n`, `\t`, `\b`, `\f`, `\r`,
    /// octal `\ooo`, any other `\x` is `x`): the value and the index after the closing quote.
    static func quoted(_ line: [UInt8], from start: Int) -> (String, Int)? {
        var bytes: [UInt8] = []
        var i = start + 1
        let n = line.count
        while i < n {
            let b = line[i]
            if b == 39 {
                if i + 1 < n, line[i + 1] == 39 {
                    bytes.append(39)
                    i += 2
                    continue
                }
                return (String(decoding: bytes, as: UTF8.self), i + 1)
            }
            if b == 92 {  // backslash
                guard i + 1 < n else { return nil }
                let c = line[i + 1]
                switch c {
                case 98: bytes.append(8)
                case 102: bytes.append(12)
                case 110: bytes.append(10)
                case 114: bytes.append(13)
                case 116: bytes.append(9)
                case 48...55:
                    var value = 0
                    var k = i + 1
                    while k < n, k < i + 4, (48...55).contains(line[k]) {
                        value = value * 8 + Int(line[k] - 48)
                        k += 1
                    }
                    bytes.append(UInt8(truncatingIfNeeded: value))
                    i = k
                    continue
                default: bytes.append(c)
                }
                i += 2
                continue
            }
            bytes.append(b)
            i += 1
        }
        return nil
    }
}
