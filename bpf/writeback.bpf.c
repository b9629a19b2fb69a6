// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * writeback: dirty throttling of the target cgroups' tasks. balance_dirty_pages() runs in the
 * task that dirtied pages; when dirty pages outrun writeback it sleeps there for `pause`
 * (jiffies, reported by the tracepoint in ms). Per thread of each target and per device (bdi)
 * of each target: pauses, time paused, the longest pause, and at the longest the dirty state the
 * kernel throttled on (dirty vs limit, wb_dirty vs wb_setpoint). Both maps are drained each
 * window.
 *
 * The classic tracepoint, not tp_btf/raw_tp: its fields are what the kernel computed in
 * TP_fast_assign (pause and period converted from jiffies with the kernel's HZ, the setpoints,
 * the bdi's name, the writeback's cgroup), while the raw arguments are a bdi_writeback and a
 * dirty_throttle_control whose layout changed across kernels, in jiffies.
 *
 * The first instructions are cheap: an event with no pause (the kernel also fires it when the
 * task is below its ratelimit and returns at once) ends before any map lookup; then the task's
 * cgroup (v2, else its v1 memory cgroup) must be a target.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NS_PER_MS 1000000ULL

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct pgn_writeback_pid_key);
    __type(value, struct pgn_writeback_pid_value);
} writeback_by_pid SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct pgn_writeback_bdi_key);
    __type(value, struct pgn_writeback_bdi_value);
} writeback_by_bdi SEC(".maps");

/* Bounded: a value beyond this many ms is not a pause (the kernel caps one at MAX_PAUSE, 200 ms). */
static __always_inline __u64 ms_to_ns(long ms)
{
    if (ms <= 0)
        return 0;
    if ((__u64)ms > 1000000000ULL)
        return 1000000000ULL * NS_PER_MS;
    return (__u64)ms * NS_PER_MS;
}

SEC("tracepoint/writeback/balance_dirty_pages")
int pgn_wb_pause(struct trace_event_raw_balance_dirty_pages *ctx)
{
    long pause_ms = ctx->pause;
    if (pause_ms <= 0)
        return 0;
    int target = pgn_current_target(PGN_CGROUP_V1_MEMORY);
    if (target < 0)
        return 0;

    __u64 id = bpf_get_current_pid_tgid();
    __u64 pause = ms_to_ns(pause_ms);

    struct pgn_writeback_pid_key pkey = {.target = target, .pid = (__u32)id};
    struct pgn_writeback_pid_value *pv = bpf_map_lookup_elem(&writeback_by_pid, &pkey);
    if (!pv) {
        struct pgn_writeback_pid_value zero = {.tgid = id >> 32};
        bpf_get_current_comm(zero.comm, sizeof(zero.comm));
        bpf_map_update_elem(&writeback_by_pid, &pkey, &zero, BPF_NOEXIST);
        pv = bpf_map_lookup_elem(&writeback_by_pid, &pkey);
    }
    if (pv) {
        __sync_fetch_and_add(&pv->pauses, 1);
        __sync_fetch_and_add(&pv->paused_ns, pause);
        if (pause > pv->max_pause_ns)
            pv->max_pause_ns = pause;
    }

    struct pgn_writeback_bdi_key bkey = {.target = target};
    /* Not a direct copy: the verifier refuses loads through a ctx pointer moved to the field. */
    bpf_probe_read_kernel(bkey.bdi, sizeof(bkey.bdi), ctx->bdi);
    bkey.bdi[PGN_BDI_NAME_LEN - 1] = 0;
    struct pgn_writeback_bdi_value *bv = bpf_map_lookup_elem(&writeback_by_bdi, &bkey);
    if (!bv) {
        struct pgn_writeback_bdi_value zero = {};
        bpf_map_update_elem(&writeback_by_bdi, &bkey, &zero, BPF_NOEXIST);
        bv = bpf_map_lookup_elem(&writeback_by_bdi, &bkey);
        if (!bv)
            return 0;
    }
    __sync_fetch_and_add(&bv->pauses, 1);
    __sync_fetch_and_add(&bv->paused_ns, pause);
    /* The snapshot at the longest pause: two threads racing here may mix their fields, which
       only blurs which of two nearly equal pauses is shown. */
    if (pause > bv->max_pause_ns) {
        bv->max_pause_ns = pause;
        bv->max_period_ns = ms_to_ns(ctx->period);
        bv->max_paused_ns = ms_to_ns(ctx->paused);
        bv->dirty = ctx->dirty;
        bv->limit = ctx->limit;
        bv->setpoint = ctx->setpoint;
        bv->wb_dirty = ctx->wb_dirty;
        bv->wb_setpoint = ctx->wb_setpoint;
        bv->cgroup_ino = ctx->cgroup_ino;
        bv->tgid = id >> 32;
    }
    return 0;
}
