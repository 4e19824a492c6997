#ifndef STET_CSYS_H
#define STET_CSYS_H

#include <stddef.h>
#include <sys/types.h>

/* What Swift's Glibc module does not show: detached spawning as another user, and pidfds. */

/* The user a spawned process runs as: its uid, primary gid and supplementary groups. */
struct stet_identity {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
};

/* Starts `argv[0]` (looked up in the caller's PATH when it has no '/') in a new session, with
   every signal at its default and none blocked, standard input from /dev/null, standard output
   and error appended to `log_path` (opened by the caller's user before the switch: created
   0600, never through a link, so the child holds only the descriptor), no other descriptor
   inherited, then, when `identity` is not NULL, with exactly its groups, gid and uid (real,
   effective and saved), and only then in `cwd`, so the child enters only a folder that user
   may enter. Returns 0 and the pid once the program runs, or the errno value of the step that
   failed (the child is then reaped). */
int stet_spawn_as(char *const argv[], char *const envp[], const char *cwd, const char *log_path,
                  const struct stet_identity *identity, pid_t *pid);

/* stet_spawn_as as Stet's own user. */
int stet_spawn(char *const argv[], char *const envp[], const char *cwd, const char *log_path, pid_t *pid);

/* For tests and tools that wait for their child: starts `path` (a full path) with posix_spawn in
   its own process group, in `cwd` (NULL: the caller's), with standard input, output and error
   on the given descriptors, every other descriptor closed, every signal at its default and none
   blocked. Returns 0 and the pid, or the errno value. */
int stet_spawn_piped(const char *path, char *const argv[], char *const envp[], const char *cwd,
                     int in_fd, int out_fd, int err_fd, pid_t *pid);

/* pidfd_open(2); -1 and errno on failure. */
int stet_pidfd_open(pid_t pid);

/// Exchanges two paths atomically (renameat2 with RENAME_EXCHANGE): 0, or -1 with errno.
int stet_rename_exchange(const char *a, const char *b);

#endif
