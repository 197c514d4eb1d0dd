/* dl_iterate_phdr (the modules this generation loaded) is a GNU extension. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <scoreboard.h>
#include <util_cfgtree.h>
#include <unixd.h>
#include <apr_sha1.h>
#include <apr_signal.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_activate.h"
#include "acme_batch.h"
#include "acme_config_cluster.h"
#include "acme_job.h"
#include "acme_perms.h"
#include "acme_plan.h"
#include "acme_seal.h"
#include "acme_serve.h"
#include "acme_serve_metrics.h"
#include "acme_config_ondemand.h"
#include "acme_serve_hot.h"
#include "acme_supervise_hot.h"
#include "acme_supervise.h"
#include "acme_supervise_export.h"
#include "acme_api_store.h"
#include "acme_version.h"
#include "acme_worker.h"

APLOG_USE_MODULE(acme);

#define ACME_SUPERVISOR_KEY "mod_acme-supervisor"
/* A slow domain holds back the others' activation by at most this much. */
#define ACME_SUPERVISE_COALESCE apr_time_from_sec(30)
#define ACME_SUPERVISE_CRASH_DELAY apr_time_from_sec(5)
#define ACME_SUPERVISE_CRASH_DELAY_MAX apr_time_from_sec(3600)
#define ACME_SUPERVISE_CONFIGTEST_RETRY apr_time_from_sec(10)
#define ACME_SUPERVISE_CONFIGTEST_RETRY_MAX apr_time_from_sec(600)
/* A configuration test takes a second or two; one still running after this never ends. */
#define ACME_SUPERVISE_CONFIGTEST_LIMIT 60
#define ACME_SUPERVISE_STATE_FILE "activation.json"

/* Lives in the process pool: it outlasts configuration generations, like the worker. */
typedef struct {
    apr_proc_t proc;            /* pid 0: no worker running */
    apr_pool_t *pconf;          /* the current generation's configuration pool */
    server_rec *s;
    acme_conf_t *conf;
    apr_time_t next_run;        /* when the worker is due again */
    int crashes;                /* consecutive abnormal worker exits */
    apr_time_t landed_first;    /* first sight of a staged set while the worker still ran */
    int restart_signalled;      /* graceful restart sent; the next generation clears it */
    int announced;              /* with ACMEAutoRestart off: "reload due" was logged */
    apr_proc_t configtest;      /* the "httpd -t" run before a restart; pid 0: none */
    acme_batch_t batch;         /* names the running configtest is for; cleared per attempt */
    apr_time_t configtest_retry_at; /* after a failed configtest */
    apr_time_t configtest_deadline; /* when the running configtest is killed */
    int configtest_timed_out;   /* it was killed for that */
    int configtest_failures;
    char last_failure[512];     /* the configtest complaint logged last, to log it once */
    apr_time_t last_restart;    /* our own last graceful restart */
    /* Space-separated names; 64 KiB each holds some 3,000 (an activation of more self-checks
     * the first 3,000; every set is installed and published all the same). */
    char installed[65536];      /* names installed just before our restart, for the self-check */
    char hot_checked[65536];    /* the names of the last hot activation, for its self-check */
    char recheck[65536];        /* ... when that failed: the restart's worker checks them again */
    apr_array_header_t *config_files; /* this generation's config files and their directories */
    char config_stamp[APR_SHA1_DIGESTSIZE * 2 + 1]; /* of config_files as they were read */
    int budget_logged;
    apr_pool_t *checked_pool;   /* the digests of the sets the last check passed ... */
    apr_hash_t *checked;        /* ... name -> hex digest, for an install without a re-check */
    apr_pool_t *untrusted_pool; /* staged sets left alone (no proof, planted): name -> why, */
    apr_hash_t *untrusted;      /* kept to log each once; rebuilt at every check */
    unsigned int force_seen;    /* hash of the admin requests the worker was started for */
    apr_time_t ondemand_seen;   /* jobs/ondemand.json's mtime when last read (issue 19) */
    int hot_since_start;        /* this generation activated without a restart: a failed
                                 * self-check may restart once; after a restart it only logs */
    apr_hash_t *api_renewed;    /* name -> apr_time_t *: the last renewal the API asked for */
    int rerun_at_exit;          /* the running worker has the previous generation's config,
                                 * was asked to end for an admin's request, or planned before
                                 * sets activated hot while it ran: the next starts at its end */
    unsigned int force_nudged;  /* hash of the admin requests a waiting worker was ended for */
    apr_pool_t *seal_pool;      /* the store's seal keys as last opened, while their files */
    acme_activate_seal_t seal;  /* stay as they were (seal_stamp): each tick would otherwise */
    const char *seal_stamp;     /* parse them twice, 10 % of a large activation's CPU */
} acme_supervisor_t;

static acme_supervisor_t *acme_supervisor_get(process_rec *process)
{
    /*
     * The key names this build's layout: after an upgrade of mod_acme.so and a graceful
     * restart, the new code must not read the old code's structure.
     */
    acme_supervisor_t *sup = NULL;
    char key[128];

    /* apr_pool_userdata_set copies the key: a stack buffer is enough. */
    apr_snprintf(key, sizeof(key), "%s-%s-%lu", ACME_SUPERVISOR_KEY, ACME_VERSION,
                 (unsigned long)sizeof(acme_supervisor_t));

    apr_pool_userdata_get((void **)&sup, key, process->pool);
    if (!sup) {
        sup = apr_pcalloc(process->pool, sizeof(*sup));
        apr_pool_userdata_set(sup, key, apr_pool_cleanup_null, process->pool);
    }
    return sup;
}

uid_t acme_supervise_worker_uid(void)
{
    return geteuid() == 0 ? ap_unixd_config.user_id : geteuid();
}

/* ------------------------------------------------------------------ the forked worker */

/* The worker's file and line go to httpd, so a line names the code that wrote it. */
static void acme_supervise_worker_log(void *baton, acme_log_level_t level, const char *file,
                                      int line, const char *message)
{
    static const int levels[] = {
        [ACME_LOG_ERROR] = APLOG_ERR, [ACME_LOG_WARNING] = APLOG_WARNING,
        [ACME_LOG_NOTICE] = APLOG_NOTICE, [ACME_LOG_INFO] = APLOG_INFO,
        [ACME_LOG_DEBUG] = APLOG_DEBUG, [ACME_LOG_CRIT] = APLOG_CRIT,
    };
    server_rec *s = baton;

    /* msgid: from caller (each worker line carries its own ID) */
    ap_log_error_(file, line, APLOG_MODULE_INDEX, levels[level], 0, s, "%s", message);
}

static void acme_supervise_on_stop(int sig)
{
    acme_worker_request_stop();
}

static void acme_supervise_on_finish(int sig)
{
    acme_worker_request_finish();
}

/*
 * The key files this parent loaded (at start-up, or as it installed them): key_file -> stamp;
 * and in *chains, the chain files it read: cert_file -> its acme_active_cert_t.
 */
static apr_hash_t *acme_supervise_keys_loadable(apr_pool_t *p, const acme_conf_t *conf,
                                                apr_hash_t **chains)
{
    apr_hash_t *out = apr_hash_make(p);
    apr_hash_index_t *hi;
    int j;

    *chains = apr_hash_make(p);
    for (hi = conf->active ? apr_hash_first(p, conf->active) : NULL; hi; hi = apr_hash_next(hi)) {
        const acme_active_t *active = apr_hash_this_val(hi);
        for (j = 0; active && active->certs && j < active->certs->nelts; ++j) {
            const acme_active_cert_t *c = &APR_ARRAY_IDX(active->certs, j, acme_active_cert_t);
            if (c->key_file && c->key_stamp) {
                apr_hash_set(out, c->key_file, APR_HASH_KEY_STRING, c->key_stamp);
            }
            if (c->cert_file && c->cert_stamp) {
                apr_hash_set(*chains, c->cert_file, APR_HASH_KEY_STRING, c);
            }
        }
    }
    return out;
}

/* parent: the pid forking us, taken before the fork (getppid() in the child may already be 1). */
static void acme_supervise_worker_main(acme_supervisor_t *sup, pid_t parent)
{
    sigset_t none;
    apr_pool_t *p = NULL;
    apr_hash_t *chains = NULL;
    acme_worker_config_t cfg = {
        .store_dir = sup->conf->store_dir,
        .domains = sup->conf->domains,
        .parallel_orders = sup->conf->parallel_orders > 0 ? sup->conf->parallel_orders
                                                          : ACME_PARALLEL_DEFAULT,
        .check_interval = sup->conf->check_interval,
        .drop_privileges = geteuid() == 0,
        .uid = ap_unixd_config.user_id,
        .gid = ap_unixd_config.group_id,
        .parent_pid = parent,
        .seal_cert_pem = sup->conf->seal_cert_pem,
        .ari_off = sup->conf->ari_off,
        .warn_window = sup->conf->warn_window,
        .notify_argv = sup->conf->notify_argv,
        .ondemand = acme_config_ondemand_get(sup->s->process->pconf)->worker,
        .cluster = acme_config_cluster_worker(sup->pconf),
        .log = acme_supervise_worker_log,
        .log_baton = sup->s,
    };

    apr_signal(SIGTERM, acme_supervise_on_stop);
    apr_signal(SIGINT, acme_supervise_on_stop);
    apr_signal(SIGUSR2, acme_supervise_on_finish);  /* blocked until now (acme_supervise_fork) */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* prefork signals its whole process group at graceful restarts: orders must go on. */
    apr_signal(AP_SIG_GRACEFUL, SIG_IGN);
    apr_signal(AP_SIG_GRACEFUL_STOP, SIG_IGN);
    apr_signal(SIGHUP, SIG_IGN);
    apr_signal(SIGPIPE, SIG_IGN);
    apr_signal(SIGCHLD, SIG_DFL);
    ap_close_listeners();
    acme_serve_hot_readonly(sup->s);
    apr_pool_create(&p, NULL);
    cfg.keys_loadable = acme_supervise_keys_loadable(p, sup->conf, &chains);
    cfg.chains_known = chains;
    _exit(acme_worker_run(p, &cfg));
}

static void acme_supervise_maint(int reason, void *data, int status);

#define ACME_SUPERVISE_WORKER_FILE "worker.json"

/*
 * What the worker does, for the children's status pages (server-status, acme-status): "running",
 * "idle" (until next_start) or "restarting" (it ended abnormally and starts again at next_start).
 * Only shown, never trusted: jobs/ is the User's.
 */
static void acme_supervise_worker_note(acme_supervisor_t *sup, const char *state,
                                       apr_time_t next_start)
{
    apr_pool_t *p = NULL;
    acme_result_t res;
    json_t *json;

    if (!sup->conf || !sup->conf->store || apr_pool_create(&p, sup->pconf) != APR_SUCCESS) {
        return;
    }
    json = json_pack("{s:s, s:I, s:I}", "state", state, "since",
                     (json_int_t)apr_time_sec(apr_time_now()), "pid",
                     (json_int_t)(sup->proc.pid > 0 ? sup->proc.pid : 0));
    if (json && next_start > 0) {
        json_object_set_new(json, "next_start", json_integer(apr_time_sec(next_start)));
    }
    acme_result_reset(&res);
    acme_store_write_json(p, acme_store_path(p, sup->conf->store, ACME_STORE_JOBS,
                                             ACME_SUPERVISE_WORKER_FILE, NULL),
                          json, ACME_PERMS_0644, &res);
    json_decref(json);
    apr_pool_destroy(p);
}

/*
 * APR finds a registered other child again by its data pointer, also when a
 * generation's pool is cleared: every registration gets data of its own so
 * that no cleanup can ever remove (or call) another registration.
 */
typedef struct {
    acme_supervisor_t *sup;
} acme_supervise_token_t;

static void acme_supervise_register(acme_supervisor_t *sup)
{
    acme_supervise_token_t *token = apr_palloc(sup->pconf, sizeof(*token));

    token->sup = sup;
    apr_proc_other_child_register(&sup->proc, acme_supervise_maint, token, NULL, sup->pconf);
}

/*
 * The MPMs notice a child's exit in a loop that sleeps a second at a time (ap_wait_or_timeout),
 * so the end of the worker's run was seen up to a second late. A SIGCHLD handler that does
 * nothing ends that sleep at once (select() is never restarted), and the loop reaps the worker
 * and calls our other-child callback. Only installed where nobody handles SIGCHLD; SA_RESTART
 * keeps every other system call of the parent as it was. Children undo it (acme_supervise_child).
 */
static void acme_supervise_sigchld(int sig)
{
    (void)sig;
}

/* The handler lives in this DSO, which a restart unloads: it goes first (cleanups run LIFO). */
static apr_status_t acme_supervise_wake_off(void *unused)
{
    (void)unused;
    acme_supervise_child();
    return APR_SUCCESS;
}

static void acme_supervise_wake_on_exit(apr_pool_t *pconf)
{
    struct sigaction old, sa;

    if (sigaction(SIGCHLD, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO)
        || old.sa_handler != SIG_DFL) {
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = acme_supervise_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) == 0) {
        apr_pool_cleanup_register(pconf, NULL, acme_supervise_wake_off, apr_pool_cleanup_null);
    }
}

void acme_supervise_child(void)
{
    struct sigaction cur;

    if (sigaction(SIGCHLD, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO)
        && cur.sa_handler == acme_supervise_sigchld) {
        apr_signal(SIGCHLD, SIG_DFL);
    }
}

static void acme_supervise_activate(acme_supervisor_t *sup, int worker_done);

/* Hot activation: while the worker runs, a set it staged is served a tick later (a second),
 * not at the monitor's next tick (10 s). */
static int acme_supervise_tick(void *baton)
{
    acme_supervisor_t *sup = baton;

    if (sup->proc.pid != 0 && !sup->restart_signalled) {
        acme_supervise_activate(sup, 0);
    }
    return sup->proc.pid != 0 && !sup->restart_signalled;
}

static void acme_supervise_fork(acme_supervisor_t *sup)
{
    pid_t parent = getpid();
    sigset_t usr2, before;
    apr_status_t rv;

    /* SIGUSR2's default is to end the process: the worker unblocks it once it has a handler. */
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, &before);
    rv = apr_proc_fork(&sup->proc, sup->pconf);
    if (rv != APR_INCHILD) {
        sigprocmask(SIG_SETMASK, &before, NULL);
    }
    if (rv == APR_INCHILD) {
        acme_supervise_child();
        acme_supervise_worker_main(sup, parent);
    }
    if (rv != APR_INPARENT) {
        sup->proc.pid = 0;
        sup->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
        acme_supervise_worker_note(sup, "restarting", sup->next_run);
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, sup->s,
                     "ACME00301: mod_acme: cannot start the renewal worker; trying again in 5 s");
        return;
    }
    sup->landed_first = 0;
    sup->rerun_at_exit = 0;
    acme_supervise_register(sup);
    if (sup->conf->activation == ACME_ACTIVATION_HOT) {
        acme_supervise_hot_ticker(sup->pconf, acme_supervise_tick, sup,
                                  apr_pstrcat(sup->pconf, sup->conf->store_dir,
                                              "/" ACME_STORE_STAGING, NULL));
    }
    acme_supervise_worker_note(sup, "running", 0);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00302: mod_acme: renewal worker started "
                 "(pid %d)", (int)sup->proc.pid);
}

/* ------------------------------------------------------------------ activation */

static void acme_supervise_refuse(acme_supervisor_t *sup, apr_pool_t *p, const acme_domain_t *dom,
                                  const acme_result_t *res)
{
    acme_result_t ignored;
    acme_job_t *job = NULL;

    ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "ACME00303: mod_acme: %s: %s; the certificate "
                 "served now stays, the set is kept in %s/" ACME_STORE_REJECTED "/, and the domain "
                 "is ordered again later", dom->name, acme_result_describe(res, p),
                 acme_store_base(sup->conf->store));
    acme_result_reset(&ignored);
    acme_activate_reject(p, sup->conf->store, dom, &ignored);
    acme_serve_metrics_activation(p, sup->s, sup->conf->store, "rejected", 1);
    if (acme_job_load(p, sup->conf->store, dom->name, &job, &ignored) == APR_SUCCESS) {
        acme_job_failed(job, p, res, apr_time_now());
        job->rejected++;
        job->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
        acme_job_save(p, sup->conf->store, job, &ignored);
    }
    if (sup->next_run > apr_time_now() + ACME_SUPERVISE_CRASH_DELAY) {
        sup->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
    }
}

/* What the staged sets of one batch need. */
typedef struct {
    const char *names;          /* comma-separated, NULL when nothing good is staged */
    int first_issuance;         /* some domain is served a fallback until it lands */
    int urgent;                 /* some served certificate is near its warn window */
} acme_supervise_batch_t;

static int acme_supervise_is_urgent(const acme_active_t *active, apr_time_t now,
                                    apr_interval_time_t budget)
{
    int i;

    for (i = 0; i < active->certs->nelts; ++i) {
        const acme_cert_info_t *info = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t).info;
        if (now + budget >= acme_plan_warn_at(info->not_before, info->not_after, 0.10)) {
            return 1;
        }
    }
    return 0;
}

/* Whether an admin asked for this renewal (a2acme renew): only root can write requests/. */
static int acme_supervise_forced(apr_pool_t *p, acme_supervisor_t *sup, const acme_domain_t *dom)
{
    return acme_job_force_requested(p, sup->conf->store, dom->name);
}

/*
 * A staged set that is not trusted (no proof of origin, planted files) or not readable now is
 * left where it is: logged once per reason, never deleted or moved by root.
 */
static void acme_supervise_untrusted(acme_supervisor_t *sup, apr_pool_t *p, apr_pool_t *pool,
                                     apr_hash_t *now, const acme_domain_t *dom,
                                     const acme_result_t *res)
{
    const char *why = acme_result_describe(res, p);
    const char *before = sup->untrusted ? apr_hash_get(sup->untrusted, dom->name,
                                                       APR_HASH_KEY_STRING) : NULL;

    if (!before || strcmp(before, why)) {
        ap_log_error(APLOG_MARK, res->err_class == ACME_CLASS_RETRY_SOON ? APLOG_INFO
                     : APLOG_WARNING, 0, sup->s, "ACME00304: mod_acme: %s: %s; the certificate "
                     "served now stays, the set is left as it is (%s)", dom->name, why,
                     res->err_class == ACME_CLASS_RETRY_SOON ? "looked at again soon"
                     : "the renewal worker replaces it");
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00305: mod_acme: %s: the staged set "
                     "is still left as it is (%s)", dom->name, why);
    }
    apr_hash_set(now, apr_pstrdup(pool, dom->name), APR_HASH_KEY_STRING, apr_pstrdup(pool, why));
}

/* The stamps of the seal and proof key files, NULL when one cannot be examined. */
static const char *acme_supervise_seal_stamp(apr_pool_t *p, const char *store_dir)
{
    static const char *const files[] = { "seal.pem", "seal.key", "proof.key" };
    const char *stamp = "", *one;
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); ++i) {
        if (!(one = acme_store_file_stamp(p, apr_pstrcat(p, store_dir, "/" ACME_SEAL_DIR "/",
                                                         files[i], NULL)))) {
            return NULL;
        }
        stamp = apr_pstrcat(p, stamp, one, " ", NULL);
    }
    return stamp;
}

/* The seal keys, opened again only when their files changed. */
static apr_status_t acme_supervise_seal(acme_supervisor_t *sup, apr_pool_t *p,
                                        acme_activate_seal_t *seal, acme_result_t *res)
{
    const char *stamp = acme_supervise_seal_stamp(p, sup->conf->store_dir);
    apr_pool_t *fresh = NULL;

    if (stamp && sup->seal_stamp && !strcmp(stamp, sup->seal_stamp)) {
        *seal = sup->seal;
        return APR_SUCCESS;
    }
    if (!stamp) {       /* cannot tell a change: opened for this use only */
        return acme_activate_seal_open(p, sup->conf->store_dir, acme_supervise_worker_uid(),
                                       seal, res);
    }
    apr_pool_create(&fresh, sup->s->process->pool);
    if (acme_activate_seal_open(fresh, sup->conf->store_dir, acme_supervise_worker_uid(), seal,
                                res) != APR_SUCCESS) {
        res->message = apr_pstrdup(p, res->message);
        apr_pool_destroy(fresh);
        return res->status;
    }
    if (sup->seal_pool) {
        apr_pool_destroy(sup->seal_pool);
    }
    sup->seal_pool = fresh;
    sup->seal = *seal;
    sup->seal_stamp = apr_pstrdup(fresh, stamp);
    return APR_SUCCESS;
}

/* Checks every staged set; bad ones are moved to rejected/ and logged, untrusted ones left. */
static void acme_supervise_check_staged(acme_supervisor_t *sup, apr_pool_t *p,
                                        acme_supervise_batch_t *batch)
{
    acme_activate_seal_t seal = { .key = NULL, .cert = NULL };
    apr_time_t now = apr_time_now();
    apr_pool_t *untrusted_pool = NULL;
    apr_hash_t *untrusted;
    acme_result_t res;
    int i;

    *batch = (acme_supervise_batch_t){ .names = NULL };
    /* Both outlive a generation's pconf (cleared at every restart): the process pool's. */
    apr_pool_create(&untrusted_pool, sup->s->process->pool);
    untrusted = apr_hash_make(untrusted_pool);
    if (!sup->checked_pool) {
        apr_pool_create(&sup->checked_pool, sup->s->process->pool);
    }
    apr_pool_clear(sup->checked_pool);
    sup->checked = apr_hash_make(sup->checked_pool);
    for (i = 0; i < sup->conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(sup->conf->domains, i, const acme_domain_t *);
        const acme_active_t *active;
        const char *digest = NULL;
        if (!acme_activate_staged(p, sup->conf->store, dom)) {
            continue;
        }
        acme_result_reset(&res);
        if (!seal.key && acme_supervise_seal(sup, p, &seal, &res) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "ACME00306: mod_acme: cannot open the "
                         "store's seal keys: %s", acme_result_describe(&res, p));
            batch->names = NULL;
            break;
        }
        if (acme_activate_check_digest(p, sup->conf->store, &seal, dom, &digest, &res)
            != APR_SUCCESS) {
            if (res.err_class == ACME_CLASS_PERMANENT) {
                acme_supervise_refuse(sup, p, dom, &res);
            }
            else {
                acme_supervise_untrusted(sup, p, untrusted_pool, untrusted, dom, &res);
            }
            continue;
        }
        apr_hash_set(sup->checked, apr_pstrdup(sup->checked_pool, dom->name),
                     APR_HASH_KEY_STRING, apr_pstrdup(sup->checked_pool, digest));
        active = apr_hash_get(sup->conf->active, dom->name, APR_HASH_KEY_STRING);
        if (!active || !active->complete) {
            batch->first_issuance = 1;
        }
        else if (acme_supervise_forced(p, sup, dom)) {
            batch->urgent = 1;      /* an admin asked for it: no restart budget */
        }
        else if (acme_supervise_is_urgent(active, now, sup->conf->activation_interval)) {
            batch->urgent = 1;
        }
        batch->names = batch->names ? apr_pstrcat(p, batch->names, ", ", dom->name, NULL)
                                    : dom->name;
    }
    if (sup->untrusted_pool) {
        apr_pool_destroy(sup->untrusted_pool);
    }
    sup->untrusted_pool = untrusted_pool;
    sup->untrusted = untrusted;
}

/* The status handler (a child) reads why activation waits from the store. */
static void acme_supervise_state(acme_supervisor_t *sup, apr_pool_t *p, const char *waiting,
                                 const char *detail, const char *names)
{
    const char *path = acme_store_path(p, sup->conf->store, ACME_STORE_JOBS,
                                       ACME_SUPERVISE_STATE_FILE, NULL);
    acme_result_t res;
    json_t *json;

    acme_result_reset(&res);
    if (!waiting) {
        apr_file_remove(path, p);
        return;
    }
    json = json_pack("{s:s, s:s?, s:s?, s:I}", "waiting", waiting, "detail", detail,
                     "certificates", names, "since", (json_int_t)apr_time_sec(apr_time_now()));
    acme_store_write_json(p, path, json, ACME_PERMS_0644, &res);
    json_decref(json);
}

/*
 * Restarting again while a previous generation still drains could fill the
 * scoreboard ("scoreboard is full"): wait until the old processes are gone.
 */
static int acme_supervise_scoreboard_room(void)
{
    int limit = 0, generation = 0, draining = 0, i;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_GENERATION, &generation) != APR_SUCCESS || limit <= 0) {
        return 1;
    }
    for (i = 0; i < limit; ++i) {
        process_score *ps = ap_get_scoreboard_process(i);
        if (ps && ps->pid > 0 && ps->generation != generation) {
            draining++;
        }
    }
    return draining == 0;
}

static void acme_supervise_configtest_maint(int reason, void *data, int status);

static void acme_supervise_configtest_register(acme_supervisor_t *sup, apr_pool_t *pconf)
{
    acme_supervise_token_t *token = apr_palloc(pconf, sizeof(*token));

    token->sup = sup;
    apr_proc_other_child_register(&sup->configtest, acme_supervise_configtest_maint, token, NULL,
                                  pconf);
}

/*
 * The binary the parent runs. After a package upgrade replaced it on disk, /proc/self/exe reads
 * "<path> (deleted)", which cannot be executed: the file now at <path> is what a restart would
 * not run but what `apachectl graceful` tests, and the best test there is; argv[0] when neither.
 */
static const char *acme_supervise_exe(apr_pool_t *p, const process_rec *process)
{
    static const char deleted[] = " (deleted)";
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    apr_size_t len;

    if (n <= 0) {
        return process->argv[0];
    }
    len = (apr_size_t)n;
    exe[len] = '\0';
    if (len > sizeof(deleted) - 1 && !strcmp(exe + len - (sizeof(deleted) - 1), deleted)) {
        exe[len - (sizeof(deleted) - 1)] = '\0';
    }
    return access(exe, X_OK) == 0 ? apr_pstrdup(p, exe) : process->argv[0];
}

/* How long a configuration test may take; ACME_TEST_CONFIGTEST_TIMEOUT (seconds) for tests only. */
static apr_interval_time_t acme_supervise_configtest_limit(void)
{
    const char *env = getenv("ACME_TEST_CONFIGTEST_TIMEOUT");
    long sec = env ? strtol(env, NULL, 10) : 0;

    return apr_time_from_sec(sec > 0 ? sec : ACME_SUPERVISE_CONFIGTEST_LIMIT);
}

/* The child: its own process group, so that a hanging test is killed with what it started. */
static void acme_supervise_configtest_exec(const char *const *argv, int out_fd)
{
    sigset_t none;

    setpgid(0, 0);
    acme_supervise_child();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0) {
        _exit(127);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static apr_status_t acme_supervise_configtest_spawn(acme_supervisor_t *sup, apr_pool_t *p,
                                                    const char *const *argv)
{
    const char *out_path = acme_store_path(p, sup->conf->store, ACME_STORE_TMP, "configtest.out",
                                           NULL);
    apr_file_t *out = NULL;
    apr_os_file_t fd = -1;
    apr_status_t rv;

    rv = apr_file_open(&out, out_path, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                       ACME_PERMS_0600, p);
    if (rv == APR_SUCCESS) {
        apr_os_file_get(&fd, out);
        rv = apr_proc_fork(&sup->configtest, sup->batch.pool);
    }
    if (rv == APR_INCHILD) {
        acme_supervise_configtest_exec(argv, fd);
    }
    if (out) {
        apr_file_close(out);
    }
    if (rv != APR_INPARENT) {
        sup->configtest.pid = 0;
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    setpgid(sup->configtest.pid, sup->configtest.pid);   /* no race with an early kill */
    sup->configtest_deadline = apr_time_now() + acme_supervise_configtest_limit();
    sup->configtest_timed_out = 0;
    acme_supervise_configtest_register(sup, sup->batch.pool);
    return APR_SUCCESS;
}

/* The running server's own command line with -t: the configuration exactly as a restart
 * reads it. */
static apr_status_t acme_supervise_configtest_start(acme_supervisor_t *sup, apr_pool_t *p)
{
    process_rec *process = sup->s->process;
    const char **argv = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(process->argc + 4));
    int i, argc = 0;

    argv[argc++] = acme_supervise_exe(p, process);
    for (i = 1; i < process->argc; ++i) {
        if (!strcmp(process->argv[i], "-k") && i + 1 < process->argc) {
            ++i;                /* -k start/restart/graceful: a test must not signal anyone */
            continue;
        }
        if (!strncmp(process->argv[i], "-k", 2)) {
            continue;
        }
        argv[argc++] = process->argv[i];
    }
    argv[argc++] = "-D";                /* what only an admin's configtest refuses: see */
    argv[argc++] = ACME_CONFIG_RESTART_CHECK;   /* acme_config_check_profiles */
    argv[argc++] = "-t";
    return acme_supervise_configtest_spawn(sup, p, argv);
}

/*
 * A configuration test that hangs (an Include of a FIFO or of a hung network file system) would
 * hold back activation for good: past its time it is killed with its process group, counts as
 * failed, and is tried again later while the served certificates stay.
 */
static void acme_supervise_configtest_watch(acme_supervisor_t *sup, apr_time_t now)
{
    pid_t pid = sup->configtest.pid;

    if (pid <= 0 || sup->configtest_timed_out || now < sup->configtest_deadline) {
        return;
    }
    sup->configtest_timed_out = 1;
    if (kill(-pid, SIGKILL) != 0) {
        kill(pid, SIGKILL);
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sup->s, "ACME00307: mod_acme: the configuration "
                 "test before activating %s (pid %d) did not finish within %d s and was killed; "
                 "the certificates served now stay", sup->batch.names, (int)pid,
                 (int)apr_time_sec(acme_supervise_configtest_limit()));
}

/* The first line that says where the configuration breaks, e.g. "...line 3 of /x.conf: ...". */
static const char *acme_supervise_configtest_complaint(acme_supervisor_t *sup, apr_pool_t *p)
{
    const char *path = acme_store_path(p, sup->conf->store, ACME_STORE_TMP, "configtest.out",
                                       NULL);
    acme_result_t res;
    char *text = NULL, *at, *nl;
    apr_size_t len = 0;

    acme_result_reset(&res);
    if (acme_store_read_file(p, path, &text, &len, 64 * 1024, &res) != APR_SUCCESS || !len) {
        return "no output";
    }
    at = strstr(text, " on line ");
    at = at ? (char *)ap_strrchr_c(apr_pstrndup(p, text, (apr_size_t)(at - text)), '\n') : NULL;
    at = at ? strstr(text, at + 1) : text;
    while (*at == '\n') {
        ++at;
    }
    /* Two lines: "Syntax error on line N of FILE:" and the reason under it. */
    nl = strchr(at, '\n');
    if (nl && strchr(nl + 1, '\n')) {
        nl = strchr(nl + 1, '\n');
    }
    text = nl ? apr_pstrndup(p, at, (apr_size_t)(nl - at)) : apr_pstrdup(p, at);
    for (nl = text; *nl; ++nl) {
        if (*nl == '\n') {
            *nl = ' ';
        }
    }
    return text;
}

/*
 * Moves every staged set into domains/ (the running children keep what they loaded); every
 * name installed, space-separated, in p ("" for none: sup->installed holds only the first).
 * With hot_why, each set is also published hot as soon as it is installed, so that the first
 * of a large batch is not held back by the others' installation; *hot_why says what failed.
 */
static const char *acme_supervise_install(acme_supervisor_t *sup, apr_pool_t *p,
                                          const char **hot_why)
{
    acme_activate_seal_t seal = { .key = NULL, .cert = NULL };
    apr_array_header_t *all = apr_array_make(p, 8, sizeof(const char *));
    const char *why = NULL;
    acme_result_t res;
    int i, failed = 0;

    sup->installed[0] = '\0';
    acme_result_reset(&res);
    if (acme_supervise_seal(sup, p, &seal, &res) != APR_SUCCESS) {
        return "";  /* the restart's own activation reports it */
    }
    for (i = 0; i < sup->conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(sup->conf->domains, i, const acme_domain_t *);
        /* Hot: only the batch just checked, so that a worker staging faster than we install
         * does not hold the MPM's loop here; the next tick (already running) takes the rest. */
        if (hot_why && !(sup->checked && apr_hash_get(sup->checked, dom->name,
                                                      APR_HASH_KEY_STRING))) {
            continue;
        }
        if (!acme_activate_staged(p, sup->conf->store, dom)) {
            continue;
        }
        acme_result_reset(&res);
        if (acme_activate_install_checked(p, sup->conf->store, &seal, dom,
                                          sup->checked ? apr_hash_get(sup->checked, dom->name,
                                                                      APR_HASH_KEY_STRING)
                                                       : NULL, &res) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "ACME00308: mod_acme: %s: %s; the "
                         "previous certificate stays in use",
                         dom->name, acme_result_describe(&res, p));
            ++failed;
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME00309: mod_acme: %s: new "
                     "certificate activated", dom->name);
        acme_job_force_clear(p, sup->conf->store, dom->name);
        APR_ARRAY_PUSH(all, const char *) = dom->name;
        if (hot_why && acme_supervise_hot_publish(p, sup->s, sup->conf, dom->name, &why)
                       != APR_SUCCESS) {
            *hot_why = *hot_why ? apr_pstrcat(p, *hot_why, "; ", why, NULL) : why;
        }
        if (strlen(sup->installed) + strlen(dom->name) + 2 < sizeof(sup->installed)) {
            strcat(strcat(sup->installed, dom->name), " ");
        }
    }
    /* Counted once per batch: a file write per domain was 5% of a 1,000-name activation. */
    acme_serve_metrics_activation(p, sup->s, sup->conf->store, "success", all->nelts);
    acme_serve_metrics_activation(p, sup->s, sup->conf->store, "failure", failed);
    return apr_array_pstrcat(p, all, ' ');
}

static void acme_supervise_configtest_done(acme_supervisor_t *sup, int status)
{
    apr_pool_t *p = NULL;
    apr_interval_time_t delay;
    const char *complaint;

    apr_pool_create(&p, sup->pconf);
    if (status == 0 && !sup->configtest_timed_out) {
        /* Installing now keeps the restart itself as short as an admin's graceful. */
        acme_supervise_install(sup, p, NULL);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME00310: mod_acme: new certificates "
                     "for %s are ready and the configuration parses; restarting gracefully to "
                     "serve them", sup->batch.names);
        sup->restart_signalled = 1;
        sup->last_restart = apr_time_now();
        sup->configtest_failures = 0;
        sup->last_failure[0] = '\0';
        acme_supervise_state(sup, p, NULL, NULL, NULL);
        apr_pool_destroy(p);
        kill(getpid(), AP_SIG_GRACEFUL);
        return;
    }
    complaint = sup->configtest_timed_out ? "the configuration test did not finish in time"
                                          : acme_supervise_configtest_complaint(sup, p);
    sup->configtest_timed_out = 0;
    sup->configtest_failures++;
    delay = ACME_SUPERVISE_CONFIGTEST_RETRY << (sup->configtest_failures < 5
                                                ? sup->configtest_failures - 1 : 4);
    if (delay > ACME_SUPERVISE_CONFIGTEST_RETRY_MAX) {
        delay = ACME_SUPERVISE_CONFIGTEST_RETRY_MAX;
    }
    sup->configtest_retry_at = apr_time_now() + delay;
    /* The status first: whoever reads the log line finds the status saying the same. */
    acme_supervise_state(sup, p, "configuration does not parse", complaint, sup->batch.names);
    if (strncmp(sup->last_failure, complaint, sizeof(sup->last_failure) - 1) != 0) {
        apr_cpystrn(sup->last_failure, complaint, sizeof(sup->last_failure));
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, sup->s, "ACME00311: mod_acme: activation waiting: "
                     "the configuration does not parse (%s); new certificates for %s stay staged "
                     "and the server keeps running; checking again in %d s and at the next "
                     "'apachectl graceful'", complaint, sup->batch.names,
                     (int)apr_time_sec(delay));
    }
    apr_pool_destroy(p);
}

static void acme_supervise_configtest_maint(int reason, void *data, int status)
{
    acme_supervisor_t *sup = ((acme_supervise_token_t *)data)->sup;

    if (reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST) {
        return;
    }
    apr_proc_other_child_unregister(data);
    sup->configtest.pid = 0;
    acme_supervise_configtest_done(sup, reason == APR_OC_REASON_LOST ? -1 : status);
}

static int acme_supervise_budget_allows(acme_supervisor_t *sup, apr_pool_t *p,
                                        const acme_supervise_batch_t *batch, apr_time_t now)
{
    apr_time_t at = sup->last_restart + sup->conf->activation_interval;

    if (batch->first_issuance || batch->urgent || !sup->last_restart || now >= at) {
        sup->budget_logged = 0;
        return 1;
    }
    if (!sup->budget_logged) {
        char when[APR_RFC822_DATE_LEN];
        apr_rfc822_date(when, at);
        acme_supervise_state(sup, p, "restart budget", apr_pstrcat(p, "until ", when, NULL),
                             batch->names);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, sup->s, "ACME00312: mod_acme: renewed certificates "
                     "for %s wait for the restart budget (ACMEActivationInterval) until %s; the "
                     "current ones stay valid meanwhile", batch->names, when);
        sup->budget_logged = 1;
    }
    return 0;
}

typedef struct {
    apr_pool_t *p;
    apr_hash_t *seen;
} acme_supervise_objects_t;

static int acme_supervise_collect_object(struct dl_phdr_info *info, size_t size, void *data)
{
    acme_supervise_objects_t *objects = data;

    (void)size;
    if (info->dlpi_name && info->dlpi_name[0] == '/') {
        const char *path = apr_pstrdup(objects->p, info->dlpi_name);
        apr_hash_set(objects->seen, path, APR_HASH_KEY_STRING, path);
    }
    return 0;
}

/*
 * The shared objects this generation loaded (LoadModule, LoadFile and their libraries): a
 * restart loads the modules again, so a module replaced on disk (a package upgrade of mod_ssl,
 * a new mod_acme.so) is as much a change as an edited file and must be tested before the parent
 * restarts itself. LoadModule leaves no node in the configuration tree (it runs while the
 * configuration is read), so the loaded objects are asked for instead.
 */
static void acme_supervise_collect_modules(apr_pool_t *p, apr_hash_t *seen)
{
    acme_supervise_objects_t objects = { .p = p, .seen = seen };

    dl_iterate_phdr(acme_supervise_collect_object, &objects);
}

/* Every file a directive of this generation came from, and the directories holding them. */
static void acme_supervise_collect_files(apr_pool_t *p, const ap_directive_t *node,
                                         apr_hash_t *seen)
{
    for (; node; node = node->next) {
        if (node->filename && !apr_hash_get(seen, node->filename, APR_HASH_KEY_STRING)) {
            const char *slash = strrchr(node->filename, '/');
            apr_hash_set(seen, node->filename, APR_HASH_KEY_STRING, node->filename);
            if (slash && slash != node->filename) {
                const char *dir = apr_pstrndup(p, node->filename,
                                               (apr_size_t)(slash - node->filename));
                apr_hash_set(seen, dir, APR_HASH_KEY_STRING, dir);
            }
        }
        acme_supervise_collect_files(p, node->first_child, seen);
    }
}

static int acme_supervise_path_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void acme_supervise_stamp_add(apr_sha1_ctx_t *ctx, apr_pool_t *p, const char *path,
                                     const apr_finfo_t *fi)
{
    /* The inode too: a file replaced by rename may keep its size and time (dpkg, cp -p). */
    const char *line = fi ? apr_psprintf(p, "%s %lu %" APR_TIME_T_FMT " %" APR_OFF_T_FMT "\n",
                                         path, (unsigned long)fi->inode, fi->mtime, fi->size)
                          : apr_pstrcat(p, path, " missing\n", NULL);

    apr_sha1_update(ctx, line, (unsigned int)strlen(line));
}

/*
 * Every entry of a configuration directory counts: an included file without a
 * single directive leaves no trace in the configuration tree, but it sits next
 * to files that do (sites-enabled/, conf.d/).
 */
static void acme_supervise_stamp_dir(apr_sha1_ctx_t *ctx, apr_pool_t *p, const char *dir)
{
    apr_dir_t *d = NULL;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return;
    }
    for (;;) {
        apr_status_t rv = apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE | APR_FINFO_MTIME
                                           | APR_FINFO_SIZE | APR_FINFO_INODE, d);
        if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
            break;
        }
        /* Files only: a subdirectory such as the store changes all the time. */
        if (fi.filetype != APR_DIR) {
            acme_supervise_stamp_add(ctx, p, apr_pstrcat(p, dir, "/", fi.name, NULL), &fi);
        }
    }
    apr_dir_close(d);
}

/* A digest of the modification times and sizes of the files and directories' entries. */
static void acme_supervise_config_stamp(apr_pool_t *p, const apr_array_header_t *files,
                                        char out[APR_SHA1_DIGESTSIZE * 2 + 1])
{
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    int i;

    apr_sha1_init(&ctx);
    for (i = 0; i < files->nelts; ++i) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);
        apr_finfo_t fi;
        if (apr_stat(&fi, path, APR_FINFO_MTIME | APR_FINFO_SIZE | APR_FINFO_TYPE
                     | APR_FINFO_INODE, p)
            != APR_SUCCESS) {
            acme_supervise_stamp_add(&ctx, p, path, NULL);
            continue;
        }
        acme_supervise_stamp_add(&ctx, p, path, &fi);
        if (fi.filetype == APR_DIR) {
            acme_supervise_stamp_dir(&ctx, p, path);
        }
    }
    apr_sha1_final(digest, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; ++i) {
        apr_snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

/*
 * The configuration this generation parsed is known to be good. When none of
 * its files or their directories changed since, a restart reads the same, and
 * the configuration test can be skipped; any edit (or new file in an Include
 * directory) means a real test.
 */
static void acme_supervise_config_remember(acme_supervisor_t *sup, apr_pool_t *pconf)
{
    apr_hash_t *seen = apr_hash_make(pconf);
    apr_hash_index_t *hi;

    acme_supervise_collect_files(pconf, ap_conftree, seen);
    acme_supervise_collect_modules(pconf, seen);
    sup->config_files = apr_array_make(pconf, (int)apr_hash_count(seen) + 1, sizeof(char *));
    for (hi = apr_hash_first(pconf, seen); hi; hi = apr_hash_next(hi)) {
        APR_ARRAY_PUSH(sup->config_files, const char *) = apr_hash_this_key(hi);
    }
    qsort(sup->config_files->elts, (size_t)sup->config_files->nelts, sizeof(char *),
          acme_supervise_path_cmp);
    acme_supervise_config_stamp(pconf, sup->config_files, sup->config_stamp);
}

static int acme_supervise_config_unchanged(acme_supervisor_t *sup, apr_pool_t *p)
{
    char now[APR_SHA1_DIGESTSIZE * 2 + 1];

    if (!sup->config_files || sup->config_files->nelts == 0) {
        return 0;
    }
    acme_supervise_config_stamp(p, sup->config_files, now);
    return strcmp(now, sup->config_stamp) == 0;
}

static void acme_supervise_selfcheck(acme_supervisor_t *sup, apr_pool_t *pconf);

/* After a hot activation: what a restart's new generation would do (the self-check by the next
 * worker, started now; ACMEExport; the activation state). */
static void acme_supervise_hot_after(acme_supervisor_t *sup, apr_pool_t *p)
{
    acme_supervise_selfcheck(sup, p);
    sup->next_run = apr_time_now();
    sup->landed_first = 0;
    acme_supervise_export(sup->pconf, sup->s, sup->conf);
    acme_supervise_state(sup, p, NULL, NULL, NULL);
    if (sup->proc.pid == 0 && !sup->restart_signalled) {
        acme_supervise_fork(sup);       /* now, not at the next tick: it also takes on-demand
                                         * requests that came meanwhile */
    }
    else if (sup->proc.pid != 0) {
        /* The running worker planned before these sets existed: the next one starts as soon
         * as it ends, for the self-check and the new certificates' renewal times. */
        sup->rerun_at_exit = 1;
    }
}

/*
 * ACMEActivation hot (issue 19): the checked sets are installed into domains/ and published to
 * the children's shared memory; no configuration test and no restart, so no budget either.
 * 0 when a restart must do it (hot activation off, or a set that does not fit its slot: the
 * installed sets are then served by the restart that follows).
 */
static int acme_supervise_go_hot(acme_supervisor_t *sup, apr_pool_t *p,
                                 const acme_supervise_batch_t *batch)
{
    const char *why = NULL, *names;

    if (sup->conf->activation != ACME_ACTIVATION_HOT || !acme_serve_hot_segment(sup->s->process)) {
        return 0;
    }
    /* Every name installed (sup->installed, for the self-check, holds some 3,000), each
     * published as soon as installed. */
    names = acme_supervise_install(sup, p, &why);
    if (!names[0]) {
        return 1;                       /* refused sets are logged; the old ones stay */
    }
    if (why) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sup->s, "ACME09004: mod_acme: %s cannot be "
                     "served without a restart (%s); restarting gracefully instead", names, why);
        return 0;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME09005: mod_acme: new certificates for "
                 "%s are served (hot activation, no restart)", names);
    sup->hot_since_start = 1;
    apr_cpystrn(sup->hot_checked, sup->installed, sizeof(sup->hot_checked));
    acme_supervise_hot_after(sup, p);
    (void)batch;
    return 1;
}

/* A checked batch: announce it, or test the configuration and restart when the budget allows. */
static void acme_supervise_go_restart(acme_supervisor_t *sup, apr_pool_t *p,
                                      const acme_supervise_batch_t *batch, apr_time_t now);

static void acme_supervise_go(acme_supervisor_t *sup, apr_pool_t *p,
                              const acme_supervise_batch_t *batch, apr_time_t now)
{
    if (!acme_supervise_go_hot(sup, p, batch)) {
        acme_supervise_go_restart(sup, p, batch, now);
    }
}

/*
 * After a hot activation the worker's handshake still met an old certificate (another module,
 * an SSLCertificateFile taking precedence): a graceful restart, tested as usual, serves what
 * domains/ holds.
 */
static void acme_supervise_selfcheck_fallback(acme_supervisor_t *sup)
{
    acme_supervise_batch_t batch = { .names = "the self-checked names", .first_issuance = 1 };
    apr_pool_t *p = NULL;

    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sup->s, "ACME09007: mod_acme: after a hot "
                 "activation a handshake still met the old certificate (see the self-check line); "
                 "restarting gracefully to serve the new one");
    apr_cpystrn(sup->recheck, sup->hot_checked, sizeof(sup->recheck));
    apr_pool_create(&p, sup->pconf);
    acme_supervise_go_restart(sup, p, &batch, apr_time_now());
    apr_pool_destroy(p);
}

static void acme_supervise_go_restart(acme_supervisor_t *sup, apr_pool_t *p,
                                      const acme_supervise_batch_t *batch, apr_time_t now)
{
    acme_result_t res;

    if (sup->conf->auto_restart == 0) {
        if (!sup->announced) {
            acme_supervise_state(sup, p, "ACMEAutoRestart off: waiting for 'apachectl graceful'",
                                 NULL, batch->names);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME00313: mod_acme: new "
                         "certificates for %s are ready; they are served after the next 'apachectl "
                         "graceful' (ACMEAutoRestart is off)", batch->names);
            sup->announced = 1;
        }
        return;
    }
    if (!acme_supervise_budget_allows(sup, p, batch, now)) {
        return;
    }
    if (!acme_supervise_scoreboard_room()) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00314: mod_acme: activation of %s "
                     "waits for the previous generation's processes to finish", batch->names);
        return;
    }
    acme_result_reset(&res);
    /* The process pool only grows: one pool for the attempt, cleared by the next one. */
    if (acme_batch_begin(&sup->batch, sup->s->process->pool, batch->names, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "ACME00315: mod_acme: activation of %s: %s; "
                     "trying again in 10 s", batch->names, acme_result_describe(&res, p));
        sup->configtest_retry_at = now + ACME_SUPERVISE_CONFIGTEST_RETRY;
        return;
    }
    if (acme_supervise_config_unchanged(sup, p)) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00316: mod_acme: no configuration "
                     "file changed since the last start; activating %s", batch->names);
        acme_supervise_configtest_done(sup, 0);
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00317: mod_acme: testing the "
                 "configuration before activating %s", batch->names);
    if (acme_supervise_configtest_start(sup, p) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "ACME00318: mod_acme: cannot run a "
                     "configuration test before activating %s; trying again in 10 s", batch->names);
        sup->configtest_retry_at = now + ACME_SUPERVISE_CONFIGTEST_RETRY;
    }
}

static void acme_supervise_ondemand_names(acme_supervisor_t *sup, apr_pool_t *p);

static void acme_supervise_activate(acme_supervisor_t *sup, int worker_done)
{
    apr_time_t now = apr_time_now();
    acme_supervise_batch_t batch;
    apr_pool_t *p = NULL;

    if (sup->restart_signalled || sup->configtest.pid > 0 || !sup->conf->store
        || now < sup->configtest_retry_at) {
        return;
    }
    if (!worker_done && !sup->landed_first) {
        sup->landed_first = now;
    }
    apr_pool_create(&p, sup->pconf);
    acme_supervise_ondemand_names(sup, p);      /* a name approved since: its set counts too */
    acme_supervise_check_staged(sup, p, &batch);
    if (!batch.names) {
        sup->landed_first = 0;
    }
    /* Renewals landing close together share one restart; a first issuance goes at once. */
    else if (worker_done || batch.first_issuance
             || now - sup->landed_first >= ACME_SUPERVISE_COALESCE) {
        acme_supervise_go(sup, p, &batch, now);
    }
    apr_pool_destroy(p);
}

/* Of the certificates this generation serves (root read them from domains/). */
static apr_interval_time_t acme_supervise_shortest_lifetime(const acme_supervisor_t *sup)
{
    apr_interval_time_t shortest = 0;
    apr_hash_index_t *hi;
    int i;

    for (hi = apr_hash_first(NULL, sup->conf->active); hi; hi = apr_hash_next(hi)) {
        const acme_active_t *active = apr_hash_this_val(hi);
        for (i = 0; active && i < active->certs->nelts; ++i) {
            const acme_cert_info_t *info = &APR_ARRAY_IDX(active->certs, i,
                                                          acme_active_cert_t).info;
            apr_interval_time_t l = info->not_after - info->not_before;
            if (l > 0 && (shortest == 0 || l < shortest)) {
                shortest = l;
            }
        }
    }
    return shortest;
}

/*
 * How long the worker waits after its crashes-th abnormal exit in a row: the delay grows, so that
 * a worker dying at every start (or killed by the OOM killer again and again) does not loop.
 * ACME_TEST_CRASH_DELAY_MS, for tests only, makes it a fixed number of milliseconds: a test that
 * kills the worker a hundred times must not wait for the growing delay.
 */
static apr_interval_time_t acme_supervise_crash_delay(int crashes)
{
    const char *env = getenv("ACME_TEST_CRASH_DELAY_MS");
    char *end = NULL;
    long ms = env ? strtol(env, &end, 10) : -1;
    apr_interval_time_t delay;

    if (env && end != env && *end == '\0' && ms >= 0 && ms <= 3600000L) {
        return apr_time_from_msec(ms);
    }
    delay = ACME_SUPERVISE_CRASH_DELAY << (crashes < 8 ? crashes - 1 : 7);
    return delay > ACME_SUPERVISE_CRASH_DELAY_MAX ? ACME_SUPERVISE_CRASH_DELAY_MAX : delay;
}

static void acme_supervise_exited(acme_supervisor_t *sup, int status)
{
    apr_time_t now = apr_time_now();
    apr_pool_t *p = NULL;
    apr_interval_time_t delay;
    int pid = (int)sup->proc.pid, unseen = sup->rerun_at_exit;

    sup->proc.pid = 0;
    sup->rerun_at_exit = 0;
    if (status == ACME_WORKER_EXIT_SELFCHECK) {
        if (sup->hot_since_start && sup->conf->activation == ACME_ACTIVATION_HOT) {
            acme_supervise_selfcheck_fallback(sup);     /* once: the restart resets the flag */
        }
        status = 1;
    }
    if (status != 0 && status != 1) {
        /* A start-up failure or a signal: retry, more slowly each time in a row. */
        sup->crashes++;
        delay = acme_supervise_crash_delay(sup->crashes);
        sup->next_run = now + delay;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sup->s, "ACME00319: mod_acme: renewal worker "
                     "(pid %d) %s (status %d); it starts again in %d s and resumes its orders", pid,
                     status == ACME_WORKER_EXIT_UNSCHEDULED ? "could not record its next run"
                                                            : "ended abnormally",
                     status, (int)apr_time_sec(delay));
        acme_supervise_worker_note(sup, "restarting", sup->next_run);
    }
    else {
        sup->crashes = 0;
        apr_pool_create(&p, sup->pconf);
        /* jobs/next-run is the User's: a time in the past must not fork at every tick. */
        sup->next_run = acme_plan_worker_next(sup->conf->store
                                              ? acme_job_next_run_load(p, sup->conf->store) : 0,
                                              now, acme_supervise_shortest_lifetime(sup));
        apr_pool_destroy(p);
        if (unseen) {
            sup->next_run = now;    /* new domains, and the self-check of what was installed */
        }
        acme_supervise_worker_note(sup, "idle", sup->next_run);
        if (sup->next_run - now > apr_time_from_sec(1)) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "ACME00320: mod_acme: renewal worker "
                         "(pid %d) ended; it starts again in %d s", pid,
                         (int)apr_time_sec(sup->next_run - now));
        }
    }
    acme_supervise_activate(sup, 1);
    if (unseen && sup->next_run <= now && sup->proc.pid == 0 && !sup->restart_signalled) {
        acme_supervise_fork(sup);       /* the new configuration, or an admin's request: now */
    }
}

static void acme_supervise_maint(int reason, void *data, int status)
{
    acme_supervisor_t *sup = ((acme_supervise_token_t *)data)->sup;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(data);
        acme_supervise_exited(sup, reason == APR_OC_REASON_LOST ? -1 : status);
        break;
    default:
        /* UNREGISTER (the generation's pool is cleared), RESTART: the worker carries on. */
        break;
    }
}

/* The names installed before our restart: the next worker checks they are served. */
/* The domain whose first name is name: the names index, else a scan (names approved on demand
 * since the start are not in the index). */
static const acme_domain_t *acme_supervise_domain_named(const acme_conf_t *conf, const char *name)
{
    const acme_domain_t *dom = conf->index ? acme_names_index_get(conf->index, name) : NULL;
    int i;

    if (dom && !strcmp(dom->name, name)) {
        return dom;
    }
    for (i = 0; i < conf->domains->nelts; ++i) {
        dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        if (!strcmp(dom->name, name)) {
            return dom;
        }
    }
    return NULL;
}

static void acme_supervise_selfcheck(acme_supervisor_t *sup, apr_pool_t *pconf)
{
    apr_hash_t *names = apr_hash_make(pconf);
    char *list = apr_pstrcat(pconf, sup->installed, " ", sup->recheck, NULL), *last = NULL;
    char *name;

    for (name = apr_strtok(list, " ", &last); name; name = apr_strtok(NULL, " ", &last)) {
        const acme_domain_t *dom = acme_supervise_domain_named(sup->conf, name);
        if (dom) {
            apr_hash_set(names, dom->name, APR_HASH_KEY_STRING, dom);
        }
    }
    sup->installed[0] = '\0';
    sup->recheck[0] = '\0';
    if (apr_hash_count(names) > 0) {
        acme_serve_selfcheck_list(pconf, sup->s, sup->conf, names);
    }
}

/* Nothing to do: no managed domain and no virtual host with ACMEOnDemand on. */
static int acme_supervise_idle(const acme_conf_t *conf, const server_rec *s)
{
    return conf->domains->nelts == 0 && !acme_config_ondemand_get(s->process->pconf)->worker;
}

/*
 * Names the ask endpoint approved since this generation started (the worker rewrote
 * jobs/ondemand.json) join the managed domains, so their staged sets are activated.
 */
static void acme_supervise_ondemand_names(acme_supervisor_t *sup, apr_pool_t *p)
{
    apr_finfo_t fi;

    if (!acme_config_ondemand_get(sup->pconf)->worker
        || apr_stat(&fi, apr_pstrcat(p, sup->conf->store_dir, "/" ACME_STORE_JOBS "/"
                                     ACME_ONDEMAND_FILE, NULL), APR_FINFO_MTIME | APR_FINFO_LINK,
                    p) != APR_SUCCESS
        || fi.mtime == sup->ondemand_seen) {
        return;
    }
    sup->ondemand_seen = fi.mtime;
    acme_config_ondemand_domains(sup->pconf, p, sup->s, sup->conf);
}

/* ------------------------------------------------------------------ hooks */

void acme_supervise_start(apr_pool_t *pconf, server_rec *s, acme_conf_t *conf)
{
    acme_supervisor_t *sup = acme_supervisor_get(s->process);

    sup->pconf = pconf;
    sup->s = s;
    sup->conf = conf;
    acme_supervise_config_remember(sup, pconf);
    sup->restart_signalled = 0;
    sup->announced = 0;
    sup->landed_first = 0;
    sup->configtest_retry_at = 0;
    sup->hot_since_start = 0;
    sup->budget_logged = 0;
    sup->checked_pool = NULL;       /* it went with the previous generation's pconf */
    sup->checked = NULL;
    if (sup->configtest.pid > 0 && kill(sup->configtest.pid, 0) == 0) {
        acme_supervise_configtest_register(sup, pconf);
    }
    else {
        sup->configtest.pid = 0;
    }
    /* Also with no domain left: the files of removed domains go. */
    acme_supervise_export(pconf, s, conf);
    if (!conf->store || acme_supervise_idle(conf, s)) {
        return;
    }
    acme_supervise_wake_on_exit(pconf);
    /* this generation serves what was staged */
    acme_supervise_state(sup, pconf, NULL, NULL, NULL);
    acme_supervise_selfcheck(sup, pconf);
    if (sup->proc.pid > 0 && kill(sup->proc.pid, 0) == 0) {
        /* A worker of the previous generation carries on with its orders, but stops waiting
         * for on-demand names: the next one runs with this configuration. */
        kill(sup->proc.pid, SIGUSR2);
        sup->rerun_at_exit = 1;
        acme_supervise_register(sup);
        acme_supervise_worker_note(sup, "running", 0);
        return;
    }
    sup->proc.pid = 0;
    acme_supervise_fork(sup);
}

/*
 * The API's renew requests come through api-queue/, which every process of the httpd User can
 * write, not only the children that checked the client: so one a day per domain is honoured. A
 * forged flood then costs at most one order per domain and day at the CA (its limit for
 * duplicate certificates is 5 a week); a2acme renew has no such limit.
 */
#define ACME_SUPERVISE_API_RENEW_EVERY apr_time_from_sec(86400)

static int acme_supervise_api_renew_ok(acme_supervisor_t *sup, const acme_domain_t *dom,
                                       apr_time_t now)
{
    apr_pool_t *pool = sup->s->process->pool;
    apr_time_t *last;

    if (!sup->api_renewed) {
        sup->api_renewed = apr_hash_make(pool);
    }
    last = apr_hash_get(sup->api_renewed, dom->name, APR_HASH_KEY_STRING);
    if (last && now - *last < ACME_SUPERVISE_API_RENEW_EVERY && now >= *last) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME11017: %s: renewal through the "
                     "certificate API refused: one was requested less than a day ago (a2acme "
                     "renew can force another)", dom->name);
        return 0;
    }
    if (!last) {
        last = apr_palloc(pool, sizeof(*last));
        apr_hash_set(sup->api_renewed, apr_pstrdup(pool, dom->name), APR_HASH_KEY_STRING, last);
    }
    *last = now;
    return 1;
}

/*
 * Renewals the certificate API accepted (POST <base>/domains/<name>/renew, checked against the
 * client's names there) become root's requests/<name>.force, as a2acme renew writes them.
 */
static void acme_supervise_api_renewals(acme_supervisor_t *sup, apr_pool_t *p)
{
    apr_array_header_t *names = acme_api_store_renew_take(p, sup->conf->store_dir, 16);
    acme_result_t res;
    int i;

    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        const acme_domain_t *dom = acme_config_domain_for(sup->conf, name);
        const char *text = apr_psprintf(p, "%" APR_TIME_T_FMT "\n", apr_time_sec(apr_time_now()));
        const char *path = dom && !strcmp(dom->name, name)
                           && acme_supervise_api_renew_ok(sup, dom, apr_time_now())
                           ? acme_store_path(p, sup->conf->store, ACME_STORE_REQUESTS,
                                             apr_pstrcat(p, name, ACME_JOB_FORCE_SUFFIX, NULL),
                                             NULL) : NULL;
        acme_result_reset(&res);
        if (path && acme_store_write_file(p, path, text, strlen(text), ACME_PERMS_0644, &res)
                    == APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "ACME11015: %s: "
                         "renewal requested through the certificate API", name);
        }
    }
}

/* An admin request (a2acme renew) the worker was not started for yet. */
static int acme_supervise_new_request(acme_supervisor_t *sup, apr_pool_t *p)
{
    const char *stamp = acme_job_force_stamp(p, sup->conf->store);
    apr_ssize_t len = APR_HASH_KEY_STRING;
    unsigned int seen = stamp ? apr_hashfunc_default(stamp, &len) | 1u : 0;

    /* Certificate API requests queued by the children (entries counted, nothing opened). */
    seen ^= (unsigned int)acme_api_store_queue_stamp(p, sup->conf->store_dir);

    if (seen == sup->force_seen) {
        return 0;
    }
    sup->force_seen = seen;
    return seen != 0;
}

/*
 * With on-demand sites the worker waits for names between its runs; an admin's renewal request
 * (requests/, a2acme renew or the API's) must not wait for that: it is asked to end once idle,
 * and the next worker starts at once. The API's queue it watches itself.
 */
static void acme_supervise_nudge_waiting(acme_supervisor_t *sup, apr_pool_t *p)
{
    const char *stamp;
    apr_ssize_t len = APR_HASH_KEY_STRING;
    unsigned int seen;

    if (sup->proc.pid == 0 || !acme_config_ondemand_get(sup->pconf)->worker) {
        return;
    }
    stamp = acme_job_force_stamp(p, sup->conf->store);
    seen = stamp ? apr_hashfunc_default(stamp, &len) | 1u : 0;
    if (seen != sup->force_nudged && seen) {
        kill(sup->proc.pid, SIGUSR2);
        sup->rerun_at_exit = 1;
    }
    sup->force_nudged = seen;
}

int acme_supervise_monitor(apr_pool_t *p, server_rec *s)
{
    acme_supervisor_t *sup = acme_supervisor_get(s->process);

    if (!sup->conf || !sup->conf->store || acme_supervise_idle(sup->conf, s)) {
        return DECLINED;
    }
    acme_supervise_ondemand_names(sup, p);
    acme_supervise_configtest_watch(sup, apr_time_now());
    acme_supervise_api_renewals(sup, p);
    acme_supervise_nudge_waiting(sup, p);
    if (sup->proc.pid == 0 && !sup->restart_signalled
        && (apr_time_now() >= sup->next_run || acme_supervise_new_request(sup, p))) {
        acme_supervise_fork(sup);
        return DECLINED;
    }
    acme_supervise_activate(sup, sup->proc.pid == 0);
    return DECLINED;
}
