import PGNodeModel
import Testing

@testable import Shipping

/// OpenTelemetry's exporter variables as the specification has them ("OTLP Exporter
/// Configuration"), and hostile values: refused with the variable named, never a trap.
@Suite("OpenTelemetry SDK variables")
struct OTLPEnvironmentTests {
    typealias V = OTLPEnvironment.Variable

    @Test(
        "OTEL_EXPORTER_OTLP_ENDPOINT is a base: v1/logs relative to it, one slash",
        arguments: [
            ("http://collector:4318", "http://collector:4318/v1/logs"),
            ("http://collector:4318/", "http://collector:4318/v1/logs"),
            ("http://collector:4318/mycollector/", "http://collector:4318/mycollector/v1/logs"),
            ("http://collector:4318/mycollector", "http://collector:4318/mycollector/v1/logs"),
            ("https://[::1]:4318", "https://[::1]:4318/v1/logs"),
        ])
    func base(value: String, url: String) throws {
        let environment = try OTLPEnvironment([V.endpoint: value])
        #expect(environment.endpoint == url)
        #expect(environment.endpointVariable == V.endpoint)
    }

    @Test(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is used as is (no path: /), and wins over the base",
        arguments: [
            ("http://collector:4318", "http://collector:4318/"),
            ("https://collector.example.com/v1/logs/", "https://collector.example.com/v1/logs/"),
            ("http://c:4318/custom/path", "http://c:4318/custom/path"),
            ("http://c:4318?tenant=a", "http://c:4318/?tenant=a"),
        ])
    func signal(value: String, url: String) throws {
        let environment = try OTLPEnvironment([V.logsEndpoint: value, V.endpoint: "http://other:4318"])
        #expect(environment.endpoint == url)
        #expect(environment.endpointVariable == V.logsEndpoint)
    }

    @Test("nothing set, or only empty values: no endpoint, no headers, no cluster")
    func unset() throws {
        #expect(try OTLPEnvironment([:]) == OTLPEnvironment())
        let empty = try OTLPEnvironment([
            V.endpoint: "", V.logsEndpoint: "", V.headers: "", V.logsHeaders: "", V.resourceAttributes: "",
        ])
        #expect(empty == OTLPEnvironment())
    }

    @Test(
        "a bad endpoint is refused, naming the variable",
        arguments: [
            "collector:4318", "ftp://c", "http://", "http:///v1/logs", "http://c:4318/a b", "http://c\r\nX: y",
            "http://c/\u{7F}", "http://c?x=1", "http://c/#frag", String(repeating: "h", count: 70_000),
        ])
    func badEndpoint(value: String) {
        #expect(throws: OTLPEnvironmentError.self) { try OTLPEnvironment([V.endpoint: value]) }
        do {
            _ = try OTLPEnvironment([V.endpoint: value])
        } catch {
            #expect(error.variable == V.endpoint)
            #expect(error.description.hasPrefix("OTEL_EXPORTER_OTLP_ENDPOINT: "))
        }
    }

    @Test("headers: k1=v1,k2=v2, spaces trimmed, values percent-decoded, '=' and '+' kept in values")
    func headers() throws {
        let environment = try OTLPEnvironment([
            V.headers: " api-key = secret%20value ,, X-Scope-OrgID=team-a,Authorization=Basic%20dXNlcjpw%3D%3D,x=a+b=c"
        ])
        #expect(
            environment.headers.map { [$0.name, $0.value] } == [
                ["api-key", "secret value"], ["X-Scope-OrgID", "team-a"], ["Authorization", "Basic dXNlcjpw=="],
                ["x", "a+b=c"],
            ])
        #expect(environment.headersVariable == V.headers)
        #expect(try OTLPEnvironment([V.headers: "a=%C3%A9"]).headers.first?.value == "é")
        #expect(try OTLPEnvironment([V.headers: "a="]).headers.first?.value == "")
    }

    @Test("OTEL_EXPORTER_OTLP_LOGS_HEADERS wins over OTEL_EXPORTER_OTLP_HEADERS")
    func logsHeaders() throws {
        let environment = try OTLPEnvironment([V.headers: "a=1", V.logsHeaders: "b=2"])
        #expect(environment.headers == [EndpointHeader(name: "b", value: "2")])
        #expect(environment.headersVariable == V.logsHeaders)
    }

    @Test(
        "hostile headers are refused: injection, bad escapes, bad names, reserved, too many, too long",
        arguments: [
            "a=x%0D%0AInjected: yes", "a=x%0a", "a=%00", "a=%", "a=%4", "a=%zz", "a=%C3", "a=%FF", "novalue",
            "=v", "%41=v", "bad name=v", "a\r\nb=v", "Content-Type=text/plain", "host=x", "Content-Length=1",
            Array(repeating: "a=b", count: 65).joined(separator: ","), "a=" + String(repeating: "v", count: 5000),
            "a=" + String(repeating: "%", count: 70_000),
        ])
    func hostileHeaders(value: String) {
        #expect(throws: OTLPEnvironmentError.self) { try OTLPEnvironment([V.headers: value]) }
        do {
            _ = try OTLPEnvironment([V.headers: value])
        } catch {
            #expect(error.variable == V.headers)
            #expect(!error.description.contains("\r") && !error.description.contains("\n"))
            #expect(error.description.utf8.count < 400)
        }
    }

    @Test("Authorization is refused beside a token file, which sets it")
    func authorizationBesideToken() throws {
        #expect(throws: OTLPEnvironmentError.self) {
            try OTLPEnvironment([V.headers: "Authorization=Bearer%20x"], withTokenFile: true)
        }
        #expect(try OTLPEnvironment([V.headers: "Authorization=Bearer%20x"]).headers.count == 1)
    }

    @Test("OTEL_RESOURCE_ATTRIBUTES gives k8s.cluster.name; a value that does not parse is discarded, said why")
    func resourceAttributes() throws {
        let given = try OTLPEnvironment([
            V.resourceAttributes: "service.name=x, k8s.cluster.name = prod%20eu ,deployment.environment=prod"
        ])
        #expect(given.clusterName == "prod eu")
        #expect(given.resourceAttributesProblem == nil)
        #expect(try OTLPEnvironment([V.resourceAttributes: "service.name=x"]).clusterName == nil)
        for bad in ["k8s.cluster.name=a,broken", "k8s.cluster.name=%ZZ", "k8s.cluster.name=a%0Ab", "k8s.cluster.name="]
        {
            let environment = try OTLPEnvironment([V.resourceAttributes: bad])
            #expect(environment.clusterName == nil, "\(bad)")
            #expect(environment.resourceAttributesProblem != nil, "\(bad)")
        }
    }

    @Test("cluster names: bounded, no control characters, no surrounding spaces")
    func clusterNames() {
        #expect(ResourceAttributes.clusterNameProblem("prod-eu-1") == nil)
        #expect(ResourceAttributes.clusterNameProblem("prod eu é") == nil)
        #expect(ResourceAttributes.clusterNameProblem(String(repeating: "a", count: 253)) == nil)
        for bad in ["", " a", "a ", "a\nb", "a\rb", "a\u{0}b", "a\u{7F}", String(repeating: "a", count: 254)] {
            #expect(ResourceAttributes.clusterNameProblem(bad) != nil, "\(bad.debugDescription)")
        }
    }
}
