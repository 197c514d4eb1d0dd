#ifndef ACME_WORKER_H
#define ACME_WORKER_H

#include <sys/types.h>

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_domain.h"
#include "acme_ondemand.h"

#include "acme_cluster.h"

/*
 * The renewal worker: one run looks at every managed domain, drives the due
 * ones through ACME concurrently, leaves new certificates in staging/ and
 * exits. It starts as root only to read what the httpd User must not (account
 * keys, the active certificates), makes itself non-dumpable and becomes the
 * User before the first network request.
 *
 * staging/<name>~pending/   work in progress: privkey.<spec>.sealed, pubkey.<spec>.pem,
 *                           pubcert.<spec>.pem
 * staging/<name>/           a finished set waiting for activation: the same files plus
 *                           staged.json; it appears by one rename
 */

#define ACME_WORKER_PENDING_SUFFIX "~pending"
#define ACME_WORKER_STAGED_FILE "staged.json"

/* Where the worker's log lines go (the module sends them to httpd's error log). */
typedef enum {
    ACME_LOG_ERROR = 0,
    ACME_LOG_WARNING,
    ACME_LOG_NOTICE,
    ACME_LOG_INFO,
    ACME_LOG_DEBUG,
    ACME_LOG_CRIT               /* a certificate is about to expire and renewal keeps failing */
} acme_log_level_t;

/* file and line: where in the worker the line was written (the admin finds the code by it). */
typedef void acme_worker_log_fn(void *baton, acme_log_level_t level, const char *file, int line,
                                const char *message);

/* On-demand certificates (issue 19): one per virtual host with ACMEOnDemand on. */
typedef struct {
    const char *ask_url;                /* ACMEOnDemandAsk */
    const apr_array_header_t *patterns; /* const char *: the vhost's ServerName and ServerAlias
                                         * values (wildcards too); empty: any name */
    const acme_policy_t *policy;        /* resolved as for an ACMEDomain in that vhost */
} acme_worker_ondemand_site_t;

typedef struct {
    const apr_array_header_t *sites;    /* acme_worker_ondemand_site_t, configuration order */
    acme_ondemand_policy_t policy;      /* ACMEOnDemandRate, ACMEOnDemandMax */
    apr_interval_time_t ask_timeout;    /* for one question to the ask endpoint */
} acme_worker_ondemand_t;

/* The index in od->sites of the site that catches name (0, the catch-all, when none lists it). */
int acme_worker_ondemand_site_find(const acme_worker_ondemand_t *od, const char *name);

typedef struct {
    const char *store_dir;
    const apr_array_header_t *domains;  /* acme_domain_t *, policies resolved */
    int parallel_orders;
    apr_interval_time_t check_interval; /* 0: 12 h */
    int drop_privileges;                /* become uid/gid before any network I/O */
    uid_t uid;
    gid_t gid;
    pid_t parent_pid;                   /* stop when it is gone; 0: not supervised */
    const char *seal_cert_pem;          /* staged keys are sealed to it */
    int ari_off;                        /* ACMERenewalInfo off; else ARI when the CA offers it */
    const char *warn_window;            /* ACMEWarnWindow ("10%", "2d"); NULL: 10 % */
    const apr_array_header_t *notify_argv; /* ACMENotifyCommand (const char *); NULL: none */
    const acme_worker_ondemand_t *ondemand; /* NULL: no on-demand certificates */
    const acme_cluster_config_t *cluster; /* ACMECluster (issue 16); NULL: a node of its own */
    /* key file path -> "inode:mtime:size" when the parent found that key loadable: a file still
     * so is not parsed again at each run (NULL: every key is checked) */
    const apr_hash_t *keys_loadable;
    /* chain file path -> the parent's acme_active_cert_t for it (its leaf's details and the
     * file's stamp then): a chain still so is not parsed again at each run (NULL: all are) */
    const apr_hash_t *chains_known;
    acme_worker_log_fn *log;
    void *log_baton;
} acme_worker_config_t;

/*
 * The worker could not write jobs/next-run (a full or broken store): the parent's copy of it
 * is stale, so the parent starts the worker again soon, backing off, instead of trusting it.
 */
#define ACME_WORKER_EXIT_UNSCHEDULED 4
/* A name the parent activated (without a restart) did not present its new certificate. */
#define ACME_WORKER_EXIT_SELFCHECK 5

/* One run; returns the process exit status (0: every due domain was handled). */
int acme_worker_run(apr_pool_t *p, const acme_worker_config_t *cfg);

/* Asks a running acme_worker_run to stop at the next step (async-signal-safe). */
void acme_worker_request_stop(void);

/* Asks a worker that waits for on-demand names to end once idle (async-signal-safe). */
void acme_worker_request_finish(void);
int acme_worker_finish_requested(void);

#endif
