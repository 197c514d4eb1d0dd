/*
 * Hot activation in the parent (issue 19). See acme_supervise_hot.h.
 */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_activate.h"
#include "acme_config_ondemand.h"
#include "acme_serve_hot.h"
#include "acme_store.h"
#include "acme_supervise_hot.h"

APLOG_USE_MODULE(acme);

/* A slot holds a set twice the size of today's largest, and at least this. */
#define ACME_SUPERVISE_HOT_SLOT_MIN (16 * 1024)
#define ACME_SUPERVISE_HOT_SLOT_MAX (1024 * 1024)
#define ACME_SUPERVISE_HOT_SPARE 16
#define ACME_SUPERVISE_HOT_ONDEMAND_SPARE_MAX 1000
#define ACME_SUPERVISE_HOT_SET_MAX (512 * 1024)

/* What domains/<name>/ serves: per key spec the key, the leaf and the chain (PEM), the specs
 * separated by a NUL byte (acme_serve_hot_parse). */
static apr_status_t acme_supervise_hot_set(apr_pool_t *p, const acme_active_t *active,
                                           char **pem, apr_size_t *len, acme_result_t *res)
{
    apr_size_t total = 0, at = 0;
    char **keys = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(active->certs->nelts + 1));
    char **chains = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(active->certs->nelts + 1));
    apr_size_t *klen = apr_pcalloc(p, sizeof(apr_size_t) * (apr_size_t)(active->certs->nelts + 1));
    apr_size_t *clen = apr_pcalloc(p, sizeof(apr_size_t) * (apr_size_t)(active->certs->nelts + 1));
    int i;

    for (i = 0; i < active->certs->nelts; ++i) {
        const acme_active_cert_t *c = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        apr_status_t rv = acme_store_read_file(p, c->key_file, &keys[i], &klen[i],
                                               ACME_SUPERVISE_HOT_SET_MAX, res);
        if (rv == APR_SUCCESS) {
            rv = acme_store_read_file(p, c->cert_file, &chains[i], &clen[i],
                                      ACME_SUPERVISE_HOT_SET_MAX, res);
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        total += klen[i] + clen[i] + 2;
    }
    *pem = apr_palloc(p, total + 1);
    for (i = 0; i < active->certs->nelts; ++i) {
        memcpy(*pem + at, keys[i], klen[i]);
        (*pem)[at + klen[i]] = '\n';
        memcpy(*pem + at + klen[i] + 1, chains[i], clen[i]);
        at += klen[i] + 1 + clen[i];
        (*pem)[at++] = '\0';
    }
    *len = at;
    return APR_SUCCESS;
}

/* The largest set served now (file sizes), to size the slots. */
static apr_size_t acme_supervise_hot_largest(apr_pool_t *ptemp, const acme_conf_t *conf)
{
    apr_hash_index_t *hi;
    apr_size_t largest = 0;

    for (hi = conf->active ? apr_hash_first(ptemp, conf->active) : NULL; hi;
         hi = apr_hash_next(hi)) {
        const acme_active_t *active = apr_hash_this_val(hi);
        apr_size_t size = 0;
        int i;
        for (i = 0; i < active->certs->nelts; ++i) {
            const acme_active_cert_t *c = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
            apr_finfo_t fk, fc;
            if (apr_stat(&fk, c->key_file, APR_FINFO_SIZE, ptemp) == APR_SUCCESS
                && apr_stat(&fc, c->cert_file, APR_FINFO_SIZE, ptemp) == APR_SUCCESS) {
                size += (apr_size_t)(fk.size + fc.size) + 2;
            }
        }
        largest = size > largest ? size : largest;
    }
    return largest;
}

/* Slot size: twice the largest set, within bounds; MOD_ACME_HOT_SLOT_SIZE (bytes) overrides it,
 * for the tests of the fallback to a restart. */
static apr_uint32_t acme_supervise_hot_slot_size(apr_pool_t *ptemp, const acme_conf_t *conf)
{
    const char *forced = getenv("MOD_ACME_HOT_SLOT_SIZE");
    apr_size_t size = 2 * acme_supervise_hot_largest(ptemp, conf);

    if (forced && atol(forced) > 0) {
        return (apr_uint32_t)atol(forced);
    }
    size = size < ACME_SUPERVISE_HOT_SLOT_MIN ? ACME_SUPERVISE_HOT_SLOT_MIN : size;
    size = size > ACME_SUPERVISE_HOT_SLOT_MAX ? ACME_SUPERVISE_HOT_SLOT_MAX : size;
    return (apr_uint32_t)size;
}

static apr_uint32_t acme_supervise_hot_nslots(apr_pool_t *pconf, const acme_conf_t *conf)
{
    const acme_config_ondemand_t *od = acme_config_ondemand_get(pconf);
    apr_uint32_t n = (apr_uint32_t)conf->domains->nelts + ACME_SUPERVISE_HOT_SPARE;

    if (od->worker) {
        int spare = od->worker->policy.max_domains;
        n += (apr_uint32_t)(spare <= 0 || spare > ACME_SUPERVISE_HOT_ONDEMAND_SPARE_MAX
                            ? ACME_SUPERVISE_HOT_ONDEMAND_SPARE_MAX : spare);
    }
    return n;
}

/* The segment for nslots slots of slot_size, made anew when the one kept is too small. */
static apr_status_t acme_supervise_hot_segment(server_rec *s, apr_uint32_t nslots,
                                               apr_uint32_t slot_size)
{
    acme_serve_hot_shm_t *h = acme_serve_hot_shm(s->process);
    apr_size_t size = acme_hot_size(nslots, slot_size);
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    if (h->shm && acme_hot_nslots(&h->hot) >= nslots
        && acme_hot_slot_size(&h->hot) >= slot_size) {
        acme_hot_clear(&h->hot);
        return APR_SUCCESS;
    }
    /* Anonymous: inherited by the children, reachable by no other program. */
    if ((rv = apr_shm_create(&shm, size, NULL, s->process->pool)) != APR_SUCCESS) {
        return rv;
    }
    if (h->shm) {
        apr_shm_destroy(h->shm);        /* the old generation's children keep their mapping */
    }
    h->shm = shm;
    acme_hot_init(&h->hot, apr_shm_baseaddr_get(shm), size, nslots, slot_size);
    return APR_SUCCESS;
}

static apr_status_t acme_supervise_hot_one(apr_pool_t *p, acme_hot_t *hot, acme_conf_t *conf,
                                           const acme_domain_t *dom, const char **why);

void acme_supervise_hot_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                acme_conf_t *conf)
{
    apr_uint32_t nslots = acme_supervise_hot_nslots(pconf, conf);
    apr_uint32_t slot_size = acme_supervise_hot_slot_size(ptemp, conf);
    apr_hash_t *slots = acme_serve_hot_slots(pconf);
    acme_hot_t *hot;
    apr_status_t rv;
    int i;

    if (conf->activation != ACME_ACTIVATION_HOT || !conf->store) {
        return;
    }
    if ((rv = acme_supervise_hot_segment(s, nslots, slot_size)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "ACME09002: mod_acme: no shared memory "
                     "for hot activation (%u slots of %u bytes); new certificates are "
                     "activated by graceful restarts", nslots, slot_size);
        return;
    }
    hot = acme_serve_hot_segment(s->process);
    acme_hot_index(hot, pconf);         /* claims by hash: 10,000 domains are not O(n^2) */
    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        int *slot = apr_palloc(pconf, sizeof(*slot));
        const char *why = NULL;
        *slot = acme_hot_claim(hot, dom->name);
        if (*slot >= 0) {
            apr_hash_set(slots, dom->name, APR_HASH_KEY_STRING, slot);
        }
        /* No virtual host names an on-demand domain: mod_ssl never loads its certificate, the
         * certificate callback serves it from here. */
        if (dom->ondemand && *slot >= 0
            && acme_supervise_hot_one(ptemp, hot, conf, dom, &why) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME09006: mod_acme: on-demand "
                         "domain %s cannot be served: %s", dom->name, why ? why : "?");
        }
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "ACME09003: mod_acme: hot activation: %u slots "
                 "of %u bytes for %d domains", nslots, slot_size, conf->domains->nelts);
}

/*
 * Each set published hot lives in a pool of its own, freed when the domain's next set replaces
 * it: with hot activation the parent may run for months without a restart, and a set loaded
 * into the generation's pool would stay there until one.
 */
#define ACME_SUPERVISE_HOT_POOLS "acme_supervise_hot_pools"

static apr_hash_t *acme_supervise_hot_pools(apr_pool_t *pconf)
{
    apr_hash_t *pools = NULL;

    apr_pool_userdata_get((void **)&pools, ACME_SUPERVISE_HOT_POOLS, pconf);
    if (!pools) {
        pools = apr_hash_make(pconf);
        apr_pool_userdata_set(pools, ACME_SUPERVISE_HOT_POOLS, apr_pool_cleanup_null, pconf);
    }
    return pools;
}

/* keep (holding the new set) replaces the pool of the domain's previous hot set. */
static void acme_supervise_hot_keep(apr_pool_t *pconf, const acme_domain_t *dom, apr_pool_t *keep)
{
    apr_hash_t *pools = acme_supervise_hot_pools(pconf);
    apr_pool_t *old = apr_hash_get(pools, dom->name, APR_HASH_KEY_STRING);

    apr_hash_set(pools, dom->name, APR_HASH_KEY_STRING, keep);
    if (old) {
        apr_pool_destroy(old);
    }
}

/* Publishes one domain's set; *why says what failed. */
static apr_status_t acme_supervise_hot_one(apr_pool_t *p, acme_hot_t *hot, acme_conf_t *conf,
                                           const acme_domain_t *dom, const char **why)
{
    apr_pool_t *keep = NULL;
    acme_active_t *active = NULL;
    acme_result_t res;
    char *pem = NULL;
    apr_size_t len = 0;
    int slot;
    apr_status_t rv;

    acme_result_reset(&res);
    apr_pool_create(&keep, apr_hash_pool_get(conf->active));
    rv = acme_activate_load_ex(keep, conf->store, dom, apr_time_now(), NULL, 1, &active, &res);
    if (rv == APR_SUCCESS && active->certs->nelts == 0) {
        rv = acme_result_fail(&res, APR_ENOENT, ACME_CLASS_ADMIN, "nothing to serve");
    }
    if (rv == APR_SUCCESS) {
        rv = acme_supervise_hot_set(p, active, &pem, &len, &res);
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "%s: %s", dom->name, acme_result_describe(&res, p));
    }
    else if ((slot = acme_hot_claim(hot, dom->name)) < 0) {
        *why = apr_psprintf(p, "%s: no free slot in the shared memory", dom->name);
        rv = APR_ENOSPC;
    }
    else if ((rv = acme_hot_publish(hot, slot, pem, len)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "%s: its set (%" APR_SIZE_T_FMT " bytes) is larger than a slot "
                            "(%u bytes)", dom->name, len, acme_hot_slot_size(hot));
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(keep);
        return rv;
    }
    apr_hash_set(conf->active, dom->name, APR_HASH_KEY_STRING, active);
    acme_supervise_hot_keep(apr_hash_pool_get(conf->active), dom, keep);
    return APR_SUCCESS;
}

apr_status_t acme_supervise_hot_publish(apr_pool_t *p, server_rec *s, acme_conf_t *conf,
                                        const char *names, const char **why)
{
    acme_hot_t *hot = acme_serve_hot_segment(s->process);
    char *list = apr_pstrdup(p, names ? names : ""), *last = NULL, *name;
    apr_status_t rv = APR_SUCCESS;

    *why = NULL;
    if (!hot || conf->activation != ACME_ACTIVATION_HOT) {
        *why = "hot activation is not set up";
        return APR_ENOTIMPL;
    }
    for (name = apr_strtok(list, " ", &last); name; name = apr_strtok(NULL, " ", &last)) {
        const acme_domain_t *dom = acme_config_domain_for(conf, name);
        const char *one = NULL;
        if (!dom || strcmp(dom->name, name)) {
            continue;
        }
        if (acme_supervise_hot_one(p, hot, conf, dom, &one) != APR_SUCCESS) {
            *why = *why ? apr_pstrcat(p, *why, "; ", one, NULL) : one;
            rv = APR_EGENERAL;
        }
    }
    return rv;
}

/* ------------------------------------------------------------------ the ticker */

#define ACME_SUPERVISE_HOT_TICKER "acme_supervise_hot_ticker"
#define ACME_SUPERVISE_HOT_POLL apr_time_from_msec(100)
#define ACME_SUPERVISE_HOT_TICK_MIN apr_time_from_msec(250)
#define ACME_SUPERVISE_HOT_TICK_MAX apr_time_from_sec(30)

typedef struct {
    apr_proc_t proc;                    /* pid 0: none running */
    apr_pool_t *pconf;
    acme_supervise_hot_tick_fn tick;
    void *baton;
    const char *watch;                  /* staging/: a set staged there renames into it */
    int running;                        /* ticks wanted: the last tick said so */
} acme_supervise_hot_ticker_t;

static void acme_supervise_hot_tick_start(acme_supervise_hot_ticker_t *t);

/*
 * In the ticker child, which runs no code of the parent's (no cleanups, no atexit): returns
 * when the staging directory changed (the worker renamed a set into it) but not before 0.25 s,
 * or after 30 s. So the parent is woken for a staged set within about 0.1-0.35 s, forks at
 * most four times a second while sets land, and twice a minute while a worker only waits
 * (on-demand, a cluster's watch). lstat only: staging/ is the User's, and a link or a FIFO put
 * there is never followed or opened.
 */
static void acme_supervise_hot_tick_wait(const char *watch)
{
    apr_time_t start = apr_time_now(), until = start + ACME_SUPERVISE_HOT_TICK_MAX;
    struct stat base, now;
    int have = watch && lstat(watch, &base) == 0;

    while (apr_time_now() < until) {
        apr_sleep(ACME_SUPERVISE_HOT_POLL);
        if (have && apr_time_now() - start >= ACME_SUPERVISE_HOT_TICK_MIN
            && lstat(watch, &now) == 0
            && (now.st_mtim.tv_sec != base.st_mtim.tv_sec
                || now.st_mtim.tv_nsec != base.st_mtim.tv_nsec || now.st_ino != base.st_ino)) {
            return;
        }
    }
}

static void acme_supervise_hot_tick_maint(int reason, void *data, int status)
{
    acme_supervise_hot_ticker_t *t = data;

    (void)status;
    if (reason == APR_OC_REASON_DEATH || reason == APR_OC_REASON_LOST) {
        /* Unregistered first: the same data is registered again for the next tick, which
         * starts before this one's work, so the work does not stretch the period. The last
         * tick (the worker ended) only finds nothing to do. */
        apr_proc_other_child_unregister(data);
        t->proc.pid = 0;
        acme_supervise_hot_tick_start(t);
        if (!t->tick(t->baton)) {
            t->running = 0;
        }
    }
    else if (reason == APR_OC_REASON_UNREGISTER && t->proc.pid > 0) {
        /* The generation ends: reaped here, so that the MPM never meets an unknown child. */
        kill(t->proc.pid, SIGKILL);
        waitpid(t->proc.pid, NULL, 0);
        t->proc.pid = 0;
    }
}

static void acme_supervise_hot_tick_start(acme_supervise_hot_ticker_t *t)
{
    apr_status_t rv;

    if (!t->running) {
        return;
    }
    rv = apr_proc_fork(&t->proc, t->pconf);
    if (rv == APR_INCHILD) {
        acme_supervise_hot_tick_wait(t->watch);
        _exit(0);
    }
    if (rv != APR_INPARENT) {
        t->proc.pid = 0;                /* the monitor's tick still comes, 10 s apart */
        return;
    }
    apr_proc_other_child_register(&t->proc, acme_supervise_hot_tick_maint, t, NULL, t->pconf);
}

void acme_supervise_hot_ticker(apr_pool_t *pconf, acme_supervise_hot_tick_fn tick, void *baton,
                               const char *watch)
{
    acme_supervise_hot_ticker_t *t = NULL;

    apr_pool_userdata_get((void **)&t, ACME_SUPERVISE_HOT_TICKER, pconf);
    if (!t) {
        t = apr_pcalloc(pconf, sizeof(*t));
        t->pconf = pconf;
        apr_pool_userdata_set(t, ACME_SUPERVISE_HOT_TICKER, apr_pool_cleanup_null, pconf);
    }
    t->tick = tick;
    t->baton = baton;
    t->watch = watch ? apr_pstrdup(pconf, watch) : NULL;
    t->running = 1;
    if (t->proc.pid == 0) {
        acme_supervise_hot_tick_start(t);
    }
}
