#ifndef ACME_SUPERVISE_H
#define ACME_SUPERVISE_H

/*
 * The parent's supervision of the renewal worker (httpd glue). The parent
 * forks the worker at start-up and whenever work is due, notices its exit
 * within about a second (registered as an "other child"), and when new
 * certificates were staged, checks them and signals its own graceful restart.
 * A worker survives graceful restarts: orders in flight are not aborted.
 */
#include <sys/types.h>

#include <httpd.h>

#include "acme_config.h"

/* post_config, real pass: adopt a worker from the previous generation or start one. */
void acme_supervise_start(apr_pool_t *pconf, server_rec *s, acme_conf_t *conf);

/* monitor hook (about every 10 s): start a due worker, activate what landed. */
int acme_supervise_monitor(apr_pool_t *p, server_rec *s);

/* Who staged files must belong to: the httpd User the worker runs as (or us, not as root). */
uid_t acme_supervise_worker_uid(void);

/* child_init: a server child does not keep the parent's SIGCHLD wake-up handler. */
void acme_supervise_child(void);

#endif
