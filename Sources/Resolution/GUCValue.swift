import Glibc

/// Why PostgreSQL refuses a setting's value, in its own words: the `errmsg` and, when it gives
/// one, the `errhint` it logs before refusing to start (or, on a reload, before ignoring the value).
public struct GUCValueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message, e.g. `1e+300 is outside the valid range for parameter "hash_mem_multiplier" (1 .. 1000)`.
    public var message: String
    /// The hint, e.g. `Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".`
    public var hint: String?

    /// A message and an optional hint.
    public init(message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    /// The message, then the hint.
    public var description: String { hint.map { "\(message). \($0)" } ?? message }
}

/// Why a text is not a number of a setting's type (`parse_int` or `parse_real` returned false),
/// with PostgreSQL's hint when it gives one.
public struct GUCSyntaxError: Error, Sendable, Equatable {
    /// The hint (`Value exceeds integer range.`, the list of valid units), or nil.
    public var hint: String?
}

/// The base unit of a numeric setting (guc.h `GUC_UNIT_*`): what a value without a unit counts.
public enum GUCUnit: Sendable, Equatable, CaseIterable {
    /// `GUC_UNIT_BYTE`.
    case bytes
    /// `GUC_UNIT_KB` (`work_mem`, `maintenance_work_mem`, `autovacuum_work_mem`).
    case kilobytes
    /// `GUC_UNIT_MB` (`min_dynamic_shared_memory`, `max_wal_size`).
    case megabytes
    /// `GUC_UNIT_BLOCKS`: pages of `BLCKSZ`, 8192 bytes in every standard build
    /// (`shared_buffers`, `effective_cache_size`).
    case blocks
    /// `GUC_UNIT_XBLOCKS`: WAL pages of `XLOG_BLCKSZ`, 8192 bytes (`wal_buffers`).
    case walBlocks
    /// `GUC_UNIT_MS`.
    case milliseconds
    /// `GUC_UNIT_S`.
    case seconds
    /// `GUC_UNIT_MIN`.
    case minutes

    /// The unit's name as PostgreSQL prints it after a value (`get_config_unit_name`).
    public var name: String {
        switch self {
        case .bytes: "B"
        case .kilobytes: "kB"
        case .megabytes: "MB"
        case .blocks, .walBlocks: "8kB"
        case .milliseconds: "ms"
        case .seconds: "s"
        case .minutes: "min"
        }
    }

    /// Bytes in one unit, for memory units; nil for time units.
    public var bytes: Int64? {
        switch self {
        case .bytes: 1
        case .kilobytes: 1024
        case .megabytes: 1 << 20
        case .blocks, .walBlocks: 8192
        case .milliseconds, .seconds, .minutes: nil
        }
    }

    /// Whether this is a memory unit (`GUC_UNIT_MEMORY`).
    public var isMemory: Bool { bytes != nil }

    /// `convert_to_base_unit`'s table for this base unit, greatest unit first (the order the
    /// rounding to the next smaller unit relies on): each unit a value may carry and how many
    /// base units one of it is, computed as guc.c computes them.
    var conversions: [(unit: String, multiplier: Double)] {
        let kiB = 1024.0
        switch self {
        case .bytes:
            return [("TB", kiB * kiB * kiB * kiB), ("GB", kiB * kiB * kiB), ("MB", kiB * kiB), ("kB", kiB), ("B", 1)]
        case .kilobytes:
            return [("TB", kiB * kiB * kiB), ("GB", kiB * kiB), ("MB", kiB), ("kB", 1), ("B", 1 / kiB)]
        case .megabytes:
            return [("TB", kiB * kiB), ("GB", kiB), ("MB", 1), ("kB", 1 / kiB), ("B", 1 / (kiB * kiB))]
        case .blocks, .walBlocks:
            // (BLCKSZ / 1024) and BLCKSZ with BLCKSZ = XLOG_BLCKSZ = 8192.
            return [
                ("TB", (kiB * kiB * kiB) / 8), ("GB", (kiB * kiB) / 8), ("MB", kiB / 8), ("kB", 1.0 / 8),
                ("B", 1.0 / 8192),
            ]
        case .milliseconds:
            return [
                ("d", 1000 * 60 * 60 * 24), ("h", 1000 * 60 * 60), ("min", 1000 * 60), ("s", 1000), ("ms", 1),
                ("us", 1.0 / 1000),
            ]
        case .seconds:
            return [
                ("d", 60 * 60 * 24), ("h", 60 * 60), ("min", 60), ("s", 1), ("ms", 1.0 / 1000),
                ("us", 1.0 / (1000 * 1000)),
            ]
        case .minutes:
            return [
                ("d", 60 * 24), ("h", 60), ("min", 1), ("s", 1.0 / 60), ("ms", 1.0 / (1000 * 60)),
                ("us", 1.0 / (1000 * 1000 * 60)),
            ]
        }
    }

    /// The hint PostgreSQL gives for a bad unit.
    var hint: String {
        isMemory
            ? "Valid units for this parameter are \"B\", \"kB\", \"MB\", \"GB\", and \"TB\"."
            : "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\"."
    }
}

/// The options of an enum setting (guc.c's `config_enum_entry` arrays): every spelling
/// PostgreSQL accepts, matched without regard to ASCII case, and the option it stands for.
public struct GUCEnumOptions: Sendable, Equatable {
    /// Each accepted spelling, lower-case, and the option it means (`true` → `on`), in guc.c's order.
    public var spellings: [(spelling: String, option: String)]
    /// The options PostgreSQL lists in its hint (the hidden aliases left out), in guc.c's order.
    public var listed: [String]

    /// Options listed in `listed` order, each its own spelling, plus hidden `aliases`.
    public init(_ listed: [String], aliases: [(String, String)] = []) {
        self.listed = listed
        self.spellings = listed.map { ($0, $0) } + aliases
    }

    public static func == (a: GUCEnumOptions, b: GUCEnumOptions) -> Bool {
        a.listed == b.listed && a.spellings.elementsEqual(b.spellings) { $0 == $1 }
    }
}

/// A setting's type and range as PostgreSQL defines it (guc.c's `ConfigureNames*` tables).
public enum GUCKind: Sendable, Equatable {
    /// An integer in `unit` (nil: unitless), between the bounds.
    case integer(unit: GUCUnit?, range: ClosedRange<Int32>)
    /// A floating-point number in `unit` (nil: unitless), between the bounds.
    case real(unit: GUCUnit?, range: ClosedRange<Double>)
    /// One of these options.
    case enumeration(GUCEnumOptions)
}

/// A value PostgreSQL accepts, as it stores it.
public enum GUCParsedValue: Sendable, Equatable {
    /// An integer setting's value in its base unit.
    case integer(Int32)
    /// A real setting's value in its base unit.
    case real(Double)
    /// An enum setting's option, in its canonical spelling.
    case enumeration(String)
}

/// Parses and validates setting values exactly as PostgreSQL 15 does (guc.c: `parse_int`,
/// `parse_real`, `convert_to_base_unit`, `config_enum_lookup_by_name` and the range check of
/// `parse_and_validate_value`), with the same C library calls:
///
/// - integers: `strtol` with base 0 (`0x10` is 16, `010` is 8), re-read with `strtod` when a
///   `.`, `e` or `E` follows or the integer overflows; an overflow or underflow of `strtod`, NaN,
///   or no digits at all is a syntax error;
/// - then white space and an optional unit (case-sensitive: `B kB MB GB TB`, or
///   `us ms s min h d`), converted to the setting's base unit — a fraction first rounded to a
///   whole number of the next smaller unit (`1.5MB` of a kB setting is 1536) —, then rounded to
///   the nearest integer, ties to even (`rint`); outside the 32-bit range is an error
///   ("Value exceeds integer range.");
/// - reals: `strtod` (so `inf` parses, and then fails the range check), the same units;
/// - enums: a case-insensitive (ASCII) match of the whole text against the options;
/// - then the setting's own range, with PostgreSQL's message.
///
/// Nothing here traps: every number is a `Double` or checked before it becomes an integer.
public enum GUCValue {
    /// `parse_and_validate_value`: `text` as a value of the setting `name` of type `kind`.
    public static func parse(_ text: String, parameter name: String, kind: GUCKind) throws(GUCValueError)
        -> GUCParsedValue
    {
        let invalid = "invalid value for parameter \"\(name)\": \"\(text)\""
        switch kind {
        case .integer(let unit, let range):
            let value: Int32
            do throws(GUCSyntaxError) {
                value = try parseInteger(text, unit: unit)
            } catch {
                throw GUCValueError(message: invalid, hint: error.hint)
            }
            guard range.contains(value) else {
                throw GUCValueError(
                    message:
                        "\(value)\(unit.map { " \($0.name)" } ?? "") is outside the valid range for parameter "
                        + "\"\(name)\" (\(range.lowerBound) .. \(range.upperBound))")
            }
            return .integer(value)
        case .real(let unit, let range):
            let value: Double
            do throws(GUCSyntaxError) {
                value = try parseReal(text, unit: unit)
            } catch {
                throw GUCValueError(message: invalid, hint: error.hint)
            }
            guard range.contains(value) else {
                throw GUCValueError(
                    message:
                        "\(format(value))\(unit.map { " \($0.name)" } ?? "") is outside the valid range for "
                        + "parameter \"\(name)\" (\(format(range.lowerBound)) .. \(format(range.upperBound)))")
            }
            return .real(value)
        case .enumeration(let options):
            guard let option = lookup(text, in: options) else {
                throw GUCValueError(
                    message: invalid, hint: "Available values: \(options.listed.joined(separator: ", ")).")
            }
            return .enumeration(option)
        }
    }

    /// `parse_int`: an integer setting's value in its base unit `unit` (nil: the setting takes no unit).
    public static func parseInteger(_ text: String, unit: GUCUnit?) throws(GUCSyntaxError) -> Int32 {
        let (number, rest) = try leadingNumber(text, integer: true)
        var value = number
        if !rest.isEmpty {
            guard let unit else { throw GUCSyntaxError(hint: nil) }
            guard let converted = convertToBaseUnit(number, unitText: rest, unit: unit) else {
                throw GUCSyntaxError(hint: unit.hint)
            }
            value = converted
        }
        value = value.rounded(.toNearestOrEven)  // rint in the default rounding mode
        guard value >= Double(Int32.min), value <= Double(Int32.max) else {
            throw GUCSyntaxError(hint: "Value exceeds integer range.")
        }
        return Int32(value)
    }

    /// `parse_real`: a real setting's value in its base unit `unit` (nil: the setting takes no
    /// unit). Infinities parse (the range check refuses them); NaN does not.
    public static func parseReal(_ text: String, unit: GUCUnit?) throws(GUCSyntaxError) -> Double {
        let (number, rest) = try leadingNumber(text, integer: false)
        guard !rest.isEmpty else { return number }
        guard let unit else { throw GUCSyntaxError(hint: nil) }
        guard let converted = convertToBaseUnit(number, unitText: rest, unit: unit) else {
            throw GUCSyntaxError(hint: unit.hint)
        }
        return converted
    }

    /// `config_enum_lookup_by_name`: the option `text` names, compared without regard to ASCII case.
    public static func lookup(_ text: String, in options: GUCEnumOptions) -> String? {
        let key = asciiLowercased(text)
        return options.spellings.first { $0.spelling == key }?.option
    }

    /// The number at the start of `text` and what follows it once white space is skipped (as
    /// bytes: a unit is compared byte by byte). `integer`: `parse_int`'s strtol-then-strtod;
    /// otherwise `parse_real`'s strtod.
    static func leadingNumber(_ text: String, integer: Bool) throws(GUCSyntaxError) -> (Double, [UInt8]) {
        // A C string ends at its first NUL; PostgreSQL never sees one inside a value.
        guard !text.utf8.contains(0) else { throw GUCSyntaxError(hint: nil) }
        let parsed: (value: Double, consumed: Int)? = text.withCString { start in
            var end: UnsafeMutablePointer<CChar>? = nil
            errno = 0
            var value: Double
            if integer {
                value = Double(strtol(start, &end, 0))
                let stop = end?.pointee ?? 0
                if stop == 0x2E || stop == 0x65 || stop == 0x45 || errno == ERANGE {  // '.', 'e', 'E'
                    errno = 0
                    value = strtod(start, &end)
                }
            } else {
                value = strtod(start, &end)
            }
            guard let end, end != UnsafeMutablePointer(mutating: start), errno != ERANGE, !value.isNaN else {
                return nil
            }
            return (value, end - UnsafeMutablePointer(mutating: start))
        }
        guard let parsed else { throw GUCSyntaxError(hint: nil) }
        let rest = Array(text.utf8.dropFirst(parsed.consumed).drop(while: isSpace))
        return (parsed.value, rest)
    }

    /// `convert_to_base_unit`: `value` of the unit spelled at the start of `unitText` (at most
    /// three bytes, then only white space), in base units of `unit`; nil when the unit is not one
    /// of `unit`'s kind, or garbage follows it.
    static func convertToBaseUnit(_ value: Double, unitText: [UInt8], unit: GUCUnit) -> Double? {
        let name = unitText.prefix(while: { !isSpace($0) }).prefix(3)
        guard unitText.dropFirst(name.count).allSatisfy(isSpace) else { return nil }
        let table = unit.conversions
        guard let index = table.firstIndex(where: { Array($0.unit.utf8) == Array(name) }) else { return nil }
        var converted = value * table[index].multiplier
        // "30.1GB": rounded to a whole number of the next smaller unit, when there is one.
        if index + 1 < table.count {
            let smaller = table[index + 1].multiplier
            converted = (converted / smaller).rounded(.toNearestOrEven) * smaller
        }
        return converted
    }

    /// C's `isspace` in the C locale.
    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    /// `text` with ASCII capitals lowered (what `pg_strcasecmp` compares), other bytes as they are.
    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// `value` as PostgreSQL's `%g` prints it (its own snprintf spells the special values out).
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%g", $0) }
        guard count > 0 else { return "\(value)" }
        return String(
            decoding: buffer.prefix(min(Int(count), buffer.count - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
