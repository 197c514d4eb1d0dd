#ifndef ACME_STATUS_H
#define ACME_STATUS_H

#include <jansson.h>

#include "acme_activate.h"
#include "acme_domain.h"
#include "acme_job.h"
#include "acme_renewal.h"

/*
 * The status of managed domains as JSON, shared by the status handler and the
 * admin command. Holds no secrets: names, certificate facts, job state, errors.
 */
json_t *acme_status_domain(const acme_domain_t *dom, const acme_active_t *active,
                           const acme_job_t *job);

/* The "state" acme_status_domain shows ("valid", "renewing", ...; acme_metrics_states). */
const char *acme_status_state_of(const acme_active_t *active, const acme_job_t *job);

/*
 * One CA account from its record (jobs/account.<ca-id>.json): URL, terms of service (agreed,
 * current, changed, and the terms a userActionRequired demands: orders there stop), contact as
 * last configured, deactivation. No secrets (the EAB key id is not one).
 */
json_t *acme_status_account(const acme_job_account_t *rec);

/* The state the status shows: "valid", "valid, renewal failing", "renewing", "failing", ... */
const char *acme_status_state(const acme_active_t *active, const acme_job_t *job);

/*
 * The short form of the status for mod_status's server-status page: counts over every managed
 * domain, built from what the status handler reads (one job file per domain), no names.
 */
typedef struct {
    int domains;
    int valid;                  /* state "valid" or "valid, renewal failing" */
    int expiring;               /* some served certificate is inside the warn window, or expired */
    int failing;                /* the last attempt failed (job state "failed") */
    apr_time_t next_renewal;    /* earliest scheduled renewal; 0: none */
    apr_time_t last_activation; /* newest installation of a served certificate; 0: none */
    const char *worker;         /* "running", "idle", "restarting" or "unknown" */
} acme_status_summary_t;

/* Counts one domain; warn is ACMEWarnWindow (NULL: 10 %). */
void acme_status_summary_add(acme_status_summary_t *sum, const acme_active_t *active,
                             const acme_job_t *job, const acme_plan_window_t *warn,
                             apr_time_t now);

/* The worker's state from jobs/worker.json as the parent wrote it; "unknown" for anything else. */
const char *acme_status_worker_state(json_t *worker);

/* server-status?auto: "ACMEDomains: 12" lines; times in seconds since the epoch (0: none). */
const char *acme_status_summary_auto(apr_pool_t *p, const acme_status_summary_t *sum);

/* server-status: an HTML section with the same facts, times as dates. */
const char *acme_status_summary_html(apr_pool_t *p, const acme_status_summary_t *sum);

#endif
