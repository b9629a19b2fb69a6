// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * shm: posix_fallocate/ftruncate on tmpfs files (POSIX shared memory, /dev/shm) by the target
 * cgroups' tasks. Counts ENOSPC failures with the size that was asked for, sends each failure
 * to user space through a ring buffer (they are rare), and follows how many bytes of tmpfs
 * segments the target holds, keeping the peak.
 *
 * Why uprobes: a syscall tracepoint (sys_enter/sys_exit) puts every system call of every task
 * on the node on the slow path while it is attached (+123 ns, +40 % per call measured here),
 * and kprobes, fentry/fexit and BPF LSM are not available everywhere pgnode runs. A uprobe costs
 * only the processes that call the probed function of the probed file: the programs below have
 * no target in the ELF; user space attaches them to the C library file of each target container
 * (posix_fallocate, ftruncate and unlink, entry and return), resolved inside the container's
 * root. Other processes that map the same file (the same image's other containers) trap on these
 * three functions too and leave at the cgroup filter; every other system call runs untouched.
 *
 * PostgreSQL's dsm_impl_posix_resize grows a segment with ftruncate (which only sets a sparse
 * size and succeeds even past the mount's size) and then posix_fallocate (glibc: fallocate(2)
 * with mode 0, retried on EINTR), which allocates the pages and fails with ENOSPC; posix_fallocate
 * returns the error number itself (28) instead of setting errno. So only a successful
 * posix_fallocate adds to what is held; ftruncate only releases (when it shrinks a segment), and
 * so does unlink: glibc's (and musl's) shm_unlink calls unlink("/dev/shm/<name>") inside the
 * library, which the unlink uprobe sees (uprobes trap on an address, internal calls included).
 * ftruncate returns -1 with errno in thread-local storage, which is not read: its failures are
 * not told apart (tmpfs does not fail a resize with ENOSPC).
 *
 * Not seen: calls that bypass the probed file: a statically linked server (no C library file
 * is mapped: user space finds none and attaches nothing, so the target's counts stay zero),
 * raw syscall(2)s, fallocate(3) (not posix_fallocate), unlinkat, and memory a process touches
 * through mmap of a sparse file. A musl-based server is covered like a glibc one (its
 * ld-musl-*.so.1 is the C library file, with the same three functions and return conventions).
 *
 * At a failure the process title is read from the task's argv (PostgreSQL overwrites argv on
 * Linux: "postgres: parallel worker for PID 123"), so that user space can name the role of a
 * process that has exited since, together with its pid in the container's pid namespace.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"

#define TMPFS_MAGIC 0x01021994
#define PGN_ENOSPC 28

/* libbpf 1.1's bpf_tracing.h predates these names; uprobes are kprobe-type programs. */
#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct inflight {
    __u64 size;
    __u32 syscall; /* enum pgn_shm_syscall, or 0 for unlink */
    __u32 target;
    __u32 dev;
    int fd;
    __u32 pad[2];
    char name[PGN_FILE_NAME_LEN];
};

/* Calls between a function's entry and its return, by thread. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, struct inflight);
} shm_inflight SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PGN_MAX_TARGETS);
    __type(key, __u32);
    __type(value, struct pgn_shm_stats);
} shm_stats SEC(".maps");

/*
 * The current window's number (slot 0), written by user space when it reads a window (the agent;
 * stays 0 for a one-off run). A target's peak restarts when the first change of a new window
 * finds an older number in its stats: so every window has its own peak while only BPF programs
 * write the stats (user space writing them would race with the programs' increments).
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} shm_window SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct pgn_shm_failure_key);
    __type(value, struct pgn_shm_failure_value);
} shm_failures SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct pgn_shm_segment_key);
    __type(value, __u64);
} shm_segments SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} shm_events SEC(".maps");

/* Reads the file behind `fd` of the current task; true when it lives on tmpfs. */
static __always_inline bool tmpfs_file(int fd, __u32 *dev, char *name)
{
    if (fd < 0)
        return false;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    if (!fdt)
        return false;
    unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
    if ((unsigned int)fd >= max_fds)
        return false;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    if (!file)
        return false;
    /* f_path is const in recent kernels: read into plain locals. */
    struct dentry *dentry = NULL;
    BPF_CORE_READ_INTO(&dentry, file, f_path.dentry);
    struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
    if (BPF_CORE_READ(sb, s_magic) != TMPFS_MAGIC)
        return false;
    *dev = BPF_CORE_READ(sb, s_dev);
    const unsigned char *dname = NULL;
    BPF_CORE_READ_INTO(&dname, dentry, d_name.name);
    bpf_probe_read_kernel_str(name, PGN_FILE_NAME_LEN, dname);
    return true;
}

static __always_inline void enter_grow(int fd, __u64 size, __u32 syscall)
{
    int target = pgn_current_target(PGN_CGROUP_V1_MEMORY);
    if (target < 0)
        return;
    struct inflight call = {.size = size, .syscall = syscall, .target = target, .fd = fd};
    if (!tmpfs_file(fd, &call.dev, call.name))
        return;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    bpf_map_update_elem(&shm_inflight, &tid, &call, BPF_ANY);
}

static __always_inline void add_held(struct pgn_shm_stats *stats, __s64 delta)
{
    if (!delta)
        return;
    /* No fetching atomics (kernel 5.12+): add, then read back. The read and the peak update
       race with other CPUs by design; a peak missed under simultaneous grows is tolerable. */
    __sync_fetch_and_add(&stats->current_bytes, delta);
    __s64 now = stats->current_bytes;
    __u32 zero = 0;
    __u64 *window = bpf_map_lookup_elem(&shm_window, &zero);
    if (window && stats->window != *window) {
        /* The first change of a new window: its peak starts from what was held before it. */
        stats->window = *window;
        __s64 before = now - delta;
        stats->peak_bytes = before > now ? before : now;
        return;
    }
    if (now > stats->peak_bytes)
        stats->peak_bytes = now;
}



static __always_inline void exit_grow(struct inflight *call, long ret)
{
    __u32 target = call->target;
    struct pgn_shm_stats *stats = bpf_map_lookup_elem(&shm_stats, &target);
    if (!stats)
        return;
    __sync_fetch_and_add(&stats->calls, 1);
    __u64 id = bpf_get_current_pid_tgid();
    __u64 now = bpf_ktime_get_boot_ns();

    if (ret == -PGN_ENOSPC) {
        __sync_fetch_and_add(&stats->failures, 1);
        if (!stats->first_fail_ns)
            stats->first_fail_ns = now;
        stats->last_fail_ns = now;

        struct task_struct *task = (struct task_struct *)bpf_get_current_task();
        __u32 nstgid = pgn_ns_tgid(task);
        struct pgn_shm_failure_key key = {.target = target, .tgid = id >> 32, .size = call->size};
        struct pgn_shm_failure_value *seen = bpf_map_lookup_elem(&shm_failures, &key);
        if (seen) {
            __sync_fetch_and_add(&seen->count, 1);
            seen->last_ns = now;
            seen->syscall = call->syscall;
            seen->pid = (__u32)id;
        } else {
            struct pgn_shm_failure_value value = {
                .count = 1, .first_ns = now, .last_ns = now, .syscall = call->syscall, .pid = (__u32)id,
                .ns_tgid = nstgid};
            bpf_get_current_comm(value.comm, sizeof(value.comm));
            pgn_read_title(task, value.title);
            bpf_map_update_elem(&shm_failures, &key, &value, BPF_NOEXIST);
        }

        struct pgn_shm_event *event = bpf_ringbuf_reserve(&shm_events, sizeof(*event), 0);
        if (event) {
            event->time_ns = now;
            event->size = call->size;
            event->cgroup_id = bpf_get_current_cgroup_id();
            event->target = target;
            event->tgid = id >> 32;
            event->pid = (__u32)id;
            event->syscall = call->syscall;
            event->fd = call->fd;
            event->ret = ret;
            event->dev = call->dev;
            event->ns_tgid = nstgid;
            bpf_get_current_comm(event->comm, sizeof(event->comm));
            __builtin_memcpy(event->file, call->name, sizeof(event->file));
            pgn_read_title(task, event->title);
            bpf_ringbuf_submit(event, 0);
        }
        return;
    }
    if (ret != 0)
        return;

    /* Allocated (or truncated): account for the change of the bytes this segment holds. */
    struct pgn_shm_segment_key key = {.target = target};
    __builtin_memcpy(key.name, call->name, sizeof(key.name));
    __u64 *old = bpf_map_lookup_elem(&shm_segments, &key);
    __u64 before = old ? *old : 0;
    __u64 after = before;
    if (call->syscall == PGN_SHM_FALLOCATE) {
        /* Allocates up to offset + len (PostgreSQL allocates from offset 0). */
        if (call->size > before)
            after = call->size;
    } else if (call->size < before) {
        /* ftruncate releases the pages past the new size; growing only sets a sparse size. */
        after = call->size;
    }
    if (after == before)
        return;
    if (bpf_map_update_elem(&shm_segments, &key, &after, BPF_ANY) == 0)
        add_held(stats, (__s64)after - (__s64)before);
}

/*
 * The segment name of an unlinked path: POSIX shared memory lives in "/dev/shm/" (glibc's and
 * musl's shm_unlink pass that absolute path to unlink), so only such paths are followed. A fixed-offset read
 * keeps the program free of data-dependent loops (cheap to verify). Returns false otherwise.
 */
static __always_inline bool shm_name(const char *user_path, char *name)
{
    static const char prefix[] = "/dev/shm/";
    char head[sizeof(prefix) - 1];
    if (bpf_probe_read_user(head, sizeof(head), user_path) != 0)
        return false;
    for (int i = 0; i < (int)sizeof(head); i++) {
        if (head[i] != prefix[i])
            return false;
    }
    return bpf_probe_read_user_str(name, PGN_FILE_NAME_LEN, user_path + sizeof(head)) > 1;
}

static __always_inline void enter_unlink(const char *user_path)
{
    int target = pgn_current_target(PGN_CGROUP_V1_MEMORY);
    if (target < 0)
        return;
    struct inflight call = {.syscall = 0, .target = target, .fd = -1};
    if (!shm_name(user_path, call.name))
        return;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    bpf_map_update_elem(&shm_inflight, &tid, &call, BPF_ANY);
}

/* A successful unlink of a name the target grew releases that segment. */
static __always_inline void exit_unlink(struct inflight *call, long ret)
{
    if (ret != 0)
        return;
    __u32 target = call->target;
    struct pgn_shm_stats *stats = bpf_map_lookup_elem(&shm_stats, &target);
    if (!stats)
        return;
    struct pgn_shm_segment_key key = {.target = target};
    __builtin_memcpy(key.name, call->name, sizeof(key.name));
    __u64 *size = bpf_map_lookup_elem(&shm_segments, &key);
    if (!size)
        return;
    add_held(stats, -(__s64)*size);
    bpf_map_delete_elem(&shm_segments, &key);
}

static __always_inline int on_exit(long ret)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct inflight *call = bpf_map_lookup_elem(&shm_inflight, &tid);
    if (!call)
        return 0;
    if (call->syscall)
        exit_grow(call, ret);
    else
        exit_unlink(call, ret);
    bpf_map_delete_elem(&shm_inflight, &tid);
    return 0;
}

/* posix_fallocate(fd, offset, len): the file is to be offset + len bytes long. */
SEC("uprobe")
int BPF_UPROBE(pgn_shm_fa_in, int fd, long offset, long len)
{
    enter_grow(fd, (__u64)offset + (__u64)len, PGN_SHM_FALLOCATE);
    return 0;
}

/* posix_fallocate returns 0 or the error number (ENOSPC, EINTR, …): negate it like a syscall's. */
SEC("uretprobe")
int BPF_URETPROBE(pgn_shm_fa_out, int err)
{
    return on_exit(-(long)err);
}

/* ftruncate(fd, length) */
SEC("uprobe")
int BPF_UPROBE(pgn_shm_ft_in, int fd, long length)
{
    enter_grow(fd, (__u64)length, PGN_SHM_FTRUNCATE);
    return 0;
}

/* ftruncate returns 0 or -1 (the errno in thread-local storage is not read). */
SEC("uretprobe")
int BPF_URETPROBE(pgn_shm_ft_out, int ret)
{
    return on_exit(ret);
}

/* unlink(path): shm_unlink's removal of "/dev/shm/<name>". */
SEC("uprobe")
int BPF_UPROBE(pgn_shm_ul_in, const char *path)
{
    enter_unlink(path);
    return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(pgn_shm_ul_out, int ret)
{
    return on_exit(ret);
}
