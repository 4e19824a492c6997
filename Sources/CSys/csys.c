#define _GNU_SOURCE
#include "csys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* posix_spawn cannot change the user, so this clones as posix_spawn does (below). Between the
   clone and exec the child of a threaded process, sharing its memory, may only make
   async-signal-safe calls that change nothing of the parent's: everything below is a system call
   (the user switch too, made with raw syscalls that change only the calling thread, which is
   the child's only one), and PATH is walked in a buffer on the stack. */

/* The child shares Stet's memory: no sanitizer bookkeeping of Stet's runs in it. */
#define CHILD_CODE __attribute__((no_sanitize("address", "thread", "undefined")))

CHILD_CODE static void child_fail(int report, int error) {
    while (write(report, &error, sizeof error) < 0 && errno == EINTR) {}
    _exit(127);
}

/* Closes every descriptor from `low` up, except `keep`. */
CHILD_CODE static void close_from(int low, int keep, long max_fd) {
    if (keep > low && syscall(SYS_close_range, (unsigned)low, (unsigned)keep - 1, 0) != 0) {
        for (int fd = low; fd < keep; fd++) close(fd);
    }
    if (syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) != 0) {
        for (long fd = keep + 1; fd < max_fd; fd++) close((int)fd);
    }
}

CHILD_CODE static void child_exec(char *const argv[], char *const envp[], const char *cwd, int log_fd,
                       const struct stet_identity *identity, int report, const char *path, long max_fd) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    /* Stet ignores SIGTERM and SIGPIPE (service lifecycle, NIO): a replica must not inherit that. */
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    }
    if (setsid() < 0) child_fail(report, errno);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0) child_fail(report, errno);
    if (null_fd != 0) {
        if (dup2(null_fd, 0) < 0) child_fail(report, errno);
        close(null_fd);
    }
    if (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) child_fail(report, errno);
    close_from(3, report, max_fd);
    if (identity != NULL) {
        if (syscall(SYS_setgroups, identity->ngroups, identity->groups) != 0) child_fail(report, errno);
        if (syscall(SYS_setresgid, identity->gid, identity->gid, identity->gid) != 0) child_fail(report, errno);
        if (syscall(SYS_setresuid, identity->uid, identity->uid, identity->uid) != 0) child_fail(report, errno);
        /* The user switch made the shared memory as dumpable as fs.suid_dumpable says: not at all,
           so no process of the replica's user can trace the child (and so Stet's memory) before
           its exec. */
        if (syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) child_fail(report, errno);
    }
    if (cwd != NULL && chdir(cwd) != 0) child_fail(report, errno);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (strchr(argv[0], '/') != NULL) {
        execve(argv[0], argv, envp);
        child_fail(report, errno);
    }
    /* As execvp: try each PATH entry (empty means "."), remember EACCES, give up on errors
       other than "not here". */
    char buffer[PATH_MAX];
    size_t name_length = strlen(argv[0]);
    int denied = 0;
    const char *entry = path;
    for (;;) {
        const char *end = strchr(entry, ':');
        size_t length = end != NULL ? (size_t)(end - entry) : strlen(entry);
        const char *folder = length == 0 ? "." : entry;
        size_t folder_length = length == 0 ? 1 : length;
        if (folder_length + 1 + name_length < sizeof buffer) {
            memcpy(buffer, folder, folder_length);
            buffer[folder_length] = '/';
            memcpy(buffer + folder_length + 1, argv[0], name_length + 1);
            execve(buffer, argv, envp);
            switch (errno) {
            case EACCES: denied = 1; break;
            case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: case ELOOP: case ENAMETOOLONG: break;
            default: child_fail(report, errno);
            }
        }
        if (end == NULL) break;
        entry = end + 1;
    }
    child_fail(report, denied ? EACCES : ENOENT);
}

static pthread_mutex_t switching_user = PTHREAD_MUTEX_INITIALIZER;

/* Under a sanitizer the child calls through the sanitizer's interceptors, which take a child
   sharing the parent's memory for a thread they never saw and abort: sanitized builds fork, as
   Stet did before, and test everything else of the spawn. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define STET_SPAWN_FORKS 1
#endif
#endif
#ifndef STET_SPAWN_FORKS
#define STET_SPAWN_FORKS 0
#endif

struct child_arguments {
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int log_fd;
    const struct stet_identity *identity;
    int report;
    const char *path;
    long max_fd;
};

CHILD_CODE static int child_main(void *raw) {
    const struct child_arguments *a = raw;
    child_exec(a->argv, a->envp, a->cwd, a->log_fd, a->identity, a->report, a->path, a->max_fd);
    return 127;
}

int stet_spawn_as(char *const argv[], char *const envp[], const char *cwd, const char *log_path,
                  const struct stet_identity *identity, pid_t *pid) {
    if (argv == NULL || argv[0] == NULL) return EINVAL;
    const char *path = getenv("PATH");
    if (path == NULL) path = "/bin:/usr/bin";
    struct rlimit limit;
    long max_fd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (1 << 20)) {
        max_fd = (long)limit.rlim_cur;
    }
    /* Never through a link: a link planted in place of the log would make the child write
       anywhere. Opened here, as Stet's user: the child gets the descriptor, not the path. */
    int log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (log_fd < 0) return errno;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        int error = errno;
        close(log_fd);
        return error;
    }
    /* The child shares Stet's memory until it calls execve (CLONE_VM | CLONE_VFORK, as
       posix_spawn does): no page tables are copied, and Stet's thread waits only for the exec.
       It runs on a stack of its own and writes nothing of Stet's but that stack. Signals are
       blocked across the clone, so no handler of Stet's runs in the child before it resets them. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED || mprotect(stack, page, PROT_NONE) != 0) {
        int error = errno;
        if (stack != MAP_FAILED) munmap(stack, stack_size + page);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        close(log_fd);
        return error;
    }
    struct child_arguments arguments = {argv, envp, cwd, log_fd, identity, pipe_fds[1], path, max_fd};
    /* A child that switches users makes the memory it shares not dumpable (above); Stet's own
       setting comes back once the child has its own memory. One such child at a time, so no
       other spawn gives the setting back while a child is between its switch and its exec. */
    int dumpable = -1;
    if (identity != NULL) {
        pthread_mutex_lock(&switching_user);
        dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t child;
    if (STET_SPAWN_FORKS) {
        child = fork();
        if (child == 0) child_main(&arguments);
    } else {
        child = clone(child_main, (char *)stack + page + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &arguments);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (identity != NULL) {
        if (dumpable > 0) prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
        pthread_mutex_unlock(&switching_user);
    }
    munmap(stack, stack_size + page);
    close(pipe_fds[1]);
    close(log_fd);
    if (child < 0) {
        close(pipe_fds[0]);
        return fork_error;
    }
    /* The report pipe closes on exec (nothing read) or carries the errno of the failed step. */
    int child_error = 0;
    ssize_t n;
    do {
        n = read(pipe_fds[0], &child_error, sizeof child_error);
    } while (n < 0 && errno == EINTR);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof child_error) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {}
        return child_error != 0 ? child_error : EINVAL;
    }
    *pid = child;
    return 0;
}

int stet_spawn(char *const argv[], char *const envp[], const char *cwd, const char *log_path, pid_t *pid) {
    return stet_spawn_as(argv, envp, cwd, log_path, NULL, pid);
}

int stet_spawn_piped(const char *path, char *const argv[], char *const envp[], const char *cwd,
                     int in_fd, int out_fd, int err_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int error = posix_spawn_file_actions_init(&actions);
    if (error != 0) return error;
    error = posix_spawnattr_init(&attributes);
    if (error != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return error;
    }
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (error == 0) error = posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
    if (error == 0) error = posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    if (error == 0) error = posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    if (error == 0) error = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (error == 0 && cwd != NULL) error = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    if (error == 0) error = posix_spawnattr_setsigdefault(&attributes, &all);
    if (error == 0) error = posix_spawnattr_setsigmask(&attributes, &none);
    if (error == 0) error = posix_spawnattr_setpgroup(&attributes, 0);
    if (error == 0) {
        error = posix_spawnattr_setflags(
            &attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    }
    if (error == 0) error = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return error;
}

int stet_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int stet_rename_exchange(const char *a, const char *b) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}
