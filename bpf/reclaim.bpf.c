// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * reclaim: memory-cgroup reclaim and direct reclaim done by the target cgroups' tasks, per
 * thread: how often, how many pages it reclaimed, and how long it stalled (end - begin).
 * Reclaim runs in the context of the task that needed memory, so the current task is the one
 * that pays. On cgroup v1 the task is matched by its memory cgroup, on v2 by its cgroup.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum reclaim_kind {
    RECLAIM_MEMCG = 0,
    RECLAIM_DIRECT = 1,
};

struct begin_key {
    __u32 tid;
    __u32 kind;
};

struct begin_value {
    __u64 start_ns;
    __u32 target;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct begin_key);
    __type(value, struct begin_value);
} reclaim_begin SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct pgn_reclaim_key);
    __type(value, struct pgn_reclaim_value);
} reclaim_by_pid SEC(".maps");

static __always_inline int begin(__u32 kind)
{
    int target = pgn_current_target(PGN_CGROUP_V1_MEMORY);
    if (target < 0)
        return 0;
    struct begin_key key = {.tid = (__u32)bpf_get_current_pid_tgid(), .kind = kind};
    struct begin_value value = {.start_ns = bpf_ktime_get_ns(), .target = target};
    bpf_map_update_elem(&reclaim_begin, &key, &value, BPF_ANY);
    return 0;
}

static __always_inline int end(__u32 kind, __u64 nr_reclaimed)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct begin_key bkey = {.tid = (__u32)id, .kind = kind};
    struct begin_value *started = bpf_map_lookup_elem(&reclaim_begin, &bkey);
    if (!started)
        return 0;
    __u64 stall = bpf_ktime_get_ns() - started->start_ns;
    struct pgn_reclaim_key key = {.target = started->target, .pid = (__u32)id};
    bpf_map_delete_elem(&reclaim_begin, &bkey);

    struct pgn_reclaim_value *value = bpf_map_lookup_elem(&reclaim_by_pid, &key);
    if (!value) {
        struct pgn_reclaim_value zero = {.tgid = id >> 32};
        bpf_get_current_comm(zero.comm, sizeof(zero.comm));
        bpf_map_update_elem(&reclaim_by_pid, &key, &zero, BPF_NOEXIST);
        value = bpf_map_lookup_elem(&reclaim_by_pid, &key);
        if (!value)
            return 0;
    }
    if (kind == RECLAIM_MEMCG)
        __sync_fetch_and_add(&value->memcg_events, 1);
    else
        __sync_fetch_and_add(&value->direct_events, 1);
    __sync_fetch_and_add(&value->reclaimed_pages, nr_reclaimed);
    __sync_fetch_and_add(&value->stall_ns, stall);
    return 0;
}

SEC("tracepoint/vmscan/mm_vmscan_memcg_reclaim_begin")
int pgn_rcl_mcg_in(struct trace_event_raw_mm_vmscan_direct_reclaim_begin_template *ctx)
{
    return begin(RECLAIM_MEMCG);
}

SEC("tracepoint/vmscan/mm_vmscan_memcg_reclaim_end")
int pgn_rcl_mcg_out(struct trace_event_raw_mm_vmscan_direct_reclaim_end_template *ctx)
{
    return end(RECLAIM_MEMCG, ctx->nr_reclaimed);
}

SEC("tracepoint/vmscan/mm_vmscan_direct_reclaim_begin")
int pgn_rcl_dir_in(struct trace_event_raw_mm_vmscan_direct_reclaim_begin_template *ctx)
{
    return begin(RECLAIM_DIRECT);
}

SEC("tracepoint/vmscan/mm_vmscan_direct_reclaim_end")
int pgn_rcl_dir_out(struct trace_event_raw_mm_vmscan_direct_reclaim_end_template *ctx)
{
    return end(RECLAIM_DIRECT, ctx->nr_reclaimed);
}
