import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `pgnode resolve` against real PostgreSQL containers run by containerd on this machine.
@Suite("pgnode resolve on real containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled))
struct IntegrationTests {
    func resolve(_ arguments: [String]) throws -> JSONValue {
        let result = try Command.pgnode(["resolve"] + arguments)
        try #require(result.status == 0, "pgnode resolve \(arguments): \(result.stderr)")
        return try JSONParser.parse(result.stdout)
    }

    @Test("full id, 12-digit prefix, containerd:// and --pod give the same container, its processes and settings")
    func resolveOne() throws {
        guard Containers.available() else { return }
        var options = PostgresContainerOptions()
        options.podName = "shop-db-0"
        options.namespace = "shop"
        options.postgresArguments = ["-c", "work_mem=24MB", "-c", "max_connections=42", "-c", "cluster_name=main"]
        try Containers.withPostgres([("resolve", options)]) { containers in
            let container = containers[0]
            // A client backend that stays connected while pgnode looks.
            let client = try Subprocess(
                [Containers.script, "psql", container.name, "-c", "select pg_sleep(20)"], stdout: .discard,
                stderr: .discard)
            defer { client.stop() }
            var json = JSONValue.null
            for _ in 0..<50 {
                json = try resolve([container.id])
                let roles = json["postgres"]?.arrayValue?.first?["processes"]?.arrayValue ?? []
                if roles.contains(where: { $0["role"]?.stringValue == "client backend" }) { break }
                Thread.sleep(forTimeInterval: 0.2)
            }
            let pid = try Containers.script(["pid", container.name])
            #expect(json["container"]?["id"]?.stringValue == container.id)
            #expect(json["container"]?["runtime"]?.stringValue == "containerd")
            #expect(json["container"]?["qos_class"]?.stringValue == "burstable")
            #expect(json["container"]?["pid"]?.intValue == Int64(pid))
            #expect(json["pod"]?["name"]?.stringValue == "shop-db-0")
            #expect(json["pod"]?["namespace"]?.stringValue == "shop")
            #expect(json["pod"]?["uid"]?.stringValue == options.podUID)
            #expect(json["pod"]?["container_name"]?.stringValue == "postgres")
            #expect(
                json["cgroup"]?["v1"]?["memory"]?.stringValue
                    == "/kubepods/burstable/pod\(options.podUID)/\(container.id)")
            #expect(json["cgroup"]?["v2"]?["id"]?.intValue != nil)

            let server = try #require(json["postgres"]?.arrayValue?.first)
            #expect(server["postmaster_pid"]?.intValue == Int64(pid))
            #expect(server["data_directory"]?.stringValue == "/var/lib/postgresql/data")
            #expect(server["version"]?.stringValue == "15")
            #expect(server["settings"]?["work_mem"]?["bytes"]?.intValue == 24 << 20)
            #expect(server["settings"]?["work_mem"]?["source"]?.stringValue == "command line")
            #expect(server["settings"]?["max_connections"]?["number"]?.intValue == 42)
            let processes = server["processes"]?.arrayValue ?? []
            let roles = Set(processes.compactMap { $0["role"]?.stringValue })
            for role in [
                "postmaster", "checkpointer", "background writer", "walwriter", "autovacuum launcher",
                "logical replication launcher", "client backend",
            ] {
                #expect(roles.contains(role), "missing \(role) in \(roles)")
            }
            let backend = processes.first { $0["role"]?.stringValue == "client backend" }
            #expect(backend?["user"]?.stringValue == "postgres")
            #expect(backend?["database"]?.stringValue == "postgres")
            #expect(backend?["client"]?.stringValue == "[local]")
            #expect(backend?["cluster_name"]?.stringValue == "main")
            // Every process of the container is listed, with its namespaces.
            let pids = json["pids"]?.arrayValue ?? []
            #expect(pids.count == processes.count)
            #expect(pids.allSatisfy { $0["mnt_ns"]?.intValue != nil && $0["pid_ns"]?.intValue != nil })

            let byPrefix = try resolve([String(container.id.prefix(12))])
            #expect(byPrefix["container"]?["id"]?.stringValue == container.id)
            let byScheme = try resolve(["containerd://\(container.id)"])
            #expect(byScheme["container"]?["id"]?.stringValue == container.id)
            let byPod = try resolve(["--pod", "shop/shop-db-0"])
            #expect(byPod["containers"]?.arrayValue?.map { $0["container"]?["id"]?.stringValue } == [container.id])
        }
    }

    @Test("two containers of one pod resolve separately")
    func twoInOnePod() throws {
        guard Containers.available() else { return }
        var first = PostgresContainerOptions()
        first.podName = "pair-0"
        first.containerName = "primary"
        var second = first
        second.containerName = "sidecar"
        second.pgdataInEnvironment = true
        try Containers.withPostgres([("pair-a", first), ("pair-b", second)]) { containers in
            let a = try resolve([containers[0].id])
            let b = try resolve([containers[1].id])
            #expect(a["pod"]?["container_name"]?.stringValue == "primary")
            #expect(b["pod"]?["container_name"]?.stringValue == "sidecar")
            #expect(a["pod"]?["uid"] == b["pod"]?["uid"])
            #expect(a["container"]?["pid"] != b["container"]?["pid"])
            #expect(b["postgres"]?.arrayValue?.first?["data_directory_source"]?.stringValue == "PGDATA")
            let pod = try resolve(["--pod", "\(first.namespace)/pair-0"])
            let ids = Set(pod["containers"]?.arrayValue?.compactMap { $0["container"]?["id"]?.stringValue } ?? [])
            #expect(ids == Set(containers.map(\.id)))
        }
    }

    @Test("from a private cgroup namespace (relative /proc paths) pgnode joins the host's and gives absolute paths")
    func privateCgroupNamespace() throws {
        guard Containers.available() else { return }
        guard TestEnvironment.require(FileManager.default.fileExists(atPath: "/usr/bin/unshare"), "unshare") else {
            return
        }
        try Containers.withPostgres([("cgroupns", PostgresContainerOptions())]) { containers in
            let container = containers[0]
            let group = "pgnode-nstest-\(UUID().uuidString.prefix(8))"
            let hierarchies = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"]
                .filter { FileManager.default.fileExists(atPath: $0 + "/cgroup.procs") }
            defer { for h in hierarchies { rmdir(h + "/" + group) } }
            for h in hierarchies { mkdir(h + "/" + group, 0o755) }
            // A shell moves itself below the root cgroup, then pgnode runs in a new cgroup namespace there.
            let moves = hierarchies.map { "echo $$ > \($0)/\(group)/cgroup.procs" }.joined(separator: "; ")
            let pid = try Containers.script(["pid", container.name])
            let shell =
                "\(moves); exec unshare --cgroup sh -c 'grep ^0:: /proc/\(pid)/cgroup; exec \(TestEnvironment.pgnodeBinary) resolve \(container.id)'"
            let result = try Command.run(["/bin/sh", "-c", shell])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n")
            let seen = try #require(lines.first)
            #expect(seen.hasPrefix("0::/../"), "the namespace must make /proc paths relative: \(seen)")
            let json = try JSONParser.parse(String(try #require(lines.last)))
            #expect(json["cgroup"]?["namespace"]?["joined_host_namespace"] == .bool(true))
            #expect(json["cgroup"]?["namespace"]?["absolute"] == .bool(true))
            #expect(
                json["cgroup"]?["v1"]?["memory"]?.stringValue
                    == "/kubepods/burstable/pod\(container.podUID)/\(container.id)")
            #expect(json["cgroup"]?["v2"]?["id"]?.intValue != nil)
        }
    }

    @Test("unknown and ambiguous ids: one line on stderr, non-zero exit")
    func errors() throws {
        guard Containers.available() else { return }
        let unknown = try Command.pgnode(["resolve", "ffffffffffffffff"])
        #expect(unknown.status == 2)  // no container matched
        #expect(unknown.stderr.hasPrefix("pgnode: no running container matches"))
        #expect(unknown.stderr.split(separator: "\n").count == 1)
        let short = try Command.pgnode(["resolve", "abc"])
        #expect(short.status == 64 && short.stderr.contains("too short"))
    }

    @Test("postgresql.auto.conf linked to a host file: nothing outside the container's root is read")
    func symlinkToHost() throws {
        guard Containers.available() else { return }
        let marker = "PGNODE-HOST-MARKER-\(UUID().uuidString)"
        let hostFile = "/var/tmp/pgnode-marker-\(UUID().uuidString).conf"
        try "work_mem = '\(marker)'\n# \(marker)\n".write(toFile: hostFile, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: hostFile) }
        try Containers.withPostgres([("escape", PostgresContainerOptions())]) { containers in
            let container = containers[0]
            let data = try Containers.rootfs(container) + "/var/lib/postgresql/data"
            try? FileManager.default.removeItem(atPath: data + "/postgresql.auto.conf")
            try FileManager.default.createSymbolicLink(
                atPath: data + "/postgresql.auto.conf", withDestinationPath: hostFile)
            for arguments in [
                ["resolve", container.id], ["resolve", "--pod", "\(container.namespace)/\(container.podName)"],
                ["check", "--duration", "0", "--container", container.id, "--format", "json"],
            ] {
                let result = try Command.pgnode(arguments)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
                #expect(!result.stdout.contains(marker) && !result.stderr.contains(marker))
            }
            let json = try resolve([container.id])
            let files = json["postgres"]?.arrayValue?.first?["config_files"]?.arrayValue ?? []
            #expect(files.compactMap(\.stringValue) == ["/var/lib/postgresql/data/postgresql.conf"])
        }
    }

    @Test("a FIFO in place of an include file in a real container: pgnode resolve returns and reports it")
    func fifoInclude() throws {
        guard Containers.available() else { return }
        try Containers.withPostgres([("fifo", PostgresContainerOptions())]) { containers in
            let container = containers[0]
            let data = try Containers.rootfs(container) + "/var/lib/postgresql/data"
            // The server read its configuration when it started; pgnode reads what is there now.
            let config = try String(contentsOfFile: data + "/postgresql.conf", encoding: .utf8)
            try (config + "\ninclude 'pgnode-fifo.conf'\n").write(
                toFile: data + "/postgresql.conf", atomically: false, encoding: .utf8)
            try #require(mkfifo(data + "/pgnode-fifo.conf", 0o644) == 0)
            // A generous deadline, only so that a regression fails here instead of hanging the run.
            let result = try Command.run([TestEnvironment.pgnodeBinary, "resolve", container.id], timeout: 180)
            try #require(result.status == 0, "pgnode resolve: status \(result.status), \(result.stderr)")
            let json = try JSONParser.parse(result.stdout)
            let server = try #require(json["postgres"]?.arrayValue?.first)
            let problems = server["problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(
                problems.contains { $0.contains("not a regular file: /var/lib/postgresql/data/pgnode-fifo.conf") },
                "\(problems)")
            // The main file was read; only the FIFO was refused.
            #expect(server["settings"]?["max_connections"]?["number"]?.intValue != nil)
            #expect(server["version"]?.stringValue == "15")
        }
    }
}
