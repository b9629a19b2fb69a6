import PGNodeModel
import Shipping

extension Harness {
    /// A receiver's (or a proxy's) `Retry-After` header, and the RFC 3339 times in spooled findings.
    static let httpDate = Harness(
        name: "http-date", maxLength: 64,
        summary: "Retry-After (seconds or HTTP-date), RFC 3339 times"
    ) { bytes in
        let input = text(bytes)
        for now in [Timestamp(nanoseconds: 1_764_000_000_000_000_000), Timestamp(nanoseconds: 0)] {
            if let seconds = RetryAfter.seconds(input, now: now) {
                consume(seconds)
                require(!seconds.isNaN && seconds >= 0, "Retry-After \(seconds) s")
            }
        }
        if let time = Timestamp(rfc3339: input) { consume(time.rfc3339) }
    }
}
