import Foundation
import PGNodeModel
import TestSupport
import Testing

/// Whether `process` has exited: reaped, or its main thread gone (exit called) while another of
/// its threads still waits, uninterruptibly, for a stalled mount (then it cannot be reaped yet).
func hasExited(_ process: Subprocess) -> Bool {
    guard process.isRunning else { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
    return state == "Z" || state == "X"
}

/// `pgnode agent` on a copy of the quiet fixture host where one directory is a real FUSE mount
/// that answers nothing (`StalledFileSystem`): a read there never returns.
///
/// A thread whose FUSE request the daemon has taken waits uninterruptibly (D state), through
/// SIGKILL and exit alike, as on a hard NFS mount: the process cannot be reaped while the mount
/// stalls. So the mount always goes first (`deinit` here, `terminate`), then the process.
final class StalledAgent {
    let directory: String
    let root: String
    let fileSystem: StalledFileSystem
    let agent: AgentProcess

    init(stalling relative: String, _ arguments: [String]) throws {
        directory = try Fixtures.temporaryDirectory()
        root = "\(directory)/host"
        try FileManager.default.copyItem(atPath: quietHost, toPath: root)
        try FileManager.default.createDirectory(atPath: "\(root)/\(relative)", withIntermediateDirectories: true)
        fileSystem = try StalledFileSystem(mountPoint: "\(root)/\(relative)")
        agent = try AgentProcess(arguments + ["--host-root", root], directory: directory)
    }

    deinit {
        fileSystem.unmount()
        agent.process.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether the agent has exited (see `hasExited`).
    var exited: Bool { hasExited(agent.process) }

    /// Sends SIGTERM and waits (hang guard `guardSeconds`) until the agent has exited; then
    /// removes the mount and returns the exit status. nil when it had not exited by the guard.
    func terminate(guardSeconds: Double = 30) -> Int32? {
        agent.process.signal(SIGTERM)
        let limit = Date().addingTimeInterval(guardSeconds)
        while !exited && Date() < limit { usleep(20_000) }
        let exitedInTime = exited
        fileSystem.unmount()
        let (status, _) = agent.process.wait(timeout: 30)
        return exitedInTime ? status : nil
    }

    /// The value of metric `name` on /metrics at `port`.
    func metric(_ name: String, port: String) throws -> Double? {
        let body = try curl("http://127.0.0.1:\(port)/metrics").body
        let line = body.split(separator: "\n").first { $0.hasPrefix("\(name) ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }
}

@Suite(
    "pgnode agent with a read that never returns", .serialized,
    .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct AgentStuckRoundTests {
    @Test("the first discovery stuck in a read: SIGTERM ends the agent, exit 0")
    func sigtermWhileDiscoveryStuck() throws {
        guard TestEnvironment.requireRoot() else { return }
        let run = try StalledAgent(
            stalling: "proc/4242",
            [
                "--interval", "1", "--listen", "127.0.0.1:0", "--node-name", "n1", "--container-deadline", "3600",
                "--shutdown-grace", "2",
            ])
        #expect(run.agent.waitForLog("serving /healthz /readyz /metrics") != nil)
        // The agent asked the stalled file system (for proc/4242/cgroup) and waits for the answer.
        #expect(run.fileSystem.waitForRequest(from: run.agent.process.pid) != nil, "the agent never read the mount")
        #expect(run.agent.logs.allSatisfy { $0["message"] != "agent started" })

        // Hang guard 30 s: on a stuck round SIGTERM used to be ignored.
        let status = run.terminate()
        #expect(status == 0, "SIGTERM did not end the agent: \(run.agent.stderr)")
        #expect(run.agent.logs.contains { $0["message"] == "signal received; stopping" })
        #expect(run.agent.logs.contains { $0["message"] == "stopped" })
    }

    @Test("a round stuck in a read outside any deadline: SIGTERM leaves it behind when the grace is over, exit 0")
    func sigtermWhileRoundStuck() throws {
        guard TestEnvironment.requireRoot() else { return }
        let run = try StalledAgent(
            stalling: "sys/block", ["--interval", "0.5", "--node-name", "n1", "--shutdown-grace", "1"])
        #expect(run.agent.waitForLog("agent started") != nil)
        // The first window's round reads sys/block and waits.
        #expect(run.fileSystem.waitForRequest(from: run.agent.process.pid) != nil, "the round never read the mount")

        let status = run.terminate()
        #expect(status == 0, "SIGTERM did not end the agent: \(run.agent.stderr)")
        let message = "the diagnosis round did not stop within --shutdown-grace; leaving it behind"
        #expect(run.agent.logs.contains { $0["message"]?.stringValue == message }, "\(run.agent.stderr)")
        // The node findings emitted at start were written out before the exit.
        #expect(run.agent.stdout.split(separator: "\n").count == quietHostNodeChecks.count)
    }

    @Test("start-up stuck in a read of the node's files: the watchdog ends the agent after the grace, exit 1")
    func watchdog() throws {
        guard TestEnvironment.requireRoot() else { return }
        // The kernel facts read at start-up (sys/kernel/btf/vmlinux) never come.
        let run = try StalledAgent(
            stalling: "sys/kernel/btf", ["--interval", "1", "--node-name", "n1", "--shutdown-grace", "1"])
        #expect(run.fileSystem.waitForRequest(from: run.agent.process.pid) != nil, "the agent never read the mount")
        run.agent.process.signal(SIGTERM)
        // The main thread itself waits in the stalled read, so the process cannot be reaped
        // before the mount goes; the watchdog's last log line says it has called exit.
        let message = "shutdown did not finish within --shutdown-grace; exiting"
        let line = run.agent.waitForLog(message, timeout: 60)
        #expect(line?["exit_status"] == "1", "\(run.agent.stderr)")
        run.fileSystem.unmount()
        let (status, timedOut) = run.agent.process.wait(timeout: 30)
        #expect(!timedOut)
        #expect(status == 1)
        #expect(run.agent.logs.contains { $0["message"] == "signal received; stopping" })
    }

    @Test("discovery that never returns: past its deadline the rounds go on, its thread abandoned once, not restarted")
    func discoveryDeadline() throws {
        guard TestEnvironment.requireRoot() else { return }
        let run = try StalledAgent(
            stalling: "proc/4242",
            ["--interval", "0.5", "--listen", "127.0.0.1:0", "--node-name", "n1", "--container-deadline", "0.5"])
        let serving = try #require(run.agent.waitForLog("serving /healthz /readyz /metrics"))
        let port = try #require(serving["port"]?.stringValue)
        #expect(run.agent.waitForLog("agent started", timeout: 60) != nil, "\(run.agent.stderr)")
        let limit = Date().addingTimeInterval(60)
        while try run.metric("pgnode_diagnosis_runs_total", port: port) ?? 0 < 3 && Date() < limit { usleep(50_000) }
        #expect(try run.metric("pgnode_diagnosis_runs_total", port: port) ?? 0 >= 3)
        #expect(try curl("http://127.0.0.1:\(port)/healthz").status == "200")

        let logs = run.agent.logs
        let abandoned = logs.filter {
            $0["message"] == "container discovery did not finish within its deadline; its thread is abandoned"
        }
        #expect(abandoned.count == 1)
        let failures = logs.filter { $0["message"] == "container discovery failed; keeping the previous set" }
        #expect(failures.count >= 3)
        let first = failures.first?["error"]?.stringValue ?? ""
        #expect(first.hasPrefix("timed out reading the node's containers"), "\(first)")
        let later = failures.last?["error"]?.stringValue ?? ""
        #expect(later.contains("an earlier discovery has been stuck there"), "\(later)")
        // One thread asked the stalled mount, once: a stuck discovery is not started again.
        let requests = run.fileSystem.requests(from: run.agent.process.pid)
        #expect(requests.count == 1)
        #expect(Set(requests.map(\.thread)).count == 1)

        #expect(run.terminate() == 0)
    }
}
