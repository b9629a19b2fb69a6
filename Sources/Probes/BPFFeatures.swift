import CLibBPF
import Glibc
import HostFacts

/// Feature probing at start-up: what this kernel and this process allow, for `bpf.support`.
public enum BPFFeatures {
    static let programTypes: [(String, bpf_prog_type)] = [
        ("kprobe", BPF_PROG_TYPE_KPROBE), ("tracepoint", BPF_PROG_TYPE_TRACEPOINT),
        ("raw_tracepoint", BPF_PROG_TYPE_RAW_TRACEPOINT),
        ("tracing", BPF_PROG_TYPE_TRACING),
    ]
    static let mapTypes: [(String, bpf_map_type)] = [
        ("hash", BPF_MAP_TYPE_HASH), ("array", BPF_MAP_TYPE_ARRAY), ("percpu_array", BPF_MAP_TYPE_PERCPU_ARRAY),
        ("lru_hash", BPF_MAP_TYPE_LRU_HASH), ("ringbuf", BPF_MAP_TYPE_RINGBUF),
    ]
    static let helpers: [(String, bpf_func_id)] = [
        ("get_current_cgroup_id", BPF_FUNC_get_current_cgroup_id), ("probe_read_kernel", BPF_FUNC_probe_read_kernel),
        ("ringbuf_reserve", BPF_FUNC_ringbuf_reserve), ("ktime_get_boot_ns", BPF_FUNC_ktime_get_boot_ns),
    ]

    /// Gathers the environment. `btf`/`btfProblem` come from `BTFResolver`; tracefs is looked
    /// up in pgnode's own file system (where libbpf looks for it).
    public static func gather(
        host: HostRoot, facts: KernelFacts, btf: BTFLocation?, btfProblem: String?,
        probes: [ProbeDefinition] = ProbeCatalog.all
    ) -> BPFEnvironment {
        var env = BPFEnvironment()
        BPFEnvironment.readProcessFacts(host: host, into: &env)
        env.kernelVersion = facts.kernelVersion
        env.btf = btf
        env.btfProblem = btfProblem
        env.kernelBTF = facts.btf != nil
        let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].first {
            access($0 + "/events", F_OK) == 0
        }
        env.tracefs = tracefs != nil
        // libbpf reads the PMU's type from pgnode's own sysfs, as tracefs above.
        env.uprobePMU = access("/sys/bus/event_source/devices/uprobe/type", F_OK) == 0

        var problems: [String] = []
        func record(_ what: String, _ rc: Int32) -> Bool {
            if rc < 0 {
                let message = "probing \(what): \(BPFError.describe(-rc))"
                if !problems.contains(where: { $0.hasSuffix(BPFError.describe(-rc)) }) { problems.append(message) }
                return false
            }
            return rc == 1
        }
        _ = LibBPFLog.install
        for (name, type) in programTypes {
            env.programTypes[name] = record("program type \(name)", libbpf_probe_bpf_prog_type(type, nil))
        }
        for (name, type) in mapTypes {
            env.mapTypes[name] = record("map type \(name)", libbpf_probe_bpf_map_type(type, nil))
        }
        for (name, id) in helpers {
            env.helpers[name] = record(
                "helper \(name)", libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, id, nil))
        }
        env.probeProblems = problems

        // Tracepoints: tracefs's events directory, else a raw tracepoint's BTF typedef.
        let vmlinux = btf__load_vmlinux_btf()
        defer { if let vmlinux { btf__free(vmlinux) } }
        for probe in probes {
            for tracepoint in probe.requirement.tracepoints where env.tracepoints[tracepoint] == nil {
                if let tracefs, access("\(tracefs)/events/\(tracepoint)", F_OK) == 0 {
                    env.tracepoints[tracepoint] = true
                    continue
                }
                let event = tracepoint.split(separator: "/").last.map(String.init) ?? tracepoint
                if let vmlinux, btf__find_by_name_kind(vmlinux, "btf_trace_\(event)", UInt32(BTF_KIND_TYPEDEF)) > 0 {
                    env.tracepoints[tracepoint] = true
                } else {
                    env.tracepoints[tracepoint] = tracefs == nil && vmlinux == nil ? nil : false
                }
            }
        }
        return env
    }
}
