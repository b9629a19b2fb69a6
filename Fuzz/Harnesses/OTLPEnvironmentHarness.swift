import PGNodeModel
import Shipping

extension Harness {
    /// OpenTelemetry's exporter variables (`OTLPEnvironment`): endpoint URLs, header lists and
    /// resource attributes come from the pod's environment, set by whoever deploys the agent.
    static let otlpEnvironment = Harness(
        name: "otlp-environment", maxLength: 4096,
        summary: "OTEL_EXPORTER_OTLP_* endpoints and headers, OTEL_RESOURCE_ATTRIBUTES"
    ) { bytes in
        let input = text(bytes)
        for name in [
            OTLPEnvironment.Variable.endpoint, OTLPEnvironment.Variable.logsEndpoint,
            OTLPEnvironment.Variable.headers, OTLPEnvironment.Variable.resourceAttributes,
        ] {
            guard let environment = try? OTLPEnvironment([name: input]) else { continue }
            consume(environment.endpoint)
            consume(environment.clusterName)
            require(environment.headers.count <= OTLPEnvironment.maximumHeaders, "\(environment.headers.count) headers")
            for header in environment.headers {
                require(
                    !header.value.utf8.contains(13) && !header.value.utf8.contains(10), "CR or LF in a header value")
            }
            if let cluster = environment.clusterName {
                require(ResourceAttributes.clusterNameProblem(cluster) == nil, "an invalid cluster name accepted")
            }
        }
    }
}
