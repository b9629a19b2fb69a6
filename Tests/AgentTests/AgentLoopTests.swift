import Agent
import Logging
import PGNodeModel
import Shipping
import Sinks
import Synchronization
import Testing

/// A sink that keeps what it was given.
final class CollectingSink: FindingSink, Sendable {
    let batches = Mutex<[[Finding]]>([])
    func submit(_ findings: [Finding]) { batches.withLock { $0.append(findings) } }
    func shutdown(grace: Double) {}
    var all: [Finding] { batches.withLock { $0.flatMap { $0 } } }
}

/// A source whose containers and node findings follow a script, one step per round, and which
/// records every call the loop makes.
final class ScriptedSource: DiagnosisSource, Sendable {
    struct Call: Sendable, Equatable {
        var kind: String
        var window: DiagnosisWindow?
        var containers: Set<String>
    }

    let containersByRound: [Set<String>]
    let calls = Mutex<[Call]>([])
    let stopped = Mutex(0)
    let discoveries = Mutex(0)
    let nodeEvaluations = Mutex(0)

    init(containersByRound: [Set<String>]) { self.containersByRound = containersByRound }

    func discoverContainers() async throws -> Set<String> {
        let round = discoveries.withLock { count in
            defer { count += 1 }
            return count
        }
        let set = containersByRound[min(round, containersByRound.count - 1)]
        calls.withLock { $0.append(Call(kind: "discover", window: nil, containers: set)) }
        return set
    }

    func nodeFindings(window: DiagnosisWindow) async -> [Finding] {
        let n = nodeEvaluations.withLock { count in
            defer { count += 1 }
            return count
        }
        calls.withLock { $0.append(Call(kind: "node", window: window, containers: [])) }
        let resource = ResourceAttributes(nodeName: "node-1")
        // kernel.btf stays the same; kernel.headers changes from the third evaluation on.
        let btf = Observation(check: "kernel.btf", severity: .ok, summary: "BTF present.", evidence: ["size_bytes": 5])
        let headers = Observation(
            check: "kernel.headers", severity: n >= 2 ? .ok : .info,
            summary: n >= 2 ? "Headers found." : "No headers.", evidence: ["found": .array(n >= 2 ? ["/x"] : [])],
            remedy: "Install headers.")
        return [btf, headers].map {
            Finding(observation: $0, resource: resource, windowStart: window.start, time: window.end)
        }
    }

    func stop() async { stopped.withLock { $0 += 1 } }

    func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding] {
        calls.withLock { $0.append(Call(kind: "containers", window: window, containers: containers)) }
        return containers.sorted().map { id in
            Finding(
                observation: Observation(check: "shm.size", severity: .warning, summary: "small /dev/shm in \(id)"),
                resource: ResourceAttributes(
                    nodeName: "node-1", containerID: id, containerRuntime: "containerd", podName: "p-\(id)",
                    podUID: nil, namespace: "ns", containerName: "postgres"),
                windowStart: window.start, time: window.end)
        }
    }
}

@Suite("The agent loop")
struct AgentLoopTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test("node findings at start and when changed; each container's findings every window; windows contiguous")
    func loop() async throws {
        let source = ScriptedSource(containersByRound: [["a"], ["a", "b"], ["b"], ["b"], ["b"], ["b"], ["b"]])
        let sink = CollectingSink()
        let metrics = MetricsRegistry()
        let agent = AgentLoop(source: source, sink: sink, metrics: metrics, logger: logger, interval: 0.25)
        #expect(!agent.health.isReady)
        let task = Task { await agent.run() }
        // Wait for three completed windows.
        for _ in 0..<600 where source.calls.withLock({ $0.filter { $0.kind == "containers" }.count }) < 3 {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(agent.health.isReady)
        #expect(agent.health.isHealthy)
        #expect(source.stopped.withLock { $0 } == 0)
        task.cancel()
        await task.value
        #expect(source.stopped.withLock { $0 } == 1)  // stop() once, after the loop

        let calls = source.calls.withLock { $0 }
        let windows = calls.filter { $0.kind == "containers" }
        #expect(windows.count >= 3)
        // Each window diagnoses the containers discovered at its start.
        #expect(windows.prefix(3).map(\.containers) == [["a"], ["a", "b"], ["b"]])
        // Windows are contiguous and not empty (how long each lasts depends on how the machine
        // schedules the loop: not asserted).
        for (previous, next) in zip(windows, windows.dropFirst()) {
            #expect(previous.window!.end == next.window!.start)
        }
        for window in windows {
            #expect(window.window!.start < window.window!.end, "\(window)")
        }

        let batches = sink.batches.withLock { $0 }
        // First batch: both node findings at start.
        #expect(batches.first?.map(\.check) == ["kernel.btf", "kernel.headers"])
        let nodeEmitted = sink.all.filter { $0.resource.containerID == nil }
        // Then only the change of kernel.headers (evaluation 3), nothing for the unchanged kernel.btf.
        #expect(nodeEmitted.map(\.check) == ["kernel.btf", "kernel.headers", "kernel.headers"])
        #expect(nodeEmitted.map(\.severity) == [.ok, .info, .ok])
        #expect(Set(nodeEmitted.map(\.id)).count == 3)

        let containerEmitted = sink.all.filter { $0.resource.containerID != nil }
        // A round the cancellation cut short is not emitted: the windows emitted are the first
        // ones, as many as the rounds completed, or one more when the cancellation came after
        // that round's container findings were handed over.
        let runs = Int(metrics.value(AgentMetric.runs))
        #expect(runs == windows.count || runs == windows.count - 1)
        var emittedEnds: [Timestamp] = []
        for finding in containerEmitted where emittedEnds.last != finding.time { emittedEnds.append(finding.time) }
        #expect(emittedEnds.count == runs || emittedEnds.count == runs + 1)
        #expect(emittedEnds == windows.prefix(emittedEnds.count).map { $0.window!.end })
        let expectedCount = windows.prefix(emittedEnds.count).reduce(0) { $0 + $1.containers.count }
        #expect(containerEmitted.count == expectedCount)
        #expect(Set(containerEmitted.map(\.id)).count == expectedCount)  // one id per container and window
        #expect(containerEmitted.prefix(3).map { $0.resource.containerID } == ["a", "a", "b"])

        #expect(
            metrics.value(AgentMetric.findings, [("check", "shm.size"), ("severity", "warning")])
                == Double(expectedCount))
        #expect(metrics.value(AgentMetric.findings, [("check", "kernel.headers"), ("severity", "info")]) == 1)
        #expect(metrics.value(AgentMetric.containers) == 1)
    }

    @Test("change detection compares observations, not ids or times")
    func changeDetection() {
        let resource = ResourceAttributes(nodeName: "n")
        let observation = Observation(check: "kernel.btf", severity: .ok, summary: "s", evidence: ["a": 1])
        var last: [String: Observation] = [:]
        let first = Finding(
            observation: observation, resource: resource, windowStart: Timestamp(nanoseconds: 1),
            time: Timestamp(nanoseconds: 1))
        let later = Finding(
            observation: observation, resource: resource, windowStart: Timestamp(nanoseconds: 99),
            time: Timestamp(nanoseconds: 99))
        #expect(AgentLoop.changed([first], since: &last).count == 1)
        #expect(AgentLoop.changed([later], since: &last).isEmpty)
        var changed = observation
        changed.evidence["a"] = 2
        let third = Finding(
            observation: changed, resource: resource, windowStart: Timestamp(nanoseconds: 100),
            time: Timestamp(nanoseconds: 100))
        #expect(AgentLoop.changed([third], since: &last).map(\.id) == [third.id])
        // The same check about another resource is a different finding.
        let other = Finding(
            observation: changed, resource: ResourceAttributes(nodeName: "m"), windowStart: Timestamp(nanoseconds: 100),
            time: Timestamp(nanoseconds: 100))
        #expect(AgentLoop.changed([other], since: &last).count == 1)
    }

    @Test("a failing discovery keeps the previous containers and is counted")
    func discoveryFailure() async throws {
        final class Failing: DiagnosisSource {
            struct Boom: Error {}
            let calls = Mutex(0)
            func discoverContainers() async throws -> Set<String> {
                let n = calls.withLock { count in
                    defer { count += 1 }
                    return count
                }
                if n == 0 { return ["c1"] }
                throw Boom()
            }
            func nodeFindings(window: DiagnosisWindow) async -> [Finding] { [] }
            func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding] {
                containers.map {
                    Finding(
                        observation: Observation(check: "x", severity: .ok, summary: "s"),
                        resource: ResourceAttributes(
                            nodeName: "n", containerID: $0, containerRuntime: nil, podName: nil, podUID: nil,
                            namespace: nil, containerName: nil), windowStart: window.start, time: window.end)
                }
            }
        }
        let sink = CollectingSink()
        let metrics = MetricsRegistry()
        let agent = AgentLoop(source: Failing(), sink: sink, metrics: metrics, logger: logger, interval: 0.1)
        let task = Task { await agent.run() }
        for _ in 0..<1500 where metrics.value(AgentMetric.runs) < 3 { try await Task.sleep(nanoseconds: 20_000_000) }
        task.cancel()
        await task.value
        #expect(metrics.value(AgentMetric.discoveryErrors) >= 2)
        #expect(sink.all.count >= 3)
        #expect(sink.all.allSatisfy { $0.resource.containerID == "c1" })
    }
}
