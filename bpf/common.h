/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Shared by every pgnode probe: the target-cgroup filter, CO-RE readers for cgroup ids on
 * cgroup v1 and v2, and a log2 helper. Include after vmlinux.h and the libbpf headers.
 *
 * Map conventions: maps are named after what they hold; per-target aggregates are arrays
 * indexed by the target index the `targets` map gives; nothing but rare events goes to user
 * space through a ring buffer.
 */
#ifndef PGNODE_BPF_COMMON_H
#define PGNODE_BPF_COMMON_H

#include "pgnode_probe_types.h"

/* Target cgroups: {id, kind} -> target index. Filled by user space before attaching. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PGN_MAX_TARGETS * 3);
    __type(key, struct pgn_target_key);
    __type(value, __u32);
} targets SEC(".maps");

/* kernfs_node ids were a union {ino, generation} before 5.5 (commit 67c0496e87d1). */
union kernfs_node_id___pre55 {
    struct {
        __u32 ino;
        __u32 generation;
    };
    __u64 id;
};

struct kernfs_node___pre55 {
    union kernfs_node_id___pre55 id;
} __attribute__((preserve_access_index));

/* blkio's subsystem id was renamed io_cgrp_id in 4.3; keep the old name reachable. */
enum cgroup_subsys_id___pre43 {
    blkio_cgrp_id___pre43 = 0,
};

/* The id user space sees as the inode number of the cgroup's directory. */
static __always_inline __u64 pgn_kernfs_id(struct kernfs_node *kn)
{
    if (!kn)
        return 0;
    if (bpf_core_type_exists(union kernfs_node_id___pre55)) {
        struct kernfs_node___pre55 *old = (void *)kn;
        return BPF_CORE_READ(old, id.ino);
    }
    return BPF_CORE_READ(kn, id);
}

/* The id of a cgroup (any hierarchy), and its kind: hierarchy 0 is the unified one. */
static __always_inline __u64 pgn_cgroup_id(struct cgroup *cgrp, __u32 *kind, __u32 v1_kind)
{
    if (!cgrp)
        return 0;
    int hierarchy = BPF_CORE_READ(cgrp, root, hierarchy_id);
    *kind = hierarchy == 0 ? PGN_CGROUP_V2 : v1_kind;
    return pgn_kernfs_id(BPF_CORE_READ(cgrp, kn));
}

/* The subsystem index of the v1 controller for `kind`, or -1 when the kernel lacks it. */
static __always_inline int pgn_subsys_index(__u32 kind)
{
    if (kind == PGN_CGROUP_V1_MEMORY) {
        if (bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
            return bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
        return -1;
    }
    if (kind == PGN_CGROUP_V1_BLKIO) {
        if (bpf_core_enum_value_exists(enum cgroup_subsys_id, io_cgrp_id))
            return bpf_core_enum_value(enum cgroup_subsys_id, io_cgrp_id);
        if (bpf_core_enum_value_exists(enum cgroup_subsys_id___pre43, blkio_cgrp_id___pre43))
            return bpf_core_enum_value(enum cgroup_subsys_id___pre43, blkio_cgrp_id___pre43);
        return -1;
    }
    return -1;
}

/*
 * The id of the cgroup a task belongs to in the hierarchy of the v1 controller `kind`
 * (task->cgroups->subsys[id]->cgroup->kn->id). On a v2 node the controller's css lives in the
 * unified hierarchy, and `*out_kind` says so.
 */
static __always_inline __u64 pgn_task_controller_cgroup(struct task_struct *task, __u32 kind, __u32 *out_kind)
{
    int index = pgn_subsys_index(kind);
    if (index < 0 || index >= CGROUP_SUBSYS_COUNT)
        return 0;
    struct css_set *cset = BPF_CORE_READ(task, cgroups);
    if (!cset)
        return 0;
    struct cgroup_subsys_state *css = NULL;
    bpf_probe_read_kernel(&css, sizeof(css), &cset->subsys[index]);
    if (!css)
        return 0;
    return pgn_cgroup_id(BPF_CORE_READ(css, cgroup), out_kind, kind);
}

static __always_inline int pgn_lookup_target(__u64 id, __u32 kind)
{
    if (!id)
        return -1;
    struct pgn_target_key key = {.cgroup_id = id, .kind = kind};
    __u32 *index = bpf_map_lookup_elem(&targets, &key);
    if (!index || *index >= PGN_MAX_TARGETS)
        return -1;
    return *index;
}

/*
 * The target the current task belongs to, or -1: by its unified-hierarchy cgroup, else by its
 * cgroup in the hierarchy of the v1 controller `v1_kind` (memory or blkio).
 */
static __always_inline int pgn_current_target(__u32 v1_kind)
{
    int target = pgn_lookup_target(bpf_get_current_cgroup_id(), PGN_CGROUP_V2);
    if (target >= 0)
        return target;
    __u32 kind = v1_kind;
    __u64 id = pgn_task_controller_cgroup((struct task_struct *)bpf_get_current_task(), v1_kind, &kind);
    return pgn_lookup_target(id, kind);
}

/* floor(log2(v)) for v > 0, 0 for v == 0. */
static __always_inline __u32 pgn_log2(__u64 v)
{
    __u32 r = 0, shift;
    shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
    shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
    shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
    shift = (v > 0xF) << 2; v >>= shift; r |= shift;
    shift = (v > 0x3) << 1; v >>= shift; r |= shift;
    r |= (v >> 1);
    return r;
}

static __always_inline void pgn_hist_add(struct pgn_hist *hist, __u64 value)
{
    __u32 slot = pgn_log2(value);
    if (slot >= PGN_HIST_SLOTS)
        slot = PGN_HIST_SLOTS - 1;
    __sync_fetch_and_add(&hist->slots[slot], 1);
}

/* For a PERCPU map's value: a plain increment (no other CPU writes it). */
static __always_inline void pgn_hist_add_percpu(struct pgn_hist *hist, __u64 value)
{
    __u32 slot = pgn_log2(value);
    if (slot >= PGN_HIST_SLOTS)
        slot = PGN_HIST_SLOTS - 1;
    hist->slots[slot]++;
}

/* A task's process id in its own (innermost) pid namespace: the container's view. */
static __always_inline __u32 pgn_ns_tgid(struct task_struct *task)
{
    struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
    if (!pid)
        return 0;
    unsigned int level = BPF_CORE_READ(pid, level);
    struct upid upid = {};
    bpf_core_read(&upid, sizeof(upid), &pid->numbers[level]);
    return upid.nr;
}

/* The start of a task's process title: its argv area as the process last wrote it (PostgreSQL
   rewrites it: "postgres: user db [local] SELECT"). Only for the current task (a user read). */
static __always_inline void pgn_read_title(struct task_struct *task, char *title)
{
    unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
    if (!arg_start || bpf_probe_read_user_str(title, PGN_TITLE_LEN, (const void *)arg_start) < 0)
        title[0] = 0;
}

/* The task state was `state` (long) before 5.14. */
struct task_struct___pre514 {
    long state;
} __attribute__((preserve_access_index));

/* 6.18's per-task throttling: a throttled task is marked in the task itself. */
struct task_struct___throttled {
    bool throttled;
} __attribute__((preserve_access_index));

/* A task's state (0: runnable). `btf`, a constant, makes the read a direct load (tp_btf). */
static __always_inline __u32 pgn_task_state(struct task_struct *task, bool btf)
{
    if (bpf_core_field_exists(task->__state))
        return btf ? task->__state : BPF_CORE_READ(task, __state);
    struct task_struct___pre514 *old = (void *)task;
    return (__u32)BPF_CORE_READ(old, state);
}

/* Whether the task's run queue (or an ancestor's) is throttled by a CFS quota now. */
static __always_inline bool pgn_task_throttled(struct task_struct *task)
{
    struct task_struct___throttled *t = (void *)task;
    if (bpf_core_field_exists(t->throttled) && BPF_CORE_READ(t, throttled))
        return true;
    struct cfs_rq *cfs = BPF_CORE_READ(task, se.cfs_rq);
    if (!cfs)
        return false;
    if (bpf_core_field_exists(cfs->throttle_count))
        return BPF_CORE_READ(cfs, throttle_count) > 0;
    return false;
}

/* How many task groups up from a task's own pgn_groups_throttled_ns looks (container, pod, QoS
   class, kubepods: Kubernetes sets quotas on the first two). */
#define PGN_THROTTLE_LEVELS 4

/* The CFS bandwidth throttled time (ns, cumulative: cpu.stat's throttled_usec) of the task's
   group and its ancestors, summed: it grows whenever one of them comes out of throttling. */
static __always_inline __u64 pgn_groups_throttled_ns(struct task_struct *task)
{
    struct cfs_rq *cfs = BPF_CORE_READ(task, se.cfs_rq);
    if (!cfs || !bpf_core_field_exists(cfs->tg))
        return 0;
    struct task_group *tg = BPF_CORE_READ(cfs, tg);
    __u64 sum = 0;
    for (int i = 0; i < PGN_THROTTLE_LEVELS && tg; i++) {
        sum += BPF_CORE_READ(tg, cfs_bandwidth.throttled_time);
        tg = BPF_CORE_READ(tg, parent);
    }
    return sum;
}

#endif
