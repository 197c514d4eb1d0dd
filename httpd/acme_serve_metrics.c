#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "acme_config.h"
#include "acme_job.h"
#include "acme_metrics.h"
#include "acme_serve.h"
#include "acme_serve_metrics.h"
#include "acme_serve_hot.h"
#include "acme_status.h"

APLOG_USE_MODULE(acme);

#define ACME_SERVE_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

void acme_serve_metrics_activation(apr_pool_t *p, server_rec *s, const acme_store_t *st,
                                   const char *result, int n)
{
    acme_result_t res;

    acme_result_reset(&res);
    if (st && n > 0 && acme_metrics_activation_note(p, st, result, n, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME00251: mod_acme: activation not counted "
                     "in the metrics: %s", acme_result_describe(&res, p));
    }
}

#define ACME_SERVE_METRICS_CACHE "mod_acme-metrics-cache"

/*
 * What a server process keeps of a job file between scrapes: the file is parsed again only when
 * it changed. The worker replaces it by an atomic rename (a new inode) at every write, so inode,
 * mtime and size tell; a stat costs a fraction of a read and parse (10,000 domains: the bench).
 */
typedef struct {
    apr_ino_t ino;
    apr_time_t mtime;
    apr_off_t size;
    acme_job_state_t state;
    apr_time_t renew_at;
    int failures;
} acme_serve_metrics_job_t;

typedef struct {
    apr_thread_mutex_t *lock;           /* one scrape at a time in a process */
    apr_pool_t *pool;
    apr_hash_t *jobs;                   /* domain name -> acme_serve_metrics_job_t * */
} acme_serve_metrics_cache_t;

void acme_serve_metrics_prepare(apr_pool_t *pconf)
{
    acme_serve_metrics_cache_t *cache = apr_pcalloc(pconf, sizeof(*cache));

    if (apr_pool_create(&cache->pool, pconf) != APR_SUCCESS
        || apr_thread_mutex_create(&cache->lock, APR_THREAD_MUTEX_DEFAULT, pconf)
           != APR_SUCCESS) {
        return;
    }
    cache->jobs = apr_hash_make(cache->pool);
    apr_pool_userdata_set(cache, ACME_SERVE_METRICS_CACHE, apr_pool_cleanup_null, pconf);
}

/* The job's facts the metrics show, from the cache or one read (NULL: unreadable). */
static const acme_serve_metrics_job_t *acme_serve_metrics_job(apr_pool_t *scratch,
                                                              acme_serve_metrics_cache_t *cache,
                                                              const acme_conf_t *conf,
                                                              const acme_domain_t *dom)
{
    static const acme_serve_metrics_job_t fresh = { .state = ACME_JOB_IDLE };
    acme_serve_metrics_job_t *seen = cache ? apr_hash_get(cache->jobs, dom->name,
                                                          APR_HASH_KEY_STRING) : NULL;
    const char *path = acme_store_path(scratch, conf->store, ACME_STORE_JOBS,
                                       apr_pstrcat(scratch, dom->name, ".json", NULL), NULL);
    apr_finfo_t fi;
    apr_status_t rv = path ? apr_stat(&fi, path, APR_FINFO_INODE | APR_FINFO_MTIME
                                      | APR_FINFO_SIZE, scratch) : APR_EINVAL;
    acme_job_t *job;

    if (APR_STATUS_IS_ENOENT(rv)) {
        return &fresh;          /* no job yet: what acme_job_load makes of a missing file */
    }
    if (rv == APR_SUCCESS && seen && seen->ino == fi.inode && seen->mtime == fi.mtime
        && seen->size == fi.size) {
        return seen;
    }
    if (!(job = acme_serve_job(scratch, conf, dom))) {
        return NULL;
    }
    if (!seen) {
        seen = cache ? apr_pcalloc(cache->pool, sizeof(*seen)) : apr_pcalloc(scratch,
                                                                             sizeof(*seen));
        if (cache) {
            apr_hash_set(cache->jobs, dom->name, APR_HASH_KEY_STRING, seen);
        }
    }
    *seen = (acme_serve_metrics_job_t){ .ino = rv == APR_SUCCESS ? fi.inode : 0,
                                        .mtime = rv == APR_SUCCESS ? fi.mtime : 0,
                                        .size = rv == APR_SUCCESS ? fi.size : -1,
                                        .state = job->state, .renew_at = job->renew_at,
                                        .failures = job->failures };
    return seen;
}

/*
 * One domain: its job file looked at once (into scratch, cleared after each domain: a read
 * registers and kills pool cleanups, which in one pool for 10,000 domains costs quadratic
 * time), its certificates from what this generation loaded.
 */
static void acme_serve_metrics_domain(request_rec *r, apr_pool_t *scratch,
                                      acme_serve_metrics_cache_t *cache,
                                      const acme_conf_t *conf, const acme_domain_t *dom,
                                      acme_metrics_t *m)
{
    const acme_active_t *active = acme_serve_hot_active(scratch, r->server->process, dom,
                                                        apr_hash_get(conf->active, dom->name,
                                                                     APR_HASH_KEY_STRING));
    const acme_serve_metrics_job_t *seen = acme_serve_metrics_job(scratch, cache, conf, dom);
    acme_job_t job_state = { .name = dom->name, .state = seen ? seen->state : ACME_JOB_IDLE };
    acme_job_t *job = seen ? &job_state : NULL;
    acme_metrics_domain_t *d = apr_array_push(m->domains);
    int i;

    d->domain = dom->name;
    d->state = acme_status_state_of(active, job);
    d->renew_at = seen ? seen->renew_at : 0;
    d->failures = seen ? seen->failures : 0;
    m->store_problems += !job;
    for (i = 0; active && i < active->certs->nelts; ++i) {
        const acme_active_cert_t *ac = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        acme_metrics_cert_t *c = apr_array_push(m->certs);
        c->domain = dom->name;
        c->key_type = ac->spec;
        c->not_before = ac->info.not_before;
        c->not_after = ac->info.not_after;
    }
    apr_pool_clear(scratch);
}

/* A counter file; missing is no problem (nothing counted yet), unreadable is. */
static const json_t *acme_serve_metrics_counts(request_rec *r, const char *path,
                                               acme_metrics_t *m)
{
    json_t *json = NULL;
    acme_result_t res;
    apr_status_t rv;

    acme_result_reset(&res);
    rv = path ? acme_store_read_json(r->pool, path, &json, &res) : APR_EINVAL;
    if (rv != APR_SUCCESS) {
        m->store_problems += !APR_STATUS_IS_ENOENT(rv);
        return NULL;
    }
    return json;
}

static void acme_serve_metrics_sink(void *ctx, const char *data, apr_size_t len)
{
    ap_rwrite(data, (int)len, ctx);
}

static void acme_serve_metrics_gather(request_rec *r, const acme_conf_t *conf, acme_metrics_t *m)
{
    int i, n = conf->domains ? conf->domains->nelts : 0;
    acme_serve_metrics_cache_t *cache;
    const apr_array_header_t *extra;
    apr_pool_t *scratch;
    void *data = NULL;

    m->domains = apr_array_make(r->pool, n + 1, sizeof(acme_metrics_domain_t));
    m->certs = apr_array_make(r->pool, 2 * n + 1, sizeof(acme_metrics_cert_t));
    if (!conf->store) {
        return;
    }
    apr_pool_userdata_get(&data, ACME_SERVE_METRICS_CACHE, r->server->process->pconf);
    cache = data;
    apr_pool_create(&scratch, r->pool);
    if (cache) {
        apr_thread_mutex_lock(cache->lock);
    }
    for (i = 0; i < n; ++i) {
        acme_serve_metrics_domain(r, scratch, cache, conf,
                                  APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *), m);
    }
    extra = acme_serve_hot_ondemand_domains(r->pool, r->server->process);
    for (i = 0; i < extra->nelts; ++i) {    /* approved on demand since the start */
        acme_serve_metrics_domain(r, scratch, cache, conf,
                                  APR_ARRAY_IDX(extra, i, const acme_domain_t *), m);
    }
    if (cache) {
        apr_thread_mutex_unlock(cache->lock);
    }
    apr_pool_destroy(scratch);
    m->worker_counts = acme_serve_metrics_counts(r, acme_store_path(r->pool, conf->store,
                                                                    ACME_STORE_JOBS,
                                                                    ACME_METRICS_WORKER_FILE,
                                                                    NULL), m);
    m->parent_counts = acme_serve_metrics_counts(r, acme_metrics_parent_path(r->pool,
                                                                             conf->store), m);
    m->worker_up = acme_metrics_worker_up(acme_job_next_run_load(r->pool, conf->store),
                                          apr_time_now());
}

int acme_serve_metrics(request_rec *r)
{
    acme_metrics_t m;

    if (!r->handler || strcmp(r->handler, "acme-metrics") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    memset(&m, 0, sizeof(m));
    acme_serve_metrics_gather(r, acme_config_get(r->server->process->pconf), &m);
    ap_set_content_type(r, ACME_SERVE_METRICS_TYPE);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        acme_metrics_write(r->pool, &m, acme_serve_metrics_sink, r);
    }
    return OK;
}
