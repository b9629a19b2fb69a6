// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * blkio: block requests on blk-mq queues and the cross-cgroup noise a target waits behind.
 *
 * Each request is attributed to the owner of its bio (bio->bi_blkg->blkcg: how writeback and
 * async I/O are charged), else to the task that inserted it (requests without a bio that skip
 * the insert, such as flushes, to the root cgroup: see request_owner). Per hardware queue the
 * program counts how many requests of each target wait (inserted, or issued directly, and not
 * yet completed). When another cgroup's request completes in a queue where a target waits, its
 * latency goes to the target's noise histogram and is counted for that neighbour; a target's
 * own completions go to its own histogram (latency: complete - insert).
 *
 * Cost (this runs for every request of every cgroup): only target requests get per-request
 * state. Another cgroup's request is recognised at completion from what the kernel keeps in the
 * request itself: its bio's owner, and the time the kernel stamped it when allocating it
 * (rq->start_time_ns, just before insert: its latency is measured from there). Where the kernel
 * gives neither (no timestamp: no I/O accounting and no scheduler; or no bio: flushes,
 * passthrough), such a request gets state as well, and only in queues where a target has had
 * requests. Requests that went through an I/O scheduler were counted at insert, so issue skips
 * them at once. The waiting counts of all targets in a queue and the per-device counts are one
 * map entry per hardware queue, keyed by the queue's address: one lookup per request.
 *
 * Per-request state lives in an LRU hash (bounded). A request is tracked only when it was
 * allocated after every program was attached (user space writes that time to blk_state; else
 * the first completion seen stands for it), which lets the completion of a target request with
 * no state be recognised as an evicted one: its waiting count is then given back. State left
 * behind by a request that never completes (merged into another, or missed) is recognised as
 * stale when the same request structure is used again (the kernel preallocates them per tag):
 * replaced at the next insert of a target request, dropped at the completion of another's;
 * decrements never take a waiting count below zero. See docs/findings.md (blkio.noise) for what
 * is left.
 *
 * Two program sets: tp_btf (5.5+, BTF-typed arguments) and raw_tp (4.17+); the loader keeps
 * one. block_rq_insert/issue lost their request_queue argument in 5.11; request->rq_disk went
 * in 5.17 (the disk is then reached through the queue); RQF_USE_SCHED (6.5) is in the BTF only
 * where the flags are an enum (rqf_flags; 6.18 has it): without it issue looks the request up.
 * All are handled with CO-RE.
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

/* The id of a cgroup hierarchy's root directory (kernfs numbers it 1): "/" to user space. */
#define PGN_CGROUP_ROOT_ID 1

/* Slots of blk_state. */
#define STATE_SINCE 0   /* monotonic ns from which requests are tracked (0: not yet) */
#define STATE_EVICTED 1 /* target requests whose state was evicted before they completed */

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct pgn_blk_request);
} blk_requests SEC(".maps");

/* Keyed by the address of the hardware queue (see queue_key). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u64);
    __type(value, struct pgn_blk_queue);
} blk_queues SEC(".maps");

/* A zeroed pgn_blk_queue to create blk_queues entries from (never written). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct pgn_blk_queue);
} blk_queue_zero SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_blk_counts);
} blk_counts SEC(".maps");

/* Histograms per target and CPU (user space sums the CPUs): plain increments. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_hist);
} blk_own_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
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

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} blk_state SEC(".maps");

/* Another cgroup's completed request, as a target's noise (argument of pgn_blk_noise). */
struct pgn_blk_noise_event {
    __u64 cgroup_id;
    __u32 kind;
    __u32 pad;
    __u64 latency_us;
};

/*
 * ptr->field: in tp_btf programs (btf true) a direct load, which the verifier checks against the
 * kernel's BTF (no helper call); in raw_tp programs bpf_probe_read_kernel. `btf` is a constant
 * in every caller, so the other branch is compiled away. Both are CO-RE relocated.
 */
#define READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

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

/*
 * The blk_queues key of the request's hardware queue: the address of its blk_mq_hw_ctx (one
 * read, where (dev, queue number) would take five), or of its request_queue before 5.0.
 */
static __always_inline __u64 queue_key(struct request *rq, bool btf)
{
    if (bpf_core_field_exists(rq->mq_hctx)) {
        struct blk_mq_hw_ctx *hctx = READ(btf, rq, mq_hctx);
        if (hctx)
            return (__u64)hctx;
    }
    return (__u64)READ(btf, rq, q);
}

/* The request's queue entry; created (with its device and queue number) when `create`. */
static __always_inline struct pgn_blk_queue *queue_entry(struct request *rq, __u64 key, bool create)
{
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &key);
    if (queue || !create)
        return queue;
    __u32 zero_slot = 0;
    struct pgn_blk_queue *zero = bpf_map_lookup_elem(&blk_queue_zero, &zero_slot);
    if (!zero)
        return NULL;
    bpf_map_update_elem(&blk_queues, &key, zero, BPF_NOEXIST);
    queue = bpf_map_lookup_elem(&blk_queues, &key);
    if (queue) {
        /* A concurrent creator writes the same values. */
        queue->dev = request_dev(rq);
        queue->hctx = request_hctx(rq);
    }
    return queue;
}

/* Did the request go through an I/O scheduler? Those trace their inserts (false when unknown). */
static __always_inline bool request_scheduled(struct request *rq, bool btf)
{
    if (!bpf_core_enum_value_exists(enum rqf_flags, __RQF_USE_SCHED))
        return false;
    __u32 flags = READ(btf, rq, rq_flags);
    return flags & (1U << bpf_core_enum_value(enum rqf_flags, __RQF_USE_SCHED));
}

/* When the request structure was allocated for its current use (0 when the kernel did not stamp it). */
static __always_inline __u64 request_alloc_ns(struct request *rq, bool btf)
{
    if (!bpf_core_field_exists(rq->start_time_ns))
        return 0;
    return READ(btf, rq, start_time_ns);
}

/*
 * Is `state` left by an earlier use of the request structure (allocated anew since)? The
 * kernel's stamp is compared for equality: bpf_ktime_get_ns() (the NMI-safe clock) may read a
 * little behind the ktime_get_ns() the kernel stamped with just before.
 */
static __always_inline bool stale(struct pgn_blk_request *state, __u64 alloc_ns)
{
    return alloc_ns && state->alloc_ns != alloc_ns;
}

/* From when requests are tracked (0: not yet armed). */
static __always_inline __u64 *tracking_since(void)
{
    __u32 slot = STATE_SINCE;
    return bpf_map_lookup_elem(&blk_state, &slot);
}

/* The owner of the request's bio (bio->bi_blkg->blkcg) and its target (-1 if none); *id is 0 without one. */
static __always_inline int request_bio_owner(struct request *rq, __u64 *id, __u32 *kind, bool btf)
{
    *id = 0;
    struct bio *bio = READ(btf, rq, bio);
    if (bio && bpf_core_field_exists(bio->bi_blkg)) {
        struct blkcg_gq *blkg = READ(btf, bio, bi_blkg);
        if (blkg) {
            if (btf) {
                /* tp_btf needs 5.5+: kernfs_node->id is the 64-bit id (see pgn_kernfs_id). */
                struct cgroup *cgrp = blkg->blkcg->css.cgroup;
                if (cgrp) {
                    *kind = cgrp->root->hierarchy_id == 0 ? PGN_CGROUP_V2 : PGN_CGROUP_V1_BLKIO;
                    struct kernfs_node *kn = cgrp->kn;
                    *id = kn ? kn->id : 0;
                }
            } else {
                struct cgroup *cgrp = BPF_CORE_READ(blkg, blkcg, css.cgroup);
                *id = pgn_cgroup_id(cgrp, kind, PGN_CGROUP_V1_BLKIO);
            }
            if (*id)
                return pgn_lookup_target(*id, *kind);
        }
    }
    return -1;
}

/*
 * The cgroup that owns the request and the target it belongs to (-1 if none); *from_bio: by its
 * bio. Without a bio, the task that inserts the request owns it. A request without a bio seen
 * first at issue skipped the insert tracepoint (the flush machinery's flush request,
 * passthrough commands: the kernel puts them straight on the dispatch list), and is issued by
 * whichever task runs the queue (often another cgroup's, after inserting a request of its own):
 * it is counted as the kernel's (the root cgroup), never as a target's.
 */
static __always_inline int request_owner(struct request *rq, __u64 *id, __u32 *kind, bool *from_bio,
                                         bool at_issue, bool btf)
{
    int target = request_bio_owner(rq, id, kind, btf);
    *from_bio = *id != 0;
    if (*id)
        return target;
    *kind = PGN_CGROUP_V2;
    if (at_issue) {
        *id = PGN_CGROUP_ROOT_ID;
        return -1;
    }
    *id = bpf_get_current_cgroup_id();
    return pgn_current_target(PGN_CGROUP_V1_BLKIO);
}

/*
 * Adds delta (+1 or -1) to how many requests of `target` wait in a queue, and to the queue's
 * total. A decrement never takes a count below zero: a count that a lost increment (or a
 * concurrent decrement) would make negative heals instead of hiding noise.
 */
static __always_inline void waiting_add(struct pgn_blk_queue *queue, int target, int delta)
{
    if (target < 0 || target >= PGN_MAX_TARGETS)
        return;
    if (delta > 0 || queue->waiting[target] > 0)
        __sync_fetch_and_add(&queue->waiting[target], delta);
    if (delta > 0 || queue->waiting_any > 0)
        __sync_fetch_and_add(&queue->waiting_any, delta);
}

/* A target request stops waiting under state recorded earlier (requeued, stale or evicted). */
static __always_inline void waiting_release(__u64 queue_key, int target)
{
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &queue_key);
    if (queue)
        waiting_add(queue, target, -1);
}

/* A request enters a queue: at insert, or at issue when it skipped the scheduler. */
static __always_inline int track(struct request *rq, bool at_issue, bool btf)
{
    /* The I/O schedulers trace the insert of every request they queue: counted there. */
    if (at_issue && request_scheduled(rq, btf))
        return 0;
    __u64 *since = tracking_since();
    __u64 alloc_ns = request_alloc_ns(rq, btf);
    /* Not before every program is attached, nor requests already in flight then. */
    if (!since || !*since || (alloc_ns && alloc_ns < *since))
        return 0;
    __u64 key = (__u64)rq;
    struct pgn_blk_request *seen = NULL;
    if (at_issue) {
        seen = bpf_map_lookup_elem(&blk_requests, &key);
        /* Issued after its insert: already counted from the insert. */
        if (seen && !stale(seen, alloc_ns))
            return 0;
    }
    struct pgn_blk_request state = {.target = -1};
    bool from_bio = false;
    state.target = request_owner(rq, &state.cgroup_id, &state.kind, &from_bio, at_issue, btf);
    /* Another cgroup's request that the kernel stamped, with a bio: its completion tells all. */
    if (state.target < 0 && alloc_ns && from_bio) {
        if (seen) {
            /* Left by an earlier use of this structure (stale). */
            waiting_release(seen->queue, seen->target);
            bpf_map_delete_elem(&blk_requests, &key);
        }
        return 0;
    }
    state.queue = queue_key(rq, btf);
    /* Others' requests get state only in queues where targets have had requests. */
    struct pgn_blk_queue *queue = queue_entry(rq, state.queue, state.target >= 0);
    if (!queue) {
        if (seen) {
            waiting_release(seen->queue, seen->target);
            bpf_map_delete_elem(&blk_requests, &key);
        }
        return 0;
    }
    state.start_ns = bpf_ktime_get_ns();
    state.alloc_ns = alloc_ns;
    if (!at_issue) {
        /* Usually a new request: one update, no lookup before it. */
        if (bpf_map_update_elem(&blk_requests, &key, &state, BPF_NOEXIST) == 0) {
            waiting_add(queue, state.target, 1);
            return 0;
        }
        seen = bpf_map_lookup_elem(&blk_requests, &key);
    }
    if (seen) {
        /* Inserted again (requeued), or left by an earlier use of this structure (stale). */
        waiting_release(seen->queue, seen->target);
    }
    if (bpf_map_update_elem(&blk_requests, &key, &state, BPF_ANY) != 0) {
        if (seen)
            bpf_map_delete_elem(&blk_requests, &key);
        return 0;
    }
    waiting_add(queue, state.target, 1);
    return 0;
}

/*
 * Counts `event` (another cgroup's completed request) as noise for target `t`, which has
 * requests waiting in the same queue. A global function (5.6+): the verifier checks it once, not
 * once per target in its caller's loop, which keeps loading fast.
 */
__noinline int pgn_blk_noise(struct pgn_blk_noise_event *event, __u32 t)
{
    if (!event || t >= PGN_MAX_TARGETS)
        return 0;
    struct pgn_hist *noise = bpf_map_lookup_elem(&blk_noise_hist, &t);
    if (noise)
        pgn_hist_add_percpu(noise, event->latency_us);
    struct pgn_blk_counts *counts = bpf_map_lookup_elem(&blk_counts, &t);
    if (counts)
        counts->noise_requests++;
    struct pgn_blk_neighbour_key nk = {.cgroup_id = event->cgroup_id, .kind = event->kind, .target = t};
    __u64 *seen = bpf_map_lookup_elem(&blk_neighbours, &nk);
    if (seen) {
        __sync_fetch_and_add(seen, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&blk_neighbours, &nk, &one, BPF_NOEXIST);
    }
    return 0;
}

/* Another cgroup's request completed in `queue`: noise for every target waiting there. */
static __always_inline void noise(struct pgn_blk_queue *queue, __u64 cgroup_id, __u32 kind, __u64 latency_us)
{
    if (queue->waiting_any <= 0)
        return;
    struct pgn_blk_noise_event event = {.cgroup_id = cgroup_id, .kind = kind, .latency_us = latency_us};
    for (__u32 t = 0; t < PGN_MAX_TARGETS; t++) {
        if (queue->waiting[t] <= 0)
            continue;
        __sync_fetch_and_add(&queue->noise_requests[t], 1);
        pgn_blk_noise(&event, t);
    }
}

/*
 * A request completed with no state of its own. Another cgroup's request: its bio names its
 * owner and rq->start_time_ns its start. A target request: it was in flight before tracking
 * began, or its state was evicted from the LRU map (more requests in flight than it holds),
 * and it still counts as waiting: give that back.
 */
static __always_inline void untracked(struct request *rq, __u64 alloc_ns, bool btf)
{
    __u64 *since = tracking_since();
    if (!since)
        return;
    if (!*since) {
        *since = bpf_ktime_get_ns();
        return;
    }
    if (!alloc_ns || alloc_ns < *since)
        return;
    __u64 key = queue_key(rq, btf);
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &key);
    /* No target waits in this queue: neither noise nor a count to give back. */
    if (!queue || queue->waiting_any <= 0)
        return;
    __u64 id;
    __u32 kind = PGN_CGROUP_V2;
    int target = request_bio_owner(rq, &id, &kind, btf);
    if (!id)
        return; /* without a bio it would have had state: in flight before tracking began */
    if (target < 0) {
        __u64 now = bpf_ktime_get_ns();
        /* bpf_ktime_get_ns() is the NMI-safe reading of the clock: it may trail ktime_get_ns(). */
        noise(queue, id, kind, now > alloc_ns ? (now - alloc_ns) / 1000 : 0);
        return;
    }
    waiting_add(queue, target, -1);
    __u32 evicted_slot = STATE_EVICTED;
    __u64 *evicted = bpf_map_lookup_elem(&blk_state, &evicted_slot);
    if (evicted)
        __sync_fetch_and_add(evicted, 1);
}

static __always_inline int complete(struct request *rq, bool btf)
{
    __u64 key = (__u64)rq;
    __u64 alloc_ns = request_alloc_ns(rq, btf);
    struct pgn_blk_request *found = bpf_map_lookup_elem(&blk_requests, &key);
    if (!found) {
        untracked(rq, alloc_ns, btf);
        return 0;
    }
    struct pgn_blk_request state = *found;
    bpf_map_delete_elem(&blk_requests, &key);
    if (stale(&state, alloc_ns)) {
        /* Left by an earlier use of this request structure that never completed (merged away). */
        waiting_release(state.queue, state.target);
        untracked(rq, alloc_ns, btf);
        return 0;
    }
    __u64 latency_us = (bpf_ktime_get_ns() - state.start_ns) / 1000;
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &state.queue);
    if (!queue)
        return 0;

    if (state.target >= 0 && state.target < PGN_MAX_TARGETS) {
        __u32 target = state.target;
        waiting_add(queue, target, -1);
        __sync_fetch_and_add(&queue->own_requests[target], 1);
        struct pgn_hist *own = bpf_map_lookup_elem(&blk_own_hist, &target);
        if (own)
            pgn_hist_add_percpu(own, latency_us);
        struct pgn_blk_counts *counts = bpf_map_lookup_elem(&blk_counts, &target);
        if (counts)
            counts->own_requests++;
        return 0;
    }

    /* Someone else's request (one the kernel gave no timestamp or bio): noise for waiting targets. */
    noise(queue, state.cgroup_id, state.kind, latency_us);
    return 0;
}

/* ---- tp_btf (5.5+) ---- */

SEC("tp_btf/block_rq_insert")
int BPF_PROG(pgn_blk_ins_btf)
{
    if (bpf_core_type_matches(btf_trace_block_rq_insert___pre511))
        return track((struct request *)ctx[1], false, true);
    return track((struct request *)ctx[0], false, true);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(pgn_blk_iss_btf)
{
    if (bpf_core_type_matches(btf_trace_block_rq_issue___pre511))
        return track((struct request *)ctx[1], true, true);
    return track((struct request *)ctx[0], true, true);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(pgn_blk_cmp_btf, struct request *rq)
{
    return complete(rq, true);
}

/* ---- raw_tp fallback (4.17+) ---- */

SEC("raw_tp/block_rq_insert")
int BPF_PROG(pgn_blk_ins_raw)
{
    if (bpf_core_type_matches(btf_trace_block_rq_insert___pre511))
        return track((struct request *)ctx[1], false, false);
    return track((struct request *)ctx[0], false, false);
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(pgn_blk_iss_raw)
{
    if (bpf_core_type_matches(btf_trace_block_rq_issue___pre511))
        return track((struct request *)ctx[1], true, false);
    return track((struct request *)ctx[0], true, false);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(pgn_blk_cmp_raw, struct request *rq)
{
    return complete(rq, false);
}
