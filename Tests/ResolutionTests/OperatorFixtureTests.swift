import Checks
import Foundation
import HostFacts
import PGNodeModel
import Resolution
import Testing

/// Operator detection from each operator's postmaster environment (Fixtures/operators, copied
/// from the operators' source), through the resolver, and the remedies that follow from it.
@Suite("operator detection and remedies")
struct OperatorFixtureTests {
    /// The `KEY=value` lines of fixture `operators/<name>.environ`.
    static func environment(_ name: String) throws -> [String] {
        try FixtureFiles.text("operators/\(name).environ").split(separator: "\n").map(String.init)
    }

    /// The server the resolver finds in a fixture container whose postmaster has `environment`.
    static func server(environment: [String]) throws -> PostgresServer {
        let fixture = try FixtureHost(mounts: "hybrid")
        let id = "9b29f9763b96fab039718c271894db7d8b72183a641a9fa6c5d2eae4735e3637"
        try FixtureHostTests.addServer(
            fixture, id: id, cgroup: try FixtureFiles.text("cgroup/containerd-cgroupfs-hybrid.txt"),
            environment: environment)
        try fixture.dataDirectory(rootfs: "containers/pg/rootfs")
        try fixture.containerdBundle(
            id: id, config: try FixtureFiles.text("state/containerd-config.json"), initPID: 4242)
        let path = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555555/\(id)"
        try fixture.cgroupDirectories(
            path, hierarchies: ["sys/fs/cgroup/unified", "sys/fs/cgroup/memory"], procs: [4242])
        let resolution = try ContainerResolver(host: fixture.host).resolve(
            ContainerReference.parse(String(id.prefix(12))))
        return try #require(resolution.postgres.first)
    }

    @Test(
        "each operator's environment names it (and the cluster where the environment has it)",
        arguments: [
            ("cloudnativepg", PostgresOperator.Kind.cloudNativePG, "shop-db" as String?),
            ("zalando-spilo", .zalando, "acid-minimal-cluster"),
            ("crunchy-pgo", .crunchyPGO, nil),
            ("stackgres", .stackGres, nil),
            ("statefulset", PostgresOperator.Kind.none, nil),
        ])
    func detected(fixture: String, kind: PostgresOperator.Kind, cluster: String?) throws {
        let server = try Self.server(environment: try Self.environment(fixture))
        #expect(server.runBy.kind == kind)
        #expect(server.runBy.cluster == cluster)
        #expect(server.runBy.namespace == "prod")  // the pod's, from the containerd fixture
        #expect(server.json["operator"]?["name"]?.stringValue == kind.rawValue)
        // Only the variables that tell are kept: no passwords.
        #expect(server.operatorEnvironment["PGPASSWORD_SUPERUSER"] == nil)
        #expect(server.operatorEnvironment["POSTGRES_PASSWORD"] == nil)
    }

    @Test("labels name the operator and the cluster where the environment does not")
    func labels() throws {
        let pgo = OperatorDetection.detect(
            environment: Self.pairs(try Self.environment("crunchy-pgo")),
            labels: ["postgres-operator.crunchydata.com/cluster": "hippo"])
        #expect(pgo.kind == .crunchyPGO && pgo.cluster == "hippo")
        let sg = OperatorDetection.detect(environment: [:], labels: ["stackgres.io/cluster-name": "stackgres"])
        #expect(sg.kind == .stackGres && sg.cluster == "stackgres")
        let zalando = OperatorDetection.detect(
            environment: [:], labels: ["application": "spilo", "cluster-name": "acid-minimal-cluster"])
        #expect(zalando.kind == .zalando && zalando.cluster == "acid-minimal-cluster")
        #expect(OperatorDetection.detect(environment: [:], labels: ["cnpg.io/cluster": "pg"]).cluster == "pg")
        // CLUSTER_NAME alone is anyone's variable: not CloudNativePG without its paths.
        #expect(OperatorDetection.detect(environment: ["CLUSTER_NAME": "x"], labels: [:]).kind == .none)
    }

    static func pairs(_ lines: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for line in lines {
            guard let eq = line.firstIndex(of: "=") else { continue }
            result[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return result
    }

    /// shm.size facts for a 64 MiB /dev/shm with work_mem 64MB (a critical finding) of `kind`.
    static func shmFacts(kind: ShmSizeFacts.MountKind, runBy: PostgresOperator) -> ShmSizeFacts {
        ShmSizeFacts(
            mount: .success(ShmMount(sizeBytes: 64 << 20, usedBytes: 0, kind: kind, source: "shm")),
            dynamicSharedMemoryType: .success(SettingValue("posix", source: "default")),
            workMem: .success(SettingValue(Int64(64 << 20), source: "command line")),
            hashMemMultiplier: .success(SettingValue(2.0, source: "default")),
            maxParallelWorkersPerGather: .success(SettingValue(Int64(2), source: "default")),
            maxParallelWorkers: .success(SettingValue(Int64(8), source: "default")),
            minDynamicSharedMemory: .success(SettingValue(Int64(0), source: "default")), runBy: runBy)
    }

    @Test("shm.size: each operator's remedy is the change in its own resource")
    func shmRemedies() throws {
        func remedy(_ fixture: String, kind: ShmSizeFacts.MountKind) throws -> Observation {
            let server = try Self.server(environment: try Self.environment(fixture))
            return ShmSizeCheck.evaluate(Self.shmFacts(kind: kind, runBy: server.runBy))
        }
        // CloudNativePG: always an shm emptyDir; the patch of the Cluster.
        let cnpg = try remedy("cloudnativepg", kind: .memoryEmptyDir)
        #expect(cnpg.severity == .critical)
        #expect(cnpg.evidence["operator"] == "cloudnativepg" && cnpg.evidence["cluster"] == "shop-db")
        #expect(
            cnpg.remedy.contains(
                #"kubectl patch cluster shop-db -n prod --type merge -p '{"spec":{"ephemeralVolumesSizeLimit":{"shm":"1632Mi"}}}'"#
            ),
            "\(cnpg.remedy)")
        #expect(!cnpg.remedy.contains("volumeMounts"))
        // Zalando without the shm volume: turn it on.
        let spilo = try remedy("zalando-spilo", kind: .runtimeDefault)
        #expect(spilo.evidence["cluster"] == "acid-minimal-cluster")
        #expect(
            spilo.remedy.contains(
                #"kubectl patch postgresql acid-minimal-cluster -n prod --type merge -p '{"spec":{"enableShmVolume":true}}'"#
            ))
        // Zalando with it: it is bounded by the memory limit; never mount it again.
        let spiloOn = try remedy("zalando-spilo", kind: .memoryEmptyDir)
        #expect(spiloOn.remedy.contains("spec.resources.limits.memory") && !spiloOn.remedy.contains("enableShmVolume"))
        // PGO: dshm is always there; the memory limit of the instance set.
        let pgo = try remedy("crunchy-pgo", kind: .memoryEmptyDir)
        #expect(pgo.evidence["operator"] == "crunchy_pgo" && pgo.evidence["cluster"] == .null)
        #expect(pgo.remedy.contains("spec.instances[].resources.limits.memory"))
        #expect(!pgo.remedy.contains("volumeMounts") && !pgo.remedy.contains("ephemeralVolumesSizeLimit"))
        // StackGres: the SGInstanceProfile's memory.
        let sg = try remedy("stackgres", kind: .memoryEmptyDir)
        #expect(sg.remedy.contains("SGInstanceProfile") && sg.remedy.contains("spec.memory"))
        // A plain StatefulSet: the volume and its mount; or, when an emptyDir is there, its sizeLimit only.
        let plain = try remedy("statefulset", kind: .runtimeDefault)
        #expect(plain.evidence["operator"] == "none")
        #expect(plain.remedy.contains("volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 1632Mi}}]"))
        #expect(plain.remedy.contains("containers[].volumeMounts: [{name: dshm, mountPath: /dev/shm}]"))
        #expect(!plain.remedy.contains("CloudNativePG"))
        let plainEmptyDir = try remedy("statefulset", kind: .memoryEmptyDir)
        #expect(plainEmptyDir.remedy.hasPrefix("Raise the sizeLimit of the memory emptyDir already mounted"))
        #expect(!plainEmptyDir.remedy.contains("volumeMounts"))
    }

    @Test("shm.enospc: the operator's change, and no second emptyDir where one is mounted")
    func enospcRemedies() throws {
        let report = ShmProbeReport(
            failures: [.init(pid: 10, requestedBytes: 16 << 20, firstSeen: Timestamp(nanoseconds: 1))],
            dsmPeakBytes: 0, roles: [:])
        let cnpg = try Self.server(environment: try Self.environment("cloudnativepg")).runBy
        let o = ShmEnospcCheck.evaluate(report, shmSizeBytes: 64 << 20, shmKind: .memoryEmptyDir, runBy: cnpg)
        #expect(o.evidence["operator"] == "cloudnativepg" && o.evidence["shm_kind"] == "memory_emptydir")
        #expect(o.remedy.contains(#"{"spec":{"ephemeralVolumesSizeLimit":{"shm":"40Mi"}}}"#), "\(o.remedy)")
        let plain = ShmEnospcCheck.evaluate(report, shmSizeBytes: 64 << 20, shmKind: .memoryEmptyDir, runBy: .none)
        #expect(plain.remedy.contains("Raise the sizeLimit") && !plain.remedy.contains("volumeMounts"))
    }

    @Test("memory.limit: the remedy names the operator's resources field")
    func memoryRemedies() throws {
        var stats = MemoryCgroupStats(version: 1, missing: [])
        stats.limitBytes = 256 << 20
        stats.usageBytes = 100 << 20
        func remedy(_ fixture: String) throws -> Observation {
            let runBy = try Self.server(environment: try Self.environment(fixture)).runBy
            return MemoryLimitCheck.evaluate(
                MemoryLimitFacts(
                    cgroup: .success(stats), sharedBuffersBytes: 128 << 20, maxConnections: 100, workMemBytes: 4 << 20,
                    qosClass: "burstable", runBy: runBy))
        }
        let cnpg = try remedy("cloudnativepg")
        #expect(cnpg.severity == .critical && cnpg.evidence["operator"] == "cloudnativepg")
        #expect(
            cnpg.remedy.contains(
                #"kubectl patch cluster shop-db -n prod --type merge -p '{"spec":{"resources":{"requests":{"memory":"512Mi"},"limits":{"memory":"512Mi"}}}}'"#
            ),
            "\(cnpg.remedy)")
        #expect(try remedy("zalando-spilo").remedy.contains("kubectl patch postgresql acid-minimal-cluster -n prod"))
        #expect(try remedy("crunchy-pgo").remedy.contains("spec.instances[].resources"))
        #expect(try remedy("stackgres").remedy.contains("SGInstanceProfile"))
        #expect(
            try remedy("statefulset").remedy.contains("resources: {requests: {memory: 512Mi}, limits: {memory: 512Mi}}")
        )
    }
}
