import Agent
import Diagnosis
import Foundation
import Logging
import OSSupport
import PGNodeModel
import Shipping
import Synchronization
import Testing

/// A pipe nobody writes to until the test says so: `read` on it blocks in the kernel for real,
/// like a read of a stuck NFS or FUSE file (and unlike a FIFO opened by pgnode, which can no
/// longer block). `release(n)` lets `n` blocked or future reads return.
final class BlockingPipe: Sendable {
    let reader: Int32
    let writer: Int32

    init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        reader = fds[0]
        writer = fds[1]
    }

    deinit {
        close(reader)
        close(writer)
    }

    /// Blocks until a byte is written (or the write end is closed).
    func blockingRead() {
        var byte: UInt8 = 0
        while read(reader, &byte, 1) < 0 && errno == EINTR {}
    }

    func release(_ count: Int) {
        let bytes = [UInt8](repeating: 1, count: count)
        _ = bytes.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
    }
}

/// A container diagnosis for the tests: `ok` for its two checks; the "stuck" container first
/// tells its progress it is reading the pipe, then reads it.
final class TestDiagnosis: Sendable {
    static let checks = ["shm.size", "memory.limit"]
    let pipe: BlockingPipe
    let started = Mutex<[String: Int]>([:])

    init(pipe: BlockingPipe) { self.pipe = pipe }

    func body(_ id: String) -> @Sendable (WorkProgress) -> [Observation] {
        { [self] progress in
            started.withLock { $0[id, default: 0] += 1 }
            if id.hasPrefix("stuck") {
                progress.step("the test's pipe (\(id))")
                pipe.blockingRead()
            }
            return Self.checks.map { Observation(check: $0, severity: .ok, summary: "\(id) is fine") }
        }
    }

    func starts(_ id: String) -> Int { started.withLock { $0[id] ?? 0 } }
}

/// Waits (polling, at most `guardSeconds`: a hang guard) until `condition` holds.
func eventually(guardSeconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let limit = MonotonicClock.now() + guardSeconds
    while !condition() {
        if MonotonicClock.now() >= limit { return false }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return true
}

@Suite("A container's diagnosis under a deadline")
struct ContainerDeadlineTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test(
        "a read that blocks: its checks unavailable 'timed out reading …', the others diagnosed, one thread per stuck container"
    )
    func stuckContainer() async throws {
        let pipe = BlockingPipe()
        defer { pipe.release(16) }
        let diagnosis = TestDiagnosis(pipe: pipe)
        let metrics = MetricsRegistry()
        let deadlines = ContainerDeadline(
            threads: DeadlineThreads(deadline: 0.5, logger: logger, metrics: metrics))

        let stuck = await deadlines.observations(
            container: "stuck-1", checks: TestDiagnosis.checks, diagnosis.body("stuck-1"))
        let healthy = await deadlines.observations(
            container: "healthy", checks: TestDiagnosis.checks, diagnosis.body("healthy"))
        #expect(healthy?.map(\.severity) == [.ok, .ok])
        let timedOut = try #require(stuck)
        #expect(timedOut.map(\.check) == TestDiagnosis.checks)
        #expect(timedOut.allSatisfy { $0.severity == .unavailable })
        let reason = timedOut.first?.evidence["reason"]?.stringValue ?? ""
        #expect(reason.hasPrefix("timed out reading the test's pipe (stuck-1) after 0.5 s"), "\(reason)")
        #expect(timedOut.first?.evidence["reading"] == "the test's pipe (stuck-1)")
        #expect(deadlines.threads.stuckKeys == ["stuck-1"])
        #expect(metrics.value(AgentMetric.diagnosisTimeouts) == 1)
        #expect(metrics.value(AgentMetric.stuckThreads) == 1)

        // Still stuck: not started again, unavailable at once, the others go on.
        let again = try #require(
            await deadlines.observations(
                container: "stuck-1", checks: TestDiagnosis.checks, diagnosis.body("stuck-1")))
        #expect(diagnosis.starts("stuck-1") == 1)
        let still = again.first?.evidence["reason"]?.stringValue ?? ""
        #expect(still.hasPrefix("timed out reading the test's pipe (stuck-1): an earlier diagnosis"), "\(still)")
        #expect(metrics.value(AgentMetric.diagnosisTimeouts) == 1)

        // The read returns: the thread ends, is no longer counted, and the container is diagnosed again.
        pipe.release(2)
        #expect(await eventually { deadlines.threads.stuckKeys.isEmpty })
        #expect(metrics.value(AgentMetric.stuckThreads) == 0)
        let recovered = await deadlines.observations(
            container: "stuck-1", checks: TestDiagnosis.checks, diagnosis.body("stuck-1"))
        #expect(recovered?.map(\.severity) == [.ok, .ok])
        #expect(diagnosis.starts("stuck-1") == 2)
    }

    @Test("at most maxStuck threads may be stuck at once: past that, nothing more is started")
    func stuckBound() async throws {
        let pipe = BlockingPipe()
        defer { pipe.release(16) }
        let diagnosis = TestDiagnosis(pipe: pipe)
        let threads = DeadlineThreads(deadline: 0.2, maxStuck: 2, logger: logger)
        for id in ["stuck-1", "stuck-2"] {
            let outcome = await threads.run(id, diagnosis.body(id))
            guard case .timedOut = outcome else {
                Issue.record("\(id): \(outcome)")
                return
            }
        }
        let third = await threads.run("stuck-3", diagnosis.body("stuck-3"))
        guard case .tooManyStuck(count: 2) = third else {
            Issue.record("stuck-3: \(third)")
            return
        }
        #expect(diagnosis.starts("stuck-3") == 0)
        let healthy = await threads.run("healthy", diagnosis.body("healthy"))
        guard case .tooManyStuck = healthy else {
            Issue.record("healthy: \(healthy)")
            return
        }
        // One stuck thread ends: there is room again.
        pipe.release(1)
        #expect(await eventually { threads.stuckKeys.count == 1 })
        let later = await threads.run("healthy", diagnosis.body("healthy"))
        guard case .finished(let observations) = later else {
            Issue.record("healthy, later: \(later)")
            return
        }
        #expect(observations.count == 2)
    }

    @Test("a cancelled wait (the agent stopping) returns at once, deadline or not")
    func cancelled() async throws {
        let pipe = BlockingPipe()
        defer { pipe.release(16) }
        let diagnosis = TestDiagnosis(pipe: pipe)
        let deadlines = ContainerDeadline(threads: DeadlineThreads(deadline: 3600, logger: logger))
        let task = Task {
            await deadlines.observations(container: "stuck-1", checks: TestDiagnosis.checks, diagnosis.body("stuck-1"))
        }
        #expect(await eventually { diagnosis.starts("stuck-1") == 1 })
        // Hang guard: should the cancellation not end the wait, the read returns in 20 s and the
        // diagnosis gives its observations, which fails the test instead of hanging it.
        Thread.detachNewThread {
            sleep(20)
            pipe.release(1)
        }
        task.cancel()
        // nil: the round is abandoned.
        #expect(await task.value == nil)
        #expect(deadlines.threads.stuckKeys == ["stuck-1"])
    }
}

@Suite("Background work under a deadline")
struct BackgroundWorkTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test("told to stop, it ends with its value; it ran until then, pausing between steps")
    func stops() async throws {
        let threads = DeadlineThreads(deadline: 3600, logger: logger)
        let steps = Mutex(0)
        let work = threads.start("sampler") { progress, stop in
            repeat {
                progress.step("a step")
                steps.withLock { $0 += 1 }
            } while stop.pause(0.01)
            return "done"
        }
        #expect(await eventually { steps.withLock { $0 } >= 3 })
        guard case .finished("done") = await work.finish() else {
            Issue.record("not finished")
            return
        }
        #expect(threads.stuckKeys.isEmpty)
    }

    @Test(
        "stuck in a blocking read: abandoned at the deadline after finish, counted stuck; run with its key is refused until the read returns"
    )
    func stuck() async throws {
        let pipe = BlockingPipe()
        defer { pipe.release(16) }
        let metrics = MetricsRegistry()
        let threads = DeadlineThreads(deadline: 0.3, logger: logger, metrics: metrics)
        let reading = Mutex(false)
        let work = threads.start("stuck-1") { progress, stop in
            progress.step("the test's pipe")
            reading.withLock { $0 = true }
            pipe.blockingRead()
            return 1
        }
        #expect(await eventually { reading.withLock { $0 } })
        // Not abandoned while nobody waits for it: the deadline counts from `finish`.
        #expect(threads.stuckKeys.isEmpty)
        guard case .timedOut(step: "the test's pipe") = await work.finish() else {
            Issue.record("not timed out")
            return
        }
        #expect(threads.stuckKeys == ["stuck-1"])
        #expect(metrics.value(AgentMetric.diagnosisTimeouts) == 1)
        #expect(metrics.value(AgentMetric.stuckThreads) == 1)
        let diagnosis = TestDiagnosis(pipe: pipe)
        let refused = await threads.run("stuck-1", diagnosis.body("stuck-1"))
        guard case .stillStuck(step: "the test's pipe", _) = refused else {
            Issue.record("run was not refused: \(refused)")
            return
        }
        #expect(diagnosis.starts("stuck-1") == 0)
        guard case .stillStuck = await threads.start("stuck-1", { _, _ in 2 }).finish() else {
            Issue.record("start was not refused")
            return
        }
        // One byte for the stuck read, one for the diagnosis that reads the pipe again.
        pipe.release(2)
        #expect(await eventually { threads.stuckKeys.isEmpty })
        #expect(metrics.value(AgentMetric.stuckThreads) == 0)
        let later = await threads.run("stuck-1", diagnosis.body("stuck-1"))
        guard case .finished(let observations) = later else {
            Issue.record("later: \(later)")
            return
        }
        #expect(observations.count == 2)
    }
}

/// Two containers, "healthy" and "stuck-1", each diagnosed through `ContainerDeadline` as the
/// agent's own source does; the stuck one's diagnosis blocks in `read` on a pipe.
final class DeadlineSource: DiagnosisSource {
    let deadlines: ContainerDeadline
    let diagnosis: TestDiagnosis

    init(deadlines: ContainerDeadline, diagnosis: TestDiagnosis) {
        self.deadlines = deadlines
        self.diagnosis = diagnosis
    }

    func discoverContainers() async throws -> Set<String> { ["healthy", "stuck-1"] }
    func nodeFindings(window: DiagnosisWindow) async -> [Finding] { [] }

    func containerFindings(window: DiagnosisWindow, containers: Set<String>) async -> [Finding] {
        var findings: [Finding] = []
        for id in containers.sorted() {
            guard
                let observations = await deadlines.observations(
                    container: id, checks: TestDiagnosis.checks, diagnosis.body(id))
            else { return findings }
            let resource = ResourceAttributes(
                nodeName: "n", containerID: id, containerRuntime: nil, podName: nil, podUID: nil, namespace: nil,
                containerName: nil)
            findings += observations.map {
                Finding(observation: $0, resource: resource, windowStart: window.start, time: window.end)
            }
        }
        return findings
    }
}

@Suite("One container cannot stall the agent's round")
struct StuckRoundTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test("rounds go on: the healthy container every window, the stuck one unavailable, its thread started once")
    func roundsGoOn() async throws {
        let pipe = BlockingPipe()
        defer { pipe.release(16) }
        let diagnosis = TestDiagnosis(pipe: pipe)
        let source = DeadlineSource(
            deadlines: ContainerDeadline(threads: DeadlineThreads(deadline: 0.3, logger: logger)), diagnosis: diagnosis)
        let sink = CollectingSink()
        let metrics = MetricsRegistry()
        let agent = AgentLoop(source: source, sink: sink, metrics: metrics, logger: logger, interval: 0.2)
        let task = Task { await agent.run() }
        // Hang guard: three rounds, or 600 s (generous: tests that block the task pool's threads
        // may run beside this one); then the pipe is released so that the test ends.
        let done = await eventually(guardSeconds: 600) { metrics.value(AgentMetric.runs) >= 3 }
        if !done { pipe.release(16) }
        #expect(done, "the rounds stalled")
        task.cancel()
        await task.value

        let runs = Int(metrics.value(AgentMetric.runs))
        let healthy = sink.all.filter { $0.resource.containerID == "healthy" }
        let stuck = sink.all.filter { $0.resource.containerID == "stuck-1" }
        // Two checks per container and emitted round: every completed round, and perhaps the one
        // the cancellation came in (after its findings were handed over).
        let emitted = healthy.count / 2
        #expect(healthy.count % 2 == 0)
        #expect(emitted == runs || emitted == runs + 1)
        #expect(healthy.allSatisfy { $0.severity == .ok })
        #expect(stuck.count == healthy.count)
        #expect(stuck.allSatisfy { $0.severity == .unavailable })
        let reasons = stuck.map { $0.observation.evidence["reason"]?.stringValue ?? "" }
        #expect(reasons.allSatisfy { $0.hasPrefix("timed out reading the test's pipe (stuck-1)") }, "\(reasons)")
        #expect(reasons.dropFirst(2).allSatisfy { $0.contains("an earlier diagnosis of this container") })
        #expect(diagnosis.starts("stuck-1") == 1)
        // Started in every round that reached it (a round cut short may have started it too).
        #expect(diagnosis.starts("healthy") >= emitted && diagnosis.starts("healthy") <= emitted + 1)
    }
}
