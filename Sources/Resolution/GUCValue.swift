#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why a setting's value is not valid, worded as PostgreSQL words it.
public struct GUCValueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message.
    public var message: String
    public var description: String { message }
}

/// Parses setting values exactly as PostgreSQL's `parse_int`, `parse_real` and enum lookup do
/// (guc.c): `strtol` with base 0 (so `0x10` is 16 and `010` is 8), a fraction or exponent
/// re-read with `strtod`, white space, then a case-sensitive unit (`B`, `kB`, `MB`, `GB`, `TB`)
/// converted to the setting's base unit and rounded to the nearest integer (ties to even).
public enum GUCValue {
    /// Memory units and their size in bytes.
    public static let memoryUnits: [(String, Double)] = [
        ("B", 1), ("kB", 1024), ("MB", 1024 * 1024), ("GB", 1024 * 1024 * 1024), ("TB", 1024 * 1024 * 1024 * 1024),
    ]

    /// An integer setting in units of `baseUnitBytes` (nil for a unitless integer). Returns the
    /// value in the base unit.
    public static func parseInteger(_ text: String, baseUnitBytes: Int64?) throws(GUCValueError) -> Int64 {
        let (number, rest) = try leadingNumber(text)
        var value = number
        let unit = rest.trimmingWhitespace()
        if !unit.isEmpty {
            guard let baseUnitBytes else {
                throw GUCValueError(message: "invalid value for an integer parameter: \"\(text)\"")
            }
            guard let (_, bytes) = memoryUnits.first(where: { $0.0 == unit }) else {
                throw GUCValueError(
                    message:
                        "invalid unit \"\(unit)\" in \"\(text)\": valid units are \"B\", \"kB\", \"MB\", \"GB\", and \"TB\""
                )
            }
            value = number * bytes / Double(baseUnitBytes)
        }
        value = value.rounded(.toNearestOrEven)
        guard value.isFinite, value >= Double(Int32.min), value <= Double(Int32.max) else {
            throw GUCValueError(message: "value \"\(text)\" is out of range for an integer parameter")
        }
        return Int64(value)
    }

    /// A real (floating point) setting without units.
    public static func parseReal(_ text: String) throws(GUCValueError) -> Double {
        let trimmed = text.trimmingWhitespace()
        var end: UnsafeMutablePointer<CChar>? = nil
        let (value, consumed) = trimmed.withCString { pointer in
            let v = strtod(pointer, &end)
            return (v, end.map { $0 - UnsafeMutablePointer(mutating: pointer) } ?? 0)
        }
        guard consumed > 0, trimmed.utf8.dropFirst(consumed).allSatisfy({ $0 == 32 || $0 == 9 }), !value.isNaN,
            value.isFinite
        else {
            throw GUCValueError(message: "invalid value for a real parameter: \"\(text)\"")
        }
        return value
    }

    /// An enum setting: the option matching `text` case-insensitively, as spelled in `options`
    /// (aliases map to the canonical option).
    public static func parseEnum(_ text: String, options: [String: String]) throws(GUCValueError) -> String {
        let key = text.trimmingWhitespace().lowercased()
        guard let value = options[key] else {
            let valid = Set(options.values).sorted().joined(separator: ", ")
            throw GUCValueError(message: "invalid value \"\(text)\": valid values are \(valid)")
        }
        return value
    }

    /// `strtol(text, &end, 0)`, re-read with `strtod` when a `.` or exponent follows (parse_int).
    static func leadingNumber(_ text: String) throws(GUCValueError) -> (Double, Substring) {
        guard !text.utf8.contains(0) else { throw GUCValueError(message: "invalid value: contains NUL") }
        var result: (Double, Int)? = nil
        text.withCString { pointer in
            var end: UnsafeMutablePointer<CChar>? = nil
            errno = 0
            let integer = strtol(pointer, &end, 0)
            let overflow = errno == ERANGE
            guard let e = end, e != UnsafeMutablePointer(mutating: pointer) else { return }
            var value = Double(integer)
            var stop = e
            if e.pointee == 46 || e.pointee == 101 || e.pointee == 69 || overflow {  // '.', 'e', 'E'
                var realEnd: UnsafeMutablePointer<CChar>? = nil
                value = strtod(pointer, &realEnd)
                guard let r = realEnd, r != UnsafeMutablePointer(mutating: pointer) else { return }
                stop = r
            }
            result = (value, stop - UnsafeMutablePointer(mutating: pointer))
        }
        guard let (value, consumed) = result, value.isFinite else {
            throw GUCValueError(message: "invalid value for an integer parameter: \"\(text)\"")
        }
        let utf8 = text.utf8
        let index = utf8.index(utf8.startIndex, offsetBy: consumed)
        return (value, Substring(text[index...]))
    }
}
