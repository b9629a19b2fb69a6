// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * blkio: block requests on blk-mq queues and the cross-cgroup noise a target waits behind.
 *
 * Each request is attributed to the owner of its bio (bio->bi_blkg->blkcg: how writeback and
 * async I/O are charged), else to the task that inserted it. Per device and hardware queue the
 * program counts how many requests of each target wait (inserted, or issued directly, and not
 * yet completed). When another cgroup's request completes in a queue where a target waits, its
 * latency (complete - insert) goes to the target's noise histogram and is counted for that
 * neighbour; a target's own completions go to its own histogram.
 *
 * Per-request state lives in an LRU hash (bounded). A request is tracked only when it was
 * allocated after every program was attached (user space writes that time to blk_state; else the
 * first completion seen stands for it), which lets the completion of a request with no state be recognised as an evicted
 * one: its target's waiting count is then given back. State left behind by a request that never
 * completes (merged into another, or missed) is recognised as stale when the same request
 * structure is used again (the kernel preallocates them per tag) and replaced; decrements never
 * take a waiting count below zero. See docs/findings.md (blkio.noise) for what is left.
 *
 * Two program sets: tp_btf (5.5+, BTF-typed arguments) and raw_tp (4.17+); the loader keeps
 * one. block_rq_insert/issue lost their request_queue argument in 5.11; request->rq_disk went
 * in 5.17 (the disk is then reached through the queue). Both are handled with CO-RE.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Before 5.11: block_rq_insert(q, rq) and block_rq_issue(q, rq). */
typedef void (*btf_trace_block_rq_insert___pre511)(void *, struct request_queue *, struct request *);
typedef void (*btf_trace_block_rq_issue___pre511)(void *, struct request_queue *, struct request *);

/* Before 5.17 the request named its disk; later only the queue does. */
struct request___pre517 {
    struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

struct request_queue___since516 {
    struct gendisk *disk;
} __attribute__((preserve_access_index));

/* Key of the "any target waits here" counter in blk_waiting. */
#define ANY_TARGET PGN_MAX_TARGETS

/* Slots of blk_state. */
#define STATE_SINCE 0   /* monotonic ns from which requests are tracked (0: not yet) */
#define STATE_EVICTED 1 /* target requests whose state was evicted before they completed */

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct pgn_blk_request);
} blk_requests SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct pgn_blk_queue_key);
    __type(value, __s64);
} blk_waiting SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_blk_counts);
} blk_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_hist);
} blk_own_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_hist);
} blk_noise_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct pgn_blk_neighbour_key);
    __type(value, __u64);
} blk_neighbours SEC(".maps");

/* The devices each target's requests went to (small: targets x disks). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct pgn_blk_device_key);
    __type(value, struct pgn_blk_device_counts);
} blk_devices SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} blk_state SEC(".maps");

static __always_inline struct gendisk *request_disk(struct request *rq)
{
    struct request___pre517 *old = (void *)rq;
    if (bpf_core_field_exists(old->rq_disk))
        return BPF_CORE_READ(old, rq_disk);
    struct request_queue___since516 *q = (void *)BPF_CORE_READ(rq, q);
    return BPF_CORE_READ(q, disk);
}

static __always_inline __u32 request_dev(struct request *rq)
{
    struct gendisk *disk = request_disk(rq);
    if (!disk)
        return 0;
    return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

static __always_inline __u32 request_hctx(struct request *rq)
{
    if (!bpf_core_field_exists(rq->mq_hctx))
        return 0;
    struct blk_mq_hw_ctx *hctx = BPF_CORE_READ(rq, mq_hctx);
    return hctx ? BPF_CORE_READ(hctx, queue_num) : 0;
}

/* When the request structure was allocated for its current use (0 when the kernel did not stamp it). */
static __always_inline __u64 request_alloc_ns(struct request *rq)
{
    if (!bpf_core_field_exists(rq->start_time_ns))
        return 0;
    return BPF_CORE_READ(rq, start_time_ns);
}

/* The owner of the request's bio (bio->bi_blkg->blkcg) and its target (-1 if none); *id is 0 without one. */
static __always_inline int request_bio_owner(struct request *rq, __u64 *id, __u32 *kind)
{
    *id = 0;
    struct bio *bio = BPF_CORE_READ(rq, bio);
    if (bio && bpf_core_field_exists(bio->bi_blkg)) {
        struct blkcg_gq *blkg = BPF_CORE_READ(bio, bi_blkg);
        if (blkg) {
            struct cgroup *cgrp = BPF_CORE_READ(blkg, blkcg, css.cgroup);
            *id = pgn_cgroup_id(cgrp, kind, PGN_CGROUP_V1_BLKIO);
            if (*id)
                return pgn_lookup_target(*id, *kind);
        }
    }
    return -1;
}

/* The cgroup that owns the request and the target it belongs to (-1 if none). */
static __always_inline int request_owner(struct request *rq, __u64 *id, __u32 *kind)
{
    int target = request_bio_owner(rq, id, kind);
    if (*id)
        return target;
    *id = bpf_get_current_cgroup_id();
    *kind = PGN_CGROUP_V2;
    return pgn_current_target(PGN_CGROUP_V1_BLKIO);
}

/*
 * Adds delta (+1 or -1) to how many requests of `target` wait in a queue, and to the queue's
 * total. A decrement never takes a count below zero: a count that a lost increment (or a
 * concurrent decrement) would make negative heals instead of hiding noise.
 */
static __always_inline void waiting_add(__u32 dev, __u32 hctx, __u32 target, __s64 delta)
{
    struct pgn_blk_queue_key keys[2] = {
        {.dev = dev, .hctx = hctx, .target = target},
        {.dev = dev, .hctx = hctx, .target = ANY_TARGET},
    };
    for (int i = 0; i < 2; i++) {
        __s64 *count = bpf_map_lookup_elem(&blk_waiting, &keys[i]);
        if (count) {
            if (delta > 0 || *count > 0)
                __sync_fetch_and_add(count, delta);
        } else if (delta > 0) {
            bpf_map_update_elem(&blk_waiting, &keys[i], &delta, BPF_NOEXIST);
        }
    }
}

static __always_inline void device_add(__u32 dev, __u32 target, bool noise)
{
    struct pgn_blk_device_key key = {.dev = dev, .target = target};
    struct pgn_blk_device_counts *counts = bpf_map_lookup_elem(&blk_devices, &key);
    if (!counts) {
        struct pgn_blk_device_counts zero = {};
        bpf_map_update_elem(&blk_devices, &key, &zero, BPF_NOEXIST);
        counts = bpf_map_lookup_elem(&blk_devices, &key);
        if (!counts)
            return;
    }
    if (noise)
        __sync_fetch_and_add(&counts->noise_requests, 1);
    else
        __sync_fetch_and_add(&counts->own_requests, 1);
}

/* A request enters a queue: at insert, or at issue when it skipped the scheduler. */
static __always_inline int track(struct request *rq, bool at_issue)
{
    __u32 since_slot = STATE_SINCE;
    __u64 *since = bpf_map_lookup_elem(&blk_state, &since_slot);
    __u64 alloc_ns = request_alloc_ns(rq);
    /* Not before every program is attached, nor requests already in flight then. */
    if (!since || !*since || (alloc_ns && alloc_ns < *since))
        return 0;
    __u64 key = (__u64)rq;
    struct pgn_blk_request *seen = bpf_map_lookup_elem(&blk_requests, &key);
    if (seen) {
        /* Left by an earlier use of this request structure that never completed (merged away). */
        bool stale = alloc_ns && seen->start_ns < alloc_ns;
        /* Issued after its insert: already counted from the insert. */
        if (at_issue && !stale)
            return 0;
        /* Inserted again (requeued) or stale: it stops waiting under its old state first. */
        if (seen->target >= 0)
            waiting_add(seen->dev, seen->hctx, seen->target, -1);
    }
    struct pgn_blk_request state = {.start_ns = bpf_ktime_get_ns()};
    state.target = request_owner(rq, &state.cgroup_id, &state.kind);
    state.dev = request_dev(rq);
    state.hctx = request_hctx(rq);
    if (bpf_map_update_elem(&blk_requests, &key, &state, BPF_ANY) != 0)
        return 0;
    if (state.target >= 0)
        waiting_add(state.dev, state.hctx, state.target, 1);
    return 0;
}

/*
 * Counts `state` (another cgroup's completed request) as noise for target `t` when `t` has
 * requests waiting in the same queue. A global function (5.6+): the verifier checks it once,
 * not once per loop iteration of its caller, which keeps loading fast.
 */
__noinline int pgn_blk_noise(struct pgn_blk_request *state, __u32 t, __u64 latency_us)
{
    if (!state || t >= PGN_MAX_TARGETS)
        return 0;
    struct pgn_blk_queue_key qk = {.dev = state->dev, .hctx = state->hctx, .target = t};
    __s64 *waiting = bpf_map_lookup_elem(&blk_waiting, &qk);
    if (!waiting || *waiting <= 0)
        return 0;
    struct pgn_hist *noise = bpf_map_lookup_elem(&blk_noise_hist, &t);
    if (noise)
        pgn_hist_add(noise, latency_us);
    struct pgn_blk_counts *counts = bpf_map_lookup_elem(&blk_counts, &t);
    if (counts)
        counts->noise_requests++;
    device_add(state->dev, t, true);
    struct pgn_blk_neighbour_key nk = {.cgroup_id = state->cgroup_id, .kind = state->kind, .target = t};
    __u64 *seen = bpf_map_lookup_elem(&blk_neighbours, &nk);
    if (seen) {
        __sync_fetch_and_add(seen, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&blk_neighbours, &nk, &one, BPF_NOEXIST);
    }
    return 0;
}

/*
 * A request completed with no state: in flight before tracking began, or tracked and evicted
 * from the LRU map (more requests in flight than it holds). An evicted target request still
 * counts as waiting: give that back, when its bio names the target.
 */
static __always_inline void untracked(struct request *rq)
{
    __u32 since_slot = STATE_SINCE;
    __u64 *since = bpf_map_lookup_elem(&blk_state, &since_slot);
    if (!since)
        return;
    if (!*since) {
        *since = bpf_ktime_get_ns();
        return;
    }
    __u64 alloc_ns = request_alloc_ns(rq);
    if (!alloc_ns || alloc_ns < *since)
        return;
    __u64 id;
    __u32 kind = PGN_CGROUP_V2;
    int target = request_bio_owner(rq, &id, &kind);
    if (target < 0 || target >= PGN_MAX_TARGETS)
        return;
    waiting_add(request_dev(rq), request_hctx(rq), target, -1);
    __u32 evicted_slot = STATE_EVICTED;
    __u64 *evicted = bpf_map_lookup_elem(&blk_state, &evicted_slot);
    if (evicted)
        __sync_fetch_and_add(evicted, 1);
}

static __always_inline int complete(struct request *rq)
{
    __u64 key = (__u64)rq;
    struct pgn_blk_request *found = bpf_map_lookup_elem(&blk_requests, &key);
    if (!found) {
        untracked(rq);
        return 0;
    }
    struct pgn_blk_request state = *found;
    bpf_map_delete_elem(&blk_requests, &key);
    __u64 latency_us = (bpf_ktime_get_ns() - state.start_ns) / 1000;

    if (state.target >= 0 && state.target < PGN_MAX_TARGETS) {
        __u32 target = state.target;
        waiting_add(state.dev, state.hctx, target, -1);
        struct pgn_hist *own = bpf_map_lookup_elem(&blk_own_hist, &target);
        if (own)
            pgn_hist_add(own, latency_us);
        struct pgn_blk_counts *counts = bpf_map_lookup_elem(&blk_counts, &target);
        if (counts)
            counts->own_requests++;
        device_add(state.dev, target, false);
        return 0;
    }

    /* Someone else's request: noise for every target waiting in the same queue. */
    struct pgn_blk_queue_key any = {.dev = state.dev, .hctx = state.hctx, .target = ANY_TARGET};
    __s64 *waiting_any = bpf_map_lookup_elem(&blk_waiting, &any);
    if (!waiting_any || *waiting_any <= 0)
        return 0;
    for (__u32 t = 0; t < PGN_MAX_TARGETS; t++)
        pgn_blk_noise(&state, t, latency_us);
    return 0;
}

/* ---- tp_btf (5.5+) ---- */

SEC("tp_btf/block_rq_insert")
int BPF_PROG(pgn_blk_ins_btf)
{
    if (bpf_core_type_matches(btf_trace_block_rq_insert___pre511))
        return track((struct request *)ctx[1], false);
    return track((struct request *)ctx[0], false);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(pgn_blk_iss_btf)
{
    if (bpf_core_type_matches(btf_trace_block_rq_issue___pre511))
        return track((struct request *)ctx[1], true);
    return track((struct request *)ctx[0], true);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(pgn_blk_cmp_btf, struct request *rq)
{
    return complete(rq);
}

/* ---- raw_tp fallback (4.17+) ---- */

SEC("raw_tp/block_rq_insert")
int BPF_PROG(pgn_blk_ins_raw)
{
    if (bpf_core_type_matches(btf_trace_block_rq_insert___pre511))
        return track((struct request *)ctx[1], false);
    return track((struct request *)ctx[0], false);
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(pgn_blk_iss_raw)
{
    if (bpf_core_type_matches(btf_trace_block_rq_issue___pre511))
        return track((struct request *)ctx[1], true);
    return track((struct request *)ctx[0], true);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(pgn_blk_cmp_raw, struct request *rq)
{
    return complete(rq);
}
