import Foundation
import PGNodeModel
import TestSupport
import Testing

@testable import Shipping

/// What the HTTP client keeps of a response a hostile receiver sends: bounded, whatever it sends.
@Suite("HTTP client: responses are read within bounds", .serialized)
struct HTTPClientTests {
    @Test("500 header fields, one of 50,000 bytes and a 9 MiB body: the client keeps 100 fields and 8 MiB")
    func boundedResponse() throws {
        let receiver = try Receiver(
            mode: "ndjson",
            options: ["--extra-headers", "500", "--long-header-bytes", "50000", "--body-bytes", String(9 << 20)])
        let response = try CurlHTTPClient(connectTimeout: 5).post(
            url: receiver.url(), headers: [], body: Array("{}\n".utf8), timeout: 30)
        #expect(response.status == 200)
        #expect(response.headers.count == CurlHTTPClient.headerLimit)
        #expect(!response.headers.contains { $0.name == "x-long" })  // over the line bound: dropped
        #expect(response.headers.contains { $0.name == "x-filler-0" && $0.value == "filler" })
        #expect(response.header("content-length") == nil)  // after the 100 kept fields
        #expect(response.body.count == CurlHTTPClient.responseLimit)
        #expect(response.body.allSatisfy { $0 == UInt8(ascii: "x") })
    }

    @Test("a response within the bounds is kept whole")
    func ordinaryResponse() throws {
        let receiver = try Receiver(mode: "ndjson", options: ["--extra-headers", "10", "--body-bytes", "1000"])
        let response = try CurlHTTPClient(connectTimeout: 5).post(
            url: receiver.url(), headers: [], body: Array("{}\n".utf8), timeout: 30)
        #expect(response.status == 200)
        #expect(response.header("x-filler-9") == "filler")
        #expect(response.header("content-length") == "1000")
        #expect(response.body.count == 1000)
    }

    @Test("timeouts that are not numbers or are out of range give libcurl a valid bound, not a trap")
    func timeouts() throws {
        #expect(CurlHTTPClient.milliseconds(.nan) == 1)
        #expect(CurlHTTPClient.milliseconds(-5) == 1)
        #expect(CurlHTTPClient.milliseconds(.infinity) == 86_400_000)
        #expect(CurlHTTPClient.milliseconds(1e300) == 86_400_000)
        #expect(CurlHTTPClient.milliseconds(2.5) == 2500)
        let receiver = try Receiver(mode: "ndjson")
        let response = try CurlHTTPClient(connectTimeout: .infinity).post(
            url: receiver.url(), headers: [], body: [], timeout: 1e300)
        #expect(response.status == 200)
    }
}
