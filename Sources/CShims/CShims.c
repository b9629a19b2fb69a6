#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct pgnode_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int pgnode_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct pgnode_open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int pgnode_setns(int fd, int nstype) { return setns(fd, nstype); }

int pgnode_clone_newcgroup(void) { return CLONE_NEWCGROUP; }

int pgnode_statfs_type(const char *path, int64_t *fs_type) {
    struct statfs st;
    if (statfs(path, &st) != 0) return -1;
    *fs_type = (int64_t)st.f_type;
    return 0;
}

int pgnode_statfs_size(const char *path, uint64_t *block_size, uint64_t *blocks, uint64_t *blocks_free) {
    struct statfs st;
    if (statfs(path, &st) != 0) return -1;
    *block_size = (uint64_t)st.f_bsize;
    *blocks = (uint64_t)st.f_blocks;
    *blocks_free = (uint64_t)st.f_bfree;
    return 0;
}

int pgnode_fstatfs_size(int fd, int64_t *fs_type, uint64_t *block_size, uint64_t *blocks, uint64_t *blocks_free) {
    struct statfs st;
    if (fstatfs(fd, &st) != 0) return -1;
    *fs_type = (int64_t)st.f_type;
    *block_size = (uint64_t)st.f_bsize;
    *blocks = (uint64_t)st.f_blocks;
    *blocks_free = (uint64_t)st.f_bfree;
    return 0;
}

int pgnode_pipe_cloexec(int fds[2])
{
    return pipe2(fds, O_CLOEXEC);
}

int pgnode_spawn_closefrom(posix_spawn_file_actions_t *actions, int lowfd)
{
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}
