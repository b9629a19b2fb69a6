import Foundation
import HostFacts
import PGNodeModel
import Resolution
import TestSupport
import Testing

/// `--namespace` on a fixture host with three PostgreSQL containers: one in pod prod/web-0 and
/// one in shop/db-0 (containerd bundles with their CRI annotations, the real config.json of this
/// machine's containerd), and one that no runtime state names (no pod, no namespace: not run by
/// Kubernetes). The fixture has no BTF, so no probe loads.
@Suite("--namespace on a fixture host with three containers", .serialized)
struct NamespaceFilterFixtureTests {
    static let prod = FixtureIDs.container
    static let shop = "5b1e0d9c8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5"
    static let plain = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"

    /// The host: each container a server of five processes with its own root and data directory.
    static func host() throws -> FixtureHost {
        let fixture = try FixtureHost(mounts: "v2")
        let config = try FixtureFiles.text("state/containerd-config.json")
        let shopConfig =
            config
            .replacingOccurrences(
                of: "\"io.kubernetes.cri.sandbox-namespace\":\"prod\"",
                with: "\"io.kubernetes.cri.sandbox-namespace\":\"shop\""
            )
            .replacingOccurrences(
                of: "\"io.kubernetes.cri.sandbox-name\":\"web-0\"", with: "\"io.kubernetes.cri.sandbox-name\":\"db-0\"")
        #expect(shopConfig.contains("sandbox-namespace\":\"shop\"") && shopConfig.contains("sandbox-name\":\"db-0\""))
        for (index, (id, bundle)) in [(prod, config), (shop, shopConfig), (plain, nil)].enumerated() {
            let rootfs = "containers/pg\(index)/rootfs"
            let pid = 4242 + Int32(index) * 1000
            try FixtureHostTests.addServer(
                fixture, id: id, cgroup: try cgroupFixture("containerd-systemd-v2", id: id), firstPID: pid,
                rootfs: rootfs)
            try fixture.dataDirectory(rootfs: rootfs)
            if let bundle { try fixture.containerdBundle(id: id, config: bundle, initPID: pid) }
        }
        return fixture
    }

    /// The container ids of the findings on `stdout` (NDJSON).
    static func containerIDs(_ stdout: String) -> Set<String> {
        Set(
            stdout.split(separator: "\n").compactMap {
                (try? JSONParser.parse(String($0)))?["resource"]?["container.id"]?.stringValue
            })
    }

    @Test("the fixture: three PostgreSQL containers, two with a pod namespace")
    func resolvedNamespaces() throws {
        let fixture = try Self.host()
        let all = try ContainerResolver.resolveAll(host: fixture.host)
        #expect(all.map(\.container.id) == [Self.shop, Self.prod, Self.plain].sorted())
        let namespaces = Dictionary(uniqueKeysWithValues: all.map { ($0.container.id, $0.pod.namespace) })
        #expect(namespaces == [Self.prod: "prod", Self.shop: "shop", Self.plain: nil])
        #expect(NamespaceFilter(["prod"]).apply(all).map(\.container.id) == [Self.prod])
        #expect(NamespaceFilter(["shop", "prod"]).apply(all).map(\.container.id) == [Self.shop, Self.prod].sorted())
        #expect(NamespaceFilter(["default"]).apply(all).isEmpty)
        #expect(NamespaceFilter().apply(all).count == 3)
    }

    @Test(
        "pgnode check --namespace: exactly the containers of those namespaces; node findings as before",
        arguments: [
            ([], [prod, shop, plain]),
            (["prod"], [prod]),
            (["shop"], [shop]),
            (["prod", "shop"], [prod, shop]),
            (["prod", "prod"], [prod]),
            (["default"], []),
        ] as [([String], [String])])
    func check(namespaces: [String], expected: [String]) throws {
        let fixture = try Self.host()
        let result = try Command.pgnode(
            ["check", "--host-root", fixture.root, "--duration", "0", "--format", "json", "--node-name", "n1"]
                + namespaces.flatMap { ["--namespace", $0] })
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(Self.containerIDs(result.stdout) == Set(expected))
        let nodeChecks = result.stdout.split(separator: "\n").compactMap { line -> String? in
            guard let finding = try? JSONParser.parse(String(line)), finding["resource"]?["container.id"] == nil
            else { return nil }
            return finding["check"]?.stringValue
        }
        #expect(nodeChecks.contains("kernel.btf") && nodeChecks.contains("bpf.support"))
    }

    @Test(
        "pgnode check: a value that is no namespace name, or --namespace beside --container/--pod, is a usage error",
        arguments: [
            ["--namespace", "Prod"], ["--namespace", ""], ["--namespace", "-prod"], ["--namespace", "prod/web-0"],
            ["--namespace", String(repeating: "a", count: 64)], ["--namespace", "prod", "--pod", "prod/web-0"],
            ["--namespace", "prod", "--container", String(FixtureIDs.container.prefix(12))],
        ])
    func usageErrors(arguments: [String]) throws {
        let fixture = try Self.host()
        let result = try Command.pgnode(["check", "--host-root", fixture.root, "--duration", "0"] + arguments)
        #expect(result.status == 64, "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("pgnode: ") && result.stderr.contains("--namespace"), "\(result.stderr)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test(
        "pgnode agent --namespace (and PGNODE_NAMESPACE): exactly the containers of those namespaces",
        arguments: [
            (["--namespace", "prod", "--namespace", "shop"], [:], [prod, shop]),
            ([], ["PGNODE_NAMESPACE": "shop"], [shop]),
            (["--namespace", "prod"], ["PGNODE_NAMESPACE": "shop"], [prod]),  // the flag wins
            ([], ["PGNODE_NAMESPACE": ""], [prod, shop, plain]),  // empty: unset
            (["--namespace", "default"], [:], []),
        ] as [([String], [String: String], [String])])
    func agent(arguments: [String], environment: [String: String], expected: [String]) throws {
        let fixture = try Self.host()
        let directory = try Fixtures.temporaryDirectory("pgnode-agent-namespace")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try Subprocess(
            [
                TestEnvironment.pgnodeBinary, "agent", "--host-root", fixture.root, "--interval", "0.5", "--node-name",
                "n1",
            ]
                + arguments, environment: environment, stdout: .file("\(directory)/stdout"),
            stderr: .file("\(directory)/stderr"))
        defer { process.stop() }
        func read(_ name: String) -> String {
            (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
        }
        func logs() -> [JSONValue] {
            read("stderr").split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        }
        // Every container's findings go out in the first window after it appears (--emit
        // changes): wait for them and for the start (a hang guard, not a timing assertion).
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            let started = logs().contains { $0["message"] == "agent started" }
            if started && Self.containerIDs(read("stdout")).isSuperset(of: expected) { break }
            usleep(100_000)
        }
        process.signal(SIGTERM)
        let (status, timedOut) = process.wait(timeout: 30)
        #expect(!timedOut && status == 0, "stderr: \(read("stderr"))")
        #expect(Self.containerIDs(read("stdout")) == Set(expected), "stderr: \(read("stderr"))")
        let started = logs().first { $0["message"] == "agent started" }
        #expect(started?["containers"]?.stringValue == "\(expected.count)", "stderr: \(read("stderr"))")
        // The containers discovered: exactly these, from the first discovery on.
        let changes = logs().filter { $0["message"] == "containers changed" }
        if expected.isEmpty {
            #expect(changes.isEmpty, "stderr: \(read("stderr"))")
        } else {
            #expect(changes.first?["added"] == .array(expected.sorted().map { .string($0) }), "\(read("stderr"))")
            #expect(changes.count == 1, "stderr: \(read("stderr"))")
        }
    }

    @Test("pgnode agent: a bad PGNODE_NAMESPACE is a usage error naming the variable")
    func agentBadVariable() throws {
        let fixture = try Self.host()
        let result = try Command.pgnode(
            ["agent", "--host-root", fixture.root], environment: ["PGNODE_NAMESPACE": "Not_A_Namespace"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("(set by PGNODE_NAMESPACE)"), "stderr: \(result.stderr)")
    }
}
