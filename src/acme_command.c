#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <apr_strings.h>

#include "acme_command.h"

const char *acme_command_check_program(apr_pool_t *p, const char *path)
{
    struct stat st;

    if (!path || path[0] != '/') {
        return apr_psprintf(p, "'%s' is not an absolute path", path ? path : "");
    }
    if (stat(path, &st) != 0) {
        return apr_psprintf(p, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return apr_psprintf(p, "%s is not a regular file", path);
    }
    if (access(path, X_OK) != 0 || !(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
        return apr_psprintf(p, "%s is not executable", path);
    }
    return NULL;
}

const char *acme_command_last_line(apr_pool_t *p, const char *text)
{
    const char *end, *start;

    if (!text) {
        return "";
    }
    end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) {
        --end;
    }
    start = end;
    while (start > text && start[-1] != '\n') {
        --start;
    }
    return apr_pstrmemdup(p, start, (apr_size_t)(end - start));
}

/* NULL-terminated copies, built before fork: the child must not allocate. */
static char **acme_command_vector(apr_pool_t *p, const apr_array_header_t *list,
                                  const char *first)
{
    int n = list ? list->nelts : 0, i, k = 0;
    char **v = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(n + 3));

    if (first) {
        v[k++] = apr_pstrdup(p, first);
        v[k++] = "LANG=C";
    }
    for (i = 0; i < n; ++i) {
        v[k++] = apr_pstrdup(p, APR_ARRAY_IDX(list, i, const char *));
    }
    v[k] = NULL;
    return v;
}

#ifndef ACME_COMMAND_CLOSE_RANGE_CLOEXEC
#define ACME_COMMAND_CLOSE_RANGE_CLOEXEC (1U << 2)   /* linux/close_range.h, not always there */
#endif

/*
 * The highest descriptor number the child may have to close, found before fork: sysconf and
 * getrlimit are not on the async-signal-safe list.
 */
static int acme_command_fd_limit(void)
{
    struct rlimit rl;
    long max = sysconf(_SC_OPEN_MAX);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && (long)rl.rlim_cur > max) {
        max = (long)rl.rlim_cur;
    }
    /* An absurd limit must not make every hook start cost seconds of fcntl calls. */
    return max > 0 && max < 65536 ? (int)max : 65536;
}

/*
 * In the child: every descriptor above 2 is closed at exec. httpd, OpenSSL, curl or a library
 * may hold descriptors without close-on-exec (sockets, the store's lock files, log pipes), and
 * an admin's program must not get them. Marked close-on-exec rather than closed, so that the
 * exec status pipe still reports a failed exec; only async-signal-safe calls.
 */
static void acme_command_close_inherited(int fd_limit)
{
    int fd;

#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, ACME_COMMAND_CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }
#endif
    for (fd = 3; fd < fd_limit; ++fd) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) {
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
}

static void acme_command_child(char **argv, char **envp, int in_fd, int err_fd, int status_fd,
                               int fd_limit)
{
    int null_fd = open("/dev/null", O_RDWR);
    int e;

    setpgid(0, 0);
    if (null_fd < 0 || dup2(in_fd >= 0 ? in_fd : null_fd, 0) < 0 || dup2(null_fd, 1) < 0
        || dup2(err_fd, 2) < 0) {
        e = errno;
        (void)!write(status_fd, &e, sizeof(e));
        _exit(127);
    }
    acme_command_close_inherited(fd_limit);
    /* Signals the worker blocks or ignores must not leak into the program. */
    {
        static const int sigs[] = { SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };
        struct sigaction dfl;
        sigset_t none;
        unsigned i;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); ++i) {
            sigaction(sigs[i], &dfl, NULL);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    execve(argv[0], argv, envp);
    e = errno;
    (void)!write(status_fd, &e, sizeof(e));
    _exit(127);
}

static void acme_command_kill(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0) {
        kill(pid, sig);
    }
}

/* The program's input, fed as it reads: a program that never reads must not block us. */
typedef struct {
    int fd;                             /* non-blocking write end, -1 when done */
    const char *data;
    apr_size_t left;
} acme_command_input_t;

static void acme_command_feed(acme_command_input_t *in)
{
    while (in->fd >= 0 && in->left > 0) {
        ssize_t n = write(in->fd, in->data, in->left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            break;              /* EPIPE: the program did not want (all of) it */
        }
        in->data += n;
        in->left -= (apr_size_t)n;
    }
    if (in->fd >= 0) {
        close(in->fd);
        in->fd = -1;
    }
}

/* Reads stderr until EOF and the child exits, or the deadline; returns the wait status. */
static int acme_command_wait(apr_pool_t *p, pid_t pid, int err_fd, acme_command_input_t *in,
                             apr_interval_time_t timeout, volatile const int *cancel,
                             acme_command_outcome_t *out)
{
    char *buf = apr_palloc(p, ACME_COMMAND_STDERR_MAX + 1);
    apr_size_t len = 0;
    apr_time_t start = apr_time_now(), kill_at = 0;
    int open_fd = 1, status = 0, done = 0;

    while (!done) {
        apr_time_t now = apr_time_now();
        struct pollfd pfd[2] = {
            { .fd = err_fd, .events = POLLIN },
            { .fd = in->fd, .events = POLLOUT },
        };
        pid_t r;

        acme_command_feed(in);
        pfd[1].fd = in->fd;

        if (!out->timed_out && ((timeout > 0 && now - start > timeout)
                                || (cancel && *cancel))) {
            out->timed_out = 1;
            acme_command_kill(pid, SIGTERM);
            kill_at = now + ACME_COMMAND_KILL_GRACE;
        }
        if (kill_at && now > kill_at) {
            acme_command_kill(pid, SIGKILL);
            kill_at = 0;
        }
        if (!open_fd) {
            pfd[0].fd = -1;
        }
        if ((open_fd || in->fd >= 0) && poll(pfd, 2, 100) > 0 && open_fd
            && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[512];
            ssize_t n = read(err_fd, tmp, sizeof(tmp));
            if (n <= 0) {
                open_fd = 0;
            }
            else if (len < ACME_COMMAND_STDERR_MAX) {
                apr_size_t take = (apr_size_t)n;
                if (take > ACME_COMMAND_STDERR_MAX - len) {
                    take = ACME_COMMAND_STDERR_MAX - len;
                }
                memcpy(buf + len, tmp, take);
                len += take;
            }
        }
        else if (!open_fd && in->fd < 0) {
            usleep(20000);
        }
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            done = 1;
        }
    }
    if (in->fd >= 0) {
        close(in->fd);
        in->fd = -1;
    }
    /* Whatever the program left behind in its group goes with it (the group only: the pid is
     * reaped and may be reused). */
    kill(-pid, SIGKILL);
    buf[len] = '\0';
    /* Programs write any bytes, and the cut at ACME_COMMAND_STDERR_MAX can split a character:
     * the text goes into the job file and notifications, which are JSON. */
    out->stderr_text = acme_result_utf8(p, buf);
    out->elapsed = apr_time_now() - start;
    return status;
}

static void acme_command_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/*
 * pipes[0..1]: stderr (read, write), [2..3]: exec status, [4..5]: stdin (read, write) or -1
 * when there is no input. All close-on-exec (dup2 clears it for the child's 0 and 2). 0 or -1.
 */
static int acme_command_pipes(int pipes[6], int with_input)
{
    int i;

    for (i = 0; i < 6; ++i) {
        pipes[i] = -1;
    }
    if (pipe2(pipes, O_CLOEXEC) == 0 && pipe2(pipes + 2, O_CLOEXEC) == 0
        && (!with_input || pipe2(pipes + 4, O_CLOEXEC) == 0)) {
        return 0;
    }
    {
        int e = errno;
        for (i = 0; i < 6; ++i) {
            acme_command_close(&pipes[i]);
        }
        errno = e;
    }
    return -1;
}

apr_status_t acme_command_run(apr_pool_t *p, const acme_command_t *cmd,
                              acme_command_outcome_t *pout, acme_result_t *res)
{
    acme_command_outcome_t local, *out = pout ? pout : &local;
    const char *what = cmd->what ? cmd->what : "command";
    const char *prog = cmd->argv && cmd->argv->nelts > 0
                       ? APR_ARRAY_IDX(cmd->argv, 0, const char *) : NULL;
    char **argv, **envp;
    int pipes[6], status, child_errno = 0, fd_limit = acme_command_fd_limit();
    acme_command_input_t in;
    const char *last;
    pid_t pid;

    *out = (acme_command_outcome_t){ .stderr_text = "" };
    if (!prog || prog[0] != '/') {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "%s: the program must be given as an absolute path", what));
    }
    argv = acme_command_vector(p, cmd->argv, NULL);
    envp = acme_command_vector(p, cmd->env, ACME_COMMAND_PATH);
    if (acme_command_pipes(pipes, cmd->input != NULL) != 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "%s: pipe: %s", what, strerror(errno)));
    }
    pid = fork();
    if (pid == 0) {
        acme_command_child(argv, envp, pipes[4], pipes[1], pipes[3], fd_limit);
    }
    acme_command_close(&pipes[1]);
    acme_command_close(&pipes[3]);
    acme_command_close(&pipes[4]);
    if (pid < 0) {
        int e = errno;
        acme_command_close(&pipes[0]);
        acme_command_close(&pipes[2]);
        acme_command_close(&pipes[5]);
        return acme_result_fail(res, APR_FROM_OS_ERROR(e), ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "%s: fork: %s", what, strerror(e)));
    }
    setpgid(pid, pid);      /* also here: no race with a kill before the child ran setpgid */
    in = (acme_command_input_t){ .fd = pipes[5], .data = cmd->input,
                                 .left = cmd->input ? cmd->input_len : 0 };
    if (in.fd >= 0) {
        fcntl(in.fd, F_SETFL, fcntl(in.fd, F_GETFL) | O_NONBLOCK);
    }
    status = acme_command_wait(p, pid, pipes[0], &in, cmd->timeout, cmd->cancel, out);
    acme_command_close(&pipes[0]);
    if (read(pipes[2], &child_errno, sizeof(child_errno)) != sizeof(child_errno)) {
        child_errno = 0;
    }
    acme_command_close(&pipes[2]);
    if (child_errno) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(child_errno), ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s: cannot run %s: %s", what, prog,
                                             strerror(child_errno)));
    }
    last = acme_command_last_line(p, out->stderr_text);
    last = *last ? apr_pstrcat(p, "; it said: ", last, NULL) : "";
    if (out->timed_out && cmd->cancel && *cmd->cancel) {
        return acme_result_fail(res, APR_EINTR, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "%s: %s was stopped with the renewal worker%s", what, prog, last));
    }
    if (out->timed_out) {
        return acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "%s: %s did not finish within %" APR_TIME_T_FMT " s and was killed%s", what, prog,
            apr_time_sec(cmd->timeout), last));
    }
    if (WIFSIGNALED(status)) {
        out->signal = WTERMSIG(status);
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "%s: %s was killed by signal %d%s", what, prog, out->signal, last));
    }
    out->exited = WIFEXITED(status);
    out->exit_code = out->exited ? WEXITSTATUS(status) : -1;
    if (!out->exited || out->exit_code != 0) {
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "%s: %s failed with exit status %d%s", what, prog, out->exit_code, last));
    }
    return APR_SUCCESS;
}
