import PGNodeModel

/// Remedies in the terms of the operator that runs the server: an operator reverts changes made
/// by hand to the pods it manages, so a remedy names the field of its cluster resource. Each
/// operator's defaults are those of its source (Tests/ResolutionTests/Fixtures/operators/README.md):
/// CloudNativePG always mounts an `shm` memory emptyDir sized by
/// `spec.ephemeralVolumesSizeLimit.shm`; Zalando mounts a memory emptyDir without a size limit
/// when `enableShmVolume` is on (the default); PGO v5 and StackGres always mount `dshm`, a memory
/// emptyDir without a size limit. A memory emptyDir without a size limit is bounded by the pod's
/// memory limit, so there the remedy is the memory limit.
public enum OperatorRemedies {
    /// `-n <namespace>` for kubectl, when the namespace is known.
    static func namespaceFlag(_ op: PostgresOperator) -> String {
        op.namespace.map { " -n \($0)" } ?? ""
    }

    /// The cluster resource's name, or a placeholder.
    static func clusterName(_ op: PostgresOperator) -> String { op.cluster ?? "<cluster>" }

    /// How to give `/dev/shm` at least `size` (a Kubernetes quantity such as `102Mi`), given what
    /// provides it now (`kind`; nil when unknown). One instruction, then continuation lines
    /// indented by two spaces.
    public static func shm(size: String, kind: ShmSizeFacts.MountKind?, operator op: PostgresOperator) -> String {
        let name = clusterName(op)
        let ns = namespaceFlag(op)
        switch op.kind {
        case .cloudNativePG:
            return "CloudNativePG sizes the shm emptyDir it mounts at /dev/shm from the Cluster's "
                + "spec.ephemeralVolumesSizeLimit.shm (it counts against spec.resources.limits.memory):\n"
                + "  kubectl patch cluster \(name)\(ns) --type merge "
                + "-p '{\"spec\":{\"ephemeralVolumesSizeLimit\":{\"shm\":\"\(size)\"}}}'"
        case .zalando:
            if kind == .memoryEmptyDir {
                return "/dev/shm is the operator's memory emptyDir without a size limit, bounded by the pod's memory "
                    + "limit: raise spec.resources.limits.memory of the postgresql \(name) so that it holds \(size) "
                    + "of /dev/shm besides shared_buffers and the backends:\n"
                    + "  kubectl edit postgresql \(name)\(ns)   # spec.resources.limits.memory"
            }
            return "Let the Zalando operator mount a memory-backed emptyDir at /dev/shm (bounded by the memory "
                + "limit, which must hold \(size) of it):\n"
                + "  kubectl patch postgresql \(name)\(ns) --type merge -p '{\"spec\":{\"enableShmVolume\":true}}'"
        case .crunchyPGO:
            return "PGO already mounts a memory-backed emptyDir (dshm) at /dev/shm without a size limit: it is "
                + "bounded by the memory limit. Raise spec.instances[].resources.limits.memory of the "
                + "PostgresCluster \(name) so that it holds \(size) of /dev/shm besides shared_buffers and the backends:\n"
                + "  kubectl edit postgrescluster \(name)\(ns)   # spec.instances[].resources.limits.memory"
        case .stackGres:
            return "StackGres already mounts a memory-backed emptyDir (dshm) at /dev/shm without a size limit: it "
                + "is bounded by the memory limit. Raise spec.memory of the SGInstanceProfile that the SGCluster "
                + "\(name) names in spec.sgInstanceProfile so that it holds \(size) of /dev/shm besides "
                + "shared_buffers and the backends:\n"
                + "  kubectl get sgcluster \(name)\(ns) -o jsonpath='{.spec.sgInstanceProfile}'"
        case .none:
            if kind == .memoryEmptyDir {
                return "Raise the sizeLimit of the memory emptyDir already mounted at /dev/shm to \(size) (it counts "
                    + "against the pod's memory limit), in the pod template of the StatefulSet (or Deployment) that "
                    + "owns the pod:\n"
                    + "  volumes[].emptyDir.sizeLimit: \(size)   # the volume mounted at /dev/shm"
            }
            let host =
                kind == .host ? "The pod uses the node's /dev/shm (hostIPC: true); drop hostIPC and " : ""
            return "\(host)Mount a memory-backed emptyDir at /dev/shm sized for parallel queries (it counts against "
                + "the pod's memory limit), in the pod template of the StatefulSet (or Deployment):\n"
                + "  volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: \(size)}}]\n"
                + "  containers[].volumeMounts: [{name: dshm, mountPath: /dev/shm}]"
        }
    }

    /// Where the operator takes the container's `resources` (memory and CPU requests and limits).
    public static func resourcesField(_ op: PostgresOperator) -> String {
        switch op.kind {
        case .cloudNativePG: "spec.resources of the Cluster \(clusterName(op))"
        case .zalando: "spec.resources of the postgresql \(clusterName(op))"
        case .crunchyPGO: "spec.instances[].resources of the PostgresCluster \(clusterName(op))"
        case .stackGres:
            "spec.cpu and spec.memory of the SGInstanceProfile that the SGCluster \(clusterName(op)) names in "
                + "spec.sgInstanceProfile"
        case .none: "resources of the container in the pod template (StatefulSet or Deployment)"
        }
    }

    /// How to set the memory request and limit to `memory` (a quantity such as `1536Mi`): one
    /// instruction, then the command as a continuation line where there is one.
    public static func memory(_ memory: String, operator op: PostgresOperator) -> String {
        let name = clusterName(op)
        let ns = namespaceFlag(op)
        let resources = "{\"requests\":{\"memory\":\"\(memory)\"},\"limits\":{\"memory\":\"\(memory)\"}}"
        switch op.kind {
        case .cloudNativePG:
            return "Set the memory request and limit in \(resourcesField(op)):\n"
                + "  kubectl patch cluster \(name)\(ns) --type merge -p '{\"spec\":{\"resources\":\(resources)}}'"
        case .zalando:
            return "Set the memory request and limit in \(resourcesField(op)):\n"
                + "  kubectl patch postgresql \(name)\(ns) --type merge -p '{\"spec\":{\"resources\":\(resources)}}'"
        case .crunchyPGO:
            return "Set the memory request and limit in \(resourcesField(op)):\n"
                + "  kubectl edit postgrescluster \(name)\(ns)   # spec.instances[].resources: \(resources)"
        case .stackGres:
            return "Set \(resourcesField(op)) to \(memory):\n"
                + "  kubectl get sgcluster \(name)\(ns) -o jsonpath='{.spec.sgInstanceProfile}'"
        case .none:
            return "Set the memory request and limit in the \(resourcesField(op)):\n"
                + "  resources: {requests: {memory: \(memory)}, limits: {memory: \(memory)}}"
        }
    }
}
