/// The node's name as Kubernetes knows it.
public enum NodeIdentity {
    /// `explicit` (from `--node-name`), else `NODE_NAME` from `environment` (set by the DaemonSet
    /// through the downward API), else the host's `etc/hostname`, else `proc/sys/kernel/hostname`,
    /// else `unknown`.
    public static func nodeName(explicit: String?, environment: [String: String], host: HostRoot) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = environment["NODE_NAME"], !env.isEmpty { return env }
        for path in ["etc/hostname", "proc/sys/kernel/hostname"] {
            if let name = try? host.readLine(path), !name.isEmpty, !name.contains(" ") { return name }
        }
        return "unknown"
    }
}
