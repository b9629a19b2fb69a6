import Glibc
import PGNodeModel

/// What pgnode knows about the node's kernel: version, cgroups, BTF, headers, tracefs, OS.
/// Gathered once per run from the host root; every field that could not be read says so.
public struct KernelFacts: Sendable {
    /// `proc/sys/kernel/osrelease` (`uname -r`).
    public var release: String?
    /// `proc/sys/kernel/version` (`uname -v`).
    public var version: String?
    /// `proc/version_signature` (Ubuntu only).
    public var versionSignature: String?
    /// The version as libbpf computes it; nil when no source holds a version.
    public var kernelVersion: KernelVersion?
    /// The machine architecture (`uname -m` of the running kernel).
    public var architecture: String
    /// The cgroup layout.
    public var cgroups: CgroupLayout
    /// The BTF of the running kernel, when present.
    public var btf: BTFFile?
    /// Kernel header directories found for this release.
    public var headers: [String]
    /// Header directories that were looked for.
    public var headerCandidates: [String]
    /// Where tracefs is mounted (relative to the host root), if it is.
    public var tracefs: String?
    /// `/etc/os-release` of the node.
    public var os: OSRelease
    /// The page size in bytes.
    public var pageSize: Int
    /// Problems met while gathering, for the reader (never fatal).
    public var problems: [String]

    /// Whether uprobes can be placed on files of an overlayfs (container images): kernels
    /// before 4.18 resolved the probe to the overlay's inode and never fired. Nil when the
    /// version is unknown.
    public var uprobesOnOverlayfs: Bool? {
        kernelVersion.map { $0 >= KernelVersion(major: 4, minor: 18, patch: 0) }
    }

    /// A BTF blob on disk.
    public struct BTFFile: Sendable, Equatable {
        /// Its path relative to the host root.
        public var path: String
        /// Its size in bytes.
        public var sizeBytes: Int64
    }

    /// Gathers the facts under `host`. Missing files become nil fields and `problems`, never errors.
    public static func gather(host: HostRoot) -> KernelFacts {
        var problems: [String] = []
        func line(_ path: String) -> String? {
            do {
                return try host.readLine(path)
            } catch {
                if case .notFound = error {} else { problems.append(error.description) }
                return nil
            }
        }
        let release = line("proc/sys/kernel/osrelease")
        if release == nil { problems.append("kernel release unknown: proc/sys/kernel/osrelease unreadable") }
        let version = line("proc/sys/kernel/version")
        let signature = line("proc/version_signature")
        let kernelVersion = KernelVersion.detect(
            release: release ?? "", version: version, versionSignature: signature)

        let mountText = (try? host.readText("proc/1/mountinfo")) ?? (try? host.readText("proc/self/mountinfo"))
        if mountText == nil { problems.append("mount table unreadable: proc/1/mountinfo and proc/self/mountinfo") }
        let mounts = MountInfo.parse(mountText ?? "").entries
        let cgroups = CgroupLayout.detect(host: host, mounts: mounts)

        var btf: BTFFile? = nil
        if let st = try? host.status("sys/kernel/btf/vmlinux"), st.isRegularFile || st.size > 0 {
            btf = BTFFile(path: "/sys/kernel/btf/vmlinux", sizeBytes: st.size)
        }

        var candidates: [String] = []
        if let release {
            candidates = [
                "/lib/modules/\(release)/build", "/usr/src/linux-headers-\(release)", "/usr/src/kernels/\(release)",
            ]
        }
        let headers = candidates.filter { host.isDirectory($0) }

        var tracefs: String? = mounts.first(where: { $0.fileSystemType == "tracefs" })?.mountPoint
        if tracefs == nil, host.exists("sys/kernel/tracing/events") { tracefs = "/sys/kernel/tracing" }
        if tracefs == nil, host.exists("sys/kernel/debug/tracing/events") { tracefs = "/sys/kernel/debug/tracing" }

        let os = OSRelease.parse(
            (try? host.readText("etc/os-release")) ?? (try? host.readText("usr/lib/os-release")) ?? "")

        var uts = utsname()
        uname(&uts)
        let machine = withUnsafeBytes(of: uts.machine) {
            String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
        }

        return KernelFacts(
            release: release, version: version, versionSignature: signature, kernelVersion: kernelVersion,
            architecture: machine, cgroups: cgroups, btf: btf, headers: headers, headerCandidates: candidates,
            tracefs: tracefs, os: os, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))), problems: problems)
    }

    /// The facts as the JSON object `pgnode kernel` prints (documented in docs/kernel.md).
    public var json: JSONValue {
        var v1: JSONObject = [:]
        for name in cgroups.v1Controllers.keys.sorted() { v1[name] = .string(cgroups.v1Controllers[name]!) }
        let object: JSONObject = [
            "release": .from(release),
            "version": .from(version),
            "version_signature": .from(versionSignature),
            "version_code": kernelVersion.map { .int(Int64($0.code)) } ?? .null,
            "version_triple": .from(kernelVersion?.description),
            "version_source": .from(kernelVersion?.source.rawValue),
            "architecture": .string(architecture),
            "cgroup_mode": .string(cgroups.mode.rawValue),
            "cgroup": [
                "detected_by": .string(cgroups.detectedBy),
                "v1_controllers": .object(v1),
                "v2_mount_point": .from(cgroups.v2MountPoint),
            ],
            "btf": [
                "present": .bool(btf != nil),
                "path": .from(btf?.path),
                "size_bytes": .from(btf?.sizeBytes),
            ],
            "headers": [
                "found": .array(headers.map { .string($0) }),
                "searched": .array(headerCandidates.map { .string($0) }),
            ],
            "tracefs": .from(tracefs),
            "os": [
                "id": .from(os.id),
                "version_id": .from(os.versionID),
                "pretty_name": .from(os.prettyName),
            ],
            "page_size_bytes": .int(Int64(pageSize)),
            "uprobes_on_overlayfs": uprobesOnOverlayfs.map { .bool($0) } ?? .null,
            "problems": .array(problems.map { .string($0) }),
        ]
        return .object(object)
    }
}
