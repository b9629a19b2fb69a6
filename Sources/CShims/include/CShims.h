// Thin wrappers for Linux system calls that Swift cannot call directly
// (variadic `syscall`, GNU-only declarations). Each returns -1 and sets errno on failure.
#ifndef PGNODE_CSHIMS_H
#define PGNODE_CSHIMS_H

#include <stdint.h>
#include <spawn.h>
#include <sys/types.h>

/// RESOLVE_* flags of openat2(2), repeated here so that Swift sees them on older headers.
#define PGNODE_RESOLVE_NO_XDEV 0x01
#define PGNODE_RESOLVE_NO_MAGICLINKS 0x02
#define PGNODE_RESOLVE_NO_SYMLINKS 0x04
#define PGNODE_RESOLVE_BENEATH 0x08
#define PGNODE_RESOLVE_IN_ROOT 0x10

/// O_PATH (glibc hides it without _GNU_SOURCE).
#define PGNODE_O_PATH 0x200000

/// openat2(2) with `struct open_how`; returns a file descriptor, or -1 with errno
/// (ENOSYS where the kernel is older than 5.6).
int pgnode_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// setns(2).
int pgnode_setns(int fd, int nstype);

/// statfs(2): the file system's magic number in *fs_type.
int pgnode_statfs_type(const char *path, int64_t *fs_type);

/// statfs(2): block size, total and free blocks (for tmpfs sizes).
int pgnode_statfs_size(const char *path, uint64_t *block_size, uint64_t *blocks, uint64_t *blocks_free);

/// fstatfs(2) on an open descriptor (for mounts reached safely through a container root).
int pgnode_fstatfs_size(int fd, int64_t *fs_type, uint64_t *block_size, uint64_t *blocks, uint64_t *blocks_free);

/// The CLONE_NEWCGROUP flag for setns.
int pgnode_clone_newcgroup(void);

/* A pipe whose both ends are close-on-exec (pipe2 with O_CLOEXEC). Returns 0 or -1 (errno). */
int pgnode_pipe_cloexec(int fds[2]);

/* Adds "close every descriptor from `lowfd` up" to a posix_spawn file-actions object (glibc 2.34+). */
int pgnode_spawn_closefrom(posix_spawn_file_actions_t *actions, int lowfd);

#endif

