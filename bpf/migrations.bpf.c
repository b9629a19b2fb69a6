// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * migrations: the scheduler moving the target cgroups' tasks between CPUs (sched_migrate_task),
 * per target and per thread, split by where the task went: within its last-level cache, to
 * another LLC of the same NUMA node, or to another node.
 *
 * The tracepoint fires in set_task_cpu() only when a task changes CPU, so it costs nothing on
 * a quiet node; it fires in whatever context moves the task (the load balancer, a waker on
 * another CPU), so the task is the tracepoint's argument, never the current task. Its cgroup is
 * looked up in `targets` first: a task of no target costs a few reads and one hash lookup.
 *
 * Topology: the program cannot learn which CPUs share a cache cheaply, so user space fills
 * `mig_cpu_domains` (CPU -> LLC and NUMA ids, from sysfs) before attaching, and the program
 * classifies with two array lookups. The other way, counting per (target, orig, dest) pair in a
 * hash and classifying in user space, needs a map of up to CPUs^2 entries per target (or loses
 * pairs when bounded) and makes the split of each thread's migrations a second, larger map;
 * the array is fixed in size (PGN_MAX_CPUS entries), and a test can give it a topology this
 * machine does not have to prove the kernel side of the split.
 *
 * Two program sets: tp_btf (5.5+, BTF-typed arguments) and raw_tp (4.17+); the loader keeps
 * the first the kernel accepts.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_MAX_CPUS);
    __type(key, __u32);
    __type(value, struct pgn_cpu_domain);
} mig_cpu_domains SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_mig_counts);
} mig_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct pgn_mig_key);
    __type(value, struct pgn_mig_value);
} mig_by_pid SEC(".maps");

/* task_struct->cpu before 5.16 moved it into thread_info on every THREAD_INFO_IN_TASK arch. */
struct task_struct___cpu {
    unsigned int cpu;
} __attribute__((preserve_access_index));

/* The CPU a task is on (task_cpu()): before set_task_cpu() changes it, the CPU it leaves. */
static __always_inline __u32 task_cpu_of(struct task_struct *task)
{
    struct task_struct___cpu *old = (void *)task;
    if (bpf_core_field_exists(old->cpu))
        return BPF_CORE_READ(old, cpu);
    return BPF_CORE_READ(task, thread_info.cpu);
}

/* The target `task` belongs to, or -1: by its unified-hierarchy cgroup, else its v1 memory cgroup. */
static __always_inline int task_target(struct task_struct *task)
{
    __u32 kind = PGN_CGROUP_V2;
    __u64 id = pgn_cgroup_id(BPF_CORE_READ(task, cgroups, dfl_cgrp), &kind, PGN_CGROUP_V2);
    int target = pgn_lookup_target(id, PGN_CGROUP_V2);
    if (target >= 0)
        return target;
    kind = PGN_CGROUP_V1_MEMORY;
    id = pgn_task_controller_cgroup(task, PGN_CGROUP_V1_MEMORY, &kind);
    return pgn_lookup_target(id, kind);
}

enum mig_class {
    MIG_WITHIN_LLC = 0,
    MIG_CROSS_LLC = 1,
    MIG_CROSS_NUMA = 2,
    MIG_UNKNOWN = 3,
};

static __always_inline __u32 classify(__u32 orig, __u32 dest)
{
    struct pgn_cpu_domain *from = bpf_map_lookup_elem(&mig_cpu_domains, &orig);
    struct pgn_cpu_domain *to = bpf_map_lookup_elem(&mig_cpu_domains, &dest);
    if (!from || !to)
        return MIG_UNKNOWN;
    if (from->node && to->node && from->node != to->node)
        return MIG_CROSS_NUMA;
    if (!from->llc || !to->llc)
        return MIG_UNKNOWN;
    return from->llc == to->llc ? MIG_WITHIN_LLC : MIG_CROSS_LLC;
}

static __always_inline int migrated(struct task_struct *task, int dest_cpu)
{
    int target = task_target(task);
    if (target < 0)
        return 0;
    __u32 slot = target;
    struct pgn_mig_counts *counts = bpf_map_lookup_elem(&mig_counts, &slot);
    if (!counts)
        return 0;
    __u32 class = classify(task_cpu_of(task), (__u32)dest_cpu);
    /* One array shared by the CPUs (user space zeroes a slot given to another cgroup), so
       atomic adds: migrations are rare events, thousands a second on a busy node at most. */
    __sync_fetch_and_add(&counts->migrations, 1);
    if (class == MIG_WITHIN_LLC)
        __sync_fetch_and_add(&counts->within_llc, 1);
    else if (class == MIG_CROSS_LLC)
        __sync_fetch_and_add(&counts->cross_llc, 1);
    else if (class == MIG_CROSS_NUMA)
        __sync_fetch_and_add(&counts->cross_numa, 1);
    else
        __sync_fetch_and_add(&counts->unknown, 1);

    struct pgn_mig_key key = {.target = slot, .pid = BPF_CORE_READ(task, pid)};
    struct pgn_mig_value *value = bpf_map_lookup_elem(&mig_by_pid, &key);
    if (!value) {
        struct pgn_mig_value zero = {.tgid = BPF_CORE_READ(task, tgid)};
        bpf_core_read(zero.comm, sizeof(zero.comm), &task->comm);
        bpf_map_update_elem(&mig_by_pid, &key, &zero, BPF_NOEXIST);
        value = bpf_map_lookup_elem(&mig_by_pid, &key);
        if (!value) {
            __sync_fetch_and_add(&counts->unattributed, 1);
            return 0;
        }
    }
    /* Another CPU may move the same thread's entry at once (a wakeup racing the balancer). */
    __sync_fetch_and_add(&value->migrations, 1);
    if (class == MIG_CROSS_LLC)
        __sync_fetch_and_add(&value->cross_llc, 1);
    else if (class == MIG_CROSS_NUMA)
        __sync_fetch_and_add(&value->cross_numa, 1);
    return 0;
}

/* ---- tp_btf (5.5+) ---- */

SEC("tp_btf/sched_migrate_task")
int BPF_PROG(pgn_mig_btf, struct task_struct *task, int dest_cpu)
{
    return migrated(task, dest_cpu);
}

/* ---- raw_tp fallback (4.17+) ---- */

SEC("raw_tp/sched_migrate_task")
int BPF_PROG(pgn_mig_raw, struct task_struct *task, int dest_cpu)
{
    return migrated(task, dest_cpu);
}
