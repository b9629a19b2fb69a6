import PGNodeModel

/// An HTTP-date (RFC 9110 §5.6.7) as a receiver or proxy sends it in `Retry-After`: the
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime (`Sun Nov  6 08:49:37 1994`).
///
/// The text comes from the network, so parsing is total: every field is a bounded run of ASCII
/// digits checked against its range (years 0–9999, a day that exists in its month), and the result
/// is in seconds, where every such date fits an `Int64` (nanoseconds would not past 2262).
public enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch of the date in `text`, nil when it is not an HTTP-date. `now`
    /// places an RFC 850 two-digit year: one that would be more than 50 years ahead is taken as the
    /// most recent past year with the same last two digits.
    public static func epochSeconds(_ text: String, now: Timestamp) -> Int64? {
        guard text.utf8.count <= 64 else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        let day: Int64
        let month: Int64
        let year: Int64
        let clock: String
        if parts.count == 6, parts[5] == "GMT" {
            // IMF-fixdate: Sun 06 Nov 1994 08:49:37 GMT (comma removed).
            guard let d = number(parts[1], digits: 1...2), let m = monthNumber(parts[2]),
                let y = number(parts[3], digits: 4...4)
            else { return nil }
            (day, month, year, clock) = (d, m, y, parts[4])
        } else if parts.count == 4, parts[3] == "GMT" {
            // RFC 850: Sunday 06-Nov-94 08:49:37 GMT.
            let dmy = parts[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard dmy.count == 3, let d = number(dmy[0], digits: 1...2), let m = monthNumber(dmy[1]) else {
                return nil
            }
            if let yy = number(dmy[2], digits: 2...2) {
                year = twoDigitYear(yy, now: now)
            } else if let yyyy = number(dmy[2], digits: 4...4) {
                year = yyyy  // not in the grammar, but unambiguous
            } else {
                return nil
            }
            (day, month, clock) = (d, m, parts[2])
        } else if parts.count == 5 {
            // asctime: Sun Nov 6 08:49:37 1994.
            guard let m = monthNumber(parts[1]), let d = number(parts[2], digits: 1...2),
                let y = number(parts[4], digits: 4...4)
            else { return nil }
            (day, month, year, clock) = (d, m, y, parts[3])
        } else {
            return nil
        }
        guard day >= 1, day <= daysIn(month: month, year: year) else { return nil }
        let hms = clock.split(separator: ":", omittingEmptySubsequences: false).map {
            number(String($0), digits: 2...2)
        }
        guard hms.count == 3, let hour = hms[0], let minute = hms[1], let second = hms[2], hour < 24, minute < 60,
            second < 61
        else { return nil }
        // |days| < 3.7 million for years 0–9999: far from any overflow.
        return Timestamp.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
    }

    /// A run of `digits` ASCII digits (no sign, no spaces), as a number.
    static func number(_ text: String, digits: ClosedRange<Int>) -> Int64? {
        let bytes = text.utf8
        guard digits.contains(bytes.count) else { return nil }
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int64(byte - 48)
        }
        return value
    }

    private static func monthNumber(_ name: String) -> Int64? {
        months.firstIndex(of: name).map { Int64($0 + 1) }
    }

    private static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// RFC 9110: a two-digit year more than 50 years ahead of `now` is in the past century.
    private static func twoDigitYear(_ yy: Int64, now: Timestamp) -> Int64 {
        let current = year(ofEpochSeconds: now.seconds)
        var year = current - current % 100 + yy
        if year > current + 50 { year -= 100 }
        if year < current - 50 { year += 100 }
        return year
    }

    /// The proleptic Gregorian year of an instant (Howard Hinnant's `civil_from_days`).
    static func year(ofEpochSeconds seconds: Int64) -> Int64 {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        return yoe + era * 400 + (month <= 2 ? 1 : 0)
    }
}
