import Diagnosis
import HostFacts
import Resolution
import Testing

@Suite("container references")
struct ContainerReferenceTests {
    let id = FixtureIDs.container

    @Test("full ids, 12-digit prefixes and kubectl's scheme forms are accepted")
    func accepted() throws {
        #expect(try ContainerReference.parse(id).hex == id)
        #expect(try ContainerReference.parse(id).isFullID)
        let prefix = try ContainerReference.parse(String(id.prefix(12)))
        #expect(prefix.hex == String(id.prefix(12)) && !prefix.isFullID && prefix.runtime == nil)
        #expect(try ContainerReference.parse("containerd://\(id)").runtime == .containerd)
        #expect(try ContainerReference.parse("cri-o://\(id)").runtime == .crio)
        #expect(try ContainerReference.parse("docker://\(id.prefix(20))").runtime == .docker)
        #expect(try ContainerReference.parse(id.uppercased()).hex == id)
        #expect(try ContainerReference.parse("  \(id)\n").hex == id)
    }

    @Test(
        "short, non-hex, empty, over-long and unknown-scheme references are usage errors",
        arguments: [
            "", "3f2a9c1b7d4", "containerd://", "xyz", "3f2a9c1b7d4e5g", "rkt://3f2a9c1b7d4e5f60",
            String(repeating: "a", count: 65), String(repeating: "z", count: 200), "3f2a9c1b7d4e 5f607182",
            "containerd:/3f2a9c1b7d4e5f60",
        ])
    func rejected(_ text: String) {
        #expect {
            try ContainerReference.parse(text)
        } throws: { error in
            (error as? ResolutionError)?.isUsageError == true
        }
    }

    @Test("pods are NAMESPACE/NAME")
    func pods() throws {
        #expect(try PodReference.parse("shop/db-0") == PodReference(namespace: "shop", name: "db-0"))
        for bad in ["shop", "/db-0", "shop/", "a/b/c", "", "shop/db 0"] {
            #expect(throws: ResolutionError.self) { try PodReference.parse(bad) }
        }
    }
}

@Suite("cgroup paths of every layout")
struct CgroupPathTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var file: String
        var runtime: ContainerRuntime?
        var qos: QoSClass?
        var podUID: String?
        var driver: String
        var subPath = ""
        var nodePrefix: String? = nil
        var kind: ContainerCgroup.Kind = .container
        var testDescription: String { file }
    }

    static let uid = FixtureIDs.podUID
    static let cases: [Case] = [
        Case(
            file: "containerd-cgroupfs-hybrid", runtime: nil, qos: .burstable,
            podUID: "11111111-2222-3333-4444-555555555555", driver: "cgroupfs"),
        Case(file: "containerd-cgroupfs-v1", runtime: nil, qos: .burstable, podUID: uid, driver: "cgroupfs"),
        Case(
            file: "containerd-cgroupfs-guaranteed-v1", runtime: nil, qos: .guaranteed, podUID: uid, driver: "cgroupfs"),
        Case(file: "containerd-systemd-v2", runtime: .containerd, qos: .burstable, podUID: uid, driver: "systemd"),
        Case(
            file: "containerd-systemd-besteffort-v2", runtime: .containerd, qos: .besteffort, podUID: uid,
            driver: "systemd"),
        Case(file: "containerd-v1-colon", runtime: .containerd, qos: .burstable, podUID: uid, driver: "systemd"),
        Case(file: "crio-systemd-v1", runtime: .crio, qos: .burstable, podUID: uid, driver: "systemd"),
        Case(
            file: "crio-crun-v2", runtime: .crio, qos: .burstable, podUID: uid, driver: "systemd", subPath: "/container"
        ),
        Case(file: "crio-conmon-v2", runtime: .crio, qos: .burstable, podUID: uid, driver: "systemd", kind: .conmon),
        Case(file: "docker-systemd-v2", runtime: .docker, qos: .guaranteed, podUID: uid, driver: "systemd"),
        Case(file: "docker-plain-v1", runtime: .docker, qos: nil, podUID: nil, driver: "cgroupfs"),
        Case(file: "podman-v2", runtime: .podman, qos: nil, podUID: nil, driver: "systemd", subPath: "/container"),
        Case(
            file: "kind-nested-v1", runtime: nil, qos: .besteffort, podUID: uid, driver: "cgroupfs",
            nodePrefix: "/docker/0d9f6c2b8e7a41f3a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2"),
        Case(
            file: "k3d-nested-v2", runtime: nil, qos: .burstable, podUID: uid, driver: "cgroupfs",
            nodePrefix: "/system.slice/docker-0d9f6c2b8e7a41f3a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2.scope"),
        Case(file: "relative-ns-v2", runtime: .containerd, qos: .burstable, podUID: uid, driver: "systemd"),
    ]

    @Test("each layout gives the container id, runtime, QoS class, pod UID and levels", arguments: cases)
    func layout(_ c: Case) throws {
        let entries = try ProcCgroup.parse(try FixtureFiles.text("cgroup/\(c.file).txt"))
        let match = try #require(ProcessScan.bestMatch(entries))
        let parsed = match.1
        let expectedID =
            c.file == "containerd-cgroupfs-hybrid"
            ? "9b29f9763b96fab039718c271894db7d8b72183a641a9fa6c5d2eae4735e3637" : FixtureIDs.container
        #expect(parsed.id == expectedID)
        #expect(parsed.runtime == c.runtime)
        #expect(parsed.qosClass == c.qos)
        #expect(parsed.podUID == c.podUID)
        #expect(parsed.driver == c.driver)
        #expect(parsed.subPath == c.subPath)
        #expect(parsed.nodePrefix == c.nodePrefix)
        #expect(parsed.kind == c.kind)
        #expect(match.0.path == parsed.containerPath + parsed.subPath)
    }

    @Test("a process of the pod cgroup, a host process, and garbage paths name no container")
    func noContainer() throws {
        for file in ["pod-level-v1", "host-process-v2"] {
            #expect(ProcessScan.bestMatch(try ProcCgroup.parse(try FixtureFiles.text("cgroup/\(file).txt"))) == nil)
        }
        for path in [
            "/", "", "/kubepods/burstable", "/kubepods/burstable/podxyz/abc", "/docker/3f2a9c1b7d4e",
            "/cri-containerd-3f2a9c1b7d4e.scope", "/" + String(repeating: "a/", count: 10_000),
            "/kubepods.slice/kubepods-burstable.slice/cri-containerd-\(FixtureIDs.container.uppercased()).scope",
        ] {
            #expect(CgroupPath.parse(path) == nil, "\(path.prefix(80))")
        }
    }

    @Test("relative paths (a private cgroup namespace) are recognised as such")
    func relative() throws {
        let entries = try ProcCgroup.parse(try FixtureFiles.text("cgroup/relative-ns-v2.txt"))
        #expect(entries.first?.isNamespaceRelative == true)
        let absolute = try ProcCgroup.parse(try FixtureFiles.text("cgroup/containerd-systemd-v2.txt"))
        #expect(absolute.first?.isNamespaceRelative == false)
    }

    @Test(
        "malformed cgroup files are errors, never crashes",
        arguments: [
            "", "\n\n", "garbage", "0:", "0::", "x::/a", "-1::/a", "4:memory", "4:memory:relative/path",
            "4:memory:/kubepods\n5:pids", String(repeating: "9", count: 400) + "::/a",
        ])
    func malformed(_ text: String) {
        #expect(throws: ProcCgroup.ParseError.self) { try ProcCgroup.parse(text) }
    }

    @Test("a huge but well-formed file parses")
    func huge() throws {
        let line = "0::/kubepods/burstable/pod\(FixtureIDs.podUID)/\(FixtureIDs.container)\n"
        let entries = try ProcCgroup.parse(String(repeating: line, count: 5_000))
        #expect(entries.count == 5_000)
    }
}

@Suite("process files")
struct ProcessFileTests {
    @Test("stat: the command may hold spaces and parentheses")
    func stat() {
        #expect(ProcStat.parse("42 (postgres) S 1 42 42 0 -1")?.parentPID == 1)
        let odd = ProcStat.parse("42 (a (b) c) R 7 42 42")
        #expect(odd?.command == "a (b) c" && odd?.parentPID == 7)
        for bad in ["", "42", "42 (x", "42 (x) S", "42 (x) S notanumber", ") (", String(repeating: "(", count: 10_000)]
        {
            #expect(ProcStat.parse(bad) == nil)
        }
    }

    @Test("status: NSpid gives the pid in the innermost namespace")
    func status() {
        #expect(ProcStatus.innermostNamespacePID("Name:\tpostgres\nNSpid:\t9025\t1\n") == 1)
        #expect(ProcStatus.innermostNamespacePID("NSpid:\t9025\n") == 9025)
        #expect(ProcStatus.innermostNamespacePID("Name:\tx\n") == nil)
        #expect(ProcStatus.innermostNamespacePID("NSpid:\tgarbage") == nil)
    }

    @Test("cmdline: arguments, and a rewritten title padded with NULs")
    func cmdline() {
        #expect(Cmdline.parse(Array("postgres\0-D\0/data\0".utf8)) == ["postgres", "-D", "/data"])
        #expect(Cmdline.parse(Array("postgres: checkpointer   \0\0\0\0".utf8)) == ["postgres: checkpointer"])
        #expect(Cmdline.parse([]) == [])
        #expect(Cmdline.environment(Array("A=1\0PGDATA=/x\0BROKEN\0A=2\0".utf8)) == ["A": "1", "PGDATA": "/x"])
    }

    @Test("namespace links")
    func namespaceLinks() {
        #expect(CgroupNamespace.inode(fromLink: "cgroup:[4026531835]") == CgroupNamespace.initialInode)
        #expect(CgroupNamespace.inode(fromLink: "mnt:[4026532177]") == 4_026_532_177)
        for bad in ["", "cgroup:", "cgroup:[]", "cgroup:[x]", "cgroup:[1", "cgroup:[99999999999999999999999]"] {
            #expect(CgroupNamespace.inode(fromLink: bad) == nil)
        }
    }
}

@Suite("C library files")
struct CLibraryFilesTests {
    @Test("glibc's and musl's names, nothing else")
    func names() {
        for name in ["libc.so.6", "libc-2.31.so", "ld-musl-x86_64.so.1", "ld-musl-aarch64.so.1"] {
            #expect(CLibraryFiles.isCLibrary(name), "\(name)")
        }
        for name in ["libcrypt.so.1", "libc.so", "ld-linux-x86-64.so.2", "libcap.so.2", "postgres"] {
            #expect(!CLibraryFiles.isCLibrary(name), "\(name)")
        }
    }
}
