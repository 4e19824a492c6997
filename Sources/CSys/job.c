#define _GNU_SOURCE
#include "csys_job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Everything the reaper runs after fork is a system call or plain code on its own stack: the
   forked copy of a threaded process must not take a lock another thread may have held. */

static void job_write_all(int fd, const void *buffer, size_t length) {
    const char *bytes = buffer;
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        bytes += n;
        length -= (size_t)n;
    }
}

/* "/proc/self/task/TID/children" for this single-threaded process. */
static void job_children_path(char *path, pid_t self) {
    static const char head[] = "/proc/self/task/";
    static const char tail[] = "/children";
    char digits[16];
    int count = 0;
    do {
        digits[count++] = (char)('0' + self % 10);
        self /= 10;
    } while (self > 0 && count < 15);
    size_t at = 0;
    for (size_t i = 0; i < sizeof head - 1; i++) path[at++] = head[i];
    while (count > 0) path[at++] = digits[--count];
    for (size_t i = 0; i < sizeof tail; i++) path[at++] = tail[i];
}

/* SIGKILL to every child listed in `fd`'s text of pids. */
static void job_kill_listed(int fd) {
    char buffer[4096];
    pid_t pid = 0;
    int digits = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (buffer[i] >= '0' && buffer[i] <= '9') {
                pid = pid * 10 + (buffer[i] - '0');
                digits++;
            } else {
                if (digits > 0 && pid > 0) kill(pid, SIGKILL);
                pid = 0;
                digits = 0;
            }
        }
    }
    if (digits > 0 && pid > 0) kill(pid, SIGKILL);
}

/* Where the kernel has no children file: every process in /proc whose parent is `self`. */
static void job_kill_children_by_scan(pid_t self) {
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    char entries[8192] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dir, entries, sizeof entries);
        if (n <= 0) break;
        for (long at = 0; at < n;) {
            struct dirent64 *entry = (struct dirent64 *)(entries + at);
            at += entry->d_reclen;
            pid_t pid = 0;
            const char *c = entry->d_name;
            if (*c < '1' || *c > '9') continue;
            for (; *c >= '0' && *c <= '9'; c++) pid = pid * 10 + (*c - '0');
            if (*c != '\0') continue;
            char path[64] = "/proc/";
            size_t length = 6;
            for (const char *d = entry->d_name; *d && length < 50; d++) path[length++] = *d;
            memcpy(path + length, "/stat", 6);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            char stat[512];
            ssize_t got = read(fd, stat, sizeof stat - 1);
            close(fd);
            if (got <= 0) continue;
            stat[got] = '\0';
            /* "pid (comm) state ppid …": the name may hold anything, so read after the last ')'. */
            char *close_paren = NULL;
            for (char *s = stat; *s; s++) if (*s == ')') close_paren = s;
            if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == '\0' || close_paren[3] != ' ') continue;
            pid_t parent = 0;
            for (const char *s = close_paren + 4; *s >= '0' && *s <= '9'; s++) parent = parent * 10 + (*s - '0');
            if (parent == self) kill(pid, SIGKILL);
        }
    }
    close(dir);
}

static void job_kill_children(pid_t self) {
    char path[64];
    job_children_path(path, self);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        job_kill_children_by_scan(self);
        return;
    }
    job_kill_listed(fd);
    close(fd);
}

/* Closes every descriptor but the four kept (all 3 or above). */
static void job_close_others(int kept[4]) {
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (kept[j] < kept[i]) {
                int t = kept[i];
                kept[i] = kept[j];
                kept[j] = t;
            }
    unsigned int from = 3;
    for (int i = 0; i <= 4; i++) {
        unsigned int to = i < 4 ? (unsigned int)kept[i] : ~0U;
        if (to > from) {
            if (syscall(SYS_close_range, from, to - 1, 0) != 0) {
                /* An old kernel: one by one, up to the descriptor limit. */
                long limit = sysconf(_SC_OPEN_MAX);
                unsigned int last = i < 4 ? to - 1 : (limit > 0 && limit < 1 << 20 ? (unsigned int)limit : 1U << 20);
                for (unsigned int fd = from; fd <= last; fd++) close((int)fd);
            }
        }
        if (i < 4 && (unsigned int)kept[i] + 1 > from) from = (unsigned int)kept[i] + 1;
    }
}

static void job_reaper(const char *file, char *const argv[], char *const envp[], const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, int report_fd, int child_fds[3], pid_t parent) {
    sigset_t all, waited;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    for (int number = 1; number < NSIG; number++) {
        if (number == SIGKILL || number == SIGSTOP) continue;
        action.sa_handler = number == SIGPIPE ? SIG_IGN : SIG_DFL;
        sigaction(number, &action, NULL);
    }
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, SIGTERM);
    sigprocmask(SIG_SETMASK, &waited, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    setpgid(0, 0);

    pid_t command = 0;
    int rc = posix_spawnp(&command, file, actions, attr, argv, envp != NULL ? envp : environ);
    int32_t record = rc == 0 ? (int32_t)command : -(int32_t)rc;
    job_write_all(report_fd, &record, sizeof record);
    for (int i = 0; i < 3; i++) close(child_fds[i]);
    if (rc != 0) _exit(0);

    /* Until the command ends; SIGTERM kills its group meanwhile. Orphans that end are reaped. */
    int ended = 0;
    while (!ended) {
        siginfo_t info;
        int number = sigwaitinfo(&waited, &info);
        if (number == SIGTERM) kill(-command, SIGKILL);
        for (;;) {
            siginfo_t exited;
            memset(&exited, 0, sizeof exited);
            if (waitid(P_ALL, 0, &exited, WEXITED | WNOHANG | WNOWAIT) != 0 || exited.si_pid == 0) break;
            if (exited.si_pid == command) {
                ended = 1;
                break;
            }
            waitpid(exited.si_pid, NULL, 0);
        }
    }
    /* The group, while the command's unreaped pid still holds its id; then everything that left it. */
    kill(-command, SIGKILL);
    int status = 0;
    while (waitpid(command, &status, 0) < 0 && errno == EINTR) {}
    pid_t self = getpid();
    for (;;) {
        job_kill_children(self);
        pid_t gone = waitpid(-1, NULL, 0);
        if (gone < 0 && errno == EINTR) continue;
        if (gone < 0) break;
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
    record = (int32_t)status;
    job_write_all(report_fd, &record, sizeof record);
    _exit(0);
}

int stet_job_start(const char *file, char *const argv[], char *const envp[], const char *cwd, int stdin_fd, int stdout_fd,
                   int stderr_fd, int report_fd, pid_t *reaper) {
    /* Prepared before the fork: building them allocates. */
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = posix_spawnattr_init(&attr);
    if (rc != 0) return rc;
    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) {
        posix_spawnattr_destroy(&attr);
        return rc;
    }
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0 && cwd != NULL) rc = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0) {
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) {
            int kept[4] = {stdin_fd, stdout_fd, stderr_fd, report_fd};
            int child_fds[3] = {stdin_fd, stdout_fd, stderr_fd};
            job_close_others(kept);
            job_reaper(file, argv, envp, &actions, &attr, report_fd, child_fds, parent);
        }
        if (pid < 0) {
            rc = errno;
        } else {
            *reaper = pid;
        }
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

static int job_high(int fd) {
    if (fd >= 3) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return moved;
}

int stet_job_pipe(int fds[2]) {
    int made[2];
    if (pipe2(made, O_CLOEXEC) != 0) return -1;
    made[0] = job_high(made[0]);
    made[1] = job_high(made[1]);
    if (made[0] < 0 || made[1] < 0) {
        int saved = errno;
        if (made[0] >= 0) close(made[0]);
        if (made[1] >= 0) close(made[1]);
        errno = saved;
        return -1;
    }
    fds[0] = made[0];
    fds[1] = made[1];
    return 0;
}

int stet_pipe_pending(int fd) {
    int pending = 0;
    return ioctl(fd, FIONREAD, &pending) == 0 ? pending : -1;
}
