// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched: who took the CPU from the targets' runnable tasks (cpu.contention).
 *
 * On sched_switch, when a target's task is switched out while still runnable (preempted, or
 * yielding with its state TASK_RUNNING), the CPU remembers it (per-CPU: the task, its target
 * slot, its cgroup, the time). At each following switch on that CPU the time since the
 * previous switch was taken by the task now switched out (the one that took the target task's
 * place, or the next one after it), and is charged to that task's cgroup for that target
 * (sched_takers: in-kernel aggregation per target slot and neighbour cgroup), until the target
 * task runs again on that CPU. The wait ends without being charged further when the task is
 * no longer queued on that CPU (migrated, its pid gone) or the CPU ran its idle task.
 *
 * Time is not a neighbour's when the target's own run queue was throttled by its CFS quota
 * (its cfs_rq or an ancestor's throttle_count, or the task's own throttled flag with the
 * per-task throttling of 6.18): that goes to throttled_ns, which is cpu.throttling's. Time
 * taken by another task of the target's own cgroup goes to own_ns.
 *
 * One remembered task per CPU: while one target task waits on a CPU, a second one switched out
 * there is not followed (the time is the same time; the per-process waits of schedstat count
 * both). Cgroups are named by the v1 memory controller's hierarchy on v1 and hybrid nodes, by
 * the unified one on v2 (pgn_task_controller_cgroup says which).
 *
 * Cost: this runs on every context switch of the node. A switch while no target task waits on
 * the CPU costs a per-CPU array lookup and a test of the switched-out task's state; only a
 * runnable task switched out is looked up in `targets` (its cgroup ids read). While a target
 * task waits, each switch on that CPU also reads the waiting task's run-queue state and the
 * switched-out task's cgroup and adds to one hash entry.
 *
 * Two program sets: tp_btf (5.5+; prev_state, the fourth argument, only since 5.18, so the
 * state is read from the task) and raw_tp (4.17+).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The task's CPU was task->cpu (5.3–5.15) before it moved back into thread_info (5.16+). */
struct task_struct___cpu {
    unsigned int cpu;
} __attribute__((preserve_access_index));

/* What one CPU remembers of the target task that waits on it (zeroed: none). */
struct cpu_wait {
    __u64 task;      /* the task_struct's address, read only with probe reads */
    __u64 since_ns;  /* the last switch on this CPU since it waits */
    __u64 cgroup_id; /* its memory-controller cgroup: a taker there is its own cgroup */
    __u32 tid;
    __u32 waiting; /* its target slot + 1; 0 when no target task waits here */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct cpu_wait);
} sched_cpu SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_sched_counts);
} sched_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct pgn_sched_taker_key);
    __type(value, struct pgn_sched_taker_value);
} sched_takers SEC(".maps");

/* ptr->field: a direct load in tp_btf programs (btf a constant), a CO-RE probe read otherwise. */
#define READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline __u32 task_cpu(struct task_struct *task)
{
    struct task_struct___cpu *t = (void *)task;
    if (bpf_core_field_exists(t->cpu))
        return BPF_CORE_READ(t, cpu);
    return BPF_CORE_READ(task, thread_info.cpu);
}

/* The task's cgroup as takers are named: its memory controller's (v1 hierarchy or unified). */
static __always_inline __u64 task_cgroup(struct task_struct *task, __u32 *kind)
{
    *kind = PGN_CGROUP_V1_MEMORY;
    return pgn_task_controller_cgroup(task, PGN_CGROUP_V1_MEMORY, kind);
}

/* The target of a task, or -1: by its memory controller's cgroup, else by its unified one. */
static __always_inline int task_target(struct task_struct *task, __u64 *cgroup_id)
{
    __u32 kind = PGN_CGROUP_V1_MEMORY;
    *cgroup_id = task_cgroup(task, &kind);
    int target = pgn_lookup_target(*cgroup_id, kind);
    if (target >= 0)
        return target;
    __u32 v2 = PGN_CGROUP_V2;
    struct cgroup *dfl = BPF_CORE_READ(task, cgroups, dfl_cgrp);
    return pgn_lookup_target(pgn_cgroup_id(dfl, &v2, PGN_CGROUP_V2), PGN_CGROUP_V2);
}

static __always_inline struct pgn_sched_counts *counts_of(__u32 target)
{
    return bpf_map_lookup_elem(&sched_counts, &target);
}

/* The time since w->since_ns, taken by `taker` (the task switched out now), to whom it goes. */
static __always_inline void charge(struct cpu_wait *w, struct task_struct *taker, __u64 now,
                                   struct pgn_sched_counts *counts)
{
    __u64 ns = now > w->since_ns ? now - w->since_ns : 0;
    if (pgn_task_throttled((struct task_struct *)w->task)) {
        counts->throttled_ns += ns;
        return;
    }
    __u32 kind = PGN_CGROUP_V1_MEMORY;
    __u64 id = task_cgroup(taker, &kind);
    if (id == w->cgroup_id) {
        counts->own_ns += ns;
        return;
    }
    counts->taken_ns += ns;
    struct pgn_sched_taker_key key = {.cgroup_id = id, .kind = kind, .target = w->waiting - 1};
    struct pgn_sched_taker_value *value = bpf_map_lookup_elem(&sched_takers, &key);
    if (!value) {
        struct pgn_sched_taker_value zero = {};
        bpf_map_update_elem(&sched_takers, &key, &zero, BPF_NOEXIST);
        value = bpf_map_lookup_elem(&sched_takers, &key);
        if (!value)
            return;
    }
    __sync_fetch_and_add(&value->ns, ns);
    __sync_fetch_and_add(&value->intervals, 1);
}

/* Whether the remembered task is still queued on this CPU, not running (and still itself). */
static __always_inline bool still_waiting(struct cpu_wait *w, __u32 cpu)
{
    struct task_struct *task = (struct task_struct *)w->task;
    if ((__u32)BPF_CORE_READ(task, pid) != w->tid)
        return false;
    /* on_rq: TASK_ON_RQ_QUEUED (1); 2 while it migrates. */
    if (BPF_CORE_READ(task, on_rq) != 1)
        return false;
    return task_cpu(task) == cpu;
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next, bool btf)
{
    __u32 zero = 0;
    struct cpu_wait *w = bpf_map_lookup_elem(&sched_cpu, &zero);
    if (!w)
        return 0;
    __u64 now = 0;
    if (w->waiting) {
        now = bpf_ktime_get_ns();
        struct pgn_sched_counts *counts = counts_of(w->waiting - 1);
        if (!counts) {
            w->waiting = 0;
            return 0;
        }
        __u32 prev_pid = READ(btf, prev, pid);
        if (prev_pid == 0) {
            /* The CPU was idle: the task no longer waits here. */
            counts->left++;
            w->waiting = 0;
        } else {
            charge(w, prev, now, counts);
            if ((__u32)READ(btf, next, pid) == w->tid) {
                counts->resumed++;
                w->waiting = 0;
            } else if (!still_waiting(w, bpf_get_smp_processor_id())) {
                counts->left++;
                w->waiting = 0;
            } else {
                w->since_ns = now;
                return 0;
            }
        }
    }
    /* Switched out while still runnable? Else it sleeps and waits for no CPU. */
    if (!preempt && pgn_task_state(prev, btf) != 0)
        return 0;
    __u32 tid = READ(btf, prev, pid);
    if (tid == 0)
        return 0;
    __u64 cgroup_id = 0;
    int target = task_target(prev, &cgroup_id);
    if (target < 0)
        return 0;
    struct pgn_sched_counts *counts = counts_of(target);
    if (!counts)
        return 0;
    counts->waits++;
    w->task = (__u64)prev;
    w->since_ns = now ? now : bpf_ktime_get_ns();
    w->cgroup_id = cgroup_id;
    w->tid = tid;
    w->waiting = (__u32)target + 1;
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(pgn_sched_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return on_switch(preempt, prev, next, true);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(pgn_sched_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return on_switch(preempt, prev, next, false);
}
