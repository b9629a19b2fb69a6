import Agent
import ArgumentParser
import Checks
import Diagnosis
import HostFacts
import Logging
import PGNodeModel
import ProbeObjects
import Sinks

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `pgnode check`: a one-off diagnosis of this node and its PostgreSQL containers.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Diagnose PostgreSQL containers on this node once and print the findings.",
        discussion: """
            Without --container, every PostgreSQL container on the node is diagnosed. Node-level \
            findings (kernel, BTF, BPF support) always come first. Every check that ran reports, \
            'ok' included; a check that could not run reports 'unavailable' with its reason. Each \
            container's diagnosis has --container-deadline seconds; past it, its checks report \
            'unavailable' ("timed out reading …") and the others go on.

            Exit status: 0 when the run completed (and no finding reached --fail-on), 1 when a \
            finding reached --fail-on, 64 on a usage error.

            Examples:
              pgnode check --container 3f2a9c1b7d4e --duration 30 --format text
              pgnode check --duration 0 --fail-on critical
              pgnode check --host-root /host --node-name "$NODE_NAME"
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

    @OptionGroup var hostOptions: HostOptions

    @OptionGroup var btfOptions: BTFOptions

    @Option(
        name: .customLong("fail-on"),
        help: ArgumentHelp("Exit 1 when any finding has this severity or worse.", valueName: "severity"))
    var failOn: Severity?

    @Option(
        name: .customLong("node-name"),
        help: ArgumentHelp(
            "The node's name for k8s.node.name (default: $NODE_NAME, else the host name).", valueName: "name"))
    var nodeName: String?

    func validate() throws {
        do { try validateTargets(containers: containers, pods: pods) } catch {
            throw ValidationError(error.description)
        }
        guard duration >= 0, duration.isFinite, duration <= 86_400 else {
            throw ValidationError("--duration must be between 0 and 86400 seconds, not \(duration)")
        }
        guard containerDeadline.isFinite, containerDeadline >= 0.1, containerDeadline <= 3600 else {
            throw ValidationError(
                "--container-deadline must be between 0.1 and 3600 seconds, not \(containerDeadline)")
        }
        if let failOn, failOn == .ok || failOn == .unavailable {
            throw ValidationError("--fail-on takes info, warning or critical, not '\(failOn.rawValue)'")
        }
    }

    func run() async throws {
        let host = hostOptions.host
        let windowStart = Timestamp.now()
        let facts = KernelFacts.gather(host: host)
        let node = NodeIdentity.nodeName(explicit: nodeName, environment: environmentVariables(), host: host)
        let resource = ResourceAttributes(nodeName: node)
        // Which containers: resolved before the window so that the probes filter on their cgroups.
        let targets = try resolveTargets(containers: containers, pods: pods, host: host, nodeName: node)
        let probeTargets = targets.prefix(Int(PGN_MAX_TARGETS)).map {
            ProbeTargets.target(for: $0.resolution, host: host)
        }
        // Meanwhile, how full each target's /dev/shm gets (statfs every 100 ms, for shm.enospc).
        let shmProcesses = targets.map { ShmUsageSampler.process($0.resolution) }
        let sampler = duration > 0 ? Task { await ShmUsageSampler.run(processes: shmProcesses, host: host) } : nil
        // BPF: BTF resolution, feature probing and the probes' observation window (BPFStage.swift).
        let bpf = await BPFStage.run(
            host: host, facts: facts, btfOption: btfOptions.btf, btfArchive: btfOptions.btfArchive, seconds: duration,
            targets: probeTargets)
        sampler?.cancel()
        // A statfs of a hung /dev/shm would keep the sampler from ever returning: its peaks are
        // then given up (shm.enospc goes without them), not waited for.
        var shmUsedPeaks: [Int: Int64] = [:]
        if let sampler {
            shmUsedPeaks = await DeadlineThreads.value(of: sampler, waitingAtMost: containerDeadline) ?? [:]
        }
        let now = Timestamp.now()
        let clock = ProbeReports.Clock()
        let nodeObservations = [bpf.btf, KernelChecks.headers(facts)] + bpf.observations
        var findings = nodeObservations.map {
            Finding(observation: $0, resource: resource, windowStart: windowStart, time: now)
        }
        let window = ProbeWindow(
            results: bpf.results, statuses: bpf.statuses, nanoseconds: now.nanoseconds - windowStart.nanoseconds,
            shmUsedPeakBytes: shmUsedPeaks)
        let layout = facts.cgroups
        let known = targets.map(\.resolution)
        let devices = BlockDevices.read(host: host)
        let pageSize = facts.pageSize
        let deadlines = ContainerDeadline(
            threads: DeadlineThreads(
                deadline: containerDeadline, logger: Logger(label: "pgnode.check") { _ in SwiftLogNoOpLogHandler() }))
        for (index, target) in targets.enumerated() {
            let probed = duration > 0 && index < Int(PGN_MAX_TARGETS)
            let checks = ContainerDiagnosis.staticChecks + (probed ? bpf.statuses.flatMap(\.checks) : [])
            let resolution = target.resolution
            // Each container on its own thread, under the deadline (a read that never returns
            // leaves that container's checks unavailable and the others go on).
            var observations =
                await deadlines.observations(container: resolution.container.id, checks: checks) { progress in
                    var observations = ContainerDiagnosis.staticObservations(resolution, host: host) {
                        progress.step($0)
                    }
                    if probed {
                        let names = CgroupNames(host: host, layout: layout, known: known)
                        observations += ContainerDiagnosis.probeObservations(
                            resolution, index: index, host: host, window: window, names: names, pageSize: pageSize,
                            clock: clock, devices: devices
                        ) { progress.step($0) }
                    }
                    return observations
                } ?? []
            if duration > 0 && !probed {
                observations += ContainerDiagnosis.unfollowedObservations(
                    statuses: bpf.statuses, slots: Int(PGN_MAX_TARGETS))
            }
            findings += observations.map {
                Finding(observation: $0, resource: target.resource, windowStart: windowStart, time: now)
            }
        }
        emit(findings)
        if let signal = bpf.signal { throw PGNodeExit(code: 128 + signal) }
        if let failOn, findings.contains(where: { $0.severity.isAtLeast(failOn) }) {
            throw PGNodeExit(code: 1)
        }
    }

    private func emit(_ findings: [Finding]) {
        let terminal = isatty(1) == 1
        switch format ?? (terminal ? .text : .json) {
        case .json: writeStandardOutput(NDJSONFormatter().format(findings))
        case .text: writeStandardOutput(TextFormatter(colour: terminal).format(findings))
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
