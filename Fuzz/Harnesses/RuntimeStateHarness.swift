import HostFacts
import Resolution

extension Harness {
    /// A container runtime's state files: the OCI spec's annotations and labels come from the
    /// pod's manifest, which a tenant writes.
    static let runtimeState = Harness(
        name: "runtime-state", maxLength: 8192,
        summary:
            "RuntimeState.read: containerd, CRI-O, Docker and Podman state files (input = the JSON, NUL, the pid file)"
    ) { bytes in
        let pieces = parts(bytes, limit: 2)
        let json = pieces[0]
        let pid = pieces.count > 1 ? pieces[1] : Array("4242\n".utf8)
        Scratch.remove("runtime")
        let files: [(String, String)] = [
            ("run/containerd/io.containerd.runtime.v2.task/k8s.io/aaaa", "init.pid"),
            ("run/containers/storage/overlay-containers/bbbb/userdata", "pidfile"),
            ("var/lib/containers/storage/overlay-containers/dddd/userdata", "pidfile"),
        ]
        for (directory, pidFile) in files {
            Scratch.store("runtime/\(directory)/config.json", json)
            Scratch.store("runtime/\(directory)/\(pidFile)", pid)
        }
        Scratch.store("runtime/var/lib/docker/containers/cccc/config.v2.json", json)
        let host = HostRoot("\(Scratch.root)/runtime")
        for id in ["aaaa", "bbbb", "cccc", "dddd"] {
            if let state = RuntimeState.read(host: host, id: id, hint: nil) {
                consume(state)
                require(state.stateFile.hasSuffix(".json"), "state file \(state.stateFile)")
            }
        }
    }
}
