import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode agent` configured as an OpenTelemetry SDK is (OTEL_EXPORTER_OTLP_* variables), against
/// the real receiver in otlp mode, which parses every body strictly with opentelemetry-proto and
/// answers 400 to one that does not parse.
@Suite("pgnode agent from OpenTelemetry's variables", .serialized)
struct AgentOTelEnvironmentTests {
    /// The resource attributes of every resourceLogs entry of an OTLP body, as key → string value.
    func resources(_ body: String) throws -> [[String: String]] {
        let json = try JSONParser.parse(body)
        return (json["resourceLogs"]?.arrayValue ?? []).map { entry in
            var attributes: [String: String] = [:]
            for attribute in entry["resource"]?["attributes"]?.arrayValue ?? [] {
                if let key = attribute["key"]?.stringValue {
                    attributes[key] = attribute["value"]?["stringValue"]?.stringValue ?? ""
                }
            }
            return attributes
        }
    }

    @Test(
        "only OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS: findings at /v1/logs, strict OTLP, the headers, the cluster name"
    )
    func baseEndpointAndHeaders() throws {
        let receiver = try Receiver(mode: "otlp")
        defer { receiver.stop() }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            ["--cluster-name", "prod-eu"], directory: dir,
            environment: [
                // As the DaemonSet's ConfigMap has them: no endpoint, the ndjson format.
                "PGNODE_ENDPOINT": "", "PGNODE_ENDPOINT_FORMAT": "ndjson",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url(),
                "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant = team%20a , api-key=k%3D1",
                "PGNODE_SPOOL_DIR": "\(dir)/spool", "PGNODE_INTERVAL": "0.5", "PGNODE_HOST_ROOT": quietHost,
                "PGNODE_BATCH_WAIT": "0.1", "PGNODE_NODE_NAME": "otel-node",
            ])
        let shipping = try #require(agent.waitForLog("shipping findings"))
        #expect(shipping["endpoint"]?.stringValue == receiver.url("/v1/logs"))
        #expect(shipping["endpoint_source"] == "OTEL_EXPORTER_OTLP_ENDPOINT")
        #expect(shipping["format"] == "otlp")
        #expect(shipping["headers"] == "x-tenant,api-key")  // names only: values may be secrets
        let requests = receiver.wait { $0.contains { $0.status == "200" } }
        #expect(agent.stop(SIGTERM) == 0)
        #expect(!requests.isEmpty)
        for request in requests {
            #expect(request.path == "/v1/logs")
            #expect(request.status == "200", "the strict parse refused the body: \(request.body.prefix(300))")
            #expect(request.headers["x-tenant"] == "team a")
            #expect(request.headers["api-key"] == "k=1")
            #expect(request.headers["content-type"] == "application/json")
        }
        let attributes = try requests.flatMap { try resources($0.body) }
        #expect(!attributes.isEmpty)
        #expect(attributes.allSatisfy { $0["k8s.cluster.name"] == "prod-eu" && $0["k8s.node.name"] == "otel-node" })
        #expect(agent.stdout.isEmpty)
    }

    @Test("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is used as is; k8s.cluster.name from OTEL_RESOURCE_ATTRIBUTES")
    func logsEndpointAndResourceAttributes() throws {
        let receiver = try Receiver(mode: "otlp")
        defer { receiver.stop() }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            [], directory: dir,
            environment: [
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": receiver.url("/custom/logs"),
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                "OTEL_RESOURCE_ATTRIBUTES": "service.name=pgnode,k8s.cluster.name=from%20env",
                "PGNODE_SPOOL_DIR": "\(dir)/spool", "PGNODE_INTERVAL": "0.5", "PGNODE_HOST_ROOT": quietHost,
                "PGNODE_BATCH_WAIT": "0.1",
            ])
        let shipping = try #require(agent.waitForLog("shipping findings"))
        #expect(shipping["endpoint_source"] == "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        let cluster = try #require(agent.waitForLog("k8s.cluster.name from the environment"))
        #expect(cluster["variable"] == "OTEL_RESOURCE_ATTRIBUTES")
        let requests = receiver.wait { $0.contains { $0.status == "200" } }
        #expect(agent.stop(SIGTERM) == 0)
        let request = try #require(requests.first)
        #expect(request.path == "/custom/logs")
        #expect(request.status == "200")
        #expect(try resources(request.body).allSatisfy { $0["k8s.cluster.name"] == "from env" })
    }

    @Test("--endpoint (here PGNODE_ENDPOINT) wins over OpenTelemetry's endpoint, and keeps its format")
    func endpointWins() throws {
        let receiver = try Receiver(mode: "ndjson")
        defer { receiver.stop() }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try AgentProcess(
            [], directory: dir,
            environment: [
                "PGNODE_ENDPOINT": receiver.url(), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-otel=1", "PGNODE_SPOOL_DIR": "\(dir)/spool",
                "PGNODE_INTERVAL": "0.5", "PGNODE_HOST_ROOT": quietHost, "PGNODE_BATCH_WAIT": "0.1",
            ])
        let shipping = try #require(agent.waitForLog("shipping findings"))
        #expect(shipping["endpoint_source"] == "PGNODE_ENDPOINT")
        #expect(shipping["format"] == "ndjson")
        let requests = receiver.wait { !$0.isEmpty }
        #expect(agent.stop(SIGTERM) == 0)
        let request = try #require(requests.first)
        #expect(request.headers["x-otel"] == nil)  // OpenTelemetry's headers are for the otlp format
        #expect(agent.logs.contains { $0["message"] == "OpenTelemetry headers are for the otlp format; ignored" })
    }

    @Test(
        "a variable that cannot be used: a usage error naming it, exit 64",
        arguments: [
            (["OTEL_EXPORTER_OTLP_HEADERS": "a=x%0D%0AInjected: yes"], "OTEL_EXPORTER_OTLP_HEADERS: "),
            (["OTEL_EXPORTER_OTLP_HEADERS": "novalue"], "OTEL_EXPORTER_OTLP_HEADERS: 'novalue' is not key=value"),
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"], "OTEL_EXPORTER_OTLP_ENDPOINT: not an http"),
            (
                ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "PGNODE_ENDPOINT_FORMAT": "loki"],
                "OTEL_EXPORTER_OTLP_ENDPOINT is an OTLP endpoint; --endpoint-format loki needs --endpoint"
            ),
            (["PGNODE_CLUSTER_NAME": "a\nb"], "--cluster-name: a cluster name has no control characters"),
        ])
    func usageErrors(environment: [String: String], message: String) throws {
        let result = try Command.pgnode(["agent", "--host-root", quietHost], environment: environment)
        #expect(result.status == 64)
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test("pgnode check --cluster-name: every finding carries k8s.cluster.name, valid against the schema")
    func checkClusterName() throws {
        let result = try Command.pgnode([
            "check", "--duration", "0", "--format", "json", "--host-root", quietHost, "--cluster-name", "prod-eu",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let findings = result.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        #expect(findings.count == quietHostNodeChecks.count)
        #expect(findings.allSatisfy { $0["resource"]?["k8s.cluster.name"] == "prod-eu" })
        let validation = try Command.run([TestEnvironment.scriptPath("validate-findings")], stdin: result.stdout)
        #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
    }
}
