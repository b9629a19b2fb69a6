import ArgumentParser
import Diagnosis
import Formatters
import Glibc
import HostFacts
import Logging
import PGNodeModel
import Resolution

/// `pgnode check`: a one-off diagnosis of this node and its PostgreSQL containers.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Diagnose PostgreSQL containers on this node once and print the findings.",
        discussion: """
            Without --container, every PostgreSQL container on the node is diagnosed; --namespace \
            (repeatable) keeps those whose pod is in one of the namespaces given (a container that \
            Kubernetes does not run has no namespace and is left out). Node-level \
            findings (kernel, BTF, BPF support) always come first. Every check that ran reports, \
            'ok' included; a check that could not run reports 'unavailable' with its reason. Each \
            container's diagnosis has --container-deadline seconds; past it, its checks report \
            'unavailable' ("timed out reading …") and the others go on.

            Text output is coloured on a terminal unless NO_COLOR is set; --verbose prints every \
            detail (bpf.support's probe environment even when every probe runs). With text output \
            and stderr on a terminal, a line on stderr says what is observed during the window \
            ("observing 3 containers for 10 s… Ctrl-C to stop early"), erased when it ends.

            Exit status:
              0   the run completed and no finding reached --fail-on
              1   a finding reached --fail-on
              2   no container or pod matched --container / --pod
              64  usage error
              128+N  ended by signal N (the findings of the shortened window are printed)

            Examples:
              pgnode check --container 3f2a9c1b7d4e --duration 30 --format text
              pgnode check --duration 0 --fail-on critical
              pgnode check --namespace prod --namespace shop --duration 30
              pgnode check --host-root /host --node-name "$NODE_NAME" --cluster-name prod-eu
            """
    )

    @Option(
        name: .customLong("container"),
        help: ArgumentHelp(
            "A container to diagnose: a full ID, a unique prefix of 12+ hex digits, or containerd://ID. Repeatable.",
            valueName: "id"))
    var containers: [String] = []

    @Option(
        name: .customLong("pod"),
        help: ArgumentHelp("Diagnose every container of this pod. Repeatable.", valueName: "namespace/name"))
    var pods: [String] = []

    @Option(
        name: .customLong("namespace"),
        help: ArgumentHelp(
            "Diagnose only the containers of pods in this Kubernetes namespace. Repeatable.", valueName: "namespace"))
    var namespaces: [String] = []

    @Option(
        help: ArgumentHelp("How long probes observe, in seconds; 0 runs only the static checks.", valueName: "seconds"))
    var duration: Double = 10

    @Option(
        name: .customLong("container-deadline"),
        help: ArgumentHelp(
            "Seconds one container's diagnosis may take; past it its checks are 'unavailable'.",
            valueName: "seconds"))
    var containerDeadline: Double = 10

    @Option(help: "Output format (default: text on a terminal, json otherwise).")
    var format: OutputFormat?

    @Flag(help: "Text output: print every detail, bpf.support's probe environment included.")
    var verbose = false

    @OptionGroup var hostOptions: HostOptions

    @OptionGroup var btfOptions: BTFOptions

    @OptionGroup var queryOptions: QueryLatencyOptions

    @Option(
        name: .customLong("fail-on"),
        help: ArgumentHelp("Exit 1 when any finding has this severity or worse.", valueName: "severity"))
    var failOn: Severity?

    @Option(
        name: .customLong("node-name"),
        help: ArgumentHelp(
            "The node's name for k8s.node.name (default: $NODE_NAME, else the host name).", valueName: "name"))
    var nodeName: String?

    @Option(
        name: .customLong("cluster-name"),
        help: ArgumentHelp(
            "The cluster's name for k8s.cluster.name in every finding (default: none).", valueName: "name"))
    var clusterName: String?

    func validate() throws {
        do { try validateTargets(containers: containers, pods: pods) } catch {
            throw ValidationError(error.description)
        }
        _ = try validateNamespaces(namespaces, containers: containers, pods: pods)
        guard duration >= 0, duration.isFinite, duration <= 86_400 else {
            throw ValidationError("--duration must be between 0 and 86400 seconds, not \(duration)")
        }
        guard containerDeadline.isFinite, containerDeadline >= 0.1, containerDeadline <= 3600 else {
            throw ValidationError(
                "--container-deadline must be between 0.1 and 3600 seconds, not \(containerDeadline)")
        }
        if let clusterName, let problem = ResourceAttributes.clusterNameProblem(clusterName) {
            throw ValidationError("--cluster-name: \(problem)")
        }
        if let failOn, failOn == .ok || failOn == .unavailable {
            throw ValidationError("--fail-on takes info, warning or critical, not '\(failOn.rawValue)'")
        }
    }

    func run() async throws {
        let host = hostOptions.host
        let windowStart = Timestamp.now()
        let node = NodeIdentity.nodeName(explicit: nodeName, environment: environmentVariables(), host: host)
        // Which containers: resolved first, so that the probes filter on their cgroups.
        let filter = try validateNamespaces(namespaces, containers: containers, pods: pods)
        let targets = try resolveTargets(containers: containers, pods: pods, namespaces: filter, host: host)
        // From here to the end of the window, SIGINT/SIGTERM end the window early.
        let signals = WindowSignals()
        let engine = DiagnosisEngine(
            configuration: DiagnosisConfiguration(
                host: host, nodeName: node, btfOption: btfOptions.btf, btfArchive: btfOptions.btfArchive,
                containerDeadline: containerDeadline, observes: duration > 0, namespaces: filter,
                clusterName: clusterName, queryLatency: queryOptions.queryLatency,
                queryText: queryOptions.queryText),
            logger: Logger(label: "pgnode.check") { _ in SwiftLogNoOpLogHandler() })
        await engine.follow(targets)
        if duration > 0 {
            let progress = ObservationProgress.make(
                containers: targets.count, seconds: duration, textOutput: outputFormat == .text,
                stderrIsTerminal: isatty(2) == 1, environment: environmentVariables())
            if let progress { writeStandardError(progress.start) }
            await signals.wait(seconds: duration)
            if let progress { writeStandardError(progress.end) }
        }
        signals.restore()
        let end = Timestamp.now()
        let round = await engine.collect(from: windowStart, to: end, last: true)
        let findings = await engine.nodeFindings(start: windowStart, end: end) + round.findings
        await engine.close()
        emit(findings)
        if let signal = signals.received { throw PGNodeExit(code: 128 + signal) }
        if let failOn, findings.contains(where: { $0.severity.isAtLeast(failOn) }) {
            throw PGNodeExit(code: 1)
        }
    }

    /// `--format`, else text on a terminal and JSON otherwise.
    private var outputFormat: OutputFormat { format ?? (isatty(1) == 1 ? .text : .json) }

    private func emit(_ findings: [Finding]) {
        let terminal = isatty(1) == 1
        switch outputFormat {
        case .json: writeStandardOutput(NDJSONFormatter().format(findings))
        case .text:
            let colour = TextFormatter.useColour(terminal: terminal, environment: environmentVariables())
            writeStandardOutput(TextFormatter(colour: colour, verbose: verbose).format(findings))
        }
    }
}

/// The process environment as a dictionary.
func environmentVariables() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            result[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        pointer += 1
    }
    return result
}
