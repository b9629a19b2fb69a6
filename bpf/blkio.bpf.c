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
 * own completions go to its own histogram. Latencies run to completion from the time the
 * kernel stamped the request (rq->start_time_ns, set just before insert), or from insert (or
 * issue) where it stamps none.
 *
 * Cost (this runs for every request of every cgroup): no hash map is written per request on
 * the common paths. A target request with a bio is remembered by its tag: the kernel names
 * every request of a hardware queue by a tag (the scheduler's, else the driver's) for its
 * whole life, and preallocates one request structure per tag. Each hardware queue where a
 * target has had requests gets a range of PGN_BLK_TAGS entries in an array (blk_tags), so
 * insert and completion find the request's entry by index, next to the queue's entry that
 * they look up anyway. Another cgroup's request gets no state at all: it is recognised at
 * completion from what the kernel keeps in the request itself, its bio's owner and
 * rq->start_time_ns. What fits neither (requests without a bio; other cgroups' requests the
 * kernel did not stamp: no I/O accounting and no scheduler; tags beyond the range; queues
 * beyond PGN_BLK_TAG_RANGES) has per-request state in an LRU hash keyed by the request's
 * address, as a fallback, and others' requests only in queues where a target has had requests.
 * Requests that went through an I/O scheduler were counted at insert, so issue skips them at
 * once. The waiting counts of all targets in a queue and the per-device counts are one map
 * entry per hardware queue, keyed by the queue's address.
 *
 * A request is tracked only when it was allocated after every program was attached (user space
 * writes that time to blk_state; else the first completion seen stands for it). A tag entry
 * (or state) left behind by a request that never completes (merged into another, or whose
 * completion no program saw) is recognised as stale when the tag is used again (a later
 * stamp, another target) and its waiting count is given back then; a tag entry held when its
 * request is inserted or issued again (requeued, or inserted then issued) is that request's,
 * counted once. Decrements never take a waiting count below zero. See docs/findings.md
 * (blkio.noise) for what is left.
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
#define STATE_SINCE 0      /* monotonic ns from which requests are tracked (0: not yet) */
#define STATE_EVICTED 1    /* target requests whose state was evicted before they completed */
#define STATE_TAG_RANGES 2 /* tag ranges handed out so far (may pass PGN_BLK_TAG_RANGES a little) */

/* Tags followed per hardware queue (NVMe's default depth is 1023), and queues with a range. */
#define PGN_BLK_TAGS 1024
#define PGN_BLK_TAG_RANGES 64

/* A tag of a hardware queue, while a target's request holds it (an entry of blk_tags). */
struct pgn_blk_tag {
    __u64 start_ns;  /* rq->start_time_ns at insert (or issue); bpf_ktime_get_ns() then if unstamped */
    __u32 held;      /* 1 + the target whose request holds the tag; 0: free */
    __u32 stamped;   /* start_ns is the kernel's stamp, which tells a later use of the tag */
};

/* Entry range * PGN_BLK_TAGS + tag: the range is the queue's (pgn_blk_queue.tag_range - 1). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_BLK_TAG_RANGES * PGN_BLK_TAGS);
    __type(key, __u32);
    __type(value, struct pgn_blk_tag);
} blk_tags SEC(".maps");

/* Which queue holds each tag range (range -> queue key): a range is taken with BPF_NOEXIST. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PGN_BLK_TAG_RANGES);
    __type(key, __u32);
    __type(value, __u64);
} blk_tag_owners SEC(".maps");

/* The fallback per-request state (see struct pgn_blk_request). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
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

/*
 * First values of new blk_queues entries: entry r (< PGN_BLK_TAG_RANGES) is written only by the
 * creator that took tag range r, so the queue's entry comes into being with its range at once;
 * the last entry stays zero (a queue without a range).
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_BLK_TAG_RANGES + 1);
    __type(key, __u32);
    __type(value, struct pgn_blk_queue);
} blk_queue_init SEC(".maps");

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
    __uint(max_entries, 3);
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

/*
 * Takes a free range of blk_tags for the queue `key`; PGN_BLK_TAG_RANGES when none is left.
 * Without fetching atomics (-mcpu=v2: kernels before 5.12) a range is claimed by creating its
 * entry in blk_tag_owners; a creator that read the same count as a concurrent one tries the next.
 */
static __always_inline __u32 take_tag_range(__u64 key)
{
    __u32 slot = STATE_TAG_RANGES;
    __u64 *taken = bpf_map_lookup_elem(&blk_state, &slot);
    if (!taken)
        return PGN_BLK_TAG_RANGES;
#pragma unroll
    for (int attempt = 0; attempt < 4; attempt++) {
        __u64 next = *taken;
        if (next >= PGN_BLK_TAG_RANGES)
            break;
        __sync_fetch_and_add(taken, 1);
        __u32 range = next;
        if (bpf_map_update_elem(&blk_tag_owners, &range, &key, BPF_NOEXIST) == 0)
            return range;
    }
    return PGN_BLK_TAG_RANGES;
}

/*
 * The request's queue entry; created when `create`, with its device, queue number and a tag
 * range (none when all are taken: its target requests then have blk_requests state).
 */
static __always_inline struct pgn_blk_queue *queue_entry(struct request *rq, __u64 key, bool create)
{
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &key);
    if (queue || !create)
        return queue;
    __u32 range = take_tag_range(key);
    struct pgn_blk_queue *init = bpf_map_lookup_elem(&blk_queue_init, &range);
    if (!init)
        return NULL;
    if (range < PGN_BLK_TAG_RANGES) {
        /* This creator's alone (it took the range): the entry comes into being with it. */
        init->dev = request_dev(rq);
        init->hctx = request_hctx(rq);
        init->tag_range = range + 1;
    }
    /* A concurrent creator may win: its entry is the queue's (and this range stays unused). */
    bpf_map_update_elem(&blk_queues, &key, init, BPF_NOEXIST);
    queue = bpf_map_lookup_elem(&blk_queues, &key);
    if (queue && range >= PGN_BLK_TAG_RANGES) {
        /* Made from the zero entry: a concurrent creator writes the same values. */
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

/*
 * When the kernel stamped the request for its current use (0 when it did not): at allocation,
 * and again just before insert when the queue does I/O accounting.
 */
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

/* The blkg the request's (first) bio is charged to: NULL without a bio or blk-cgroup. */
static __always_inline struct blkcg_gq *request_blkg(struct request *rq, bool btf)
{
    struct bio *bio = READ(btf, rq, bio);
    if (!bio || !bpf_core_field_exists(bio->bi_blkg))
        return NULL;
    return READ(btf, bio, bi_blkg);
}

/* The owner of the request's bio (bio->bi_blkg->blkcg) and its target (-1 if none); *id is 0 without one. */
static __always_inline int request_bio_owner(struct request *rq, __u64 *id, __u32 *kind, bool btf)
{
    *id = 0;
    struct blkcg_gq *blkg = request_blkg(rq, btf);
    if (!blkg)
        return -1;
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
    return *id ? pgn_lookup_target(*id, *kind) : -1;
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
    __u64 t = (__u32)target;
    /* Checked here, on the register that indexes (the caller's checks may be on a copy). */
    barrier_var(t);
    if (t >= PGN_MAX_TARGETS)
        return;
    int *waiting = &queue->waiting[t];
    if (delta > 0 || *waiting > 0)
        __sync_fetch_and_add(waiting, delta);
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

/*
 * The tag that names the request in its hardware queue from allocation to completion: the
 * scheduler's when the queue has one, else the driver's (negative: none).
 */
static __always_inline int request_tag(struct request *rq, bool btf)
{
    int tag = READ(btf, rq, internal_tag);
    return tag >= 0 ? tag : READ(btf, rq, tag);
}

/*
 * The request's blk_tags entry, or NULL when it has none (it then has blk_requests state, if
 * any): a request charged to a bio's owner, in a queue with a tag range, its tag inside it.
 * The same at insert, issue and completion: a queue's range never changes, nor the tag.
 */
static __always_inline struct pgn_blk_tag *tag_entry(struct request *rq, struct pgn_blk_queue *queue, bool btf)
{
    __u32 range = queue->tag_range;
    if (!range || range > PGN_BLK_TAG_RANGES || !request_blkg(rq, btf))
        return NULL;
    int tag = request_tag(rq, btf);
    if (tag < 0 || tag >= PGN_BLK_TAGS)
        return NULL;
    __u32 index = (range - 1) * PGN_BLK_TAGS + (__u32)tag;
    return bpf_map_lookup_elem(&blk_tags, &index);
}

/*
 * Is the held tag entry left by an earlier use of the tag, not the request now using it? Held
 * for another target (when `target` is known), stamped where the request is not (or the other
 * way round), or stamped before the request: the kernel stamps every use of a request
 * structure anew, and the same request keeps its stamp (a merge can only lower it: the kernel
 * keeps the earlier of the two requests' stamps).
 */
static __always_inline bool tag_stale(struct pgn_blk_tag *tag, int target, __u64 alloc_ns)
{
    if (target >= 0 && tag->held != (__u32)target + 1)
        return true;
    if (tag->stamped != (alloc_ns != 0))
        return true;
    return alloc_ns > tag->start_ns;
}

/*
 * A target's request enters its queue under its tag entry. Held already by this request
 * (inserted then issued, or inserted again after a requeue): counted once. Held by an earlier
 * use of the tag that never completed (merged into another request, or a completion no program
 * saw): that one's waiting count is given back.
 */
static __always_inline void hold_tag(struct pgn_blk_queue *queue, struct pgn_blk_tag *tag, int target,
                                     __u64 alloc_ns)
{
    __u32 held = tag->held;
    if (held) {
        if (!tag_stale(tag, target, alloc_ns))
            return;
        waiting_add(queue, (int)held - 1, -1);
    }
    tag->start_ns = alloc_ns ? alloc_ns : bpf_ktime_get_ns();
    tag->stamped = alloc_ns != 0;
    tag->held = target + 1;
    waiting_add(queue, target, 1);
}

/*
 * A request without a tag entry enters a queue (at insert, or at issue when it skipped the
 * scheduler): per-request state in blk_requests (see struct pgn_blk_request).
 */
static __always_inline int track_state(struct request *rq, struct pgn_blk_queue *queue, __u64 queue_key,
                                       int target, __u64 cgroup_id, __u32 kind, __u64 alloc_ns, bool at_issue)
{
    __u64 key = (__u64)rq;
    struct pgn_blk_request *seen = NULL;
    if (at_issue) {
        seen = bpf_map_lookup_elem(&blk_requests, &key);
        /* Issued after its insert: already counted from the insert. */
        if (seen && !stale(seen, alloc_ns))
            return 0;
    }
    if (!queue) {
        if (seen) {
            /* Left by an earlier use of this structure (stale). */
            waiting_release(seen->queue, seen->target);
            bpf_map_delete_elem(&blk_requests, &key);
        }
        return 0;
    }
    struct pgn_blk_request state = {
        .start_ns = bpf_ktime_get_ns(),
        .alloc_ns = alloc_ns,
        .queue = queue_key,
        .cgroup_id = cgroup_id,
        .kind = kind,
        .target = target,
    };
    if (!at_issue) {
        /* Usually a new request: one update, no lookup before it. */
        if (bpf_map_update_elem(&blk_requests, &key, &state, BPF_NOEXIST) == 0) {
            waiting_add(queue, target, 1);
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
    waiting_add(queue, target, 1);
    return 0;
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
    __u64 cgroup_id;
    __u32 kind = PGN_CGROUP_V2;
    bool from_bio = false;
    int target = request_owner(rq, &cgroup_id, &kind, &from_bio, at_issue, btf);
    /* Another cgroup's request that the kernel stamped, with a bio: its completion tells all. */
    if (target < 0 && alloc_ns && from_bio)
        return 0;
    __u64 queue_key_ = queue_key(rq, btf);
    /* Others' requests get state only in queues where targets have had requests. */
    struct pgn_blk_queue *queue = queue_entry(rq, queue_key_, target >= 0);
    if (queue && target >= 0 && from_bio) {
        struct pgn_blk_tag *tag = tag_entry(rq, queue, btf);
        if (tag) {
            hold_tag(queue, tag, target, alloc_ns);
            return 0;
        }
    }
    return track_state(rq, queue, queue_key_, target, cgroup_id, kind, alloc_ns, at_issue);
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

/* Microseconds from `start_ns` until now (bpf_ktime_get_ns(), the NMI-safe clock, may trail the kernel's stamp). */
static __always_inline __u64 since_us(__u64 start_ns)
{
    __u64 now = bpf_ktime_get_ns();
    return now > start_ns ? (now - start_ns) / 1000 : 0;
}

/* A target's own request completed in `queue` (already taken off its waiting count). */
static __always_inline void own(struct pgn_blk_queue *queue, __u32 target, __u64 latency_us)
{
    __u64 t = target;
    barrier_var(t);
    if (t >= PGN_MAX_TARGETS)
        return;
    __sync_fetch_and_add(&queue->own_requests[t], 1);
    struct pgn_hist *hist = bpf_map_lookup_elem(&blk_own_hist, &target);
    if (hist)
        pgn_hist_add_percpu(hist, latency_us);
    struct pgn_blk_counts *counts = bpf_map_lookup_elem(&blk_counts, &target);
    if (counts)
        counts->own_requests++;
}

/*
 * A request completed that no target holds: another cgroup's, which the kernel stamped and whose
 * bio names its owner, is noise for the targets waiting in its queue. A target's request gets
 * here when it was never counted (in flight before tracking began, or neither inserted nor
 * issued: an empty flush that the flush machinery ends itself after its own flush request) and
 * counts for nothing.
 */
static __always_inline void untracked_stamped(struct request *rq, struct pgn_blk_queue *queue, __u64 alloc_ns,
                                              bool btf)
{
    /* No target waits in this queue: no noise. */
    if (queue->waiting_any <= 0)
        return;
    __u64 *since = tracking_since();
    if (!since || alloc_ns < *since)
        return;
    __u64 id;
    __u32 kind = PGN_CGROUP_V2;
    int target = request_bio_owner(rq, &id, &kind, btf);
    if (!id || target >= 0)
        return;
    noise(queue, id, kind, since_us(alloc_ns));
}

/*
 * A request without a tag entry completed with no state of its own. Another cgroup's request:
 * its bio names its owner and rq->start_time_ns its start. A target request: it was in flight
 * before tracking began, or its state was evicted from the LRU map (more requests in flight
 * than it holds), and it still counts as waiting: give that back.
 */
static __always_inline void untracked(struct request *rq, struct pgn_blk_queue *queue, __u64 alloc_ns, bool btf)
{
    __u64 *since = tracking_since();
    if (!since || !alloc_ns || alloc_ns < *since)
        return;
    /* No target waits in this queue: neither noise nor a count to give back. */
    if (queue->waiting_any <= 0)
        return;
    __u64 id;
    __u32 kind = PGN_CGROUP_V2;
    int target = request_bio_owner(rq, &id, &kind, btf);
    if (!id)
        return; /* without a bio it would have had state: in flight before tracking began */
    if (target < 0) {
        noise(queue, id, kind, since_us(alloc_ns));
        return;
    }
    waiting_add(queue, target, -1);
    __u32 evicted_slot = STATE_EVICTED;
    __u64 *evicted = bpf_map_lookup_elem(&blk_state, &evicted_slot);
    if (evicted)
        __sync_fetch_and_add(evicted, 1);
}

/* A request without a tag entry completed: by its blk_requests state, if it has any. */
static __always_inline int complete_state(struct request *rq, struct pgn_blk_queue *queue, __u64 alloc_ns, bool btf)
{
    __u64 key = (__u64)rq;
    struct pgn_blk_request *found = bpf_map_lookup_elem(&blk_requests, &key);
    if (!found) {
        untracked(rq, queue, alloc_ns, btf);
        return 0;
    }
    struct pgn_blk_request state = *found;
    bpf_map_delete_elem(&blk_requests, &key);
    if (stale(&state, alloc_ns)) {
        /* Left by an earlier use of this request structure that never completed (merged away). */
        waiting_release(state.queue, state.target);
        untracked(rq, queue, alloc_ns, btf);
        return 0;
    }
    __u64 latency_us = since_us(state.start_ns);
    if (state.target >= 0 && state.target < PGN_MAX_TARGETS) {
        waiting_add(queue, state.target, -1);
        own(queue, state.target, latency_us);
        return 0;
    }
    /* Someone else's request (one the kernel gave no timestamp or bio): noise for waiting targets. */
    noise(queue, state.cgroup_id, state.kind, latency_us);
    return 0;
}

static __always_inline int complete(struct request *rq, bool btf)
{
    __u64 key = queue_key(rq, btf);
    struct pgn_blk_queue *queue = bpf_map_lookup_elem(&blk_queues, &key);
    if (!queue) {
        /* No target has had requests in this queue: nothing waits or is held here. */
        __u64 *since = tracking_since();
        /* Not armed by user space: requests are tracked from the first completion seen. */
        if (since && !*since)
            *since = bpf_ktime_get_ns();
        return 0;
    }
    __u64 alloc_ns = request_alloc_ns(rq, btf);
    struct pgn_blk_tag *tag = tag_entry(rq, queue, btf);
    if (!tag)
        return complete_state(rq, queue, alloc_ns, btf);
    __u32 held = tag->held;
    if (held) {
        tag->held = 0;
        waiting_add(queue, (int)held - 1, -1);
        if (!tag_stale(tag, -1, alloc_ns)) {
            own(queue, held - 1, since_us(tag->start_ns));
            return 0;
        }
        /* Left by an earlier use of the tag that never completed: given back above. */
    }
    if (alloc_ns)
        untracked_stamped(rq, queue, alloc_ns, btf);
    else
        complete_state(rq, queue, alloc_ns, btf); /* another cgroup's unstamped request has state */
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
