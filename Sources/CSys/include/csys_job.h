#ifndef STET_CSYS_JOB_H
#define STET_CSYS_JOB_H

#include <sys/types.h>

/* A command run to its end as a job: under a small reaper process of its own, so that nothing it
   starts outlives it.

   `stet_job_start` forks the reaper, which becomes a child subreaper (PR_SET_CHILD_SUBREAPER)
   in a process group of its own and spawns `file` (looked up in PATH when it has no slash) with
   `argv`, `envp` (NULL: Stet's own environment) and `cwd` (NULL: Stet's), in a new process group,
   with every signal at its default and none blocked, standard input, output and error from
   `stdin_fd`, `stdout_fd` and `stderr_fd` (which may be equal) and no other descriptor. The
   reaper keeps no descriptor but `report_fd`.

   The reaper writes two 32-bit records to `report_fd`: the command's pid (or minus an errno
   value when it could not be started, and nothing more), then, once the command has ended and
   everything it left behind has been killed and reaped (its process group, and every process
   that left the group with setsid, which the subreaper inherits as its parents die), the
   command's wait status. Then it exits 0.

   SIGTERM to the reaper (sent by Stet at a deadline, or by the kernel when the thread that
   started it ends: PR_SET_PDEATHSIG) kills the command's process group at once, then cleans up
   as above. Returns 0 and the reaper's pid, or an errno value. */
int stet_job_start(const char *file, char *const argv[], char *const envp[], const char *cwd, int stdin_fd, int stdout_fd,
                   int stderr_fd, int report_fd, pid_t *reaper);

/* pipe2(O_CLOEXEC) whose ends are both 3 or above (never a standard descriptor). 0 or -1 and errno. */
int stet_job_pipe(int fds[2]);

/* Bytes waiting in a pipe (FIONREAD), or -1. */
int stet_pipe_pending(int fd);

#endif
