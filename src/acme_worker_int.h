/*
 * Internal to the renewal worker (acme_worker*.c): the run's state shared by its files.
 * acme_worker.c plans and runs orders; acme_worker_account.c keeps the ACME account (key,
 * registration, recovery, contact, terms of service); acme_worker_persist.c checks
 * dns-persist-01 records. Not for other parts of the module: acme_worker.h is the interface.
 */
#ifndef ACME_WORKER_INT_H
#define ACME_WORKER_INT_H

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <apr_escape.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_hash.h>
#include <apr_general.h>

#include "acme_perms.h"
#include "acme_metrics.h"
#include "acme_account.h"
#include "acme_activate.h"
#include "acme_challenge.h"
#include "acme_client.h"
#include "acme_client_shared.h"
#include "acme_crypto.h"
#include "acme_dns01.h"
#include "acme_jose.h"
#include "acme_persist.h"
#include "acme_eab.h"
#include "acme_domain.h"
#include "acme_job.h"
#include "acme_plan.h"
#include "acme_problem.h"
#include "acme_profile.h"
#include "acme_renewal.h"
#include "acme_notify.h"
#include "acme_seal.h"
#include "acme_selfcheck.h"
#include "acme_store.h"
#include "acme_worker.h"

/* What the run knows about one CA: its account key (read as root) and URL. */
typedef struct {
    const char *ca_url;
    const char *ca_id;
    acme_key_t *account_key;
    const char *account_url;            /* NULL until looked up or registered */
    apr_thread_mutex_t *lock;           /* one registration at a time */
    apr_thread_mutex_t *new_order_lock; /* one newOrder in flight until its URL is saved: a
                                         * kill in between orphans at most one order */
    apr_pool_t *pool;                   /* account_url's memory, used under lock only: order
                                         * threads must not allocate from the run's pool */
    acme_store_lock_t *account_lock;    /* the store lock a2acme rollover takes, or NULL */
    int busy;                           /* another process held it: no orders at this CA */
    int key_new;                        /* the key was made this run: no account has it yet */
    const char *eab_kid;                /* ACMEExternalAccountBinding of the first domain here */
    char *eab_hmac;                     /* its HMAC key, read as root in prepare; a secret */
    const char *eab_error;              /* why the key could not be read: no registration */
    int eab_only_if_required;           /* the domain has failover CAs: bind where required */
    acme_job_account_t *record;         /* jobs/account.<ca-id>.json, in pool, under lock */
    acme_result_t *recovery_failed;     /* this run's failed account recovery, in pool, under
                                         * lock: the other orders fail alike without requests */
    int life_set;                       /* contact_cfg and agreement taken from a domain */
    const char *contact_cfg;            /* ACMEContactEmail of the first domain here, canonical */
    int agreement;                      /* its ACMEAgreement */
    int life_done;                      /* terms and contact compared this run (under lock) */
    const char *ca_file;                /* ACMECACertificate of that domain */
    int directory_cached;               /* its profiles were written for configtest (under lock) */
} acme_worker_ca_t;

/* The certificate served now for one key spec, read as root. */
typedef struct {
    int present;
    int covers;                         /* names match the configuration */
    apr_time_t not_before;
    apr_time_t not_after;
    const char *serial;                 /* upper-case hex */
    const char *cert_id;                /* ARI certificate id (RFC 9773), or NULL */
} acme_worker_active_t;

typedef struct {
    const acme_domain_t *dom;
    acme_worker_ca_t *ca;               /* the CA in use: cas[job's ca_index] */
    acme_worker_ca_t **cas;             /* one per ACMECertificateAuthority value, for failover */
    int n_cas;
    acme_worker_active_t *active;       /* one per key spec */
    int staged;                         /* a finished set waits for activation */
    int forced;                         /* an admin asked for it: activate without waiting */
    int deferred;                       /* cluster: another node held its lock; looked at again
                                         * after this run's other domains (under lock) */
    const char *job_damaged;            /* why jobs/<name>.json could not be read, or NULL */
    char etcd_serial[80];               /* cluster: the serial of etcd's record when last read
                                         * or written in this run (for the status), else "" */
} acme_worker_item_t;

typedef struct {
    const acme_worker_config_t *cfg;
    apr_pool_t *pool;
    acme_store_t *store;
    apr_hash_t *cas;                    /* ca_url -> acme_worker_ca_t * */
    apr_array_header_t *items;          /* acme_worker_item_t */
    apr_array_header_t *due;            /* acme_worker_item_t * */
    int next_due;                       /* queue position, under lock */
    apr_thread_mutex_t *lock;
    apr_time_t next_run;                /* earliest time any domain needs the worker again */
    int failures;
    int running;                        /* order threads still going, under lock */
    int abandoned;                      /* stopped with threads still running */
    const unsigned char *proof_key;     /* seal/proof.key, read as root: proves our staged sets */
    acme_metrics_tally_t *metrics;      /* this run's counts, added to jobs/metrics.json */
    apr_hash_t *shared;                 /* "ca_url ca_file proxy" -> acme_client_shared_t *:
                                         * directory and nonces the order threads share, in
                                         * shared_pool, under lock */
    apr_pool_t *shared_pool;            /* its own allocator (acme_worker_pool_make) */
    apr_array_header_t *ondemand_sites; /* acme_worker_ondemand_run_site_t, from prepare */
    apr_time_t ondemand_down_logged;    /* the ask endpoint's failure, logged once a minute */
    struct acme_worker_cluster_t *cluster; /* ACMECluster (acme_worker_cluster.c); NULL: off */
    int selfcheck_failed;               /* a name did not present what was activated */
    int ondemand_staged;                /* on-demand sets staged: the run ends to have them
                                         * activated (the parent wakes when it ends) */
    acme_worker_item_t **deferred;      /* cluster: due domains another node orders now, taken
                                         * after the others (capacity: due, allocated before the
                                         * threads start; under lock) */
    int n_deferred, next_deferred;
    struct acme_cert_t *seal_cert;      /* cfg->seal_cert_pem parsed at start, or NULL */
    apr_time_t stay_until;              /* with on-demand: when the worker would run next,
                                         * until which it waits for names first seen */
} acme_worker_t;

/* An on-demand site's CAs, read as root in prepare like a domain's. */
typedef struct {
    const acme_worker_ondemand_site_t *site;
    acme_worker_ca_t **cas;
    int n_cas;
} acme_worker_ondemand_run_site_t;

typedef struct acme_worker_run_t acme_worker_run_t;

/* The finalize sent in place of the first poll once the answers are out (acme_worker_answer). */
typedef apr_status_t acme_worker_finalize_fn(acme_worker_run_t *run, acme_order_t *order,
                                             apr_time_t answered, acme_result_t *res);

struct acme_worker_run_t {
    acme_worker_t *w;
    apr_pool_t *p;                      /* the thread's pool for this domain */
    apr_pool_t *thread_pool;            /* lives as long as the thread: clients are reused */
    apr_hash_t *clients;                /* "ca_url ca_file" -> acme_client_t *, per thread */
    acme_worker_item_t *item;
    acme_job_t *job;
    acme_client_t *client;
    const char *pending_dir;
    int key_gone;                       /* the resumed order's key is not here: order anew */
    struct acme_key_t *fresh_key;       /* the key this run finalized with, and its spec: the */
    const char *fresh_spec;             /* download checks against it without parsing it again */
    struct acme_etcd_t *etcd;           /* cluster: this order's etcd client, else NULL */
    apr_int64_t cluster_token;          /* cluster: the domain's lock held (fencing), else 0 */
    apr_array_header_t *cluster_answers; /* cluster: "type/what" of the answers put in etcd */
    apr_array_header_t *cluster_withdraw; /* cluster: acme_etcd_op_t removing answers validated,
                                           * sent with the next fenced write */
    acme_worker_finalize_fn *finalize_early; /* NULL: wait for the order to be ready */
    const void *early_baton;            /* what finalize_early finalizes with (spec, CSR) */
    int early_key;                      /* fresh_key went out in an early finalize the CA
                                         * refused: the ready order's finalize takes it */
};

/* acme_worker.c */
void acme_worker_metrics_client(acme_worker_t *w, const char *ca_url,
                                const acme_client_t *client);
void acme_worker_log_at(const acme_worker_t *w, const char *file, int line,
                        acme_log_level_t level, const char *msg);
/* Logs with the caller's file and line, not this file's. */
#define acme_worker_log(w, level, msg) acme_worker_log_at((w), __FILE__, __LINE__, (level), (msg))
const char *acme_worker_time_text(apr_pool_t *p, apr_time_t t);
/* The parent (httpd) is gone or a stop was asked for: end between domains. */
int acme_worker_orphaned(const acme_worker_t *w);
apr_status_t acme_worker_job_save(acme_worker_t *w, apr_pool_t *p, const acme_job_t *job,
                                  acme_result_t *res);
/* As acme_worker_job_save, not synced: what the job shows, or what the next run plans again. */
void acme_worker_job_note(acme_worker_t *w, apr_pool_t *p, const acme_job_t *job);
apr_array_header_t *acme_worker_active_certs(apr_pool_t *p, const acme_worker_item_t *item);
void acme_worker_notify(acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                        acme_job_t *job, const char *event,
                        const apr_array_header_t *certs, const char *error);
apr_time_t acme_worker_emergency_at(const acme_worker_item_t *item);
void acme_worker_activity(acme_worker_run_t *run, const char *what);
void acme_worker_activity_set(acme_worker_run_t *run, const char *what);
/* A key sealed to the parent (its seal certificate parsed once per run when it could be). */
apr_status_t acme_worker_seal(const acme_worker_t *w, apr_pool_t *p, const char *pem,
                              apr_size_t len, const char **sealed, acme_result_t *res);
apr_status_t acme_worker_register(acme_worker_run_t *run, acme_client_account_t **acct,
                                  acme_result_t *res);
int acme_worker_lists(const acme_domain_t *dom, const char *type);
int acme_worker_was_due(const acme_worker_t *w, const acme_worker_item_t *item);

apr_status_t acme_worker_account(acme_worker_run_t *run, acme_result_t *res);
apr_status_t acme_worker_answer(acme_worker_run_t *run, acme_order_t *order,
                                acme_result_t *res);
int acme_worker_stop_requested(void);

/* acme_worker_ondemand.c: names first seen in SNI (issue 19) */
apr_status_t acme_worker_ondemand_prepare(acme_worker_t *w, acme_result_t *res);
int acme_worker_ondemand_batch(acme_worker_t *w);

/* acme_worker.c */
apr_status_t acme_worker_ca_get(acme_worker_t *w, const char *ca_url, const acme_policy_t *pol,
                                acme_worker_ca_t **pca, acme_result_t *res);
/* acme_worker_order.c: one domain through the CA, as an order thread does it */
void acme_worker_order_item(acme_worker_t *w, apr_pool_t *p, apr_pool_t *tp,
                            apr_hash_t *clients, acme_worker_item_t *item);
int acme_worker_staged_present(acme_worker_t *w, const acme_domain_t *dom);

/* acme_worker_order.c: the pending set becomes staging/<name>/ (with the worker's proof) */
apr_status_t acme_worker_stage(acme_worker_run_t *run, acme_result_t *res);

/* acme_worker_cluster.c: clustering through etcd (issue 16); each does nothing when off */
typedef struct acme_worker_cluster_t acme_worker_cluster_t;
void acme_worker_cluster_open(acme_worker_t *w);
void acme_worker_cluster_fetch(acme_worker_t *w);
void acme_worker_cluster_spread(acme_worker_t *w);
/* also brings the next run within 5 minutes: the nodes sync at least that often */
void acme_worker_cluster_close(acme_worker_t *w);
/* After the run's work: stays and stages what other nodes publish (bounded; see the file). */
void acme_worker_cluster_watch(acme_worker_t *w);
apr_status_t acme_worker_cluster_claim(acme_worker_run_t *run, acme_result_t *res);
void acme_worker_cluster_release(acme_worker_run_t *run);
void acme_worker_cluster_order_save(acme_worker_run_t *run, const char *order_json);
void acme_worker_cluster_key_keep(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                  const char *pem);
void acme_worker_cluster_publish(acme_worker_run_t *run);

/* acme_worker_share.c: challenge answers any node gives (ACMECluster) */
/* Before the CA is asked to validate: every other live node acknowledged the answers (bounded). */
void acme_worker_share_acks(acme_worker_run_t *run);
/* ident: the identifier; token: http-01's, NULL for tls-alpn-01; key_authz NULL: withdrawn */
void acme_worker_share_answer(acme_worker_run_t *run, const char *type, const char *ident,
                              const char *token, const char *key_authz);

/* acme_worker_api.c: the certificate API's queued CSRs (issue 17) */
void acme_worker_api_run(acme_worker_t *w);

/* acme_worker_account.c */
apr_status_t acme_worker_account_key(acme_worker_t *w, acme_worker_ca_t *ca,
                                     acme_result_t *res);
const char *acme_worker_account_url_path(acme_worker_t *w, apr_pool_t *p,
                                         const acme_worker_ca_t *ca);
void acme_worker_account_url_load(acme_worker_t *w, acme_worker_ca_t *ca);
void acme_worker_account_params(acme_worker_run_t *run, acme_client_account_params_t *params);
void acme_worker_account_adopt(acme_worker_run_t *run, const char *url, const char *why,
                               int reregistered);
int acme_worker_account_recover(acme_worker_run_t *run, acme_result_t *res, int *tried);
apr_status_t acme_worker_account_gate(acme_worker_run_t *run, acme_result_t *res);
void acme_worker_account_life(acme_worker_run_t *run);
int acme_worker_account_tos_stop(acme_worker_run_t *run, acme_result_t *res, int *switches);
void acme_worker_account_upkeep(acme_worker_t *w);

/* acme_worker_persist.c */
apr_status_t acme_worker_persist_precheck(acme_worker_run_t *run, acme_result_t *res);
apr_status_t acme_worker_persist_answer(acme_worker_run_t *run,
                                       const acme_client_authz_t *authz,
                                       const acme_client_challenge_t *chal,
                                       acme_result_t *res);
void acme_worker_persist_watch(acme_worker_t *w);

/* ------------------------------------------------------------- shared by the worker's files */

#define ACME_WORKER_DEFAULT_INTERVAL apr_time_from_sec(12 * 3600)
#define ACME_WORKER_MAX_STEPS 12
#define ACME_WORKER_STOP_GRACE apr_time_from_sec(2)
#define ACME_WORKER_SAME_CA_PAUSE apr_time_from_sec(2)
#define ACME_WORKER_ACCOUNT_LOCK_WAIT apr_time_from_sec(3)
/* Quick retries in one run after a transient failure: pauses of 1, 2 and 4 s, then the backoff. */
#define ACME_WORKER_QUICK_RETRIES 3
#define ACME_WORKER_QUICK_PAUSE apr_time_from_sec(1)
/* A write takes milliseconds: a temp file this old belongs to a process that was killed. */
#define ACME_WORKER_TEMP_AGE apr_time_from_sec(60)
#define ACME_WORKER_ARI_TIMEOUT apr_time_from_sec(10)

/* acme_worker.c, acme_worker_plan.c, acme_worker_order.c, acme_worker_challenge.c */
const char *acme_worker_config_digest(apr_pool_t *p, const acme_domain_t *dom);
void acme_worker_metrics_clients(acme_worker_t *w, apr_pool_t *p, apr_hash_t *clients);
void acme_worker_metrics_save(acme_worker_t *w);
void acme_worker_plan(acme_worker_t *w, apr_interval_time_t interval);
void acme_worker_dns01_leftovers(acme_worker_t *w);
double acme_worker_random(void);
void acme_worker_note_next(acme_worker_t *w, apr_time_t t);
const char *acme_worker_file(apr_pool_t *p, const char *dir, const char *prefix,
                             const acme_keyspec_t *spec, const char *suffix);
apr_array_header_t *acme_worker_set_certs(apr_pool_t *p, const acme_domain_t *dom,
                                          const char *dir);
void acme_worker_active_read(acme_worker_t *w, const acme_domain_t *dom,
                             const acme_keyspec_t *spec, acme_worker_active_t *act);
/* item->active again from what is installed now (the parent installs while a run goes on). */
void acme_worker_active_refresh(acme_worker_t *w, acme_worker_item_t *item);
volatile const int *acme_worker_stop_flag(void);
/* An order thread: takes due domains off the run's list until none is left. */
void *APR_THREAD_FUNC acme_worker_thread(apr_thread_t *thread, void *data);

#endif
