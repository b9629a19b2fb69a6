import Foundation
import PGNodeModel
import Probes
import TestSupport
import Testing

/// The checks every PostgreSQL container gets.
let everyContainerCheck: Set<String> = [
    "shm.size", "shm.enospc", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling",
    "cpu.contention", "memory.reclaim", "blkio.noise", "cpu.migrations", "writeback.throttle",
]

/// The checks that need no probe: their evidence (the container's files and cgroups, the server's
/// settings) depends on what pgnode may read, not on the probes.
let staticChecks: Set<String> = [
    "shm.size", "memory.limit", "memory.budget", "memory.hugepages", "cpu.throttling",
]

/// What a finding says when pgnode was denied something it needs.
let denialMarkers = ["permission denied", "EPERM", "Operation not permitted", "unreadable"]

/// One run of `scripts/run-manifests`: a pod of the manifests run on this node as a kubelet would
/// (runc, the pod's security context, volumes and probes), observed through its output directory.
final class ManifestRun {
    let directory: String
    let process: Subprocess
    /// Overlays made for this run (`ManifestRunTests.overlay`), removed with it.
    let overlays: [String]

    init(_ sources: [String], options: [String] = []) throws {
        overlays = sources.filter { $0.hasPrefix("/tmp/pgnode-overlay-") }
        directory = try Fixtures.temporaryDirectory("pgnode-manifest-run")
        process = try Subprocess(
            [TestEnvironment.scriptPath("run-manifests")] + sources + ["--out", directory] + options,
            stdout: .discard, stderr: .file("\(directory)/runner.log"))
    }

    /// The runner's own messages and the container's stderr.
    var log: String { (try? String(contentsOfFile: "\(directory)/runner.log", encoding: .utf8)) ?? "" }
    /// The container's stdout.
    var stdout: String { (try? String(contentsOfFile: "\(directory)/stdout", encoding: .utf8)) ?? "" }

    /// The runner's events (deviations, start, probes, exit).
    var events: [JSONValue] {
        let text = (try? String(contentsOfFile: "\(directory)/events.ndjson", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
    }

    /// The first event named `name`.
    func event(_ name: String) -> JSONValue? { events.first { $0["event"]?.stringValue == name } }

    /// `result.json`, written when the run ends.
    var result: JSONValue? {
        (try? String(contentsOfFile: "\(directory)/result.json", encoding: .utf8)).flatMap { try? JSONParser.parse($0) }
    }

    /// The findings on the pod's stdout.
    var findings: [JSONValue] { stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) } }

    /// The findings for `container`'s pod, and the node-level ones (no pod).
    func findings(for container: PostgresContainer) -> [JSONValue] {
        findings.filter {
            let resource = $0["resource"]
            return resource?["k8s.pod.name"] == nil
                || (resource?["k8s.pod.name"]?.stringValue == container.podName
                    && resource?["k8s.namespace.name"]?.stringValue == container.namespace)
        }
    }

    /// Waits (a hang guard, not a bound on speed) until `condition` holds or the runner ends.
    @discardableResult
    func waitUntil(timeout: Double = 300, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { break }
            usleep(500_000)
        }
        return condition()
    }

    /// Waits until a whole window of findings for `container` is out: every container check.
    func waitForWindow(_ container: PostgresContainer) -> Bool {
        waitUntil {
            everyContainerCheck.isSubset(
                of: Set(findings(for: container).compactMap { $0["check"]?.stringValue }))
        }
    }

    /// Deletes the pod as the kubelet does (the runner turns SIGTERM into that) and waits for the end.
    func stop() -> Int32? {
        process.signal(SIGTERM)
        let (status, timedOut) = process.wait(timeout: 120)
        return timedOut ? nil : status
    }

    deinit {
        if process.isRunning {
            process.signal(SIGTERM)
            _ = process.wait(timeout: 60)
        }
        try? FileManager.default.removeItem(atPath: directory)
        for overlay in overlays { try? FileManager.default.removeItem(atPath: overlay) }
    }
}

/// An item of a block list in a manifest (`add:`, `volumeMounts:`), with the comment above it and
/// the checks that comment says need it (`Needed by a, b: …`).
struct ManifestItem: Sendable, CustomStringConvertible {
    /// The item's lines, the `- ` removed from the first.
    var lines: [String]
    /// The comment lines above it, joined.
    var comment: String
    var description: String { lines.first ?? "" }

    /// The value of `key:` in the item (`name`, `mountPath`), or the item itself for a scalar.
    func value(_ key: String? = nil) -> String? {
        guard let key else { return lines.first }
        for line in lines where line.hasPrefix("\(key):") {
            return line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// The checks named by `Needed by …:` in the comment.
    var neededBy: Set<String> {
        guard let range = comment.range(of: "Needed by "), let colon = comment[range.upperBound...].firstIndex(of: ":")
        else { return [] }
        return Set(
            comment[range.upperBound..<colon].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// The items of the first block list under a line `header` (e.g. `add:`).
    static func parse(_ text: String, under header: String) -> [ManifestItem] {
        var result: [ManifestItem] = []
        var indent: Int?
        var comment = ""
        var started = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let depth = line.prefix { $0 == " " }.count
            if !started {
                started = trimmed == header
                continue
            }
            if trimmed.hasPrefix("#") {
                comment += " " + trimmed.dropFirst().trimmingCharacters(in: .whitespaces)
            } else if trimmed.hasPrefix("- "), indent == nil || depth == indent {
                indent = depth
                result.append(ManifestItem(lines: [String(trimmed.dropFirst(2))], comment: comment))
                comment = ""
            } else if let indent, depth > indent, !result.isEmpty, !trimmed.isEmpty {
                result[result.count - 1].lines.append(trimmed)
            } else {
                break
            }
        }
        return result
    }
}

/// The shipped manifests, run on this node the way a kubelet with containerd would run them
/// (`scripts/run-manifests`), with a real PostgreSQL container beside them.
@Suite("The manifests, run as a kubelet would", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct ManifestRunTests {
    static let root = TestEnvironment.packageRoot.path
    static let manifests = "\(root)/manifests"
    static let daemonSet = (try? String(contentsOfFile: "\(manifests)/daemonset.yaml", encoding: .utf8)) ?? ""
    static let capabilities = ManifestItem.parse(daemonSet, under: "add:")
    static let volumeMounts = ManifestItem.parse(daemonSet, under: "volumeMounts:")

    /// Whether this machine can run the manifests (in CI, a missing piece is a failure).
    func available() -> Bool {
        guard TestEnvironment.requireRoot(), Containers.available() else { return false }
        for tool in ["runc", "ip", "ctr"] {
            let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].contains {
                FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
            }
            guard TestEnvironment.require(found, "\(tool) (scripts/setup)") else { return false }
        }
        return true
    }

    /// The binary of the image, built as the Dockerfile builds it (once; later calls are no-ops).
    func imageBinary() throws -> String {
        let result = try Command.run([TestEnvironment.scriptPath("run-manifests"), "--print-binary"], timeout: 1800)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A kustomization over the shipped manifests that sets `PGNODE_INTERVAL` and, when given,
    /// replaces the DaemonSet's added capabilities or removes one of its volumes: what a user's
    /// overlay does.
    func overlay(interval: String, capabilities: [String]? = nil, removing mount: ManifestItem? = nil) throws -> String
    {
        let directory = try Fixtures.temporaryDirectory("pgnode-overlay")
        let depth = directory.split(separator: "/").count
        let base = String(repeating: "../", count: depth) + Self.manifests.dropFirst()
        var text = """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - \(base)
            patches:
              - target: {kind: ConfigMap, name: pgnode}
                patch: |
                  - op: replace
                    path: /data/PGNODE_INTERVAL
                    value: "\(interval)"

            """
        if let capabilities {
            text += """
                  - target: {kind: DaemonSet, name: pgnode}
                    patch: |
                      - op: replace
                        path: /spec/template/spec/containers/0/securityContext/capabilities/add
                        value: [\(capabilities.map { "\"\($0)\"" }.joined(separator: ", "))]

                """
        }
        if let mount, let name = mount.value("name"), let path = mount.value("mountPath") {
            text += """
                  - patch: |
                      apiVersion: apps/v1
                      kind: DaemonSet
                      metadata: {name: pgnode, namespace: pgnode}
                      spec:
                        template:
                          spec:
                            containers:
                              - name: pgnode
                                volumeMounts:
                                  - {mountPath: \(path), $patch: delete}
                            volumes:
                              - {name: \(name), $patch: delete}

                """
        }
        try text.write(toFile: "\(directory)/kustomization.yaml", atomically: true, encoding: .utf8)
        return directory
    }

    /// A node finding that is unavailable because of what this machine lacks, whatever the pod's
    /// privileges: `cpu.llc` on a VM without a hardware PMU (it needs PMU events; as root on the
    /// host it says the same). Any other unavailable finding is the manifest's doing.
    static func unavailableOnThisMachine(_ finding: JSONValue) -> Bool {
        guard finding["check"] == "cpu.llc", finding["severity"] == "unavailable",
            finding["evidence"]?["reason"] == "no hardware PMU"
        else { return false }
        return !FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/cpu")
    }

    /// Why each check lost what it needs in `run` (compared with `baseline`, the same pod with
    /// every capability): unavailable, denied, or — for the static checks, whose evidence is facts
    /// about the container rather than measurements of a window — evidence known in every baseline
    /// finding and unknown (null) in every finding of the run.
    func affected(baseline: [JSONValue], run: [JSONValue]) -> [String: String] {
        var result: [String: String] = [:]
        for check in everyContainerCheck.union(["bpf.support"]) {
            let mine = run.filter { $0["check"]?.stringValue == check }
            let theirs = baseline.filter { $0["check"]?.stringValue == check }
            guard let first = mine.first else { continue }
            if let unavailable = mine.first(where: { $0["severity"] == "unavailable" }) {
                result[check] = unavailable["summary"]?.stringValue ?? "unavailable"
                continue
            }
            let text = JSONWriter.string(first)
            if let marker = denialMarkers.first(where: { text.contains($0) }) {
                result[check] = "\(first["summary"]?.stringValue ?? "") (\(marker))"
                continue
            }
            guard staticChecks.contains(check) else { continue }
            let keys = (first["evidence"]?.objectValue?.keys ?? []).filter { key in
                !theirs.isEmpty && theirs.allSatisfy { ($0["evidence"]?[key] ?? .null) != .null }
                    && mine.allSatisfy { ($0["evidence"]?[key] ?? .null) == .null }
            }
            if !keys.isEmpty { result[check] = "unknown: \(keys.joined(separator: ", "))" }
        }
        return result
    }

    /// The capability numbers of linux/capability.h for the names the manifests use.
    static let capabilityBits: [String: UInt64] = [
        "DAC_READ_SEARCH": 2, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39,
    ]

    /// This process's capability bounding set (the machine's, for its containers).
    func machineBoundingSet() -> UInt64? {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("CapBnd:") }
        return line.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
    }

    /// `Key:\tvalue` lines of /proc/<pid>/status.
    func processStatus(_ pid: Int64) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return result
    }

    /// Says what this machine cannot do that a node would (the runner's deviations), in the test's output.
    func report(_ run: ManifestRun, _ what: String) {
        for deviation in run.result?["deviations"]?.arrayValue ?? [] {
            print("ManifestRunTests [\(what)]: deviation from a real node: \(deviation["detail"]?.stringValue ?? "")")
        }
    }

    @Test("the default install starts, answers its probes in time, and reports every check for the container")
    func defaultInstall() throws {
        guard available() else { return }
        let binary = try imageBinary()
        _ = try Command.run([TestEnvironment.scriptPath("run-manifests"), "--cleanup"])
        var options = PostgresContainerOptions()
        options.podName = "manifest-db-\(UUID().uuidString.prefix(6).lowercased())"
        options.namespace = "manifest-test"
        try Containers.withPostgres([("manifest-pg", options)]) { containers in
            let container = containers[0]
            let run = try ManifestRun([Self.manifests], options: ["--binary", binary])
            #expect(run.waitForWindow(container), "no window of findings for \(container.podName): \(run.log)")
            let started = try #require(run.event("started"), "\(run.log)")

            // The container as the kernel sees it: exactly the listed capabilities (minus any this
            // machine cannot give), no_new_privs, a seccomp filter, a read-only root.
            let listed = Self.capabilities.compactMap { $0.value() }
            let bounding = machineBoundingSet() ?? 0
            let given = listed.filter { bounding & (1 << (Self.capabilityBits[$0] ?? 63)) != 0 }
            let mask = given.reduce(UInt64(0)) { $0 | (1 << (Self.capabilityBits[$1] ?? 63)) }
            #expect(started["capabilities"]?.arrayValue?.compactMap(\.stringValue) == given)
            if let pid = started["pid"]?.intValue {
                let status = processStatus(pid)
                for set in ["CapPrm", "CapEff", "CapBnd"] {
                    #expect(status[set].flatMap { UInt64($0, radix: 16) } == mask, "\(set): \(status[set] ?? "")")
                }
                #expect(status["CapInh"] == "0000000000000000")
                #expect(status["CapAmb"] == "0000000000000000")
                #expect(status["NoNewPrivs"] == "1")
                #expect(status["Seccomp"] == "2")
                let mounts = (try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8)) ?? ""
                let root = mounts.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first == "/" }
                #expect(root?.split(separator: " ").dropFirst(5).first?.hasPrefix("ro") == true, "\(root ?? "")")
            }

            // The ConfigMap reached pgnode as variables; nothing like $(VAR) is left in its arguments.
            let args = started["args"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(args.prefix(2) == ["pgnode", "agent"])
            #expect(!args.contains { $0.contains("$(") })
            #expect(started["env"]?["PGNODE_ENDPOINT"] == "")
            #expect(started["env"]?["PGNODE_INTERVAL"] != nil)
            #expect(started["env"]?["NODE_NAME"] == started["node"])

            // Every check ran for the container, none unavailable, nothing denied.
            let findings = run.findings(for: container)
            let checks = Set(findings.compactMap { $0["check"]?.stringValue })
            #expect(everyContainerCheck.union(["bpf.support", "kernel.btf"]).isSubset(of: checks))
            for finding in findings where !Self.unavailableOnThisMachine(finding) {
                #expect(finding["severity"] != "unavailable", "\(JSONWriter.string(finding))")
                let text = JSONWriter.string(finding)
                #expect(!denialMarkers.contains { text.contains($0) }, "\(text)")
            }
            let support = findings.first { $0["check"] == "bpf.support" }
            #expect(support?["severity"] == "ok", "\(support.map(JSONWriter.string) ?? "no bpf.support")")
            let validation = try Command.run(
                ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: run.stdout)
            #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")

            // Deleted as the kubelet deletes a pod: SIGTERM, and pgnode exits 0 within the grace period.
            #expect(run.stop() == 0, "\(run.log)")
            let result = try #require(run.result, "\(run.log)")
            #expect(result["exit_status"] == 0)
            #expect(result["deleted_by"] == "signal")

            // The probes, at the manifest's periods, as the kubelet makes them: readiness succeeded
            // before failureThreshold probes in a row failed, liveness never failed that often (the
            // kubelet would have restarted the container) and answered every time.
            let readiness = try #require(result["probes"]?["readiness"], "no readiness probe")
            let firstReady = try #require(readiness["first_success"]?.intValue, "never ready: \(run.log)")
            #expect(firstReady <= readiness["failure_threshold"]?.intValue ?? 3)
            #expect(result["liveness_failed"] == false)
            let liveness = run.events.filter { $0["event"] == "probe" && $0["probe"] == "liveness" }
            #expect(!liveness.isEmpty)
            #expect(liveness.allSatisfy { $0["status"] == 200 }, "\(liveness.map(JSONWriter.string))")
            #expect(run.event("would-restart") == nil)
            report(run, "DaemonSet")

            // This machine's two facts, said rather than hidden.
            if bounding & (1 << 24) == 0 {
                print(
                    "ManifestRunTests: this machine's capability bounding set lacks CAP_SYS_RESOURCE: no container here can be given it. The manifest does not add it: on this kernel (memcg accounting of BPF memory, 5.11+) pgnode does not need it; docs/deployment.md says when to add it (kernels 5.8 to 5.10)."
                )
            }
            let refused = (result["deviations"]?.arrayValue ?? []).contains { $0["what"] == "hostPID" }
            print(
                refused
                    ? "ManifestRunTests: runc here refused to join the host PID namespace with the manifest's capabilities; the pod ran in a private PID namespace, reading the host's processes through /host/proc."
                    : "ManifestRunTests: runc joined the host PID namespace with the manifest's reduced capability set (hostPID as listed)."
            )
        }
    }

    @Test(
        "each added capability and each volume a check needs: without it, exactly the checks its comment names lose what they need"
    )
    func everyPrivilegeIsNeeded() throws {
        guard available() else { return }
        let binary = try imageBinary()
        _ = try Command.run([TestEnvironment.scriptPath("run-manifests"), "--cleanup"])
        let listed = Self.capabilities.compactMap { $0.value() }
        #expect(!listed.isEmpty, "no capabilities parsed from daemonset.yaml")
        for capability in Self.capabilities {
            #expect(!capability.neededBy.isEmpty, "\(capability) has no 'Needed by …:' comment in daemonset.yaml")
        }
        let mounts = Self.volumeMounts.filter { !$0.neededBy.isEmpty }
        #expect(!mounts.isEmpty, "no volume of daemonset.yaml names the checks that need it")
        var options = PostgresContainerOptions()
        options.podName = "caps-db-\(UUID().uuidString.prefix(6).lowercased())"
        options.namespace = "manifest-test"
        try Containers.withPostgres([("manifest-caps", options)]) { containers in
            let container = containers[0]
            func window(_ overlay: String) throws -> [JSONValue] {
                let run = try ManifestRun([overlay], options: ["--binary", binary])
                #expect(run.waitForWindow(container), "no window of findings for \(container.podName): \(run.log)")
                _ = run.stop()
                return run.findings(for: container)
            }
            func expectLost(_ lost: [String: String], _ what: String, _ neededBy: Set<String>) {
                for (check, why) in lost.sorted(by: { $0.key < $1.key }) {
                    print("ManifestRunTests: without \(what), \(check): \(why)")
                }
                #expect(!lost.isEmpty, "\(what) changed nothing: remove it from the manifest")
                #expect(
                    Set(lost.keys) == neededBy,
                    "without \(what) these checks lost what they need: \(lost.keys.sorted()); daemonset.yaml says \(neededBy.sorted())"
                )
            }
            let baseline = try window(try overlay(interval: "5"))
            #expect(affected(baseline: baseline, run: baseline).isEmpty)
            for capability in Self.capabilities {
                let name = capability.value() ?? ""
                let without = try window(try overlay(interval: "5", capabilities: listed.filter { $0 != name }))
                expectLost(affected(baseline: baseline, run: without), "CAP_\(name)", capability.neededBy)
            }
            for mount in mounts {
                let without = try window(try overlay(interval: "5", removing: mount))
                let what = "the volume \(mount.value("name") ?? "") at \(mount.value("mountPath") ?? "")"
                expectLost(affected(baseline: baseline, run: without), what, mount.neededBy)
            }
        }
    }

    @Test(
        "pgnode works either way: in a private PID namespace (runc's refusal of hostPID) and in a private cgroup namespace (cgroup v2 nodes, where CAP_SYS_ADMIN is also what finds the container's cgroup)"
    )
    func privateNamespaces() throws {
        guard available() else { return }
        let binary = try imageBinary()
        _ = try Command.run([TestEnvironment.scriptPath("run-manifests"), "--cleanup"])
        var options = PostgresContainerOptions()
        options.podName = "ns-db-\(UUID().uuidString.prefix(6).lowercased())"
        options.namespace = "manifest-test"
        try Containers.withPostgres([("manifest-ns", options)]) { containers in
            let container = containers[0]
            func window(_ overlay: String, _ namespace: String) throws -> [JSONValue] {
                let run = try ManifestRun([overlay], options: ["--binary", binary, namespace, "private"])
                #expect(run.waitForWindow(container), "\(namespace) private: no findings: \(run.log)")
                _ = run.stop()
                report(run, "\(namespace) private")
                return run.findings(for: container)
            }
            var cgroupBaseline: [JSONValue] = []
            for namespace in ["--pidns", "--cgroupns"] {
                let findings = try window(try overlay(interval: "5"), namespace)
                #expect(affected(baseline: findings, run: findings).isEmpty, "\(namespace) private")
                for finding in findings where !Self.unavailableOnThisMachine(finding) {
                    #expect(finding["severity"] != "unavailable", "\(namespace) private: \(JSONWriter.string(finding))")
                }
                if namespace == "--cgroupns" { cgroupBaseline = findings }
            }
            // As on a cgroup v2 node: without CAP_SYS_ADMIN pgnode cannot join the host's cgroup
            // namespace, its cgroup paths stay relative, and the container's cgroup is not found:
            // memory.limit is lost as well as the probes' checks.
            let listed = Self.capabilities.compactMap { $0.value() }
            let run = try ManifestRun(
                [try overlay(interval: "5", capabilities: listed.filter { $0 != "SYS_ADMIN" })],
                options: ["--binary", binary, "--cgroupns", "private"])
            #expect(run.waitForWindow(container), "--cgroupns private without SYS_ADMIN: no findings: \(run.log)")
            _ = run.stop()
            let lost = affected(baseline: cgroupBaseline, run: run.findings(for: container))
            for (check, why) in lost.sorted(by: { $0.key < $1.key }) {
                print("ManifestRunTests: in a private cgroup namespace without CAP_SYS_ADMIN, \(check): \(why)")
            }
            let sysAdmin = Self.capabilities.first { $0.value() == "SYS_ADMIN" }?.neededBy ?? []
            #expect(
                Set(lost.keys).isSuperset(of: sysAdmin.union(["memory.limit", "cpu.throttling"])),
                "\(lost.keys.sorted())")
        }
    }

    @Test("the one-off Job: kubectl pgnode --dry-run prints job.yaml filled in, valid, and it runs to its findings")
    func oneOffJob() throws {
        guard available() else { return }
        let binary = try imageBinary()
        _ = try Command.run([TestEnvironment.scriptPath("run-manifests"), "--cleanup"])
        let tools = try Command.run([TestEnvironment.scriptPath("lint-deploy"), "--tools"], timeout: 1200)
        #expect(tools.status == 0, "\(tools.stderr)")
        let venv = "\(Self.root)/.venv-deploy/bin"

        let jobText = try String(contentsOfFile: "\(Self.manifests)/one-off/job.yaml", encoding: .utf8)
        let jobCapabilities = jobText.split(separator: "\n").first { $0.contains("add: [") }.map {
            Set(
                $0.split(separator: "[")[1].dropLast().split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                })
        }
        #expect(
            jobCapabilities == Set(Self.capabilities.compactMap { $0.value() }),
            "job.yaml's capabilities differ from the DaemonSet's")

        var options = PostgresContainerOptions()
        options.podName = "job-db-\(UUID().uuidString.prefix(6).lowercased())"
        options.namespace = "manifest-test"
        try Containers.withPostgres([("manifest-job", options)]) { containers in
            let container = containers[0]
            let target = "\(container.namespace)/\(container.podName)"
            let node = try String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            let directory = try Fixtures.temporaryDirectory("pgnode-job")
            defer { try? FileManager.default.removeItem(atPath: directory) }

            // The plugin's Job: valid against the API schema, and job.yaml with its blanks filled in.
            let dry = try Command.run(
                ["\(Self.root)/kubectl-pgnode", "--dry-run", target, "--node", node, "--duration", "5"])
            #expect(dry.status == 0, "\(dry.stderr)")
            try dry.stdout.write(toFile: "\(directory)/plugin-job.yaml", atomically: true, encoding: .utf8)
            let validate = try Command.run(["\(venv)/kubernetes-validate", "--strict", "\(directory)/plugin-job.yaml"])
            #expect(validate.status == 0, "\(validate.stdout)\(validate.stderr)")
            let same = try Command.run([
                "\(venv)/python3", "-c",
                """
                import sys, yaml
                plugin = yaml.safe_load(open(sys.argv[1]))
                job = yaml.safe_load(open(sys.argv[2]))
                spec = job["spec"]["template"]["spec"]
                job["metadata"]["name"] = plugin["metadata"]["name"]
                spec["nodeName"] = sys.argv[3]
                args = spec["containers"][0]["args"]
                args[:] = [a.replace("REPLACE-WITH-NAMESPACE/REPLACE-WITH-POD", sys.argv[4]) for a in args]
                args[:] = ["--duration=5" if a.startswith("--duration=") else a for a in args]
                sys.exit(0 if plugin == job else print(plugin, job, sep="\\n") or 1)
                """,
                "\(directory)/plugin-job.yaml", "\(Self.manifests)/one-off/job.yaml", node, target,
            ])
            #expect(same.status == 0, "the plugin's Job is not job.yaml: \(same.stdout)\(same.stderr)")

            // Both run on this node as a kubelet would, and print the container's findings as text.
            let filled = jobText.replacingOccurrences(of: "REPLACE-WITH-NODE-NAME", with: node)
                .replacingOccurrences(of: "REPLACE-WITH-NAMESPACE/REPLACE-WITH-POD", with: target)
            try filled.write(toFile: "\(directory)/job.yaml", atomically: true, encoding: .utf8)
            for file in ["plugin-job.yaml", "job.yaml"] {
                let run = try ManifestRun(["\(directory)/\(file)"], options: ["--binary", binary])
                let (status, timedOut) = run.process.wait(timeout: 300)
                #expect(!timedOut && status == 0, "\(file): \(run.log)")
                let text = run.stdout
                let header = "container \(container.id.prefix(12)) pod \(target) "
                #expect(text.contains(header), "\(file): no findings for \(target): \(text)\(run.log)")
                let section = text.components(separatedBy: header).dropFirst().first ?? ""
                for check in everyContainerCheck {
                    let line = section.split(separator: "\n").first { $0.contains(" \(check): ") }
                    #expect(line != nil, "\(file): no \(check) for \(target)")
                    #expect(line?.contains("UNAVAILABLE") == false, "\(file): \(line ?? "")")
                }
                #expect(
                    text.contains("bpf.support: All \(ProbeCatalog.probes.count) BPF probes run here"),
                    "\(file): \(text)")
                report(run, file)
            }
        }
    }
}
