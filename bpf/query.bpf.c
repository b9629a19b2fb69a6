// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * query: the targets' statements, from PostgreSQL's USDT probes, and where their time went.
 *
 * Statement boundaries: query__start/query__done (the simple protocol: one Query message, its
 * parse, plan and execution) and query__execute__start/query__execute__done (PortalRun: the
 * extended protocol's Execute, and each portal a simple query runs, which is then nested and
 * not counted again). The USDT programs are attached per server binary file (libbpf's USDT
 * support, semaphores set by the kernel through the uprobe's reference counter), so backends
 * forked later are covered; containers sharing one binary all trap, and the first thing
 * query__start does is find the calling task's target (its v2 or v1 memory cgroup). The
 * other USDT programs look up the thread only.
 *
 * While a target's thread is inside a statement (an entry in `query_threads`), the scheduler
 * tracepoints split its time: sched_switch ends its time on a CPU (runnable still: a CPU wait,
 * flagged throttled when its run queue is throttled by its CFS quota; blocked with in_iowait:
 * an I/O wait; blocked inside lock__wait or lwlock__wait: a lock wait; any other sleep) and
 * ends its wait when it is switched in (a CPU wait during which the CFS bandwidth throttled
 * time of its group or an ancestor grew is a throttled one: its cfs_rq was off the CPU with
 * the task queued in it); sched_wakeup ends a sleep (it then waits for a CPU).
 * Reclaim inside a statement, the memory cgroup's (mm_vmscan_memcg_reclaim_begin/end: a
 * container at its memory limit) and the node's direct reclaim (mm_vmscan_direct_reclaim_*),
 * is counted besides.
 * At the statement's end its duration goes to the target's log2 histogram (µs) and totals
 * (per CPU), and when it is among its CPU's PGN_QUERY_TOP slowest of the window it is sent
 * through the ring buffer (with the first bytes of its text for the simple protocol).
 *
 * Cost: sched_switch and sched_wakeup run for every task of the node; each looks up the
 * switched tasks in `query_threads` (a hash keyed by thread id) and returns when they are not
 * inside a target's statement. The USDT probes trap into the kernel at each statement
 * (microseconds): the probe is opt-in (--query-latency).
 *
 * Two program sets: tp_btf (5.5+) and raw_tp (4.17+) for the scheduler and reclaim tracepoints;
 * the USDT programs are the same in both.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);
    __type(value, struct pgn_query_thread);
} query_threads SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_query_counts);
} query_counts SEC(".maps");

/* The current window's number (user space increments it each window). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} query_window SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} query_events SEC(".maps");

#define READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline __u32 current_tid(void)
{
    return (__u32)bpf_get_current_pid_tgid();
}

/* Ends the thread's current state at `now`. */
static __always_inline void close_state(struct pgn_query_thread *t, __u64 now)
{
    __u64 ns = now > t->since_ns ? now - t->since_ns : 0;
    __u32 state = t->state;
    if (state >= PGN_QUERY_STATES)
        state = PGN_QUERY_OTHER;
    t->state_ns[state] += ns;
    if (state == PGN_QUERY_CPU_WAIT && t->throttled)
        t->throttled_ns += ns;
    t->since_ns = now;
}

static __always_inline void begin(__u32 protocol, __u64 text)
{
    int target = pgn_current_target(PGN_CGROUP_V1_MEMORY);
    if (target < 0)
        return;
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id;
    __u64 now = bpf_ktime_get_ns();
    struct pgn_query_thread t = {};
    t.start_ns = now;
    t.since_ns = now;
    t.text = text;
    t.target = (__u32)target;
    t.tgid = (__u32)(id >> 32);
    t.state = PGN_QUERY_ON_CPU;
    t.protocol = protocol;
    if (bpf_map_update_elem(&query_threads, &tid, &t, BPF_ANY) != 0) {
        __u32 key = (__u32)target;
        struct pgn_query_counts *c = bpf_map_lookup_elem(&query_counts, &key);
        if (c)
            c->untracked++;
    }
}

/* Whether `ns` enters the CPU's slowest of the window; if so, it is inserted. */
static __always_inline bool enters_top(struct pgn_query_counts *c, __u64 ns, __u64 window)
{
    if (c->top_window != window) {
        for (int i = 0; i < PGN_QUERY_TOP; i++)
            c->top_ns[i] = 0;
        c->top_window = window;
    }
    if (ns <= c->top_ns[PGN_QUERY_TOP - 1])
        return false;
    /* Insert, largest first: shift the smaller ones down. */
    __u64 carry = ns;
    for (int i = 0; i < PGN_QUERY_TOP; i++) {
        if (carry > c->top_ns[i]) {
            __u64 old = c->top_ns[i];
            c->top_ns[i] = carry;
            carry = old;
        }
    }
    return true;
}

static __always_inline void finish(__u32 tid, struct pgn_query_thread *t)
{
    __u64 now = bpf_ktime_get_ns();
    close_state(t, now);
    if (t->reclaim_since && now > t->reclaim_since)
        t->reclaim_ns += now - t->reclaim_since;
    __u64 duration = now > t->start_ns ? now - t->start_ns : 0;
    __u32 key = t->target;
    struct pgn_query_counts *c = bpf_map_lookup_elem(&query_counts, &key);
    if (!c)
        goto done;
    __u32 protocol = t->protocol < PGN_QUERY_PROTOCOLS ? t->protocol : PGN_QUERY_EXTENDED;
    c->queries[protocol]++;
    c->total_ns += duration;
    for (int i = 0; i < PGN_QUERY_STATES; i++)
        c->state_ns[i] += t->state_ns[i];
    c->throttled_ns += t->throttled_ns;
    c->reclaim_ns += t->reclaim_ns;
    pgn_hist_add_percpu(&c->latency_us, duration / 1000);

    __u32 zero = 0;
    __u64 *window = bpf_map_lookup_elem(&query_window, &zero);
    __u64 w = window ? *window : 0;
    if (!enters_top(c, duration, w))
        goto done;
    struct pgn_query_event *e = bpf_ringbuf_reserve(&query_events, sizeof(*e), 0);
    if (!e) {
        c->slow_lost++;
        goto done;
    }
    c->slow_sent++;
    e->duration_ns = duration;
    for (int i = 0; i < PGN_QUERY_STATES; i++)
        e->state_ns[i] = t->state_ns[i];
    e->throttled_ns = t->throttled_ns;
    e->reclaim_ns = t->reclaim_ns;
    e->end_ns = now;
    e->window = w;
    e->target = t->target;
    e->tgid = t->tgid;
    e->pid = tid;
    e->protocol = protocol;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    e->ns_tgid = pgn_ns_tgid(task);
    pgn_read_title(task, e->title);
    e->text_len = 0;
    if (t->text) {
        long n = bpf_probe_read_user_str(e->text, sizeof(e->text), (const void *)t->text);
        e->text_len = n > 0 ? (int)n : 0;
    }
    if (e->text_len == 0)
        e->text[0] = 0;
    bpf_ringbuf_submit(e, 0);
done:
    bpf_map_delete_elem(&query_threads, &tid);
}

SEC("usdt")
int BPF_USDT(pgn_q_start, void *query)
{
    begin(PGN_QUERY_SIMPLE, (__u64)query);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_done)
{
    __u32 tid = current_tid();
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (t && t->protocol == PGN_QUERY_SIMPLE)
        finish(tid, t);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_ex_in)
{
    __u32 tid = current_tid();
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (t) {
        t->depth++;
        return 0;
    }
    begin(PGN_QUERY_EXTENDED, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_ex_out)
{
    __u32 tid = current_tid();
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (!t)
        return 0;
    if (t->depth > 0) {
        t->depth--;
        return 0;
    }
    if (t->protocol == PGN_QUERY_EXTENDED)
        finish(tid, t);
    return 0;
}

static __always_inline void lock_flag(__u8 flag, bool on)
{
    __u32 tid = current_tid();
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (!t)
        return;
    if (on)
        t->locks |= flag;
    else
        t->locks &= ~flag;
}

SEC("usdt")
int BPF_USDT(pgn_q_lk_in)
{
    lock_flag(PGN_QUERY_LOCK_HEAVY, true);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_lk_out)
{
    lock_flag(PGN_QUERY_LOCK_HEAVY, false);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_lw_in)
{
    lock_flag(PGN_QUERY_LOCK_LIGHT, true);
    return 0;
}

SEC("usdt")
int BPF_USDT(pgn_q_lw_out)
{
    lock_flag(PGN_QUERY_LOCK_LIGHT, false);
    return 0;
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next, bool btf)
{
    __u32 prev_tid = READ(btf, prev, pid);
    __u32 next_tid = READ(btf, next, pid);
    struct pgn_query_thread *p = prev_tid ? bpf_map_lookup_elem(&query_threads, &prev_tid) : NULL;
    struct pgn_query_thread *n = next_tid ? bpf_map_lookup_elem(&query_threads, &next_tid) : NULL;
    /* Each pointer tested on its own (the verifier refuses an OR of two pointers). */
    __u64 now = 0;
    if (p) {
        now = bpf_ktime_get_ns();
        close_state(p, now);
        p->throttled = 0;
        if (preempt || pgn_task_state(prev, btf) == 0) {
            p->state = PGN_QUERY_CPU_WAIT;
            p->throttled = pgn_task_throttled(prev);
            p->throttle_mark = pgn_groups_throttled_ns(prev);
        } else if (BPF_CORE_READ_BITFIELD_PROBED(prev, in_iowait)) {
            p->state = PGN_QUERY_IO_WAIT;
        } else if (p->locks) {
            p->state = PGN_QUERY_LOCK_WAIT;
        } else {
            p->state = PGN_QUERY_OTHER;
        }
    }
    if (n) {
        if (!now)
            now = bpf_ktime_get_ns();
        /* A quota that throttled the task's group while it waited (its cfs_rq was taken off
           the CPU with the task queued in it) makes the wait a throttled one. */
        if (n->state == PGN_QUERY_CPU_WAIT && !n->throttled && pgn_groups_throttled_ns(next) != n->throttle_mark)
            n->throttled = 1;
        close_state(n, now);
        n->state = PGN_QUERY_ON_CPU;
        n->throttled = 0;
    }
    return 0;
}

static __always_inline int on_wakeup(struct task_struct *task, bool btf)
{
    __u32 tid = READ(btf, task, pid);
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (!t || t->state == PGN_QUERY_ON_CPU || t->state == PGN_QUERY_CPU_WAIT)
        return 0;
    close_state(t, bpf_ktime_get_ns());
    t->state = PGN_QUERY_CPU_WAIT;
    t->throttled = pgn_task_throttled(task);
    t->throttle_mark = pgn_groups_throttled_ns(task);
    return 0;
}

static __always_inline void reclaim(bool start)
{
    __u32 tid = current_tid();
    struct pgn_query_thread *t = bpf_map_lookup_elem(&query_threads, &tid);
    if (!t)
        return;
    __u64 now = bpf_ktime_get_ns();
    if (start) {
        t->reclaim_since = now;
    } else if (t->reclaim_since) {
        if (now > t->reclaim_since)
            t->reclaim_ns += now - t->reclaim_since;
        t->reclaim_since = 0;
    }
}

SEC("tp_btf/sched_switch")
int BPF_PROG(pgn_q_sw_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return on_switch(preempt, prev, next, true);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(pgn_q_wk_btf, struct task_struct *task)
{
    return on_wakeup(task, true);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(pgn_q_mcgi_btf)
{
    reclaim(true);
    return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(pgn_q_mcgo_btf)
{
    reclaim(false);
    return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(pgn_q_dri_btf)
{
    reclaim(true);
    return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(pgn_q_dro_btf)
{
    reclaim(false);
    return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(pgn_q_sw_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return on_switch(preempt, prev, next, false);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(pgn_q_wk_raw, struct task_struct *task)
{
    return on_wakeup(task, false);
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(pgn_q_mcgi_raw)
{
    reclaim(true);
    return 0;
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(pgn_q_mcgo_raw)
{
    reclaim(false);
    return 0;
}

SEC("raw_tp/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(pgn_q_dri_raw)
{
    reclaim(true);
    return 0;
}

SEC("raw_tp/mm_vmscan_direct_reclaim_end")
int BPF_PROG(pgn_q_dro_raw)
{
    reclaim(false);
    return 0;
}
