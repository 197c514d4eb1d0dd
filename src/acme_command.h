#ifndef ACME_COMMAND_H
#define ACME_COMMAND_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_result.h"

/*
 * Runs an admin's program (ACMEDns01Command, notification hooks) from the renewal worker.
 *
 * - argv[0] is an absolute path; it is executed directly, no shell.
 * - The environment is clean: PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
 *   LANG=C, plus the caller's `env` entries ("NAME=value"), which callers document.
 * - stdin is `input` (written through a pipe, then closed) or /dev/null; stdout is discarded;
 *   stderr is captured (at most ACME_COMMAND_STDERR_MAX bytes) so the caller can log it. A
 *   program that exits without reading its input is not an error: the caller's process must
 *   ignore SIGPIPE (the renewal worker and a2acme do).
 * - The program runs in its own process group; when `timeout` passes, the whole group gets
 *   SIGTERM, then SIGKILL after ACME_COMMAND_KILL_GRACE, and the run counts as failed.
 *
 * Safe to call from several threads at once: between fork and exec the child only calls
 * async-signal-safe functions.
 */

#define ACME_COMMAND_STDERR_MAX 4096
#define ACME_COMMAND_KILL_GRACE apr_time_from_sec(2)
#define ACME_COMMAND_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct {
    const apr_array_header_t *argv;     /* const char *: program, then its arguments */
    const apr_array_header_t *env;      /* const char * "NAME=value", or NULL */
    apr_interval_time_t timeout;        /* <= 0: no limit */
    const char *what;                   /* for messages, e.g. "ACMEDns01Command (setup)" */
    volatile const int *cancel;         /* optional: non-zero kills the group, like a timeout */
    const char *input;                  /* optional: the program's stdin, input_len bytes */
    apr_size_t input_len;
} acme_command_t;

typedef struct {
    int exited;                         /* 1: exited normally, exit_code is valid */
    int exit_code;
    int signal;                         /* the signal that ended it, 0 if none */
    int timed_out;
    const char *stderr_text;            /* captured stderr (may be ""), never NULL after a run */
    apr_interval_time_t elapsed;
} acme_command_outcome_t;

/*
 * Runs the command and waits for it. APR_SUCCESS when it exited with status 0. Otherwise res
 * holds one line naming `what`, the program and why (cannot be run, exit status, signal,
 * timeout) with the last line of its stderr: ACME_CLASS_ADMIN when the program cannot be run,
 * ACME_CLASS_RETRY_SOON when it ran and failed. `out` (optional) receives the details.
 */
apr_status_t acme_command_run(apr_pool_t *p, const acme_command_t *cmd,
                              acme_command_outcome_t *out, acme_result_t *res);

/* NULL when path is an absolute path to an executable regular file, else why not. */
const char *acme_command_check_program(apr_pool_t *p, const char *path);

/* The last non-empty line of text (for one-line messages), "" when there is none. */
const char *acme_command_last_line(apr_pool_t *p, const char *text);

#endif
