#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_listen.h>
#include <mpm_common.h>
#include <unixd.h>
#include <apr_signal.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_activate.h"
#include "acme_job.h"
#include "acme_seal.h"
#include "acme_supervise.h"
#include "acme_worker.h"

APLOG_USE_MODULE(acme);

#define ACME_SUPERVISOR_KEY "mod_acme-supervisor"
/* A slow domain holds back the others' activation by at most this much. */
#define ACME_SUPERVISE_COALESCE apr_time_from_sec(30)
#define ACME_SUPERVISE_CRASH_DELAY apr_time_from_sec(5)
#define ACME_SUPERVISE_CRASH_DELAY_MAX apr_time_from_sec(3600)
#define ACME_SUPERVISE_UNKNOWN_NEXT apr_time_from_sec(3600)

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
} acme_supervisor_t;

static acme_supervisor_t *acme_supervisor_get(process_rec *process)
{
    acme_supervisor_t *sup = NULL;

    apr_pool_userdata_get((void **)&sup, ACME_SUPERVISOR_KEY, process->pool);
    if (!sup) {
        sup = apr_pcalloc(process->pool, sizeof(*sup));
        apr_pool_userdata_set(sup, ACME_SUPERVISOR_KEY, apr_pool_cleanup_null, process->pool);
    }
    return sup;
}

/* ------------------------------------------------------------------ the forked worker */

static void acme_supervise_worker_log(void *baton, acme_log_level_t level, const char *message)
{
    static const int levels[] = {
        [ACME_LOG_ERROR] = APLOG_ERR, [ACME_LOG_WARNING] = APLOG_WARNING,
        [ACME_LOG_NOTICE] = APLOG_NOTICE, [ACME_LOG_INFO] = APLOG_INFO,
        [ACME_LOG_DEBUG] = APLOG_DEBUG,
    };
    server_rec *s = baton;

    ap_log_error(APLOG_MARK, levels[level], 0, s, "%s", message);
}

static void acme_supervise_on_stop(int sig)
{
    acme_worker_request_stop();
}

static void acme_supervise_worker_main(acme_supervisor_t *sup)
{
    sigset_t none;
    apr_pool_t *p = NULL;
    acme_worker_config_t cfg = {
        .store_dir = sup->conf->store_dir,
        .domains = sup->conf->domains,
        .parallel_orders = sup->conf->parallel_orders > 0 ? sup->conf->parallel_orders
                                                          : ACME_PARALLEL_DEFAULT,
        .check_interval = sup->conf->check_interval,
        .drop_privileges = geteuid() == 0,
        .uid = ap_unixd_config.user_id,
        .gid = ap_unixd_config.group_id,
        .parent_pid = getppid(),
        .seal_cert_pem = sup->conf->seal_cert_pem,
        .log = acme_supervise_worker_log,
        .log_baton = sup->s,
    };

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    apr_signal(SIGTERM, acme_supervise_on_stop);
    apr_signal(SIGINT, acme_supervise_on_stop);
    /* prefork signals its whole process group at graceful restarts: orders must go on. */
    apr_signal(AP_SIG_GRACEFUL, SIG_IGN);
    apr_signal(AP_SIG_GRACEFUL_STOP, SIG_IGN);
    apr_signal(SIGHUP, SIG_IGN);
    apr_signal(SIGPIPE, SIG_IGN);
    apr_signal(SIGCHLD, SIG_DFL);
    ap_close_listeners();
    apr_pool_create(&p, NULL);
    _exit(acme_worker_run(p, &cfg));
}

static void acme_supervise_maint(int reason, void *data, int status);

static void acme_supervise_register(acme_supervisor_t *sup)
{
    apr_proc_other_child_register(&sup->proc, acme_supervise_maint, sup, NULL, sup->pconf);
}

static void acme_supervise_fork(acme_supervisor_t *sup)
{
    apr_status_t rv = apr_proc_fork(&sup->proc, sup->pconf);

    if (rv == APR_INCHILD) {
        acme_supervise_worker_main(sup);
    }
    if (rv != APR_INPARENT) {
        sup->proc.pid = 0;
        sup->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, sup->s,
                     "mod_acme: cannot start the renewal worker; trying again in 5 s");
        return;
    }
    sup->landed_first = 0;
    acme_supervise_register(sup);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, sup->s, "mod_acme: renewal worker started (pid %d)",
                 (int)sup->proc.pid);
}

/* ------------------------------------------------------------------ activation */

static void acme_supervise_refuse(acme_supervisor_t *sup, apr_pool_t *p, const acme_domain_t *dom,
                                  const acme_result_t *res)
{
    acme_result_t ignored;
    acme_job_t *job = NULL;

    ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "mod_acme: %s: %s; the certificate served "
                 "now stays, and the domain is ordered again later", dom->name,
                 acme_result_describe(res, p));
    acme_result_reset(&ignored);
    acme_store_remove_tree(p, acme_store_path(p, sup->conf->store, ACME_STORE_STAGING, dom->name,
                                              NULL), &ignored);
    if (acme_job_load(p, sup->conf->store, dom->name, &job, &ignored) == APR_SUCCESS) {
        acme_job_failed(job, p, res, apr_time_now());
        job->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
        acme_job_save(p, sup->conf->store, job, &ignored);
    }
    if (sup->next_run > apr_time_now() + ACME_SUPERVISE_CRASH_DELAY) {
        sup->next_run = apr_time_now() + ACME_SUPERVISE_CRASH_DELAY;
    }
}

/* Checks every staged set; bad ones are removed. Returns the names of the good ones. */
static const char *acme_supervise_check_staged(acme_supervisor_t *sup, apr_pool_t *p)
{
    acme_activate_seal_t seal = { .key = NULL, .cert = NULL };
    const char *names = NULL;
    acme_result_t res;
    int i;

    for (i = 0; i < sup->conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(sup->conf->domains, i, const acme_domain_t *);
        if (!acme_activate_staged(p, sup->conf->store, dom)) {
            continue;
        }
        acme_result_reset(&res);
        if (!seal.key && acme_seal_key_load(p, sup->conf->store_dir, &seal.key, &seal.cert, &res)
                         != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, sup->s, "mod_acme: cannot open the store's "
                         "seal key: %s", acme_result_describe(&res, p));
            return NULL;
        }
        if (acme_activate_check(p, sup->conf->store, &seal, dom, &res) != APR_SUCCESS) {
            acme_supervise_refuse(sup, p, dom, &res);
            continue;
        }
        names = names ? apr_pstrcat(p, names, ", ", dom->name, NULL) : dom->name;
    }
    return names;
}

static void acme_supervise_activate(acme_supervisor_t *sup, int worker_done)
{
    apr_time_t now = apr_time_now();
    apr_pool_t *p = NULL;
    const char *names;

    if (sup->restart_signalled || !sup->conf->store) {
        return;
    }
    if (!worker_done) {
        /* Coalesce: wait for the rest of the batch, but not forever. */
        if (!sup->landed_first) {
            sup->landed_first = now;
        }
        if (now - sup->landed_first < ACME_SUPERVISE_COALESCE) {
            return;
        }
    }
    apr_pool_create(&p, sup->pconf);
    names = acme_supervise_check_staged(sup, p);
    if (!names) {
        sup->landed_first = 0;
    }
    else if (sup->conf->auto_restart == 0) {
        if (!sup->announced) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "mod_acme: new certificates for "
                         "%s are ready; they are served after the next 'apachectl graceful' "
                         "(ACMEAutoRestart is off)", names);
            sup->announced = 1;
        }
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sup->s, "mod_acme: new certificates for %s "
                     "are ready; restarting gracefully to serve them", names);
        sup->restart_signalled = 1;
        kill(getpid(), AP_SIG_GRACEFUL);
    }
    apr_pool_destroy(p);
}

static void acme_supervise_exited(acme_supervisor_t *sup, int status)
{
    apr_time_t now = apr_time_now();
    apr_pool_t *p = NULL;
    apr_interval_time_t delay;
    int pid = (int)sup->proc.pid;

    sup->proc.pid = 0;
    if (status != 0 && status != 1) {
        /* A start-up failure or a signal: retry, more slowly each time in a row. */
        sup->crashes++;
        delay = ACME_SUPERVISE_CRASH_DELAY << (sup->crashes < 8 ? sup->crashes - 1 : 7);
        if (delay > ACME_SUPERVISE_CRASH_DELAY_MAX) {
            delay = ACME_SUPERVISE_CRASH_DELAY_MAX;
        }
        sup->next_run = now + delay;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sup->s, "mod_acme: renewal worker (pid %d) "
                     "ended abnormally (status %d); it starts again in %d s and resumes its "
                     "orders", pid, status, (int)apr_time_sec(delay));
    }
    else {
        sup->crashes = 0;
        apr_pool_create(&p, sup->pconf);
        sup->next_run = sup->conf->store ? acme_job_next_run_load(p, sup->conf->store) : 0;
        apr_pool_destroy(p);
        if (sup->next_run == 0) {
            sup->next_run = now + ACME_SUPERVISE_UNKNOWN_NEXT;
        }
    }
    acme_supervise_activate(sup, 1);
}

static void acme_supervise_maint(int reason, void *data, int status)
{
    acme_supervisor_t *sup = data;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(sup);
        acme_supervise_exited(sup, reason == APR_OC_REASON_LOST ? -1 : status);
        break;
    default:
        /* UNREGISTER (the generation's pool is cleared), RESTART: the worker carries on. */
        break;
    }
}

/* ------------------------------------------------------------------ hooks */

void acme_supervise_start(apr_pool_t *pconf, server_rec *s, acme_conf_t *conf)
{
    acme_supervisor_t *sup = acme_supervisor_get(s->process);

    sup->pconf = pconf;
    sup->s = s;
    sup->conf = conf;
    sup->restart_signalled = 0;
    sup->announced = 0;
    sup->landed_first = 0;
    if (!conf->store || conf->domains->nelts == 0) {
        return;
    }
    if (sup->proc.pid > 0 && kill(sup->proc.pid, 0) == 0) {
        acme_supervise_register(sup);   /* a worker of the previous generation carries on */
        return;
    }
    sup->proc.pid = 0;
    acme_supervise_fork(sup);
}

int acme_supervise_monitor(apr_pool_t *p, server_rec *s)
{
    acme_supervisor_t *sup = acme_supervisor_get(s->process);

    if (!sup->conf || !sup->conf->store || sup->conf->domains->nelts == 0) {
        return DECLINED;
    }
    if (sup->proc.pid == 0 && !sup->restart_signalled && apr_time_now() >= sup->next_run) {
        acme_supervise_fork(sup);
        return DECLINED;
    }
    acme_supervise_activate(sup, sup->proc.pid == 0);
    return DECLINED;
}
