import Foundation
import PGNodeModel
import Shipping
import TestSupport
import Testing

/// HTTPS to a receiver on 127.0.0.1 whose certificate comes from a private CA made for the test.
@Suite("TLS: private CA and client certificates", .serialized)
struct TLSTests {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
    static func makePKI(_ dir: String) throws {
        func openssl(_ arguments: [String]) throws {
            let result = try Command.run(["openssl"] + arguments)
            if result.status != 0 { throw PKIError(message: result.stderr) }
        }
        try openssl([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pgnode test CA",
            "-keyout", "\(dir)/ca.key", "-out", "\(dir)/ca.pem",
        ])
        for (name, extensions) in [
            ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            try openssl([
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=pgnode-\(name)", "-keyout", "\(dir)/\(name).key",
                "-out", "\(dir)/\(name).csr",
            ])
            try extensions.write(toFile: "\(dir)/\(name).ext", atomically: true, encoding: .utf8)
            try openssl([
                "x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "\(dir)/\(name).ext", "-out", "\(dir)/\(name).pem",
            ])
        }
    }

    struct PKIError: Error {
        var message: String
    }

    func shipper(_ url: String, tls: TLSOptions, spoolDir: String) throws -> (Shipper, MetricsRegistry) {
        let metrics = MetricsRegistry()
        let shipper = Shipper(
            configuration: ShipperConfiguration(
                url: url, format: .ndjson, requestTimeout: 5, batchWait: 0.05,
                backoff: Backoff(initial: 0.1, maximum: 0.2)),
            transport: CurlHTTPClient(tls: tls, connectTimeout: 2),
            spool: try Spool(directory: spoolDir, maxBytes: 1 << 20),
            deadLetter: DeadLetterFile(path: "\(spoolDir)/dead-letter.ndjson"), metrics: metrics,
            logger: LogCapture().logger)
        shipper.start()
        return (shipper, metrics)
    }

    @Test("a receiver with a private CA: refused without --endpoint-ca (kept, retried), delivered with it")
    func privateCA() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makePKI(dir)
        let receiver = try Receiver(
            mode: "ndjson", options: ["--tls-cert", "\(dir)/server.pem", "--tls-key", "\(dir)/server.key"])
        let findings = Sample.many(3)

        let (untrusting, metrics) = try shipper(receiver.httpsURL(), tls: TLSOptions(), spoolDir: "\(dir)/spool")
        untrusting.submit(findings)
        for _ in 0..<100 where metrics.value(Shipper.Metric.failures, [("reason", "connection")]) < 2 {
            usleep(50_000)
        }
        untrusting.shutdown(grace: 0)
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "connection")]) >= 2)
        #expect(receiver.requests().isEmpty)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 3)

        // The same spool with the CA: the kept findings are delivered.
        let (trusting, trusted) = try shipper(
            receiver.httpsURL(), tls: TLSOptions(caFile: "\(dir)/ca.pem"), spoolDir: "\(dir)/spool")
        trusting.shutdown(grace: 5)
        #expect(trusted.value(Shipper.Metric.delivered) == 3)
        let ids = receiver.requests().flatMap { $0.body.split(separator: "\n") }.map {
            (try? JSONParser.parse(String($0)))?["id"]?.stringValue ?? ""
        }
        #expect(ids == findings.map(\.id))
    }

    @Test("a receiver that requires a client certificate gets the one from --endpoint-cert/--endpoint-key")
    func clientCertificate() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makePKI(dir)
        let receiver = try Receiver(
            mode: "ndjson",
            options: [
                "--tls-cert", "\(dir)/server.pem", "--tls-key", "\(dir)/server.key", "--tls-client-ca", "\(dir)/ca.pem",
            ])
        let tls = TLSOptions(
            caFile: "\(dir)/ca.pem", certificateFile: "\(dir)/client.pem", keyFile: "\(dir)/client.key")
        let (shipper, metrics) = try shipper(receiver.httpsURL(), tls: tls, spoolDir: "\(dir)/spool")
        shipper.submit(Sample.many(2))
        shipper.shutdown(grace: 5)
        #expect(metrics.value(Shipper.Metric.delivered) == 2)
        #expect(receiver.requests().map(\.clientCN) == ["pgnode-client"])

        // Without the client certificate the handshake fails: nothing is delivered, all is kept.
        let (anonymous, refused) = try self.shipper(
            receiver.httpsURL(), tls: TLSOptions(caFile: "\(dir)/ca.pem"), spoolDir: "\(dir)/spool2")
        anonymous.submit(Sample.many(2, start: 10))
        for _ in 0..<100 where refused.total(Shipper.Metric.failures) < 1 { usleep(50_000) }
        anonymous.shutdown(grace: 0)
        #expect(refused.value(Shipper.Metric.delivered) == 0)
        #expect(refused.value(Shipper.Metric.spoolFindings) == 2)
        #expect(receiver.requests().count == 1)
    }
}
