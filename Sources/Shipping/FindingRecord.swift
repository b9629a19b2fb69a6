import PGNodeModel

/// One finding on its way to a receiver: its exact NDJSON line (what the spool stores and what
/// the NDJSON, Loki and Elasticsearch payloads carry verbatim) and the parsed object the
/// encoders take labels and attributes from.
public struct FindingRecord: Sendable, Equatable {
    /// The finding's compact JSON text, without a newline.
    public let line: String
    /// The parsed finding.
    public let object: JSONObject
    /// The finding's `time` in nanoseconds since the epoch.
    public let timeNanoseconds: Int64

    /// The record of `finding`.
    public init(_ finding: Finding) {
        line = finding.jsonLine
        object = finding.json.objectValue ?? JSONObject()
        timeNanoseconds = finding.time.nanoseconds
    }

    /// A record from a spooled line; fails when the line is not a finding object.
    public init(line: String) throws(RecordError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw RecordError(message: error.description)
        }
        guard let object = value.objectValue, object["id"]?.stringValue != nil else {
            throw RecordError(message: "not a finding object")
        }
        guard let time = object["time"]?.stringValue.flatMap(Timestamp.init(rfc3339:)) else {
            throw RecordError(message: "finding without a valid time")
        }
        self.line = line
        self.object = object
        self.timeNanoseconds = time.nanoseconds
    }

    /// The finding id.
    public var id: String { object["id"]?.stringValue ?? "" }
    /// The check id.
    public var check: String { object["check"]?.stringValue ?? "" }
    /// The severity as written.
    public var severity: String { object["severity"]?.stringValue ?? "" }
    /// The `resource` object.
    public var resource: JSONObject { object["resource"]?.objectValue ?? JSONObject() }
    /// Bytes this record takes in a batch (the line and its newline).
    public var size: Int { line.utf8.count + 1 }
}

/// A spooled line that is not a finding.
public struct RecordError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    public var description: String { message }
}

extension Timestamp {
    /// Parses RFC 3339 UTC as findings write it (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`); nil otherwise,
    /// and nil for an instant a `Timestamp` cannot hold (before 1677 or after 2262).
    public init?(rfc3339 text: String) {
        let b = Array(text.utf8)
        guard b.count >= 20, b[4] == 45, b[7] == 45, b[10] == 84 || b[10] == 116, b[13] == 58, b[16] == 58,
            b.last == 90 || b.last == 122
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for i in range {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int64(b[i] - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction: Int64 = 0
        let end = b.count - 1
        if end > 19 {
            guard b[19] == 46, end > 20, end - 20 <= 9, let digits = number(20..<end) else { return nil }
            fraction = digits
            for _ in 0..<(9 - (end - 20)) { fraction *= 10 }
        } else if end != 19 {
            return nil
        }
        // Years 0–9999 are at most ~3×10¹¹ s from the epoch; in nanoseconds only 1677–2262 fit.
        let seconds = Timestamp.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
        // Before the epoch, start from the next second so that the last representable one fits.
        let (whole, overflow) =
            seconds >= 0
            ? seconds.multipliedReportingOverflow(by: 1_000_000_000)
            : (seconds + 1).multipliedReportingOverflow(by: 1_000_000_000)
        let (nanoseconds, overflowAgain) =
            seconds >= 0
            ? whole.addingReportingOverflow(fraction) : whole.subtractingReportingOverflow(1_000_000_000 - fraction)
        guard !overflow, !overflowAgain else { return nil }
        self.init(nanoseconds: nanoseconds)
    }

    /// Days since the epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
