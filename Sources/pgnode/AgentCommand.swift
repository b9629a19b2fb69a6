import Agent
import ArgumentParser
import Diagnosis
import Dispatch
import Glibc
import HostFacts
import Logging
import OSSupport
import PGNodeModel
import Resolution
import Shipping
import Sinks

/// `pgnode agent`: continuous diagnosis, findings to stdout or to a log aggregator.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Diagnose continuously and ship findings to stdout, Loki, Elasticsearch or an OTel collector.",
        discussion: """
            Every --interval the agent diagnoses each container for that window. With --emit changes \
            (the default) a container's finding is emitted when the container appears, when the \
            finding's severity changes (or, above ok, its summary), and every --heartbeat windows \
            even unchanged; --emit all emits every finding of every window. --min-severity leaves \
            out findings below it (the first one after a finding at or above it still goes out). \
            /metrics has every container's findings as gauges either way. Node-level findings are \
            emitted at start and whenever they change. Without --endpoint, findings are \
            NDJSON on stdout; the agent's own logs are JSON lines on stderr. With --endpoint, \
            findings go through an on-disk spool (--spool-dir) to the receiver, in order, with \
            retries; nothing is lost while the receiver is down unless the spool fills up.

            --namespace (repeatable; PGNODE_NAMESPACE gives one) diagnoses only the containers of \
            pods in those Kubernetes namespaces; a container that Kubernetes does not run has no \
            namespace and is left out. Node-level findings are emitted either way.

            Each container's diagnosis has --container-deadline seconds; past it, its checks are \
            'unavailable' ("timed out reading …") and the round goes on for the others.

            SIGTERM or SIGINT: stop diagnosing (a round in progress is abandoned), deliver what can \
            be delivered within --shutdown-grace, keep the rest in the spool for the next start, \
            exit 0.

            Environment: every flag can also be set by a variable, PGNODE_ and the flag's name in \
            capitals with - as _ (a ConfigMap with envFrom, in Kubernetes). A flag on the command \
            line wins over its variable; an empty variable counts as unset. --gzip/--no-gzip is \
            PGNODE_GZIP=true or false (also 1/0, yes/no, on/off). The variables:
              PGNODE_INTERVAL  PGNODE_EMIT  PGNODE_HEARTBEAT  PGNODE_MIN_SEVERITY
              PGNODE_CONTAINER_DEADLINE  PGNODE_LISTEN  PGNODE_ENDPOINT
              PGNODE_ENDPOINT_FORMAT  PGNODE_ENDPOINT_INDEX  PGNODE_ENDPOINT_TOKEN_FILE
              PGNODE_ENDPOINT_HEADER (one header)  PGNODE_ENDPOINT_CA
              PGNODE_ENDPOINT_CERT  PGNODE_ENDPOINT_KEY  PGNODE_CONNECT_TIMEOUT
              PGNODE_REQUEST_TIMEOUT  PGNODE_BATCH_MAX_FINDINGS  PGNODE_BATCH_MAX_BYTES
              PGNODE_BATCH_WAIT  PGNODE_GZIP  PGNODE_SPOOL_DIR  PGNODE_SPOOL_MAX_BYTES
              PGNODE_SHUTDOWN_GRACE  PGNODE_LOG_LEVEL  PGNODE_HOST_ROOT  PGNODE_BTF
              PGNODE_BTF_ARCHIVE  PGNODE_NODE_NAME  PGNODE_NAMESPACE (one namespace)
              PGNODE_CLUSTER_NAME  PGNODE_QUERY_LATENCY  PGNODE_QUERY_TEXT

            OpenTelemetry's variables, as its SDKs read them: without --endpoint (or \
            PGNODE_ENDPOINT), OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (used as is), else \
            OTEL_EXPORTER_OTLP_ENDPOINT (v1/logs appended) is the endpoint, in the otlp format. \
            With the otlp format, OTEL_EXPORTER_OTLP_LOGS_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS \
            (k1=v1,k2=v2, values percent-decoded) add headers (--endpoint-header wins for a name \
            both give). Without --cluster-name, k8s.cluster.name in OTEL_RESOURCE_ATTRIBUTES is the \
            cluster's name.

            Examples:
              pgnode agent --host-root /host --listen :9560
              PGNODE_INTERVAL=10 PGNODE_LISTEN=127.0.0.1:9560 pgnode agent
              pgnode agent --endpoint http://loki:3100 --endpoint-format loki
              pgnode agent --endpoint https://es:9200 --endpoint-format elasticsearch \\
                  --endpoint-ca /etc/pgnode/ca.pem --endpoint-token-file /run/es-token
              pgnode agent --endpoint http://otel:4318 --endpoint-format otlp
            """
    )

    @Option(help: ArgumentHelp("Seconds between diagnosis rounds.", valueName: "seconds"))
    var interval: Double = 60

    @Option(help: "Which container findings to emit: changes (and a heartbeat) or all, every window.")
    var emit: EmitPolicy.Mode = .changes

    @Option(
        help: ArgumentHelp(
            "With --emit changes, windows after which an unchanged finding is emitted again.", valueName: "windows"))
    var heartbeat: Int = 60

    @Option(
        name: .customLong("min-severity"),
        help: "Emit no container finding below this severity (unavailable is always emitted).")
    var minSeverity: MinimumSeverity = .ok

    @Option(
        name: .customLong("container-deadline"),
        help: ArgumentHelp(
            "Seconds one container's diagnosis may take; past it its checks are 'unavailable'.",
            valueName: "seconds"))
    var containerDeadline: Double = 10

    @Option(
        name: .customLong("namespace"),
        help: ArgumentHelp(
            "Diagnose only the containers of pods in this Kubernetes namespace; repeatable (the variable gives one).",
            valueName: "namespace"))
    var namespaces: [String] = []

    @Option(
        help: ArgumentHelp(
            "Serve /healthz, /readyz and /metrics on ADDR:PORT (e.g. :9560, 127.0.0.1:9560, [::]:9560).",
            valueName: "addr:port"))
    var listen: String?

    @Option(help: ArgumentHelp("Ship findings to this http(s) URL instead of stdout.", valueName: "url"))
    var endpoint: String?

    @Option(name: .customLong("endpoint-format"), help: "The receiver's API.")
    var endpointFormat: EndpointFormat = .ndjson

    @Option(
        name: .customLong("endpoint-index"),
        help: ArgumentHelp("Elasticsearch/OpenSearch index or data stream.", valueName: "name"))
    var endpointIndex: String = "pgnode-findings"

    @Option(
        name: .customLong("endpoint-token-file"),
        help: ArgumentHelp(
            "A file holding a bearer token; re-read when it changes. Absent at start: no token.", valueName: "path"))
    var endpointTokenFile: String?

    @Option(
        name: .customLong("endpoint-header"),
        help: ArgumentHelp(
            "A header every request carries, e.g. 'X-Scope-OrgID: team-a' (Loki's tenant); repeatable "
                + "(the variable gives one).", valueName: "'name: value'"))
    var endpointHeaders: [String] = []

    @Option(
        name: .customLong("endpoint-ca"), help: ArgumentHelp("PEM CA bundle to verify the receiver.", valueName: "path")
    )
    var endpointCA: String?

    @Option(name: .customLong("endpoint-cert"), help: ArgumentHelp("PEM client certificate.", valueName: "path"))
    var endpointCert: String?

    @Option(name: .customLong("endpoint-key"), help: ArgumentHelp("PEM client private key.", valueName: "path"))
    var endpointKey: String?

    @Option(
        name: .customLong("connect-timeout"),
        help: ArgumentHelp("Seconds to connect to the receiver.", valueName: "seconds"))
    var connectTimeout: Double = 5

    @Option(
        name: .customLong("request-timeout"),
        help: ArgumentHelp("Seconds one delivery request may take, connect included.", valueName: "seconds"))
    var requestTimeout: Double = 30

    @Option(
        name: .customLong("batch-max-findings"), help: ArgumentHelp("Findings per request, at most.", valueName: "n"))
    var batchMaxFindings: Int = 500

    @Option(
        name: .customLong("batch-max-bytes"),
        help: ArgumentHelp("Bytes of findings per request, at most (before gzip).", valueName: "bytes"))
    var batchMaxBytes: Int = 1 << 20

    @Option(
        name: .customLong("batch-wait"),
        help: ArgumentHelp("Seconds a batch may wait for more findings before it is sent.", valueName: "seconds"))
    var batchWait: Double = 1

    @Flag(inversion: .prefixedNo, help: "Compress request bodies (Content-Encoding: gzip).")
    var gzip: Bool = true

    @Option(
        name: .customLong("spool-dir"),
        help: ArgumentHelp("Where undelivered findings wait (survives restarts).", valueName: "path"))
    var spoolDir: String = "/var/lib/pgnode/spool"

    @Option(
        name: .customLong("spool-max-bytes"),
        help: ArgumentHelp("Spool size bound; beyond it the oldest findings are dropped.", valueName: "bytes"))
    var spoolMaxBytes: Int64 = 256 << 20

    @Option(
        name: .customLong("shutdown-grace"),
        help: ArgumentHelp("Seconds to keep delivering after SIGTERM/SIGINT.", valueName: "seconds"))
    var shutdownGrace: Double = 10

    @Option(name: .customLong("log-level"), help: "Lowest level of the agent's own logs (stderr).")
    var logLevel: LogLevel = .info

    @OptionGroup var hostOptions: HostOptions

    @OptionGroup var btfOptions: BTFOptions

    @OptionGroup var queryOptions: QueryLatencyOptions

    @Option(
        name: .customLong("node-name"),
        help: ArgumentHelp(
            "The node's name for k8s.node.name (default: $NODE_NAME, else the host name).", valueName: "name"))
    var nodeName: String?

    @Option(
        name: .customLong("cluster-name"),
        help: ArgumentHelp(
            "The cluster's name for k8s.cluster.name in every finding (default: none, or OTEL_RESOURCE_ATTRIBUTES').",
            valueName: "name"))
    var clusterName: String?

    /// The OpenTelemetry SDK variables (`OTLPEnvironment`), checked.
    func otlpEnvironment() throws -> OTLPEnvironment {
        do {
            return try OTLPEnvironment(environmentVariables(), withTokenFile: endpointTokenFile != nil)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        func seconds(_ value: Double, _ flag: String, min: Double, max: Double) throws {
            guard value.isFinite, value >= min, value <= max else {
                throw ValidationError("\(flag) must be between \(min) and \(max) seconds, not \(value)")
            }
        }
        for header in endpointHeaders {
            do {
                _ = try EndpointHeader.parse(header, withTokenFile: endpointTokenFile != nil)
            } catch {
                throw ValidationError("--endpoint-header: \(error.description)")
            }
        }
        _ = try validateNamespaces(namespaces)
        if let clusterName, let problem = ResourceAttributes.clusterNameProblem(clusterName) {
            throw ValidationError("--cluster-name: \(problem)")
        }
        let otlp = try otlpEnvironment()
        if endpoint == nil, let variable = otlp.endpointVariable, endpointFormat != .ndjson, endpointFormat != .otlp {
            throw ValidationError(
                "\(variable) is an OTLP endpoint; --endpoint-format \(endpointFormat.rawValue) needs --endpoint")
        }
        try seconds(interval, "--interval", min: 0.1, max: 86_400)
        try seconds(containerDeadline, "--container-deadline", min: 0.1, max: 3600)
        try seconds(shutdownGrace, "--shutdown-grace", min: 0, max: 3600)
        try seconds(connectTimeout, "--connect-timeout", min: 0.1, max: 600)
        try seconds(requestTimeout, "--request-timeout", min: 0.1, max: 3600)
        try seconds(batchWait, "--batch-wait", min: 0, max: 3600)
        guard (1...1_000_000).contains(heartbeat) else {
            throw ValidationError("--heartbeat must be between 1 and 1000000 windows, not \(heartbeat)")
        }
        if let listen, ListenAddress(listen) == nil {
            throw ValidationError("--listen takes ADDR:PORT with a numeric address (e.g. :9560), not '\(listen)'")
        }
        guard batchMaxFindings >= 1 else { throw ValidationError("--batch-max-findings must be at least 1") }
        guard batchMaxBytes >= 1024 else { throw ValidationError("--batch-max-bytes must be at least 1024") }
        guard spoolMaxBytes >= Int64(batchMaxBytes) * 2 else {
            throw ValidationError("--spool-max-bytes must be at least twice --batch-max-bytes (\(batchMaxBytes))")
        }
        if let endpoint {
            let rest = endpoint.split(separator: "://", maxSplits: 1).dropFirst().first ?? ""
            guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://"), let first = rest.first, first != "/"
            else {
                throw ValidationError("--endpoint must be an http:// or https:// URL, not '\(endpoint)'")
            }
        } else if otlp.endpoint == nil {
            // Not --endpoint-token-file: a manifest passes the path of its optional Secret whether
            // or not the ConfigMap sets an endpoint; without one it is not used.
            for (flag, value) in [
                ("--endpoint-ca", endpointCA), ("--endpoint-cert", endpointCert), ("--endpoint-key", endpointKey),
            ] where value != nil {
                throw ValidationError("\(flag) needs --endpoint")
            }
        }
        if (endpointCert == nil) != (endpointKey == nil) {
            throw ValidationError("--endpoint-cert and --endpoint-key go together")
        }
        // An absent --endpoint-token-file is not an error (an optional Secret): see run().
        for (flag, value) in [
            ("--endpoint-ca", endpointCA), ("--endpoint-cert", endpointCert), ("--endpoint-key", endpointKey),
        ] {
            if let value, !HostRoot("/").exists(value) { throw ValidationError("\(flag) '\(value)' does not exist") }
        }
        let indexCharacters = endpointIndex.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-"
        }
        guard indexCharacters, let first = endpointIndex.first, first.isLetter || first.isNumber,
            endpointIndex.count <= 255
        else {
            throw ValidationError("--endpoint-index must be a lowercase index name, not '\(endpointIndex)'")
        }
    }

    func run() async throws {
        let level = logLevel.level
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
        let logger = Logger(label: "pgnode.agent")
        SignalSources.ignore(SIGPIPE)
        // From here on SIGTERM/SIGINT stop the agent within --shutdown-grace, whatever hangs.
        let shutdown = AgentShutdown(grace: shutdownGrace) {
            logger.error(
                "shutdown did not finish within --shutdown-grace; exiting",
                metadata: ["exit_status": "\(AgentShutdown.watchdogStatus)"])
        }
        let signals = SignalWatcher(signals: [SIGTERM, SIGINT]) { signal in
            logger.info(
                "signal received; stopping", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
            shutdown.request()
        }
        signals.secondSignalExits()

        let metrics = MetricsRegistry()
        ProcessMetrics.register(metrics)
        let host = hostOptions.host
        let node = NodeIdentity.nodeName(explicit: nodeName, environment: environmentVariables(), host: host)

        let settings = try? EnvironmentSettings(toolInfo: Self._dumpHelp())
        for variable in settings?.unknownVariables(environmentVariables()) ?? [] {
            logger.warning("environment variable names no agent flag; ignored", metadata: ["variable": "\(variable)"])
        }

        let otlp = (try? otlpEnvironment()) ?? OTLPEnvironment()  // checked in validate()
        var cluster = clusterName
        if cluster == nil, let name = otlp.clusterName {
            cluster = name
            logger.info(
                "k8s.cluster.name from the environment",
                metadata: ["variable": "\(OTLPEnvironment.Variable.resourceAttributes)", "cluster_name": "\(name)"])
        } else if cluster == nil, let problem = otlp.resourceAttributesProblem {
            logger.warning(
                "environment variable not usable; ignored",
                metadata: ["variable": "\(OTLPEnvironment.Variable.resourceAttributes)", "reason": "\(problem)"])
        }
        // Where findings go: --endpoint (or PGNODE_ENDPOINT), else OpenTelemetry's variables.
        let target: (url: String, format: EndpointFormat, source: String)?
        if let endpoint {
            let fromVariable = environmentVariables()["PGNODE_ENDPOINT"] == endpoint
            target = (
                endpointFormat.resolvedURL(endpoint), endpointFormat, fromVariable ? "PGNODE_ENDPOINT" : "--endpoint"
            )
        } else if let url = otlp.endpoint, let variable = otlp.endpointVariable {
            target = (url, .otlp, variable)
        } else {
            target = nil
        }

        let sink: any FindingSink
        if let target {
            let endpointFormat = target.format
            var tokenFile = endpointTokenFile
            if let path = tokenFile, !HostRoot("/").exists(path) {
                logger.warning("endpoint token file absent; requests carry no token", metadata: ["path": "\(path)"])
                tokenFile = nil
            }
            let url = target.url
            let spool: Spool
            do {
                spool = try Spool(directory: spoolDir, maxBytes: spoolMaxBytes)
            } catch {
                writeStandardError("pgnode: --spool-dir '\(spoolDir)': \(error)\n")
                throw PGNodeExit(code: 64)
            }
            if !spool.isEmpty {
                logger.info(
                    "spool holds findings from an earlier run; delivering them first",
                    metadata: ["findings": "\(spool.findingCount)", "segments": "\(spool.segments.count)"])
            }
            let client = CurlHTTPClient(
                tls: TLSOptions(caFile: endpointCA, certificateFile: endpointCert, keyFile: endpointKey),
                connectTimeout: connectTimeout)
            var configuration = ShipperConfiguration(
                url: url, format: endpointFormat, index: endpointIndex, gzip: gzip, tokenFile: tokenFile,
                requestTimeout: requestTimeout, batchMaxFindings: batchMaxFindings, batchMaxBytes: batchMaxBytes,
                batchWait: batchWait)
            // Checked in validate(); a header refused here cannot happen.
            configuration.headers = endpointHeaders.compactMap {
                try? EndpointHeader.parse($0, withTokenFile: endpointTokenFile != nil)
            }
            if let variable = otlp.headersVariable {
                if endpointFormat == .otlp {
                    // --endpoint-header wins for a name both give.
                    let given = Set(configuration.headers.map { $0.name.lowercased() })
                    configuration.headers += otlp.headers.filter { !given.contains($0.name.lowercased()) }
                } else {
                    logger.warning(
                        "OpenTelemetry headers are for the otlp format; ignored",
                        metadata: ["variable": "\(variable)", "format": "\(endpointFormat.rawValue)"])
                }
            }
            let shipper = Shipper(
                configuration: configuration,
                transport: client, spool: spool, deadLetter: DeadLetterFile(path: "\(spoolDir)/dead-letter.ndjson"),
                metrics: metrics, logger: Logger(label: "pgnode.shipping"))
            shipper.start()
            sink = shipper
            logger.info(
                "shipping findings",
                metadata: [
                    "endpoint": "\(url)", "endpoint_source": "\(target.source)",
                    "format": "\(endpointFormat.rawValue)", "spool_dir": "\(spoolDir)", "gzip": "\(gzip)",
                    "headers": "\(configuration.headers.map(\.name).joined(separator: ","))",
                ])
        } else {
            sink = StdoutSink(metrics: metrics)
        }

        if !namespaces.isEmpty {
            logger.info(
                "diagnosing only the containers of these namespaces",
                metadata: ["namespaces": "\(namespaces.joined(separator: ","))"])
        }
        let engine = DiagnosisEngine(
            configuration: DiagnosisConfiguration(
                host: host, nodeName: node, btfOption: btfOptions.btf, btfArchive: btfOptions.btfArchive,
                containerDeadline: containerDeadline, namespaces: try validateNamespaces(namespaces),
                clusterName: cluster, queryLatency: queryOptions.queryLatency, queryText: queryOptions.queryText),
            logger: logger, observer: DeadlineMetrics(metrics))
        let loop = AgentLoop(
            source: EngineDiagnosisSource(engine: engine, metrics: metrics), sink: sink, metrics: metrics,
            logger: logger, interval: interval,
            emit: EmitPolicy(mode: emit, heartbeat: heartbeat, minSeverity: minSeverity.severity))

        var server: StatusServer?
        if let listen, let address = ListenAddress(listen) {
            let status = StatusServer(
                address: address, handler: StatusRoutes.handler(health: loop.health, metrics: metrics))
            do {
                let port = try status.start()
                logger.info(
                    "serving /healthz /readyz /metrics", metadata: ["address": "\(address.host)", "port": "\(port)"])
            } catch {
                writeStandardError("pgnode: --listen \(listen): \(error)\n")
                throw PGNodeExit(code: 64)
            }
            server = status
        }

        let task = Task {
            await loop.run()
            shutdown.markLoopEnded()
        }
        shutdown.whenRequested {
            loop.health.markStopping()
            task.cancel()
        }
        if !(await shutdown.loopEndedOrGraceOver()) {
            // Something the round called does not return (a read that never ends); the round is
            // left behind, and the process ends without it.
            logger.warning(
                "the diagnosis round did not stop within --shutdown-grace; leaving it behind",
                metadata: ["grace_s": "\(shutdownGrace)"])
        }

        let grace = shutdown.remaining
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            startThread(name: "pgnode-flush") {
                sink.shutdown(grace: grace)
                done.resume()
            }
        }
        server?.stop()
        logger.info("stopped")
    }
}

/// Turns SIGTERM/SIGINT into a callback (the first one); after `secondSignalExits()`, another
/// signal ends the process at once (the spool is consistent at every instant).
final class SignalWatcher: @unchecked Sendable {
    private let sources: SignalSources

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        let fired = SignalLatch()
        sources = SignalSources(signals, queue: DispatchQueue(label: "pgnode.signals")) { number in
            if fired.fire() {
                handler(number)
            } else if fired.exitOnNext {
                writeStandardError("pgnode: second signal; exiting now, undelivered findings stay in the spool\n")
                Glibc.exit(0)
            }
        }
        self.latch = fired
    }

    private let latch: SignalLatch

    /// From now on a signal exits immediately.
    func secondSignalExits() { latch.armExit() }
}

/// Whether a signal came already.
final class SignalLatch: @unchecked Sendable {
    private let lock = ConditionLock()
    private var fired = false
    private var exit = false

    /// True the first time.
    func fire() -> Bool {
        lock.withLock {
            defer { fired = true }
            return !fired
        }
    }

    func armExit() { lock.withLock { exit = true } }
    var exitOnNext: Bool { lock.withLock { exit } }
}

extension EndpointFormat: ExpressibleByArgument {}

extension EmitPolicy.Mode: ExpressibleByArgument {}

/// `--min-severity`: the ranked severities.
enum MinimumSeverity: String, ExpressibleByArgument, CaseIterable {
    case ok, info, warning, critical

    var severity: Severity {
        switch self {
        case .ok: .ok
        case .info: .info
        case .warning: .warning
        case .critical: .critical
        }
    }
}

/// `--log-level`.
enum LogLevel: String, ExpressibleByArgument, CaseIterable {
    case debug, info, warning, error

    var level: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}
