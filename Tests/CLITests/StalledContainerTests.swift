import Foundation
import PGNodeModel
import TestSupport
import Testing

/// Real PostgreSQL containers, one of them with a `/dev/shm` that never answers: a FUSE mount
/// inside its mount namespace whose daemon takes every request and answers none
/// (`Tests/Scripts/stalled-mount.py`), as a hung NFS or FUSE mount would.
@Suite("A container whose /dev/shm never answers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct StalledContainerTests {
    struct MountFailed: Error, CustomStringConvertible {
        var description: String
    }

    /// The stalled mount's daemon, in the mount namespace of `container`'s init.
    final class StalledShm {
        let daemon: Subprocess

        init(_ container: PostgresContainer) throws {
            let pid = try Containers.script(["pid", container.name]).trimmingCharacters(in: .whitespacesAndNewlines)
            daemon = try Subprocess(
                [
                    "python3",
                    TestEnvironment.packageRoot.appendingPathComponent("Tests/Scripts/stalled-mount.py").path,
                    pid, "/dev/shm",
                ])
            let limit = Date().addingTimeInterval(30)
            while !daemon.standardOutput.contains("mounted") && daemon.isRunning && Date() < limit { usleep(20_000) }
            guard daemon.standardOutput.contains("mounted") else {
                throw MountFailed(description: "stalled-mount did not mount: \(daemon.standardError)")
            }
        }

        /// Requests the daemon took (and left unanswered): opcode and thread.
        var requests: [(opcode: Int, thread: Int32)] {
            daemon.standardOutput.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                guard words.count == 3, words[0] == "request", let opcode = Int(words[1]), let tid = Int32(words[2])
                else { return nil }
                return (opcode, tid)
            }
        }

        /// The requests of process `pid`'s threads (while they wait: their thread group is read
        /// from /proc).
        func requests(from pid: Int32) -> [(opcode: Int, thread: Int32)] {
            requests.filter { StalledFileSystem.threadGroup(of: $0.thread) == pid }
        }

        /// Ends the daemon: the requests still waiting fail, and the threads waiting in them end.
        func end() { daemon.stop() }

        deinit { daemon.stop() }
    }

    /// Container findings on `stdout` for container `id`, by check, in order.
    func findings(_ stdout: String, container id: String) -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }.filter {
            $0["resource"]?["container.id"]?.stringValue == id
        }
    }

    /// Waits (hang guard `guardSeconds`) until `process` has exited, then ends the stalled mount
    /// (a thread of `process` may still wait in it) and reaps it; nil when it had not exited.
    func finish(_ process: Subprocess, _ shm: StalledShm, guardSeconds: Double = 60) -> Int32? {
        let limit = Date().addingTimeInterval(guardSeconds)
        while !hasExited(process) && Date() < limit { usleep(20_000) }
        let exited = hasExited(process)
        shm.end()
        let (status, _) = process.wait(timeout: 30)
        return exited ? status : nil
    }

    @Test(
        "pgnode check: the stalled container's checks are unavailable 'timed out reading /dev/shm …', the other's are not"
    )
    func check() throws {
        guard TestEnvironment.requireRoot(), Containers.available() else { return }
        let healthy = try Containers.start("stalled-check-ok")
        defer { Containers.remove(healthy.name) }
        let stalled = try Containers.start("stalled-check-shm")
        defer { Containers.remove(stalled.name) }
        let shm = try StalledShm(stalled)
        defer { shm.end() }

        let check = try Subprocess(
            [
                TestEnvironment.pgnodeBinary, "check", "--container", healthy.id, "--container", stalled.id,
                "--duration", "0", "--container-deadline", "10", "--format", "json",
            ])
        let limit = Date().addingTimeInterval(60)
        while shm.requests(from: check.pid).isEmpty && !hasExited(check) && Date() < limit { usleep(20_000) }
        #expect(shm.requests(from: check.pid).count == 1, "\(shm.requests)")
        let status = finish(check, shm)
        #expect(status == 0, "pgnode check did not finish: \(check.standardError)")

        let stuck = findings(check.standardOutput, container: stalled.id)
        #expect(
            stuck.compactMap { $0["check"]?.stringValue } == [
                "shm.size", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling", "cpu.contention",
            ])
        for finding in stuck {
            #expect(finding["severity"] == "unavailable")
            let reason = finding["evidence"]?["reason"]?.stringValue ?? ""
            #expect(reason.hasPrefix("timed out reading /dev/shm of process "), "\(reason)")
            #expect(reason.contains("(shm.size) after 10 s"), "\(reason)")
        }
        let fine = findings(check.standardOutput, container: healthy.id)
        #expect(
            fine.compactMap { $0["check"]?.stringValue } == [
                "shm.size", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling", "cpu.contention",
            ])
        // cpu.throttling and cpu.contention count over a window, which --duration 0 does not have.
        let windowed: Set<String> = ["cpu.throttling", "cpu.contention"]
        #expect(
            fine.filter { !windowed.contains($0["check"]?.stringValue ?? "") }.allSatisfy {
                $0["severity"] != "unavailable"
            }, "\(fine)")
        for cpu in fine where windowed.contains(cpu["check"]?.stringValue ?? "") {
            #expect(cpu["severity"] == "unavailable")
            #expect(cpu["evidence"]?["reason"]?.stringValue?.hasPrefix("no observation window") == true, "\(fine)")
        }
    }

    @Test("pgnode agent: every window the healthy container is diagnosed, the stalled one unavailable; SIGTERM exits 0")
    func agent() throws {
        guard TestEnvironment.requireRoot(), Containers.available() else { return }
        let healthy = try Containers.start("stalled-agent-ok")
        defer { Containers.remove(healthy.name) }
        let stalled = try Containers.start("stalled-agent-shm")
        defer { Containers.remove(stalled.name) }
        let shm = try StalledShm(stalled)
        defer { shm.end() }

        let directory = try Fixtures.temporaryDirectory("pgnode-stalled-agent")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The deadline must be one the healthy container's diagnosis always meets, however loaded
        // the machine: with 1 s, a loaded CI machine abandoned the healthy diagnosis too (two
        // "abandoned" lines, 3 of 5 runs). The stalled one never finishes, so its length only
        // delays the first window.
        let agent = try AgentProcess(
            [
                "--interval", "2", "--emit", "all", "--container-deadline", "10", "--node-name", "stalled-node",
                "--shutdown-grace", "2",
            ],
            directory: directory)
        defer { agent.process.stop() }
        // Three windows of findings for the healthy container (hang guard 90 s).
        let limit = Date().addingTimeInterval(90)
        while findings(agent.stdout, container: healthy.id).filter({ $0["check"] == "shm.size" }).count < 3
            && agent.process.isRunning && Date() < limit
        {
            usleep(200_000)
        }
        // One diagnosis thread got stuck, once: one request (a statfs), whatever else asked.
        let agentRequests = shm.requests(from: agent.process.pid)
        #expect(agentRequests.count == 1, "\(shm.requests)")
        #expect(agentRequests.first?.opcode == 17)  // FUSE_STATFS
        agent.process.signal(SIGTERM)
        let status = finish(agent.process, shm)
        #expect(status == 0, "SIGTERM did not end the agent: \(agent.stderr)")

        let fine = findings(agent.stdout, container: healthy.id).filter { $0["check"] == "shm.size" }
        #expect(fine.count >= 3, "\(agent.stderr)")
        #expect(fine.allSatisfy { $0["severity"] != "unavailable" })
        let stuck = findings(agent.stdout, container: stalled.id).filter { $0["check"] == "shm.size" }
        #expect(stuck.count >= 3)
        let reasons = stuck.map { $0["evidence"]?["reason"]?.stringValue ?? "" }
        #expect(reasons.first?.hasPrefix("timed out reading /dev/shm of process ") == true, "\(reasons)")
        #expect(reasons.dropFirst().allSatisfy { $0.contains("an earlier diagnosis of this container") }, "\(reasons)")
        // Every check of the stalled container, probes' included, says it timed out.
        let checks = Set(findings(agent.stdout, container: stalled.id).compactMap { $0["check"]?.stringValue })
        #expect(checks.isSuperset(of: ["shm.size", "memory.limit", "shm.enospc", "memory.reclaim", "blkio.noise"]))
        #expect(findings(agent.stdout, container: stalled.id).allSatisfy { $0["severity"] == "unavailable" })
        // The stalled container's thread timed out once. The agent follows every PostgreSQL
        // container on the node: those of suites running beside this one are not counted (their
        // removal mid-window can hold a sampler past its deadline).
        let timeouts = agent.logs.filter {
            $0["message"] == "a container's diagnosis did not finish within its deadline; its thread is abandoned"
        }
        #expect(
            timeouts.filter { $0["key"]?.stringValue == stalled.id }.count == 1,
            "\(timeouts.map { JSONWriter.string($0) })")
    }
}
