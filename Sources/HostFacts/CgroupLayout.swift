/// Which cgroup hierarchies the node uses and where they are mounted.
public struct CgroupLayout: Sendable, Equatable {
    /// The cgroup mode of the node.
    public enum Mode: String, Sendable {
        /// Only v1 controllers (no v2 hierarchy, or an unused one).
        case v1
        /// v1 controllers and a v2 hierarchy at `/sys/fs/cgroup/unified` (systemd's hybrid mode).
        case hybrid
        /// The unified hierarchy only.
        case v2
    }

    /// The mode.
    public var mode: Mode
    /// How the mode was determined: `statfs` on the real mount, or `mountinfo` for a tree that
    /// is not a live cgroup file system (a fixture, or an unusual mount).
    public var detectedBy: String
    /// v1 controllers and their mount points relative to the host root, e.g. `memory` →
    /// `/sys/fs/cgroup/memory`. Co-mounted controllers (`cpu,cpuacct`) each map to the same point.
    public var v1Controllers: [String: String]
    /// The v2 hierarchy's mount point relative to the host root, if any.
    public var v2MountPoint: String?

    /// statfs magic numbers (linux/magic.h).
    public static let cgroup2Magic: Int64 = 0x6367_7270
    public static let cgroupMagic: Int64 = 0x0027_e0eb
    public static let tmpfsMagic: Int64 = 0x0102_1994

    /// The v1 controllers pgnode reads.
    public static let knownV1Controllers = [
        "memory", "blkio", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "net_cls", "net_prio",
        "perf_event", "hugetlb", "rdma", "misc",
    ]

    /// Detects the layout under `host` from statfs magic numbers, using `mounts` (the host's
    /// mountinfo) for mount points and when statfs does not see a cgroup file system.
    public static func detect(host: HostRoot, mounts: [MountEntry]) -> CgroupLayout {
        var controllers: [String: String] = [:]
        var v2: String? = nil
        for mount in mounts {
            switch mount.fileSystemType {
            case "cgroup":
                for option in mount.superOptions where knownV1Controllers.contains(option) {
                    controllers[option] = mount.mountPoint
                }
            case "cgroup2":
                if v2 == nil || mount.mountPoint == "/sys/fs/cgroup" { v2 = mount.mountPoint }
            default: break
            }
        }
        let realControllers = controllers

        let topType = try? host.fileSystemType("sys/fs/cgroup")
        if topType == cgroup2Magic {
            return CgroupLayout(
                mode: .v2, detectedBy: "statfs", v1Controllers: realControllers, v2MountPoint: "/sys/fs/cgroup")
        }
        if topType == tmpfsMagic {
            let unified = try? host.fileSystemType("sys/fs/cgroup/unified")
            let mode: Mode = unified == cgroup2Magic ? .hybrid : .v1
            return CgroupLayout(
                mode: mode, detectedBy: "statfs", v1Controllers: realControllers,
                v2MountPoint: mode == .hybrid ? "/sys/fs/cgroup/unified" : v2)
        }
        // Not a live cgroup mount under this root: decide from the mount table alone.
        let mode: Mode
        if realControllers.isEmpty {
            mode = v2 != nil ? .v2 : .v1
        } else {
            mode = v2 != nil ? .hybrid : .v1
        }
        return CgroupLayout(mode: mode, detectedBy: "mountinfo", v1Controllers: realControllers, v2MountPoint: v2)
    }

    /// Where the memory controller lives: a v1 mount point, or the v2 hierarchy.
    public var memoryHierarchy: (version: Int, mountPoint: String)? {
        if let m = v1Controllers["memory"] { return (1, m) }
        if let v2MountPoint, mode == .v2 { return (2, v2MountPoint) }
        return nil
    }
}
