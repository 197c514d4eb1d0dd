#ifndef ACME_JOB_H
#define ACME_JOB_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_result.h"
#include "acme_store.h"

/*
 * Per-domain scheduler state, jobs/<name>.json. Written by the renewal worker
 * (as the httpd User), read by the parent (next run), the status handler and
 * the admin command. Holds no secrets.
 */
typedef enum {
    ACME_JOB_IDLE = 0,          /* certificate valid, nothing to do until renew_at */
    ACME_JOB_ORDERING,          /* an order is in flight (see order) */
    ACME_JOB_STAGED,            /* a new certificate waits for activation */
    ACME_JOB_FAILED             /* the last attempt failed; retry at next_run */
} acme_job_state_t;

typedef struct {
    const char *name;
    acme_job_state_t state;
    const char *activity;       /* what the worker does now, for humans */
    apr_time_t next_run;        /* when the worker should look at this domain again */
    apr_time_t renew_at;        /* when the served certificate enters its renew window */
    int failures;               /* consecutive failed attempts */
    acme_result_t last_error;   /* status APR_SUCCESS when none */
    apr_time_t last_error_at;
    const char *order_json;     /* the resumable order (acme_order_to_json), or NULL */
    const char *ca_url;         /* the CA the order/account belongs to */
    apr_time_t updated;
    /* Renewal policy (issue 7); all absent in older files, which read as 0/NULL. */
    int ca_index;               /* the domain's CA in use: index into its
                                 * ACMECertificateAuthority list */
    int ca_failures;            /* consecutive CA-side failures at that CA (failover) */
    const char *renew_reason;   /* "window", "ari" or "emergency": why renew_at is what it is */
    apr_time_t ari_start;       /* the CA's last suggestedWindow (0: none) */
    apr_time_t ari_end;
    apr_time_t ari_pick;        /* the time picked inside it, kept while the window stays */
    apr_time_t ari_next;        /* renewalInfo's Retry-After: not asked again before */
    const char *ari_explanation;/* explanationURL of the window, or NULL */
    const char *warning;        /* the expiry warning while one is due, else NULL */
    const char *notified_event; /* the last ACMENotifyCommand event run */
    apr_time_t notified_at;
    apr_time_t notified_errored_at;  /* last `errored` / `expiring`, for rate limiting; */
    apr_time_t notified_expiring_at; /* cleared by a success */
    int rejected;               /* staged sets the parent refused for good (kept in rejected/) */
    apr_time_t ca_hold;         /* a Retry-After the CA sent outside an order (a renewalInfo
                                 * lookup answered 503/429): no order before it */
    const char *failed_config;  /* SHA-256 (hex) of the domain's configuration at the last
                                 * failure: a changed configuration is tried at once */
    apr_table_t *cert_profiles; /* serial (upper-case hex) -> the profile it was ordered with
                                 * ("" the CA's default), for the certificates obtained last;
                                 * NULL when none recorded. At most ACME_JOB_PROFILES_MAX. */
} acme_job_t;

#define ACME_JOB_PROFILES_MAX 8

/* Records the profile of a certificate the worker obtained (oldest entries make room). */
void acme_job_profile_note(acme_job_t *job, apr_pool_t *p, const char *serial_hex,
                           const char *profile);

/* The profile a certificate was ordered with ("" the CA's default), NULL when not recorded. */
const char *acme_job_profile_of(const acme_job_t *job, const char *serial_hex);

acme_job_t *acme_job_make(apr_pool_t *p, const char *name);

const char *acme_job_state_name(acme_job_state_t state);

/* Loads jobs/<name>.json; a missing file gives a fresh idle job (APR_SUCCESS). */
apr_status_t acme_job_load(apr_pool_t *p, const acme_store_t *st, const char *name,
                           acme_job_t **job, acme_result_t *res);

/* Writes jobs/<name>.json atomically (0644: the status handler reads it). */
apr_status_t acme_job_save(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                           acme_result_t *res);
/* As acme_job_save, not synced: for what the next step or run writes again anyway (the current
 * activity, the planned renewal time). A crash keeps the file whole, old or new. */
apr_status_t acme_job_save_volatile(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                                    acme_result_t *res);

/* Records a failure (copies the result's strings into p) and counts it. */
void acme_job_failed(acme_job_t *job, apr_pool_t *p, const acme_result_t *err, apr_time_t now);

/* The job as JSON for the status handler and the admin command. */
json_t *acme_job_to_json(const acme_job_t *job);

/*
 * requests/<name>.force: an admin (a2acme renew, as root) asks for a renewal now. Only root can
 * write requests/, so the User cannot forge one. The parent notices a new request within a
 * monitor tick and starts the worker, which renews the domain whatever its schedule says (once
 * per request: jobs/<name>.force-done records it); the parent activates the result without
 * waiting for the restart budget and then removes the request.
 */
#define ACME_JOB_FORCE_SUFFIX ".force"

/* Worker: 1 when a request was made since the last one it acted on (and records it). */
int acme_job_force_take(apr_pool_t *p, const acme_store_t *st, const char *name);

/*
 * Worker: 1 when a request was made since the last one it acted on, without recording it: the
 * worker first saves the job as ACME_JOB_ORDERING, then takes the request, so that a worker
 * killed in between or later, mid-order, does not lose it (see acme_job_force_interrupted).
 */
int acme_job_force_pending(apr_pool_t *p, const acme_store_t *st, const char *name);

/*
 * Worker: 1 when the request taken last is still there (the parent removes it once the new
 * set is installed) and the job is still ACME_JOB_ORDERING: the run acting on it was cut
 * short (a kill, a crash), and the forced renewal goes on. A run that ends stages (STAGED) or
 * fails (FAILED), so a request is never acted on twice.
 */
int acme_job_force_interrupted(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job);

/* Parent: 1 while a request for the domain is there. */
int acme_job_force_requested(apr_pool_t *p, const acme_store_t *st, const char *name);

/* Parent: the request is served (removed when a run took it; one written since stays). */
void acme_job_force_clear(apr_pool_t *p, const acme_store_t *st, const char *name);

/* Parent: names and times of every request, NULL when none: a change means a new request. */
const char *acme_job_force_stamp(apr_pool_t *p, const acme_store_t *st);

/* The store file the parent reads to know when the worker is due again. */
#define ACME_JOB_NEXT_RUN_FILE "next-run"

apr_status_t acme_job_next_run_save(apr_pool_t *p, const acme_store_t *st, apr_time_t when,
                                    acme_result_t *res);
/* 0 when unknown (no file, unreadable). */
apr_time_t acme_job_next_run_load(apr_pool_t *p, const acme_store_t *st);

/*
 * The account the worker uses at one CA, jobs/account.<ca-id>.json (0644: a2acme and the status
 * read it; no secrets). Besides the URL it keeps the account's history, so an admin can see when
 * and why the server looked the account up or registered it again, and the time of the last
 * re-registration, which limits re-registrations to one per CA per hour: an account whose key
 * an admin had the CA deactivate must not be recreated in a loop.
 */
#define ACME_JOB_ACCOUNT_HISTORY_MAX 10
#define ACME_JOB_ACCOUNT_REREGISTER_GAP apr_time_from_sec(3600)

typedef struct {
    const char *url;            /* the account URL from then on */
    apr_time_t at;
    const char *reason;         /* e.g. "registered", "registered again: ..." */
} acme_job_account_event_t;

typedef struct {
    const char *ca_url;
    const char *url;            /* NULL until registered or looked up */
    apr_time_t reregistered_at; /* the last registration after a lost account, 0: never */
    apr_array_header_t *history;/* of acme_job_account_event_t, oldest first, bounded */
    /* Account life (src/acme_account.h); a new account URL (acme_job_account_note) resets them. */
    const char *contact_config; /* the configured contact last registered or pushed, as a
                                 * canonical JSON array (acme_account_contact_canon); NULL:
                                 * not known yet */
    const char *tos_agreed;     /* the directory's meta.termsOfService the account agreed to */
    const char *tos_current;    /* the terms the directory named at the last look */
    apr_time_t tos_checked_at;  /* that look; 0: never */
    const char *tos_announced;  /* changed terms already logged and notified */
    const char *tos_blocked;    /* the terms a userActionRequired named: no orders at this CA
                                 * until an admin acts; NULL: not blocked */
    apr_time_t tos_blocked_at;
    int tos_blocked_agreement;  /* ACMEAgreement when it was blocked: a change clears it */
    apr_time_t deactivated_at;  /* a2acme account deactivate: never registered again silently */
    const char *eab_kid;        /* bound by a2acme account bind with this key id */
} acme_job_account_t;

acme_job_account_t *acme_job_account_make(apr_pool_t *p, const char *ca_url);

/*
 * Reads the record at path. A missing file, one of another CA or an unreadable one gives an
 * empty record for ca_url (and the status of the read: APR_SUCCESS only for a record read).
 */
apr_status_t acme_job_account_load(apr_pool_t *p, const char *path, const char *ca_url,
                                   acme_job_account_t **acct, acme_result_t *res);

/* Writes the record atomically (acme_store_write_json). */
apr_status_t acme_job_account_save(apr_pool_t *p, const char *path,
                                   const acme_job_account_t *acct, acme_result_t *res);

/* The account is `url` from `now` on, for `reason`; keeps the last HISTORY_MAX events. */
void acme_job_account_note(acme_job_account_t *acct, apr_pool_t *p, const char *url,
                           const char *reason, apr_time_t now);

/*
 * 1 when a lost account may be registered again at `now` (none in the last hour); otherwise 0
 * and *not_before (if given) is when it may.
 */
int acme_job_account_may_reregister(const acme_job_account_t *acct, apr_time_t now,
                                    apr_time_t *not_before);

/* The record as JSON (history times in seconds), for a2acme. */
json_t *acme_job_account_to_json(const acme_job_account_t *acct);

#endif
