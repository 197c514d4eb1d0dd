/*
 * The renewal worker's planning: for every managed domain, when it is due (renewal window, ARI,
 * an admin's request, a changed configuration, the emergency floor) and what the metrics say of
 * the run. Pure decisions over the store's state; the orders themselves are in
 * acme_worker_order.c.
 */
#include "acme_worker_int.h"

/*
 * An admin's renewal request, new or taken by a run that was cut short. The job is saved as
 * ORDERING before the request is recorded as taken: a worker killed at any point resumes it.
 */
static int acme_worker_forced(acme_worker_t *w, apr_pool_t *p, acme_job_t *job, apr_time_t now)
{
    const char *what = "renewal forced by an admin";

    if (acme_job_force_pending(p, w->store, job->name)) {
        job->state = ACME_JOB_ORDERING;
        job->updated = now;
        if (acme_worker_job_save(w, p, job, NULL) != APR_SUCCESS) {
            return 0;   /* taken at the next run, once the job can be saved */
        }
        acme_job_force_take(p, w->store, job->name);
    }
    else if (acme_job_force_interrupted(p, w->store, job)) {
        what = "renewal forced by an admin, resumed";
    }
    else {
        return 0;
    }
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(w->pool, "ACME00411: %s: %s",
                                                     job->name, what));
    return 1;
}

static apr_time_t acme_worker_renew_at(apr_pool_t *p, const acme_worker_item_t *item)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    acme_plan_window_t window;
    const char *reason = NULL;
    apr_time_t earliest = 0;
    int j;

    if (acme_plan_window_parse(item->dom->policy.renew_window, &window, &reason, p)
        != APR_SUCCESS) {
        acme_plan_window_parse("auto", &window, &reason, p);
    }
    for (j = 0; j < specs->nelts; ++j) {
        const acme_worker_active_t *act = &item->active[j];
        apr_time_t at;
        if (!act->present || !act->covers) {
            return 0;
        }
        at = acme_plan_renew_at(&window, act->not_before, act->not_after);
        if (earliest == 0 || at < earliest) {
            earliest = at;
        }
    }
    return earliest;
}

/* One ARI client per CA for the plan; a CA that failed is not asked again in this run. */
typedef struct {
    acme_client_t *client;
    int broken;                         /* failed in this run: not asked again */
    int no_ari;                         /* its directory has no renewalInfo */
} acme_worker_ari_ca_t;

static acme_worker_ari_ca_t *acme_worker_ari_ca(acme_worker_t *w, apr_hash_t *clients,
                                                const acme_worker_item_t *item)
{
    const char *ca_file = item->dom->policy.ca_file;
    const char *proxy = acme_proxy_for(item->dom->policy.proxies, item->ca->ca_url);
    const char *key = apr_pstrcat(w->pool, item->ca->ca_url, " ", ca_file ? ca_file : "", " ",
                                  proxy ? proxy : "", NULL);
    acme_worker_ari_ca_t *ac = apr_hash_get(clients, key, APR_HASH_KEY_STRING);
    /* ARI only advises, and the plan asks it before any order starts: a CA that hangs may hold
     * the whole run back by this much once (then it counts as broken for the run), not 30 s. */
    acme_client_options_t opts = { .ca_file = ca_file, .timeout = ACME_WORKER_ARI_TIMEOUT,
                                   .proxy = proxy };
    acme_result_t res;

    if (!ac) {
        ac = apr_pcalloc(w->pool, sizeof(*ac));
        acme_result_reset(&res);
        ac->broken = acme_client_create(&ac->client, w->pool, item->ca->ca_url, &opts, &res)
                     != APR_SUCCESS;
        apr_hash_set(clients, key, APR_HASH_KEY_STRING, ac);
    }
    return ac;
}

static void acme_worker_ari_clear(acme_job_t *job, int *dirty)
{
    if (job->ari_start || job->ari_next || job->ari_explanation) {
        job->ari_start = job->ari_end = job->ari_pick = job->ari_next = 0;
        job->ari_explanation = NULL;
        *dirty = 1;
    }
}

/*
 * Asks renewalInfo for every key type's certificate and keeps the earliest suggested window:
 * the CA may want one of them replaced sooner (a mis-issuance, a revoked key). APR_SUCCESS with
 * *found 0 when no certificate has an ARI id; otherwise the first failure.
 */
static apr_status_t acme_worker_ari_fetch(acme_worker_t *w, acme_worker_ari_ca_t *ac,
                                          const acme_worker_item_t *item,
                                          acme_client_renewal_info_t *best, int *found,
                                          acme_result_t *res)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    int j;

    *found = 0;
    for (j = 0; j < specs->nelts; ++j) {
        const acme_worker_active_t *act = &item->active[j];
        acme_client_renewal_info_t info;
        apr_time_t retry;
        apr_status_t rv;

        if (!act->present || !act->cert_id) {
            continue;
        }
        rv = acme_client_renewal_info(ac->client, w->pool, act->cert_id, &info, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        /* Asked again when the first of them says so. */
        retry = !*found || best->retry_after <= 0 ? info.retry_after
                : info.retry_after <= 0 || best->retry_after < info.retry_after
                  ? best->retry_after : info.retry_after;
        if (!*found || info.start < best->start) {
            *best = info;
        }
        best->retry_after = retry;
        *found = 1;
    }
    return APR_SUCCESS;
}

static void acme_worker_ari_failed(acme_worker_t *w, acme_worker_ari_ca_t *ac,
                                   const acme_worker_item_t *item, acme_job_t *job,
                                   const acme_result_t *res, apr_time_t now,
                                   apr_interval_time_t interval, int *dirty)
{
    if (res->status == APR_ENOTIMPL || res->http_status == 0 || res->http_status >= 500) {
        ac->broken = 1;
    }
    if (res->status == APR_ENOTIMPL) {
        ac->no_ari = 1;
        acme_worker_ari_clear(job, dirty);
        job->ari_next = now + interval;
        *dirty = 1;
        return;
    }
    acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(w->pool, "ACME00412: %s: renewalInfo (ARI) not "
                                                   "available (%s); the local renew window applies",
                                                   item->dom->name,
                                                   acme_result_describe(res, w->pool)));
    if (res->retry_after > now) {
        /* An error answer with Retry-After asks the client to stay away from the CA, not only
         * from renewalInfo: the order waits for it too (acme_worker_plan). */
        job->ari_next = res->retry_after;
        job->ca_hold = res->retry_after;
        *dirty = 1;
    }
}

/*
 * The ARI renewal time (RFC 9773) of the domain: the earliest suggested window over its key
 * types' certificates, or 0 when the local window applies (ARI off, not offered, failing, no
 * certificate). Honours and records Retry-After.
 */
static apr_time_t acme_worker_ari(acme_worker_t *w, apr_hash_t *clients,
                                  const acme_worker_item_t *item, acme_job_t *job,
                                  apr_time_t local_at, apr_time_t now,
                                  apr_interval_time_t interval, int *dirty)
{
    const acme_worker_active_t *act = &item->active[0];
    acme_client_renewal_info_t info = { .start = 0 };
    acme_worker_ari_ca_t *ac;
    acme_result_t res;
    apr_time_t at;
    int found = 0;

    if (w->cfg->ari_off || local_at <= 0 || !act->present || !act->covers || !act->cert_id) {
        acme_worker_ari_clear(job, dirty);
        return 0;
    }
    if (job->ari_next > now) {
        /* The CA said when to ask again: keep what it said last. */
        if (!job->ari_start || !job->ari_pick) {
            return 0;
        }
        return job->ari_pick < local_at ? job->ari_pick : local_at;
    }
    ac = acme_worker_ari_ca(w, clients, item);
    if (ac->no_ari) {
        /* Not offered: ask again after a check interval, not at every restart. */
        acme_worker_ari_clear(job, dirty);
        job->ari_next = now + interval;
        *dirty = 1;
        return 0;
    }
    if (ac->broken) {
        return 0;
    }
    acme_result_reset(&res);
    if (acme_worker_ari_fetch(w, ac, item, &info, &found, &res) != APR_SUCCESS) {
        acme_worker_ari_failed(w, ac, item, job, &res, now, interval, dirty);
        return 0;
    }
    if (!found) {
        return 0;
    }
    /* The pick itself is kept unbounded, so that it survives a change of the local window. */
    job->ari_pick = acme_renewal_ari_time(info.start, info.end, job->ari_start, job->ari_end,
                                          job->ari_pick, acme_worker_random(), 0);
    at = job->ari_pick < local_at ? job->ari_pick : local_at;
    job->ari_start = info.start;
    job->ari_end = info.end;
    job->ari_next = info.retry_after > now ? info.retry_after : now + interval;
    job->ari_explanation = info.explanation_url;
    *dirty = 1;
    return at;
}

apr_time_t acme_worker_emergency_at(const acme_worker_item_t *item)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    apr_time_t earliest = 0;
    int j;

    for (j = 0; j < specs->nelts; ++j) {
        const acme_worker_active_t *act = &item->active[j];
        apr_time_t at;
        if (!act->present) {
            continue;
        }
        at = acme_plan_emergency_at(act->not_before, act->not_after);
        if (earliest == 0 || at < earliest) {
            earliest = at;
        }
    }
    return earliest;
}

/* The domain's configuration as domains.json holds it, hashed: what an order was tried with. */
const char *acme_worker_config_digest(apr_pool_t *p, const acme_domain_t *dom)
{
    json_t *doc = acme_domain_to_json(dom);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *digest = text ? acme_challenge_sha256_hex(p, text) : NULL;

    free(text);
    json_decref(doc);
    return digest;
}

/*
 * An error the admin had to fix (terms not agreed, a missing binding, a bad hook) waits up to a
 * day before the next attempt; when the admin has changed the domain's configuration since, the
 * next worker run (the graceful restart that loaded it starts one) tries again at once.
 */
static int acme_worker_config_changed(acme_worker_t *w, const acme_worker_item_t *item,
                                      const acme_job_t *job)
{
    const char *now_digest;

    if (job->last_error.err_class != ACME_CLASS_ADMIN || !job->failed_config) {
        return 0;
    }
    now_digest = acme_worker_config_digest(w->pool, item->dom);
    if (!now_digest || !strcmp(now_digest, job->failed_config)) {
        return 0;
    }
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(w->pool, "ACME00413: %s: the configuration "
                    "changed since the last attempt failed (%s); trying again now instead of at %s",
                    item->dom->name, acme_class_name(job->last_error.err_class),
                    acme_worker_time_text(w->pool, job->next_run)));
    return 1;
}

/* ------------------------------------------------------------------ metrics */

/* What one client sent (acme_metrics: acme_ca_requests_total, acme_badnonce_retries_total). */
void acme_worker_metrics_client(acme_worker_t *w, const char *ca_url,
                                const acme_client_t *client)
{
    acme_client_counts_t counts;

    if (!client) {
        return;
    }
    acme_client_counts(client, &counts);
    acme_metrics_count(w->metrics, ACME_METRICS_CA_REQUESTS, ca_url, "ok",
                       (apr_int64_t)counts.total - (apr_int64_t)counts.failed);
    acme_metrics_count(w->metrics, ACME_METRICS_CA_REQUESTS, ca_url, "error", counts.failed);
    acme_metrics_count(w->metrics, ACME_METRICS_BADNONCE, NULL, NULL, counts.bad_nonce_retries);
}

/* Clients kept under "ca_url ca_file proxy" keys (a CA URL has no space). */
static const char *acme_worker_metrics_ca(apr_pool_t *p, const char *key)
{
    return apr_pstrndup(p, key, strcspn(key, " "));
}

static void acme_worker_metrics_ari(acme_worker_t *w, apr_hash_t *clients)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(w->pool, clients); hi; hi = apr_hash_next(hi)) {
        const acme_worker_ari_ca_t *ac = apr_hash_this_val(hi);
        acme_worker_metrics_client(w, acme_worker_metrics_ca(w->pool, apr_hash_this_key(hi)),
                                   ac->client);
    }
}

/* An order thread's clients, when it ends (clients carry over between its domains). */
void acme_worker_metrics_clients(acme_worker_t *w, apr_pool_t *p, apr_hash_t *clients)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, clients); hi; hi = apr_hash_next(hi)) {
        acme_worker_metrics_client(w, acme_worker_metrics_ca(p, apr_hash_this_key(hi)),
                                   apr_hash_this_val(hi));
    }
}

/* The run's counts go to the store: they outlive the worker and graceful restarts. */
void acme_worker_metrics_save(acme_worker_t *w)
{
    const char *path = acme_store_path(w->pool, w->store, ACME_STORE_JOBS,
                                       ACME_METRICS_WORKER_FILE, NULL);
    acme_result_t res;

    acme_result_reset(&res);
    if (path && acme_metrics_tally_save(w->pool, path, w->metrics, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME00414: renewal worker: "
                                                          "metrics not recorded: %s",
                                                          acme_result_describe(&res, w->pool)));
    }
}

/* One domain: due now, or when. The job lives in p (see acme_worker_active_read). */
static void acme_worker_plan_item(acme_worker_t *w, apr_pool_t *p, apr_hash_t *ari_clients,
                                  acme_worker_item_t *item, apr_time_t now,
                                  apr_interval_time_t interval)
{
    apr_time_t renew_at = acme_worker_renew_at(p, item), ari_at, emergency_at;
    const char *reason = renew_at > 0 ? "window" : "no valid certificate for the names";
    acme_result_t res;
    acme_job_t *job = NULL;
    int dirty = 0;

    acme_result_reset(&res);
    acme_job_load(p, w->store, item->dom->name, &job, &res);
    if (item->staged) {
        return;   /* the parent activates it; a new run follows the restart */
    }
    if (acme_worker_forced(w, p, job, now)) {
        item->forced = 1;
        APR_ARRAY_PUSH(w->due, acme_worker_item_t *) = item;
        return;
    }
    ari_at = acme_worker_ari(w, ari_clients, item, job, renew_at, now, interval, &dirty);
    emergency_at = acme_worker_emergency_at(item);
    if (ari_at > 0 && ari_at < renew_at) {
        renew_at = ari_at;
        reason = "ari";
    }
    else if (renew_at > 0 && emergency_at > 0 && now >= emergency_at) {
        reason = "emergency";
    }
    if (!job->renew_reason || strcmp(job->renew_reason, reason)) {
        job->renew_reason = reason;
        dirty = 1;
    }
    if (renew_at > now) {
        if (job->renew_at != renew_at || job->state != ACME_JOB_IDLE || dirty) {
            job->state = ACME_JOB_IDLE;
            job->renew_at = renew_at;
            job->next_run = renew_at;
            job->activity = NULL;
            job->order_json = NULL;
            job->updated = now;
            acme_worker_job_note(w, p, job);    /* planned again at every run */
        }
        acme_worker_note_next(w, renew_at < now + interval ? renew_at : now + interval);
        return;
    }
    if (dirty) {
        job->renew_at = renew_at;
        acme_worker_job_note(w, p, job);
        acme_result_reset(&res);
    }
    if (job->state == ACME_JOB_FAILED && job->next_run > now
        && !acme_worker_config_changed(w, item, job)) {
        acme_worker_note_next(w, job->next_run);
        return;
    }
    if (job->ca_hold > now && strcmp(reason, "emergency")) {
        acme_worker_note_next(w, job->ca_hold);     /* the CA said when; see ari_failed */
        return;
    }
    APR_ARRAY_PUSH(w->due, acme_worker_item_t *) = item;
}

void acme_worker_plan(acme_worker_t *w, apr_interval_time_t interval)
{
    apr_time_t now = apr_time_now();
    apr_hash_t *ari_clients = apr_hash_make(w->pool);
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, w->pool);
    for (i = 0; i < w->items->nelts && !acme_worker_orphaned(w); ++i) {
        acme_worker_plan_item(w, p, ari_clients, &APR_ARRAY_IDX(w->items, i, acme_worker_item_t),
                              now, interval);
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    acme_worker_metrics_ari(w, ari_clients);
}

/* ------------------------------------------------------------------ one order */
