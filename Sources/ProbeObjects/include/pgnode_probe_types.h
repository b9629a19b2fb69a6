/*
 * The data shared by pgnode's BPF programs (bpf/<probe>.bpf.c) and the Swift loader: map keys,
 * map values and ring-buffer records. Plain C with fixed-size fields and explicit padding, so
 * that the BPF target and x86_64/arm64 user space lay every struct out identically. Swift
 * imports these types through the ProbeObjects module and reads map bytes into them directly.
 *
 * Keep this file free of any include: the BPF side includes it after vmlinux.h, the user side
 * from a C module.
 */
#ifndef PGNODE_PROBE_TYPES_H
#define PGNODE_PROBE_TYPES_H

/* Targets one probe can filter on at once (indices 0..PGN_MAX_TARGETS-1). */
#define PGN_MAX_TARGETS 64
/* log2 histogram slots: slot i counts values in [2^i, 2^(i+1)) (slot 0 also counts 0). */
#define PGN_HIST_SLOTS 32
#define PGN_COMM_LEN 16
#define PGN_FILE_NAME_LEN 32
/* The start of a process title (PostgreSQL overwrites argv on Linux), read at failure time. */
#define PGN_TITLE_LEN 96

/* Which hierarchy a cgroup id belongs to: ids are unique only within one hierarchy. */
enum pgn_cgroup_kind {
    PGN_CGROUP_V2 = 0,        /* the unified hierarchy: bpf_get_current_cgroup_id() */
    PGN_CGROUP_V1_MEMORY = 1, /* the v1 memory controller's hierarchy */
    PGN_CGROUP_V1_BLKIO = 2,  /* the v1 blkio (io) controller's hierarchy */
};

/* Key of the `targets` map; the value is the target index (unsigned int). */
struct pgn_target_key {
    unsigned long long cgroup_id; /* kernfs id = inode of the cgroup's directory */
    unsigned int kind;            /* enum pgn_cgroup_kind */
    unsigned int pad;
};

struct pgn_hist {
    unsigned long long slots[PGN_HIST_SLOTS];
};

/* ---- shm: fallocate/ftruncate ENOSPC on tmpfs, dynamic shared memory held ---- */

enum pgn_shm_syscall {
    PGN_SHM_FALLOCATE = 1,
    PGN_SHM_FTRUNCATE = 2,
};

/* Per target (ARRAY indexed by target). */
struct pgn_shm_stats {
    unsigned long long calls;         /* posix_fallocate/ftruncate calls on tmpfs files */
    unsigned long long failures;      /* of which failed with ENOSPC */
    unsigned long long first_fail_ns; /* bpf_ktime_get_boot_ns() of the first failure, 0 if none */
    unsigned long long last_fail_ns;
    /* Bytes of tmpfs segments the target allocated with fallocate (pages actually held, not the
       sparse size ftruncate sets), less what truncation and unlink released. */
    long long current_bytes;
    long long peak_bytes;             /* highest current_bytes seen in window `window` */
    unsigned long long window;        /* the shm_window number peak_bytes belongs to */
};

/* One failing request size of one process (HASH). */
struct pgn_shm_failure_key {
    unsigned int target;
    unsigned int tgid;
    unsigned long long size; /* bytes the file was to have: offset + len, or the length */
};

struct pgn_shm_failure_value {
    unsigned long long count;
    unsigned long long first_ns;
    unsigned long long last_ns;
    unsigned int syscall; /* enum pgn_shm_syscall of the last failure */
    unsigned int pid;     /* the thread */
    unsigned int ns_tgid; /* the process id in its own (innermost) pid namespace, 0 if unknown */
    unsigned int pad;
    char comm[PGN_COMM_LEN];
    char title[PGN_TITLE_LEN]; /* argv as the process rewrote it, at the first failure */
};

/*
 * A segment (tmpfs file) grown by a target, by base name (HASH, value: size in bytes). unlink(2)
 * names a path, not a mount, so a segment is known by its name within the target.
 */
struct pgn_shm_segment_key {
    unsigned int target;
    unsigned int pad;
    char name[PGN_FILE_NAME_LEN];
};

/* A failure, sent through the ring buffer as it happens. */
struct pgn_shm_event {
    unsigned long long time_ns; /* bpf_ktime_get_boot_ns() */
    unsigned long long size;    /* requested size in bytes */
    unsigned long long cgroup_id;
    unsigned int target;
    unsigned int tgid;
    unsigned int pid;
    unsigned int syscall;
    int fd;
    int ret;          /* the call's result as a negative error number (-ENOSPC) */
    unsigned int dev; /* the tmpfs super block's device (kernel encoding: major << 20 | minor) */
    unsigned int ns_tgid; /* the process id in its own (innermost) pid namespace, 0 if unknown */
    char comm[PGN_COMM_LEN];
    char file[PGN_FILE_NAME_LEN];
    char title[PGN_TITLE_LEN]; /* argv as the process rewrote it */
};

/* ---- reclaim: memcg and direct reclaim stalls per process ---- */

struct pgn_reclaim_key {
    unsigned int target;
    unsigned int pid; /* the thread that reclaimed */
};

struct pgn_reclaim_value {
    unsigned long long memcg_events;
    unsigned long long direct_events;
    unsigned long long reclaimed_pages;
    unsigned long long stall_ns;
    unsigned int tgid;
    unsigned int pad;
    char comm[PGN_COMM_LEN];
};

/* ---- blkio: block requests and cross-cgroup noise on blk-mq queues ---- */

/* Per target (PERCPU_ARRAY indexed by target; user space sums the CPUs). */
struct pgn_blk_counts {
    unsigned long long own_requests;   /* target requests completed */
    unsigned long long noise_requests; /* other cgroups' completions while the target waited */
};

/*
 * One hardware queue (HASH keyed by the address of its struct blk_mq_hw_ctx, or of the
 * request_queue on kernels without rq->mq_hctx): how many requests of each target wait there,
 * and the per-target counts of the device (user space sums a device's queues).
 */
struct pgn_blk_queue {
    unsigned int dev;       /* major << 20 | minor */
    unsigned int hctx;      /* hardware queue number */
    int waiting_any;        /* requests of all targets waiting here */
    unsigned int tag_range; /* 1 + the queue's range of per-tag entries in blk_tags; 0: none */
    int waiting[PGN_MAX_TARGETS];
    unsigned long long own_requests[PGN_MAX_TARGETS];   /* the target's requests completed here */
    unsigned long long noise_requests[PGN_MAX_TARGETS]; /* others' completions here while it waited */
};

/* Completions of one neighbour cgroup that a target waited behind (HASH, value: count). */
struct pgn_blk_neighbour_key {
    unsigned long long cgroup_id;
    unsigned int kind; /* enum pgn_cgroup_kind of cgroup_id */
    unsigned int target;
};

/*
 * Per-request state (LRU_HASH keyed by the request's address: bounded, stale entries replaced)
 * where a request has no per-tag entry (blk_tags): target requests without a bio, on queues
 * without a tag range or with tags beyond it; other requests only where the kernel gives no
 * timestamp or owner of its own.
 */
struct pgn_blk_request {
    unsigned long long start_ns;  /* insert, or issue for requests that skip the scheduler */
    unsigned long long alloc_ns;  /* rq->start_time_ns then (0 if none): tells a reuse of the structure */
    unsigned long long queue;     /* key of the request's blk_queues entry */
    unsigned long long cgroup_id;
    unsigned int kind;
    int target; /* -1 when not a target */
};

/* ---- migrations: sched_migrate_task per target, split by the CPUs' cache and NUMA domains ---- */

/* CPUs whose domains the migrations probe knows (indices of its `mig_cpu_domains` array). */
#define PGN_MAX_CPUS 4096

/*
 * The domains of one CPU (ARRAY indexed by CPU, filled by user space from sysfs before attaching):
 * each id plus one, 0 when unknown (no index3 cache, no NUMA node, a CPU sysfs did not list).
 */
struct pgn_cpu_domain {
    unsigned int llc;  /* last-level cache id + 1 */
    unsigned int node; /* NUMA node + 1 */
};

/*
 * Per target (ARRAY indexed by target; zeroed when a slot goes to another cgroup). The classes are
 * exclusive: within_llc + cross_llc + cross_numa + unknown == migrations.
 */
struct pgn_mig_counts {
    unsigned long long migrations;
    unsigned long long within_llc; /* both CPUs share the last-level cache */
    unsigned long long cross_llc;  /* another last-level cache on the same NUMA node */
    unsigned long long cross_numa; /* another NUMA node */
    unsigned long long unknown;    /* a CPU whose domains are not known */
    unsigned long long unattributed; /* not counted per thread: `mig_by_pid` was full */
};

/* One thread of one target (HASH). */
struct pgn_mig_key {
    unsigned int target;
    unsigned int pid; /* the thread that moved */
};

struct pgn_mig_value {
    unsigned long long migrations;
    unsigned long long cross_llc;
    unsigned long long cross_numa;
    unsigned int tgid;
    unsigned int pad;
    char comm[PGN_COMM_LEN];
};

/* ---- sched: CPU time other cgroups took from the targets' runnable tasks ---- */

/* Per target (PERCPU_ARRAY indexed by target; user space sums the CPUs). Times in ns. */
struct pgn_sched_counts {
    unsigned long long waits;        /* a target task switched out while runnable, and remembered */
    unsigned long long resumed;      /* of those, ended by the task running again on that CPU */
    unsigned long long left;         /* ended otherwise: migrated, blocked, or the CPU went idle */
    unsigned long long taken_ns;     /* charged to other cgroups' tasks (sched_takers) */
    unsigned long long own_ns;       /* taken by another task of the target's own cgroup */
    unsigned long long throttled_ns; /* while the target's run queue was throttled by its quota */
};

/* A cgroup that ran while a target's task waited on the same CPU (HASH). */
struct pgn_sched_taker_key {
    unsigned long long cgroup_id;
    unsigned int kind; /* enum pgn_cgroup_kind of cgroup_id */
    unsigned int target;
};

struct pgn_sched_taker_value {
    unsigned long long ns;        /* CPU time it took while the target's task waited */
    unsigned long long intervals; /* the switches that ended such a time */
};

/* ---- writeback: balance_dirty_pages pauses (dirty throttling) per process and device ---- */

#define PGN_BDI_NAME_LEN 32

/* One thread of one target (HASH). */
struct pgn_writeback_pid_key {
    unsigned int target;
    unsigned int pid; /* the thread the kernel paused */
};

struct pgn_writeback_pid_value {
    unsigned long long pauses;       /* balance_dirty_pages events with pause > 0 */
    unsigned long long paused_ns;    /* the sum of their `pause` (ms in the tracepoint) in ns */
    unsigned long long max_pause_ns; /* the longest one */
    unsigned int tgid;
    unsigned int pad;
    char comm[PGN_COMM_LEN];
};

/* One device (backing_dev_info, by its name: "7:0", "253:1") of one target (HASH). */
struct pgn_writeback_bdi_key {
    unsigned int target;
    unsigned int pad;
    char bdi[PGN_BDI_NAME_LEN];
};

/* Counters and, at the longest pause, the dirty state the kernel throttled on (pages). */
struct pgn_writeback_bdi_value {
    unsigned long long pauses;
    unsigned long long paused_ns;
    unsigned long long max_pause_ns;
    unsigned long long max_period_ns; /* the tracepoint's `period` at the longest pause */
    unsigned long long max_paused_ns; /* its `paused`: time already paused in that call */
    unsigned long long dirty;         /* dirty pages of the domain (global or memcg) */
    unsigned long long limit;         /* the domain's dirty limit (pages) */
    unsigned long long setpoint;
    unsigned long long wb_dirty;      /* dirty pages of the device's writeback */
    unsigned long long wb_setpoint;
    unsigned long long cgroup_ino;    /* the writeback's memory cgroup (v2; 1 on v1) */
    unsigned int tgid;                /* who took the longest pause */
    unsigned int pad;
};

/* ---- query: statements from PostgreSQL's USDT probes, their time by scheduler state ---- */

/* Where a backend's time inside a statement goes (index of `state_ns`). */
enum pgn_query_state {
    PGN_QUERY_ON_CPU = 0,    /* running */
    PGN_QUERY_CPU_WAIT = 1,  /* runnable, waiting for a CPU (run-queue wait, CFS throttling) */
    PGN_QUERY_IO_WAIT = 2,   /* blocked with in_iowait (page cache misses, writes, fsync) */
    PGN_QUERY_LOCK_WAIT = 3, /* blocked inside lock__wait or lwlock__wait (PostgreSQL's locks) */
    PGN_QUERY_OTHER = 4,     /* any other sleep (client socket, latch, sleep calls) */
    PGN_QUERY_STATES = 5,
};

/* Which protocol's probes bounded the statement (index of `queries`). */
enum pgn_query_protocol {
    PGN_QUERY_SIMPLE = 0,   /* query__start .. query__done (parse, plan and execute) */
    PGN_QUERY_EXTENDED = 1, /* query__execute__start .. query__execute__done outside a simple query */
    PGN_QUERY_PROTOCOLS = 2,
};

/* The slowest statements each CPU keeps per target and window (it sends each one that enters). */
#define PGN_QUERY_TOP 5
/* Bytes of a statement's text read from the backend for a slow statement (simple protocol). */
#define PGN_QUERY_TEXT_LEN 256

/* A target's thread inside a statement (HASH keyed by thread id; removed at its end). */
struct pgn_query_thread {
    unsigned long long start_ns;
    unsigned long long since_ns; /* when `state` began */
    unsigned long long state_ns[PGN_QUERY_STATES];
    unsigned long long throttled_ns;
    unsigned long long reclaim_ns;
    unsigned long long reclaim_since; /* 0 when not in direct reclaim */
    unsigned long long text;          /* the query string's address (simple protocol), 0 when none */
    unsigned long long throttle_mark; /* the task's CFS groups' throttled time when its CPU wait began */
    unsigned int target;
    unsigned int tgid;
    unsigned char state;     /* enum pgn_query_state */
    unsigned char protocol;  /* enum pgn_query_protocol */
    unsigned char locks;     /* PGN_QUERY_LOCK_* while inside a lock wait */
    unsigned char throttled; /* the current CPU wait was throttled by a CFS quota (at its start or since) */
    unsigned int depth;      /* PortalRuns nested inside the statement */
};

/* pgn_query_thread.locks */
#define PGN_QUERY_LOCK_HEAVY 1 /* lock__wait__start .. lock__wait__done */
#define PGN_QUERY_LOCK_LIGHT 2 /* lwlock__wait__start .. lwlock__wait__done */

/* Per target (PERCPU_ARRAY indexed by target; user space sums the CPUs). Times in ns. */
struct pgn_query_counts {
    unsigned long long queries[PGN_QUERY_PROTOCOLS];
    unsigned long long total_ns;                      /* the statements' durations */
    unsigned long long state_ns[PGN_QUERY_STATES];    /* the same time by state */
    unsigned long long throttled_ns;                  /* of cpu_wait: waits a CFS quota throttled */
    unsigned long long reclaim_ns;                    /* reclaim (memcg, direct) inside statements */
    unsigned long long untracked;                     /* statements not followed: thread map full */
    unsigned long long slow_sent;                     /* slow statements sent to the ring buffer */
    unsigned long long slow_lost;                     /* … and lost (ring buffer full) */
    unsigned long long top_ns[PGN_QUERY_TOP];         /* this CPU's slowest of `top_window`, largest first */
    unsigned long long top_window;                    /* the window `top_ns` belongs to */
    struct pgn_hist latency_us;                       /* durations in microseconds, log2 */
};

/* One slow statement (ring buffer): it entered its CPU's slowest of the window. */
struct pgn_query_event {
    unsigned long long duration_ns;
    unsigned long long state_ns[PGN_QUERY_STATES];
    unsigned long long throttled_ns;
    unsigned long long reclaim_ns;
    unsigned long long end_ns; /* bpf_ktime_get_ns at its end */
    unsigned long long window;
    unsigned int target;
    unsigned int tgid;
    unsigned int pid;
    unsigned int protocol;
    int text_len; /* bytes of `text` read, with the NUL; 0 when none (extended protocol) */
    unsigned int ns_tgid; /* the backend's pid in its own pid namespace (the container's), 0 if unknown */
    char title[PGN_TITLE_LEN]; /* the start of its process title (its role once it has exited) */
    char text[PGN_QUERY_TEXT_LEN];
};

#endif
