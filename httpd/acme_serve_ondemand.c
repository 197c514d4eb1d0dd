/*
 * On-demand certificates in the children (issue 19). See acme_serve_ondemand.h.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "acme_config.h"
#include "acme_config_ondemand.h"
#include "acme_ondemand.h"
#include "acme_ondemand_queue.h"
#include "acme_serve_ondemand.h"

APLOG_USE_MODULE(acme);

#define ACME_SERVE_ONDEMAND_REASK apr_time_from_sec(60)
#define ACME_SERVE_ONDEMAND_NAMES_MAX 4096
#define ACME_SERVE_ONDEMAND_WAITING_MAX 16
#define ACME_SERVE_ONDEMAND_POLL apr_time_from_msec(100)
#define ACME_SERVE_ONDEMAND_KEY "mod_acme-ondemand-child"

/* Per child process: the names it asked for lately, and how many handshakes wait now. */
typedef struct {
    apr_pool_t *pool;
    apr_thread_mutex_t *lock;           /* guards asked: only names without a certificate */
    apr_hash_t *asked;                  /* name -> apr_time_t * of the request */
    volatile apr_uint32_t waiting;
} acme_serve_ondemand_child_t;

void acme_serve_ondemand_child_init(apr_pool_t *pchild, server_rec *s)
{
    acme_serve_ondemand_child_t *ch;

    if (!acme_config_ondemand_get(s->process->pconf)->worker) {
        return;
    }
    ch = apr_pcalloc(pchild, sizeof(*ch));
    ch->pool = pchild;
    ch->asked = apr_hash_make(pchild);
    if (apr_thread_mutex_create(&ch->lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        return;
    }
    apr_pool_userdata_set(ch, ACME_SERVE_ONDEMAND_KEY, apr_pool_cleanup_null,
                          s->process->pool);
}

/* 1 when this process should leave a request for name now (not asked within a minute). */
static int acme_serve_ondemand_due(acme_serve_ondemand_child_t *ch, const char *name)
{
    apr_time_t now = apr_time_now(), *at;
    int due;

    apr_thread_mutex_lock(ch->lock);
    at = apr_hash_get(ch->asked, name, APR_HASH_KEY_STRING);
    due = !at || now - *at >= ACME_SERVE_ONDEMAND_REASK;
    if (due) {
        if (!at && apr_hash_count(ch->asked) >= ACME_SERVE_ONDEMAND_NAMES_MAX) {
            apr_hash_clear(ch->asked);  /* a flood of names: forget, the worker's rate holds */
        }
        if (!at) {
            at = apr_palloc(ch->pool, sizeof(*at));
            apr_hash_set(ch->asked, apr_pstrdup(ch->pool, name), APR_HASH_KEY_STRING, at);
        }
        *at = now;
    }
    apr_thread_mutex_unlock(ch->lock);
    return due;
}

static int acme_serve_ondemand_wait(acme_serve_ondemand_child_t *ch, apr_interval_time_t wait,
                                    const char *name, acme_serve_ondemand_ready_fn *ready,
                                    void *baton)
{
    apr_time_t until = apr_time_now() + wait;
    int got = 0;

    if (apr_atomic_inc32(&ch->waiting) >= ACME_SERVE_ONDEMAND_WAITING_MAX) {
        apr_atomic_dec32(&ch->waiting);
        return 0;                       /* enough handshakes wait already: the fallback now */
    }
    while (!(got = ready(baton, name)) && apr_time_now() < until) {
        apr_sleep(ACME_SERVE_ONDEMAND_POLL);
    }
    apr_atomic_dec32(&ch->waiting);
    return got;
}

int acme_serve_ondemand_handshake(conn_rec *c, server_rec *s, const char *sni,
                                  acme_serve_ondemand_ready_fn *ready, void *baton)
{
    acme_config_ondemand_t *od = acme_config_ondemand_get(s->process->pconf);
    const acme_config_ondemand_vhost_t *v = acme_config_ondemand_of(od, s);
    acme_serve_ondemand_child_t *ch = NULL;
    const acme_conf_t *conf;
    const char *name, *why = NULL;
    acme_result_t res;

    apr_pool_userdata_get((void **)&ch, ACME_SERVE_ONDEMAND_KEY, s->process->pool);
    if (!v || !ch || !sni
        || !(name = acme_ondemand_name(c->pool, sni, od->worker->policy.allow_ip, &why))) {
        return 0;
    }
    conf = acme_config_get(s->process->pconf);
    if (acme_serve_ondemand_due(ch, name)) {
        acme_result_reset(&res);
        if (acme_ondemand_queue_put(c->pool, conf->store_dir, name, &res) != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, "ACME09520: mod_acme: on-demand: "
                          "%s: the request cannot be left for the renewal worker (%s); the "
                          "next handshake for it tries again", name,
                          acme_result_describe(&res, c->pool));
            return 0;
        }
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, "ACME09521: mod_acme: on-demand: %s: no "
                      "certificate yet; asked the renewal worker for one", name);
    }
    return acme_serve_ondemand_wait(ch, acme_config_ondemand_wait(od, v), name, ready, baton);
}
