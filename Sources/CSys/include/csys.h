#ifndef STET_CSYS_H
#define STET_CSYS_H

#include <sys/types.h>

/* What Swift's Glibc module does not show: detached spawning and pidfds. */

/* Starts `argv[0]` (looked up in PATH) in a new session, with every signal at its default and
   none blocked, in `cwd`, standard input from /dev/null, standard output and error appended to
   `log_path` (created 0600, never through a link), and no other descriptor inherited. Returns 0
   and the pid, or an errno value. */
int stet_spawn(char *const argv[], char *const envp[], const char *cwd, const char *log_path, pid_t *pid);

/* pidfd_open(2); -1 and errno on failure. */
int stet_pidfd_open(pid_t pid);

#endif
