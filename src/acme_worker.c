#include "acme_worker_int.h"

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

/*
 * Set from a signal handler or the supervising thread, read by the order
 * threads between steps: the one piece of process-wide state a stop needs.
 */
static volatile sig_atomic_t acme_worker_stopping;

void acme_worker_request_stop(void)
{
    acme_worker_stopping = 1;
}

/* ------------------------------------------------------------------ small helpers */

void acme_worker_log_at(const acme_worker_t *w, const char *file, int line,
                        acme_log_level_t level, const char *msg)
{
    if (w->cfg->log) {
        w->cfg->log(w->cfg->log_baton, level, file, line, msg);
    }
}

static double acme_worker_random(void)
{
    unsigned char b[4] = { 0 };

    apr_generate_random_bytes(b, sizeof(b));
    return (double)((apr_uint32_t)b[0] << 24 | (apr_uint32_t)b[1] << 16
                    | (apr_uint32_t)b[2] << 8 | b[3]) / 4294967296.0;
}

const char *acme_worker_time_text(apr_pool_t *p, apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN];

    apr_rfc822_date(buf, t);
    return apr_pstrdup(p, buf);
}

static void acme_worker_note_next(acme_worker_t *w, apr_time_t t)
{
    apr_thread_mutex_lock(w->lock);
    if (t > 0 && (w->next_run == 0 || t < w->next_run)) {
        w->next_run = t;
    }
    apr_thread_mutex_unlock(w->lock);
}

/*
 * Saves a job; a failure is logged, never silent, and brings the worker back soon: every later
 * save writes the whole job again. res may be NULL when the caller has no use for the detail.
 */
apr_status_t acme_worker_job_save(acme_worker_t *w, apr_pool_t *p, const acme_job_t *job,
                                  acme_result_t *res)
{
    acme_result_t local;
    apr_status_t rv;

    if (!res) {
        acme_result_reset(&local);
        res = &local;
    }
    rv = acme_job_save(p, w->store, job, res);
    if (rv != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00401: %s: the job state could "
                                                          "not be saved (%s); it is written again "
                                                          "at the next step or check", job->name,
                                                          acme_result_describe(res, p)));
        acme_worker_note_next(w, apr_time_now() + ACME_PLAN_RETRY_FIRST);
    }
    return rv;
}

static const char *acme_worker_file(apr_pool_t *p, const char *dir, const char *prefix,
                                    const acme_keyspec_t *spec, const char *suffix)
{
    return apr_pstrcat(p, dir, "/", prefix, ".", acme_crypto_keyspec_name(spec), suffix, NULL);
}

/* The served certificates of a domain, one per key type, for a notification. */
apr_array_header_t *acme_worker_active_certs(apr_pool_t *p, const acme_worker_item_t *item)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    apr_array_header_t *certs = apr_array_make(p, specs->nelts, sizeof(acme_notify_cert_t));
    int j;

    for (j = 0; j < specs->nelts; ++j) {
        const acme_worker_active_t *act = &item->active[j];
        if (act->present) {
            APR_ARRAY_PUSH(certs, acme_notify_cert_t) = (acme_notify_cert_t){
                .key_type = acme_crypto_keyspec_name(&APR_ARRAY_IDX(specs, j, acme_keyspec_t)),
                .serial = act->serial, .not_after = act->not_after,
            };
        }
    }
    return certs;
}

/* The certificates in a set directory (staging), one per key type, for a notification. */
static apr_array_header_t *acme_worker_set_certs(apr_pool_t *p, const acme_domain_t *dom,
                                                 const char *dir)
{
    const apr_array_header_t *specs = dom->policy.key_specs;
    apr_array_header_t *certs = apr_array_make(p, specs->nelts, sizeof(acme_notify_cert_t));
    int j;

    for (j = 0; dir && j < specs->nelts; ++j) {
        const acme_keyspec_t *spec = &APR_ARRAY_IDX(specs, j, acme_keyspec_t);
        apr_array_header_t *chain = NULL;
        acme_cert_info_t info;
        acme_result_t res;

        acme_result_reset(&res);
        if (acme_activate_chain_read(p, acme_worker_file(p, dir, "pubcert", spec, ".pem"), &chain,
                                     &info, &res) == APR_SUCCESS) {
            APR_ARRAY_PUSH(certs, acme_notify_cert_t) = (acme_notify_cert_t){
                .key_type = acme_crypto_keyspec_name(spec),
                .serial = info.serial_hex, .not_after = info.not_after,
            };
        }
    }
    return certs;
}

/*
 * ACMENotifyCommand for one event, rate-limited per domain through the job (which the caller
 * saves). A failing program is logged and changes nothing else.
 */
void acme_worker_notify(acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                        acme_job_t *job, const char *event,
                        const apr_array_header_t *certs, const char *error)
{
    apr_time_t now = apr_time_now();
    acme_notify_event_t ev = {
        .event = event, .domain = dom->name, .idents = dom->idents, .certs = certs,
        .error = error, .now = now,
    };
    acme_result_t res;
    json_t *doc;
    apr_time_t *last_same = !strcmp(event, "errored") ? &job->notified_errored_at
                            : !strcmp(event, "expiring") ? &job->notified_expiring_at : NULL;

    if (!strcmp(event, "renewed")) {
        job->notified_errored_at = job->notified_expiring_at = 0;
    }
    if (!w->cfg->notify_argv || w->cfg->notify_argv->nelts == 0
        || !acme_notify_due(event, last_same ? *last_same : 0, now)) {
        return;
    }
    doc = acme_notify_document(&ev);
    acme_result_reset(&res);
    if (acme_notify_run(p, w->cfg->notify_argv, event, dom->name, doc, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00402: %s: %s", dom->name,
                                                          acme_result_describe(&res, p)));
    }
    json_decref(doc);
    job->notified_event = event;
    job->notified_at = now;
    if (last_same) {
        *last_same = now;
    }
}

/* ------------------------------------------------------------------ preparation (as root) */

/*
 * A pool with an allocator of its own, guarded by a mutex: what threads allocate from it (or
 * create and destroy as its children) never races with the run's pool. Pools are not
 * thread-safe; this one is, as far as its allocator and child list go.
 */
static apr_status_t acme_worker_pool_make(apr_pool_t *parent, apr_pool_t **pp)
{
    apr_allocator_t *alloc = NULL;
    apr_thread_mutex_t *mutex = NULL;
    apr_status_t rv = apr_allocator_create(&alloc);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_pool_create_ex(pp, parent, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, *pp);
    if ((rv = apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, *pp)) == APR_SUCCESS) {
        apr_allocator_mutex_set(alloc, mutex);
    }
    return rv;
}

/*
 * The account lock a2acme rollover takes ("account-<ca id>"), taken as root before the key is
 * read, so a renewal never uses a key being replaced. fcntl locks belong to the process, so one
 * lock serves every order thread. Busy after a short wait: the CA's orders are retried soon.
 * Any other failure is logged and the run goes on unlocked: a broken lock directory must not
 * stop renewals.
 */
static void acme_worker_ca_lock(acme_worker_t *w, acme_worker_ca_t *ca)
{
    const char *name = apr_pstrcat(w->pool, "account-", ca->ca_id, NULL);
    apr_time_t until = apr_time_now() + ACME_WORKER_ACCOUNT_LOCK_WAIT;
    acme_result_t res;
    apr_status_t rv;

    for (;;) {
        acme_result_reset(&res);
        rv = acme_store_lock(w->pool, w->store, name, 0, &ca->account_lock, &res);
        if (rv != APR_EAGAIN || apr_time_now() >= until) {
            break;
        }
        apr_sleep(apr_time_from_msec(200));
    }
    if (rv == APR_SUCCESS) {
        return;
    }
    ca->account_lock = NULL;
    ca->busy = rv == APR_EAGAIN;
    acme_worker_log(w, ca->busy ? ACME_LOG_NOTICE : ACME_LOG_WARNING, apr_psprintf(w->pool,
        "ACME00403: the account at %s %s (%s)", ca->ca_url,
        ca->busy ? "is in use by another process (a2acme rollover?); its orders are retried "
                   "soon" : "cannot be locked; going on without the lock",
        acme_result_describe(&res, w->pool)));
}

/* Gives up the account locks of CAs none of the due domains can use: a rollover may go on. */
static void acme_worker_ca_unlock_idle(acme_worker_t *w, int all)
{
    apr_hash_index_t *hi;
    int i, j;

    for (hi = apr_hash_first(w->pool, w->cas); hi; hi = apr_hash_next(hi)) {
        acme_worker_ca_t *ca = apr_hash_this_val(hi);
        int needed = 0;
        for (i = 0; !all && i < w->due->nelts && !needed; ++i) {
            const acme_worker_item_t *item = APR_ARRAY_IDX(w->due, i, acme_worker_item_t *);
            for (j = 0; j < item->n_cas; ++j) {
                needed |= item->cas[j] == ca;
            }
        }
        if (!needed && ca->account_lock) {
            acme_store_unlock(ca->account_lock);
            ca->account_lock = NULL;
        }
    }
}

/*
 * As root, in prepare: the binding's HMAC key for a CA whose domain has one. A file that cannot
 * be read does not stop the run: only a registration at that CA needs it, and fails naming it.
 */
static void acme_worker_ca_eab(acme_worker_t *w, acme_worker_ca_t *ca, const acme_policy_t *pol)
{
    acme_result_t res;

    if (ca->eab_kid || !pol->eab_kid || !*pol->eab_kid || !pol->eab_file) {
        return;
    }
    ca->eab_kid = pol->eab_kid;
    ca->eab_only_if_required = pol->ca_urls->nelts > 1;
    acme_result_reset(&res);
    if (acme_eab_read(w->pool, pol->eab_file, &ca->eab_hmac, &res) != APR_SUCCESS) {
        ca->eab_error = apr_pstrdup(w->pool, res.message);
    }
}

/*
 * As root, in prepare: what the account at this CA should say (account life, src/acme_account.h)
 * comes from the first domain naming the CA, like its binding. A userActionRequired block set
 * under another ACMEAgreement is lifted: the admin changed it and reloaded.
 */
static void acme_worker_ca_life(acme_worker_t *w, acme_worker_ca_t *ca, const acme_policy_t *pol)
{
    const char *mail = pol->contact ? apr_pstrcat(w->pool, "mailto:", pol->contact, NULL) : NULL;
    acme_result_t res;
    int cleared = 0;

    if (ca->life_set) {
        return;
    }
    ca->life_set = 1;
    ca->contact_cfg = acme_account_contact_canon(w->pool, &mail, mail ? 1 : 0);
    ca->agreement = pol->agreement > 0;
    ca->ca_file = pol->ca_file;
    acme_account_tos_blocked(ca->record, ca->agreement, &cleared);
    if (!cleared) {
        return;
    }
    acme_result_reset(&res);
    acme_job_account_save(w->pool, acme_worker_account_url_path(w, w->pool, ca), ca->record,
                          &res);
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(w->pool, ACME_MSG_TOS_CLEARED ": account "
        "at %s: ACMEAgreement changed since the CA asked for agreement to new terms; orders at "
        "this CA are tried again", ca->ca_url));
}

/* Which way the CA's traffic goes, once per run (the proxy named without its credentials). */
static void acme_worker_ca_proxy_log(acme_worker_t *w, const char *ca_url,
                                     const acme_policy_t *pol)
{
    const char *proxy = acme_proxy_for(pol->proxies, ca_url);

    if (proxy) {
        acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(w->pool, "ACME00404: the CA %s is reached "
                        "through the proxy %s "
                        "(ACMEProxy)", ca_url, acme_proxy_redact(w->pool, proxy)));
    }
}

static apr_status_t acme_worker_ca_get(acme_worker_t *w, const char *ca_url,
                                       const acme_policy_t *pol, acme_worker_ca_t **pca,
                                       acme_result_t *res)
{
    acme_worker_ca_t *ca = apr_hash_get(w->cas, ca_url, APR_HASH_KEY_STRING);
    apr_status_t rv;

    if (!ca) {
        ca = apr_pcalloc(w->pool, sizeof(*ca));
        ca->ca_url = ca_url;
        ca->ca_id = acme_domain_ca_id(w->pool, ca_url);
        apr_thread_mutex_create(&ca->lock, APR_THREAD_MUTEX_DEFAULT, w->pool);
        apr_thread_mutex_create(&ca->new_order_lock, APR_THREAD_MUTEX_DEFAULT, w->pool);
        if ((rv = acme_worker_pool_make(w->pool, &ca->pool)) != APR_SUCCESS) {
            return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON, "out of memory");
        }
        acme_worker_ca_lock(w, ca);
        rv = acme_worker_account_key(w, ca, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        acme_worker_account_url_load(w, ca);
        apr_hash_set(w->cas, ca_url, APR_HASH_KEY_STRING, ca);
        acme_worker_ca_proxy_log(w, ca_url, pol);
    }
    acme_worker_ca_eab(w, ca, pol);
    acme_worker_ca_life(w, ca, pol);
    *pca = ca;
    return APR_SUCCESS;
}

static void acme_worker_active_read(acme_worker_t *w, const acme_domain_t *dom,
                                    const acme_keyspec_t *spec, acme_worker_active_t *act)
{
    const char *dir = acme_store_path(w->pool, w->store, ACME_STORE_DOMAINS, dom->name, NULL);
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    acme_result_t res;
    acme_cert_t *leaf;

    *act = (acme_worker_active_t){ .present = 0 };
    acme_result_reset(&res);
    if (!dir
        || acme_activate_chain_read(w->pool, acme_worker_file(w->pool, dir, "pubcert", spec,
                                                              ".pem"),
                                    &chain, &info, &res) != APR_SUCCESS) {
        if (!APR_STATUS_IS_ENOENT(res.status)) {
            acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME00405: %s: %s; a new "
                                                              "certificate is ordered", dom->name,
                                                              acme_result_describe(&res,
                                                                                   w->pool)));
        }
        return;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    /* The parent does not serve a set whose key is damaged: order a new one. */
    if (acme_activate_key_check(w->pool, acme_worker_file(w->pool, dir, "privkey", spec, ".pem"),
                                leaf, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME00406: %s: %s; a new "
                                                          "certificate is ordered", dom->name,
                                                          acme_result_describe(&res, w->pool)));
        return;
    }
    act->present = 1;
    act->not_before = info.not_before;
    act->not_after = info.not_after;
    act->serial = info.serial_hex;
    if (acme_crypto_ari_cert_id(w->pool, leaf, &act->cert_id, &res) != APR_SUCCESS) {
        act->cert_id = NULL;
        acme_result_reset(&res);
    }
    act->covers = acme_crypto_cert_covers(w->pool, leaf, (const acme_ident_t *)dom->idents->elts,
                                          dom->idents->nelts, &res) == APR_SUCCESS
                  && info.sans->nelts == dom->idents->nelts;
}

static int acme_worker_staged_present(acme_worker_t *w, const acme_domain_t *dom)
{
    const char *dir = acme_store_path(w->pool, w->store, ACME_STORE_STAGING, dom->name, NULL);
    apr_finfo_t finfo;

    return dir && apr_stat(&finfo, apr_pstrcat(w->pool, dir, "/" ACME_WORKER_STAGED_FILE, NULL),
                           APR_FINFO_TYPE, w->pool) == APR_SUCCESS;
}

static apr_status_t acme_worker_prepare(acme_worker_t *w, acme_result_t *res)
{
    int i, j;
    apr_status_t rv = acme_seal_proof_key_load(w->pool, w->cfg->store_dir, &w->proof_key, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }

    for (i = 0; i < w->cfg->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(w->cfg->domains, i, const acme_domain_t *);
        acme_worker_item_t *item = apr_array_push(w->items);
        const apr_array_header_t *specs = dom->policy.key_specs;

        acme_job_t *job = NULL;
        acme_result_t jres;

        item->dom = dom;
        /* Every CA of the domain now, as root: failover may need any account key later. */
        item->n_cas = dom->policy.ca_urls->nelts;
        item->cas = apr_pcalloc(w->pool, sizeof(*item->cas) * (apr_size_t)item->n_cas);
        for (j = 0; j < item->n_cas; ++j) {
            rv = acme_worker_ca_get(w, APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *),
                                    &dom->policy, &item->cas[j], res);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        acme_result_reset(&jres);
        if (acme_job_load(w->pool, w->store, dom->name, &job, &jres) != APR_SUCCESS) {
            item->job_damaged = acme_result_describe(&jres, w->pool);
        }
        item->ca = item->cas[job->ca_index > 0 ? job->ca_index % item->n_cas : 0];
        item->active = apr_pcalloc(w->pool, sizeof(*item->active) * (apr_size_t)specs->nelts);
        for (j = 0; j < specs->nelts; ++j) {
            acme_worker_active_read(w, dom, &APR_ARRAY_IDX(specs, j, acme_keyspec_t),
                                    &item->active[j]);
        }
        item->staged = acme_worker_staged_present(w, dom);
    }
    return APR_SUCCESS;
}

static apr_status_t acme_worker_drop_privileges(acme_worker_t *w, acme_result_t *res)
{
    const acme_worker_config_t *cfg = w->cfg;

    /* Non-dumpable first: the User must not ptrace or core-dump us for the account keys. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (!cfg->drop_privileges || geteuid() != 0) {
        return APR_SUCCESS;
    }
    if (setgroups(0, NULL) != 0 || setgid(cfg->gid) != 0 || setuid(cfg->uid) != 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_ADMIN,
                                apr_psprintf(w->pool, "renewal worker cannot become uid %ld gid "
                                             "%ld: %s", (long)cfg->uid, (long)cfg->gid,
                                             strerror(errno)));
    }
    /* setuid() makes the process dumpable again on Linux. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return APR_SUCCESS;
}

/* 1 when staging/<name>/ carries our proof over exactly the files it holds. */
static int acme_worker_staged_genuine(acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                                      const char *dir)
{
    const char *proof = NULL;
    json_t *json = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_activate_proof_make(p, w->proof_key, dom, dir, &proof, &res) != APR_SUCCESS
        || acme_store_read_json(p, apr_pstrcat(p, dir, "/" ACME_WORKER_STAGED_FILE, NULL), &json,
                                &res) != APR_SUCCESS) {
        return res.err_class == ACME_CLASS_RETRY_SOON;  /* unsure: leave it to the parent */
    }
    return acme_seal_proof_equal(proof, json_string_value(json_object_get(json, "proof")));
}

/*
 * As the User, never as root: finishes interrupted replacements in staging/ and removes staged
 * sets that do not carry our proof (planted, damaged, or made for other names), so that the
 * domain is ordered again instead of waiting on a set the parent will never take.
 */
/* Temp files of job writes a kill cut short: a worker killed again and again leaves one each. */
static void acme_worker_temps_tidy(acme_worker_t *w, apr_pool_t *p)
{
    acme_result_t res;
    int removed = 0;

    acme_result_reset(&res);
    if (acme_store_sweep_temps(p, w->store, ACME_STORE_JOBS, ACME_WORKER_TEMP_AGE, &removed,
                               &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00407: jobs: %s",
                                                          acme_result_describe(&res, p)));
    }
    else if (removed > 0) {
        acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME00408: jobs: removed %d temporary "
                                                       "files of writes an earlier run did not "
                                                       "finish", removed));
    }
}

static void acme_worker_staging_tidy(acme_worker_t *w)
{
    apr_pool_t *p = NULL;
    acme_result_t res;
    int i;

    apr_pool_create(&p, w->pool);
    acme_result_reset(&res);
    if (acme_store_recover_group(p, w->store, ACME_STORE_STAGING, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00409: staging: %s",
                                                          acme_result_describe(&res, p)));
    }
    acme_worker_temps_tidy(w, p);
    for (i = 0; i < w->items->nelts; ++i) {
        acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        const char *dir = acme_store_path(p, w->store, ACME_STORE_STAGING, item->dom->name, NULL);
        if (!item->staged || !dir || acme_worker_staged_genuine(w, p, item->dom, dir)) {
            continue;
        }
        acme_result_reset(&res);
        acme_store_remove_tree(p, dir, &res);
        item->staged = 0;
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00410: %s: the staged set in %s "
                                                          "carries no valid proof of this server's "
                                                          "renewal worker; removed, the domain "
                                                          "is ordered again", item->dom->name,
                                                          dir));
    }
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------------ planning */

/*
 * An admin's renewal request, new or taken by a run that was cut short. The job is saved as
 * ORDERING before the request is recorded as taken: a worker killed at any point resumes it.
 */
static int acme_worker_forced(acme_worker_t *w, acme_job_t *job, apr_time_t now)
{
    const char *what = "renewal forced by an admin";

    if (acme_job_force_pending(w->pool, w->store, job->name)) {
        job->state = ACME_JOB_ORDERING;
        job->updated = now;
        if (acme_worker_job_save(w, w->pool, job, NULL) != APR_SUCCESS) {
            return 0;   /* taken at the next run, once the job can be saved */
        }
        acme_job_force_take(w->pool, w->store, job->name);
    }
    else if (acme_job_force_interrupted(w->pool, w->store, job)) {
        what = "renewal forced by an admin, resumed";
    }
    else {
        return 0;
    }
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(w->pool, "ACME00411: %s: "
                                                     "%s", job->name, what));
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
                                                   "available (%s); the local renew window "
                                                   "applies", item->dom->name,
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
static const char *acme_worker_config_digest(apr_pool_t *p, const acme_domain_t *dom)
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
static void acme_worker_metrics_clients(acme_worker_t *w, apr_pool_t *p, apr_hash_t *clients)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, clients); hi; hi = apr_hash_next(hi)) {
        acme_worker_metrics_client(w, acme_worker_metrics_ca(p, apr_hash_this_key(hi)),
                                   apr_hash_this_val(hi));
    }
}

/* The run's counts go to the store: they outlive the worker and graceful restarts. */
static void acme_worker_metrics_save(acme_worker_t *w)
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

static void acme_worker_plan(acme_worker_t *w, apr_interval_time_t interval)
{
    apr_time_t now = apr_time_now();
    apr_hash_t *ari_clients = apr_hash_make(w->pool);
    int i;

    for (i = 0; i < w->items->nelts; ++i) {
        acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        apr_time_t renew_at = acme_worker_renew_at(w->pool, item), ari_at, emergency_at;
        const char *reason = renew_at > 0 ? "window" : "no valid certificate for the names";
        acme_result_t res;
        acme_job_t *job = NULL;
        int dirty = 0;

        acme_result_reset(&res);
        acme_job_load(w->pool, w->store, item->dom->name, &job, &res);
        if (item->staged) {
            continue;   /* the parent activates it; a new run follows the restart */
        }
        if (acme_worker_forced(w, job, now)) {
            item->forced = 1;
            APR_ARRAY_PUSH(w->due, acme_worker_item_t *) = item;
            continue;
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
                acme_worker_job_save(w, w->pool, job, NULL);
            }
            acme_worker_note_next(w, renew_at < now + interval ? renew_at : now + interval);
            continue;
        }
        if (dirty) {
            job->renew_at = renew_at;
            acme_worker_job_save(w, w->pool, job, NULL);
            acme_result_reset(&res);
        }
        if (job->state == ACME_JOB_FAILED && job->next_run > now
            && !acme_worker_config_changed(w, item, job)) {
            acme_worker_note_next(w, job->next_run);
            continue;
        }
        if (job->ca_hold > now && strcmp(reason, "emergency")) {
            acme_worker_note_next(w, job->ca_hold);     /* the CA said when; see ari_failed */
            continue;
        }
        APR_ARRAY_PUSH(w->due, acme_worker_item_t *) = item;
    }
    acme_worker_metrics_ari(w, ari_clients);
}

/* ------------------------------------------------------------------ one order */

void acme_worker_activity(acme_worker_run_t *run, const char *what)
{
    run->job->activity = what;
    run->job->updated = apr_time_now();
    acme_worker_job_save(run->w, run->p, run->job, NULL);
}

static apr_status_t acme_worker_save_order(acme_worker_run_t *run, const acme_order_t *order,
                                           acme_result_t *res)
{
    const char *json = NULL;
    apr_status_t rv = acme_order_to_json(order, run->p, &json, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    run->job->order_json = json;
    run->job->ca_url = run->item->ca->ca_url;
    run->job->updated = apr_time_now();
    return acme_worker_job_save(run->w, run->p, run->job, res);
}

/* newAccount (or the account the key has) with the configured contact, agreement and binding. */
apr_status_t acme_worker_register(acme_worker_run_t *run, acme_client_account_t **acct,
                                  acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_client_account_params_t params;

    if (ca->eab_error) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(run->p,
            "no account can be registered at %s without its external account binding: %s",
            ca->ca_url, ca->eab_error));
    }
    acme_worker_account_params(run, &params);
    return acme_client_account_register(run->client, run->p, &params, acct, res);
}

static apr_status_t acme_worker_account(acme_worker_run_t *run, acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_client_account_t *acct = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (ca->busy) {
        return acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON, apr_psprintf(run->p,
            "the account at %s was locked by another process (a2acme rollover?) when the "
            "renewal worker started; the order is retried soon", ca->ca_url));
    }
    apr_thread_mutex_lock(ca->lock);
    if (!ca->account_url) {
        acme_client_account_use(run->client, ca->account_key, NULL);
        rv = acme_worker_register(run, &acct, res);
        if (rv == APR_SUCCESS) {
            acme_worker_account_adopt(run, acct->url, acct->created ? "registered"
                                      : "the CA already had an account for the key", 0);
        }
    }
    if (rv == APR_SUCCESS) {
        acme_client_account_use(run->client, ca->account_key, ca->account_url);
    }
    apr_thread_mutex_unlock(ca->lock);
    return rv;
}

/* ------------------------------------------------------------------ account life */

/* The types this build answers for the identifier; dns-01 only through ACMEDns01Command. */
static int acme_worker_answers(const acme_domain_t *dom, const acme_client_authz_t *authz,
                               const char *type)
{
    if (!strcmp(type, "dns-01")) {
        return dom->policy.dns01_command && dom->policy.dns01_command->nelts > 0
               && authz->identifier.type == ACME_IDENT_DNS;
    }
    if (!strcmp(type, "dns-persist-01")) {
        return authz->identifier.type == ACME_IDENT_DNS;   /* the worker checks the record */
    }
    return !strcmp(type, "http-01") || !strcmp(type, "tls-alpn-01") || !strcmp(type, "tls-sni-01");
}

/*
 * The challenge to answer: the first type of the domain's list that the CA offers. The list is
 * ACMEChallenges, or, when that is not set, what the configuration check found this server can
 * answer (tls-alpn-01 when the SSL virtual hosts allow acme-tls/1, http-01 when httpd listens for
 * plain HTTP). A domain that did not come through the check has an empty list: http-01.
 */
static const acme_client_challenge_t *acme_worker_choose(const acme_domain_t *dom,
                                                         const acme_client_authz_t *authz,
                                                         const char *skip)
{
    const apr_array_header_t *types = dom->policy.challenges;
    int i;

    if (!types || types->nelts == 0) {
        return skip && !strcmp(skip, "http-01") ? NULL
                                                : acme_client_authz_challenge(authz, "http-01");
    }
    for (i = 0; i < types->nelts; ++i) {
        const char *type = APR_ARRAY_IDX(types, i, const char *);
        const acme_client_challenge_t *chal = (!skip || strcmp(skip, type))
                                              && acme_worker_answers(dom, authz, type)
                                              ? acme_client_authz_challenge(authz, type) : NULL;
        if (chal) {
            return chal;
        }
    }
    return NULL;
}

static const char *acme_worker_offered(apr_pool_t *p, const acme_client_authz_t *authz)
{
    const char *list = NULL;
    int i;

    for (i = 0; i < authz->challenges->nelts; ++i) {
        const char *t = APR_ARRAY_IDX(authz->challenges, i, acme_client_challenge_t).type;
        list = list ? apr_pstrcat(p, list, ", ", t, NULL) : t;
    }
    return list ? list : "none";
}

static const char *acme_worker_usable(apr_pool_t *p, const acme_domain_t *dom)
{
    const apr_array_header_t *types = dom->policy.challenges;
    const char *list = NULL;
    int i;

    for (i = 0; types && i < types->nelts; ++i) {
        const char *t = APR_ARRAY_IDX(types, i, const char *);
        list = list ? apr_pstrcat(p, list, ", ", t, NULL) : t;
    }
    return list ? list : "http-01";
}

/* The CA offers nothing this server answers: say what the admin can change. */
static apr_status_t acme_worker_no_challenge(acme_worker_run_t *run,
                                             const acme_client_authz_t *authz, acme_result_t *res)
{
    apr_pool_t *p = run->p;
    const char *ident = authz->identifier.value;
    const char *advice = NULL;

    if (acme_client_authz_challenge(authz, "tls-alpn-01")) {
        advice = apr_psprintf(p, "for tls-alpn-01 (port 443) add 'Protocols h2 http/1.1 "
                              "acme-tls/1' to the SSL virtual host serving %s", ident);
    }
    if (acme_client_authz_challenge(authz, "http-01")) {
        const char *http = "for http-01 (port 80) let httpd listen for plain HTTP ('Listen 80')";
        advice = advice ? apr_pstrcat(p, advice, "; ", http, NULL) : http;
    }
    if (advice) {
        advice = apr_pstrcat(p, advice, ", and list the type in ACMEChallenges if that is set",
                             NULL);
    }
    else {
        advice = authz->wildcard ? "a wildcard name needs dns-01: set ACMEDns01Command for the "
                                   "domain (and list dns-01 in ACMEChallenges if that is set)"
                                 : "mod_acme answers http-01, tls-alpn-01, tls-sni-01, and dns-01 "
                                   "through ACMEDns01Command";
    }
    return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN, apr_psprintf(p,
        "the CA offers no challenge for %s%s that this server answers (the CA offers: %s; "
        "this server answers: %s): %s", authz->wildcard ? "*." : "", ident,
        acme_worker_offered(p, authz), acme_worker_usable(p, run->item->dom), advice));
}

typedef struct {
    const char *type;
    const char *name;                   /* identifier, or the tls-sni-01 SNI name */
    const char *token;                  /* http-01 */
} acme_worker_answer_t;

static void acme_worker_withdraw(acme_worker_run_t *run, const apr_array_header_t *answers)
{
    const char *store_dir = run->w->cfg->store_dir;
    int i;

    for (i = 0; i < answers->nelts; ++i) {
        const acme_worker_answer_t *a = &APR_ARRAY_IDX(answers, i, acme_worker_answer_t);
        if (!strcmp(a->type, "tls-alpn-01")) {
            acme_challenge_tlsalpn01_remove(run->p, store_dir, a->name);
        }
        else if (!strcmp(a->type, "tls-sni-01")) {
            acme_challenge_tlssni01_remove(run->p, store_dir, a->name);
        }
        else {
            acme_challenge_http01_remove(run->p, store_dir, a->name, a->token);
        }
    }
}

static apr_status_t acme_worker_publish(acme_worker_run_t *run, const acme_client_authz_t *authz,
                                        const acme_client_challenge_t *chal,
                                        const char *key_authz, acme_worker_answer_t *a,
                                        acme_result_t *res)
{
    const char *store_dir = run->w->cfg->store_dir;

    *a = (acme_worker_answer_t){ .type = chal->type, .name = authz->identifier.value,
                                 .token = chal->token };
    acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(run->p, "ACME00415: %s: answering %s for "
                                                         "%s", run->item->dom->name, chal->type,
                                                         authz->identifier.value));
    if (!strcmp(chal->type, "tls-alpn-01")) {
        return acme_challenge_tlsalpn01_put(run->p, store_dir, &authz->identifier, key_authz,
                                            res);
    }
    if (!strcmp(chal->type, "tls-sni-01")) {
        return acme_challenge_tlssni01_put(run->p, store_dir, key_authz, &a->name, res);
    }
    return acme_challenge_http01_put(run->p, store_dir, authz->identifier.value, chal->token,
                                     key_authz, res);
}

/* ------------------------------------------------------------------ dns-01 */

/* The dns-01 settings of a domain, for acme_dns01_*. */
static acme_dns01_t acme_worker_dns01_of(acme_worker_t *w, apr_pool_t *p,
                                         const acme_domain_t *dom)
{
    apr_array_header_t *names = apr_array_make(p, dom->idents->nelts, sizeof(const char *));
    acme_dns01_t d = {
        .command = dom->policy.dns01_command,
        .timeout = dom->policy.dns01_timeout,
        .store_dir = w->cfg->store_dir,
        .domain = dom->name,
        .names = names,
        .stop = (volatile const int *)&acme_worker_stopping,
    };
    const char *reason = NULL;
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        APR_ARRAY_PUSH(names, const char *) = APR_ARRAY_IDX(dom->idents, i, acme_ident_t).value;
    }
    if (acme_dns01_propagation_parse(p, dom->policy.dns01_propagation, &d.propagation, &reason)
        != APR_SUCCESS) {
        d.propagation = (acme_dns01_propagation_t){ .delay = 0 };
    }
    return d;
}

/* Tears down what this order set up; a failing teardown stays pending for the next run. */
static void acme_worker_dns01_teardown(acme_worker_run_t *run, const acme_dns01_t *d,
                                       const apr_array_header_t *records)
{
    int i;

    for (i = 0; i < records->nelts; ++i) {
        const acme_dns01_record_t *rec = &APR_ARRAY_IDX(records, i, acme_dns01_record_t);
        const char *err_text = NULL;
        acme_result_t res;
        acme_result_reset(&res);
        if (acme_dns01_teardown(run->p, run->w->store, d, rec, &err_text, &res) != APR_SUCCESS) {
            acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME00416: %s: dns-01 "
                "teardown of %s failed, repeated at the next run: %s", d->domain, rec->fqdn,
                acme_result_describe(&res, run->p)));
        }
        else if (err_text && *err_text) {
            acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(run->p, "ACME00417: %s: dns-01 "
                "teardown of %s: %s", d->domain, rec->fqdn, err_text));
        }
    }
}

/* At the start of a run: teardowns an earlier run could not do (crash, failing program). */
static void acme_worker_dns01_leftovers(acme_worker_t *w)
{
    int i;

    for (i = 0; i < w->items->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(w->items, i, acme_worker_item_t).dom;
        acme_dns01_t d = acme_worker_dns01_of(w, w->pool, dom);
        acme_result_t res;
        int done = 0;
        acme_result_reset(&res);
        if (acme_dns01_teardown_pending(w->pool, w->store, &d, &done, &res) != APR_SUCCESS) {
            acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME00418: %s: a dns-01 "
                "teardown left by an earlier run failed again: %s", dom->name,
                acme_result_describe(&res, w->pool)));
        }
        if (done) {
            acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(w->pool, "ACME00419: %s: removed %d "
                "dns-01 record(s) left by an earlier run", dom->name, done));
        }
    }
}

/* Sets up the TXT record of one authorization; the record is torn down later even on failure. */
static apr_status_t acme_worker_dns01_setup(acme_worker_run_t *run, const acme_dns01_t *d,
                                            const acme_client_authz_t *authz,
                                            const char *key_authz, apr_array_header_t *records,
                                            acme_result_t *res)
{
    acme_dns01_record_t rec = {
        .fqdn = acme_dns01_fqdn(run->p, authz->identifier.value),
        .value = acme_dns01_txt_value(run->p, key_authz),
    };
    const char *err_text = NULL;
    apr_status_t rv;

    acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(run->p, "ACME00420: %s: answering dns-01 "
                                                         "for %s%s", d->domain,
                                                         authz->wildcard ? "*." : "",
                                                         authz->identifier.value));
    rv = acme_dns01_setup(run->p, run->w->store, d, &rec, &err_text, res);
    APR_ARRAY_PUSH(records, acme_dns01_record_t) = rec;
    if (err_text && *err_text) {
        acme_worker_log(run->w, rv == APR_SUCCESS ? ACME_LOG_DEBUG : ACME_LOG_ERROR,
                        apr_psprintf(run->p, "ACME00421: %s: ACMEDns01Command setup %s wrote: %s",
                                     d->domain, rec.fqdn, err_text));
    }
    return rv;
}

/* ------------------------------------------------------------------ dns-persist-01 */

int acme_worker_lists(const acme_domain_t *dom, const char *type)
{
    int i;

    for (i = 0; dom->policy.challenges && i < dom->policy.challenges->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(dom->policy.challenges, i, const char *), type)) {
            return 1;
        }
    }
    return 0;
}

/*
 * The CA's authorization must be for one of the domain's identifiers: its value becomes a file
 * name under challenges/ and a dns-01 record name, and a CA (or whoever answers in its name)
 * must not pick either. A wildcard authorization stands for "*." + its value.
 */
static apr_status_t acme_worker_authz_check(acme_worker_run_t *run,
                                            const acme_client_authz_t *authz, acme_result_t *res)
{
    const char *value = authz->identifier.value ? authz->identifier.value : "";
    acme_ident_t want = {
        .type = authz->identifier.type,
        .value = authz->wildcard ? apr_pstrcat(run->p, "*.", value, NULL) : value,
    };

    if (authz->identifier.value && acme_domain_has_ident(run->item->dom, &want)) {
        return APR_SUCCESS;
    }
    if (strlen(value) > 100) {
        value = apr_pstrcat(run->p, apr_pstrndup(run->p, value, 100), "...", NULL);
    }
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, apr_psprintf(run->p,
        "%s: the CA sent an authorization for '%s', which is not one of the domain's names; "
        "nothing was answered and the order is given up", run->item->dom->name,
        acme_result_utf8(run->p, apr_pescape_echo(run->p, want.value, 0))));
}

typedef struct {
    acme_dns01_t d;
    apr_array_header_t *answers;        /* acme_worker_answer_t */
    apr_array_header_t *records;        /* acme_dns01_record_t */
    apr_array_header_t *respond;        /* const acme_client_challenge_t * */
    int dns_ok;
} acme_worker_answering_t;

/* Provisions the answer to one pending authorization (dns-01 falling back to another type). */
static apr_status_t acme_worker_answer_one(acme_worker_run_t *run, acme_worker_answering_t *an,
                                           const acme_client_authz_t *authz, acme_result_t *res)
{
    const acme_domain_t *dom = run->item->dom;
    const acme_client_challenge_t *chal = acme_worker_choose(dom, authz, NULL), *alt;
    const char *key_authz = NULL;
    acme_worker_answer_t answer;
    apr_status_t rv;

    if (!chal) {
        return acme_worker_no_challenge(run, authz, res);
    }
    if (!strcmp(chal->type, "dns-persist-01")) {
        /* No key authorization: the standing record is the answer. */
        rv = acme_worker_persist_answer(run, authz, chal, res);
        if (rv == APR_SUCCESS) {
            APR_ARRAY_PUSH(an->respond, const acme_client_challenge_t *) = chal;
            return APR_SUCCESS;
        }
        alt = acme_worker_choose(dom, authz, "dns-persist-01");
        if (!alt || !strcmp(alt->type, "dns-01")) {
            return rv;
        }
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME00422: %s; trying %s "
                                                               "instead",
                                                               acme_result_describe(res, run->p),
                                                               alt->type));
        acme_result_reset(res);
        chal = alt;
    }
    rv = acme_client_key_authorization(run->client, run->p, chal->token, &key_authz, res);
    if (rv == APR_SUCCESS && !strcmp(chal->type, "dns-01")) {
        rv = acme_worker_dns01_setup(run, &an->d, authz, key_authz, an->records, res);
        if (rv == APR_SUCCESS) {
            an->dns_ok = 1;
            APR_ARRAY_PUSH(an->respond, const acme_client_challenge_t *) = chal;
            return APR_SUCCESS;
        }
        if (!(alt = acme_worker_choose(dom, authz, "dns-01"))) {
            return rv;
        }
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME00423: %s: %s; trying "
                                                               "%s for %s instead", dom->name,
                                                               acme_result_describe(res, run->p),
                                                               alt->type,
                                                               authz->identifier.value));
        acme_result_reset(res);
        chal = alt;
        rv = acme_client_key_authorization(run->client, run->p, chal->token, &key_authz, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_publish(run, authz, chal, key_authz, &answer, res);
    }
    if (rv == APR_SUCCESS) {
        APR_ARRAY_PUSH(an->answers, acme_worker_answer_t) = answer;
        APR_ARRAY_PUSH(an->respond, const acme_client_challenge_t *) = chal;
    }
    return rv;
}

/*
 * Answers every pending authorization: http-01/tls-alpn-01 answers are published and dns-01
 * records set up first (a failing dns-01 setup falls back to the next listed type the CA
 * offers for that name), then the propagation wait, then the CA is told to validate. Answers
 * and records are withdrawn whatever happened. Every authorization is checked against the
 * domain's names before anything is set up.
 */
static apr_status_t acme_worker_answer(acme_worker_run_t *run, acme_order_t *order,
                                       acme_result_t *res)
{
    acme_worker_answering_t an = {
        .d = acme_worker_dns01_of(run->w, run->p, run->item->dom),
        .answers = apr_array_make(run->p, 4, sizeof(acme_worker_answer_t)),
        .records = apr_array_make(run->p, 4, sizeof(acme_dns01_record_t)),
        .respond = apr_array_make(run->p, 4, sizeof(acme_client_challenge_t *)),
    };
    apr_array_header_t *authzs = NULL;
    apr_status_t rv;
    int i;

    rv = acme_client_order_authzs(run->client, run->p, order, &authzs, res);
    for (i = 0; rv == APR_SUCCESS && i < authzs->nelts; ++i) {
        rv = acme_worker_authz_check(run, APR_ARRAY_IDX(authzs, i, const acme_client_authz_t *),
                                     res);
    }
    for (i = 0; rv == APR_SUCCESS && i < authzs->nelts; ++i) {
        const acme_client_authz_t *authz = APR_ARRAY_IDX(authzs, i, const acme_client_authz_t *);
        if (!strcmp(authz->status, "pending")) {
            rv = acme_worker_answer_one(run, &an, authz, res);
        }
    }
    if (rv == APR_SUCCESS && an.dns_ok) {
        acme_worker_activity(run, "waiting for the DNS records to propagate");
        rv = acme_dns01_wait(run->p, &an.d, an.records,
                             (volatile const int *)&acme_worker_stopping, res);
    }
    for (i = 0; rv == APR_SUCCESS && i < an.respond->nelts; ++i) {
        rv = acme_client_challenge_respond(run->client, run->p,
                                           APR_ARRAY_IDX(an.respond, i,
                                                         const acme_client_challenge_t *), res);
    }
    if (rv == APR_SUCCESS) {
        acme_worker_activity(run, "waiting for the CA to validate");
        rv = acme_client_order_wait(run->client, run->p, order, res);
    }
    for (i = 0; i < an.respond->nelts; ++i) {
        acme_metrics_count(run->w->metrics, ACME_METRICS_CHALLENGES,
                           APR_ARRAY_IDX(an.respond, i, const acme_client_challenge_t *)->type,
                           rv == APR_SUCCESS ? "valid" : "invalid", 1);
    }
    acme_worker_withdraw(run, an.answers);
    acme_worker_dns01_teardown(run, &an.d, an.records);
    return rv;
}

/*
 * The certificate key of this order. fresh (finalize): a new key, created and sealed before the
 * CSR goes out, so a resumed run finds its public part; a stored one is never reused there, as
 * the worker cannot unseal it and a ready order has accepted no CSR yet. Else the stored key's
 * public part, to check the certificate against.
 */
static apr_status_t acme_worker_cert_key(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                         int fresh, acme_key_t **key, acme_result_t *res)
{
    const char *pub_path = acme_worker_file(run->p, run->pending_dir, "pubkey", spec, ".pem");
    const char *sealed_path = acme_worker_file(run->p, run->pending_dir, "privkey", spec,
                                               ".sealed");
    const char *pem = NULL, *sealed = NULL, *pub = NULL;
    apr_finfo_t finfo;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!fresh && apr_stat(&finfo, sealed_path, APR_FINFO_TYPE, run->p) == APR_SUCCESS
        && acme_store_read_file(run->p, pub_path, &text, &len, 0, res) == APR_SUCCESS) {
        return acme_seal_public_from_pem(run->p, text, len, key, res);
    }
    acme_result_reset(res);
    if (!fresh) {
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_PERMANENT,
                                "the key of the pending order is gone; a new order follows");
    }
    if ((rv = acme_crypto_key_generate(run->p, spec, key, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(run->p, *key, &pem, res)) != APR_SUCCESS
        || (rv = acme_seal_encrypt(run->p, run->w->cfg->seal_cert_pem, pem, strlen(pem), &sealed,
                                   res)) != APR_SUCCESS
        || (rv = acme_seal_public_pem(run->p, *key, &pub, res)) != APR_SUCCESS
        || (rv = acme_store_write_file(run->p, sealed_path, sealed, strlen(sealed),
                                       ACME_PERMS_0600, res)) != APR_SUCCESS) {
        return rv;
    }
    return acme_store_write_file(run->p, pub_path, pub, strlen(pub), ACME_PERMS_0644, res);
}

/*
 * RFC 9773 `replaces`: the certificate of this key type served now. The client drops it when the
 * CA has no ARI and retries once without it after alreadyReplaced.
 */
static const char *acme_worker_replaces(acme_worker_run_t *run, const char *spec_name)
{
    const apr_array_header_t *specs = run->item->dom->policy.key_specs;
    int j;

    if (run->w->cfg->ari_off) {
        return NULL;
    }
    for (j = 0; j < specs->nelts; ++j) {
        const acme_worker_active_t *act = &run->item->active[j];
        if (act->present && act->cert_id
            && !strcmp(acme_crypto_keyspec_name(&APR_ARRAY_IDX(specs, j, acme_keyspec_t)),
                       spec_name)) {
            return act->cert_id;
        }
    }
    return NULL;
}

/* The stored order, if it is this key type's, this account's and for these names; else NULL. */
static acme_order_t *acme_worker_order_stored(acme_worker_run_t *run, const char *spec_name)
{
    const acme_domain_t *dom = run->item->dom;
    acme_order_t *order = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (run->job->order_json
        && acme_order_from_json(run->p, run->job->order_json, strlen(run->job->order_json),
                                &order, &res) == APR_SUCCESS
        && order->key_spec && !strcmp(order->key_spec, spec_name)
        && order->account_url && acme_client_account_url(run->client)
        && !strcmp(order->account_url, acme_client_account_url(run->client))
        && acme_order_same_identifiers(order, (const acme_ident_t *)dom->idents->elts,
                                       dom->idents->nelts)
        && order->url) {
        return order;
    }
    return NULL;
}

/* The directory's profiles for configtest (acme_config_check_profiles); best effort. */
static void acme_worker_directory_cache(acme_worker_run_t *run, const acme_client_meta_t *meta)
{
    const char *ca_url = run->item->ca->ca_url;
    const char *path = acme_store_path(run->p, run->w->store, ACME_STORE_JOBS,
                                       acme_profile_cache_file(run->p, ca_url), NULL);
    json_t *json = run->w->proof_key ? acme_profile_cache_make(run->p, run->w->proof_key, ca_url,
                                                               meta, apr_time_now()) : NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (path && json) {
        acme_store_write_json(run->p, path, json, ACME_PERMS_0644, &res);
    }
    json_decref(json);
}

/*
 * The profile of a new order (ACMEProfile, or automatic for IP identifiers) checked against
 * what the CA's directory offers, before any order is sent: see acme_profile.h.
 */
static apr_status_t acme_worker_profile(acme_worker_run_t *run, acme_order_t *order,
                                        acme_result_t *res)
{
    const acme_domain_t *dom = run->item->dom;
    const acme_client_meta_t *meta = NULL;
    acme_profile_request_t req = {
        .ca_url = run->item->ca->ca_url, .wanted = dom->policy.profile,
        .mandatory = dom->policy.profile_mandatory,
        .idents = (const acme_ident_t *)dom->idents->elts, .n_idents = dom->idents->nelts,
    };
    const char *note = NULL;
    apr_status_t rv = acme_client_meta(run->client, &meta, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_worker_directory_cache(run, meta);
    rv = acme_profile_choose(run->p, &req, meta, &order->profile, &note, res);
    if (rv == APR_SUCCESS && note) {
        acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p, "ACME00424: %s: "
                                                              "%s", dom->name,
                                                              note));
    }
    return rv;
}

/* invalidProfile from newOrder: say which profile, and what the CA offers. */
static void acme_worker_profile_refused(acme_worker_run_t *run, const acme_order_t *order,
                                        acme_result_t *res)
{
    const acme_client_meta_t *meta = NULL;
    acme_result_t ignored;

    acme_result_reset(&ignored);
    if (!order->profile || !acme_problem_is(res, "invalidProfile")
        || acme_client_meta(run->client, &meta, &ignored) != APR_SUCCESS) {
        return;
    }
    res->err_class = ACME_CLASS_ADMIN;
    res->message = apr_psprintf(run->p, "the CA %s refused the profile \"%s\" (invalidProfile; "
                                "its directory offers: %s): %s", run->item->ca->ca_url,
                                order->profile, acme_profile_offered_text(run->p, meta),
                                res->message ? res->message : "");
}

/* The profile each new certificate was ordered with, kept in the job for the status. */
static void acme_worker_profile_record(acme_worker_run_t *run, const acme_order_t *order,
                                       const acme_client_chain_t *chain)
{
    acme_cert_info_t info;
    acme_result_t res;

    acme_result_reset(&res);
    if (chain->certs && chain->certs->nelts > 0
        && acme_crypto_cert_info(run->p, APR_ARRAY_IDX(chain->certs, 0, acme_cert_t *), &info,
                                 &res) == APR_SUCCESS) {
        acme_job_profile_note(run->job, run->p, info.serial_hex, order->profile);
    }
}

/*
 * The stored order, refreshed, or a new one when there is none or the CA gave it up (invalid,
 * gone). A refresh that fails transiently fails the step and keeps the order for the next
 * attempt: one name, one order.
 */
static apr_status_t acme_worker_order_resume(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                             acme_order_t **porder, acme_result_t *res)
{
    const acme_domain_t *dom = run->item->dom;
    const char *spec_name = acme_crypto_keyspec_name(spec);
    acme_order_t *order = acme_worker_order_stored(run, spec_name);
    apr_status_t rv;

    *porder = NULL;
    if (order) {
        rv = acme_client_order_refresh(run->client, run->p, order, res);
        if (rv == APR_SUCCESS && order->status != ACME_ORDER_INVALID) {
            *porder = order;
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS && (res->err_class == ACME_CLASS_RETRY_SOON
                                  || res->err_class == ACME_CLASS_RETRY_AFTER)) {
            return rv;
        }
    }
    acme_result_reset(res);
    *porder = acme_order_make(run->p, (const acme_ident_t *)dom->idents->elts, dom->idents->nelts,
                              spec_name);
    /* The URL this thread signs with: another thread may recover the CA's account meanwhile. */
    (*porder)->account_url = acme_client_account_url(run->client);
    (*porder)->replaces = acme_worker_replaces(run, spec_name);
    return acme_worker_profile(run, *porder, res);
}

/*
 * newOrder and saving its URL, one at a time per CA: the order's URL is known only from the
 * answer, so a worker killed in between leaves an order the next run cannot find and orders
 * again. Serialised, a kill can orphan at most one order, not one per parallel order.
 */
static apr_status_t acme_worker_order_create(acme_worker_run_t *run, acme_order_t *order,
                                             acme_result_t *res)
{
    apr_thread_mutex_t *lock = run->item->ca->new_order_lock;
    apr_status_t rv;

    if ((rv = acme_worker_persist_precheck(run, res)) != APR_SUCCESS) {
        return rv;
    }
    acme_worker_activity(run, "creating the order");
    apr_thread_mutex_lock(lock);
    rv = acme_client_order_new(run->client, run->p, order, res);
    if (rv == APR_SUCCESS) {
        rv = acme_worker_save_order(run, order, res);
    }
    else {
        acme_worker_profile_refused(run, order, res);
    }
    apr_thread_mutex_unlock(lock);
    return rv;
}

/* The chain (ACMEPreferredChain picks among the CA's alternates), into the pending set. */
static apr_status_t acme_worker_order_download(acme_worker_run_t *run, const acme_order_t *order,
                                               const acme_keyspec_t *spec, acme_result_t *res)
{
    const char *preferred = run->item->dom->policy.preferred_chain;
    acme_client_chain_t *chain = NULL;
    acme_key_t *key = NULL;
    apr_status_t rv;

    acme_worker_activity(run, "downloading the certificate");
    rv = acme_worker_cert_key(run, spec, 0, &key, res);
    if (rv == APR_SUCCESS) {
        rv = acme_client_cert_download(run->client, run->p, order, key, preferred, &chain, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_worker_profile_record(run, order, chain);
    if (preferred && !chain->preferred_found) {
        acme_worker_log(run->w, ACME_LOG_INFO, apr_psprintf(run->p, "ACME00425: %s: no chain with "
            "the preferred issuer \"%s\" among the %d the CA offered; the default chain (topmost "
            "issuer \"%s\") is used", run->item->dom->name, preferred, chain->n_alternates + 1,
            chain->top_issuer_cn ? chain->top_issuer_cn : "?"));
    }
    return acme_store_write_file(run->p, acme_worker_file(run->p, run->pending_dir, "pubcert",
                                                          spec, ".pem"),
                                 chain->pem, chain->pem_len, ACME_PERMS_0644, res);
}

static apr_status_t acme_worker_order_step(acme_worker_run_t *run, acme_order_t *order,
                                           const acme_keyspec_t *spec, acme_result_t *res)
{
    acme_key_t *key = NULL;
    apr_status_t rv;

    switch (order->status) {
    case ACME_ORDER_NEW:
        return acme_worker_order_create(run, order, res);
    case ACME_ORDER_PENDING:
        acme_worker_activity(run, "answering challenges");
        return acme_worker_answer(run, order, res);
    case ACME_ORDER_READY:
        acme_worker_activity(run, "finalizing");
        rv = acme_worker_cert_key(run, spec, 1, &key, res);
        if (rv == APR_SUCCESS) {
            rv = acme_client_order_finalize(run->client, run->p, order, key, res);
        }
        return rv == APR_SUCCESS ? acme_worker_save_order(run, order, res) : rv;
    case ACME_ORDER_PROCESSING:
        acme_worker_activity(run, "waiting for the CA to issue");
        return acme_client_order_wait(run->client, run->p, order, res);
    case ACME_ORDER_VALID:
        return acme_worker_order_download(run, order, spec, res);
    case ACME_ORDER_INVALID:
        return acme_client_order_explain(run->client, run->p, order, res);
    }
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_PERMANENT, "order in an unknown state");
}

static apr_status_t acme_worker_order_spec(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                           acme_result_t *res)
{
    const char *cert_path = acme_worker_file(run->p, run->pending_dir, "pubcert", spec, ".pem");
    acme_order_t *order = NULL;
    apr_finfo_t finfo;
    apr_status_t rv;
    int steps;

    if (apr_stat(&finfo, cert_path, APR_FINFO_TYPE, run->p) == APR_SUCCESS) {
        return APR_SUCCESS;     /* done before a crash or restart */
    }
    rv = acme_worker_order_resume(run, spec, &order, res);
    for (steps = 0; rv == APR_SUCCESS && steps < ACME_WORKER_MAX_STEPS; ++steps) {
        acme_order_status_t before = order->status;
        if (acme_worker_stopping) {
            return acme_result_fail(res, APR_EINTR, ACME_CLASS_RETRY_SOON,
                                    "the renewal worker was stopped; the order resumes later");
        }
        rv = acme_worker_order_step(run, order, spec, res);
        if (rv == APR_SUCCESS && before == ACME_ORDER_VALID) {
            return APR_SUCCESS;
        }
    }
    if (rv == APR_SUCCESS) {
        rv = acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON,
                              apr_psprintf(run->p, "the order is still %s after %d steps",
                                           acme_order_status_name(order->status), steps));
    }
    if (res->err_class == ACME_CLASS_PERMANENT) {
        run->job->order_json = NULL;    /* a fresh order next time */
    }
    return rv;
}

static apr_status_t acme_worker_stage(acme_worker_run_t *run, acme_result_t *res)
{
    const acme_domain_t *dom = run->item->dom;
    const char *staged_dir = acme_store_path(run->p, run->w->store, ACME_STORE_STAGING, dom->name,
                                             NULL);
    const char *proof = NULL;
    json_t *json;
    apr_status_t rv = acme_activate_proof_make(run->p, run->w->proof_key, dom, run->pending_dir,
                                               &proof, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    json = json_pack("{s:s, s:o, s:I, s:b, s:s}", "name", dom->name,
                     "domain", acme_domain_to_json(dom),
                     "landed", (json_int_t)apr_time_sec(apr_time_now()),
                     "forced", run->item->forced, "proof", proof);
    rv = acme_store_write_json(run->p, apr_pstrcat(run->p, run->pending_dir,
                                                   "/" ACME_WORKER_STAGED_FILE, NULL),
                               json, ACME_PERMS_0644, res);
    json_decref(json);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_store_replace_dir(run->p, run->pending_dir, staged_dir, NULL, 0, res);
}

/*
 * The directory and nonce pool of one CA (and ca_file, proxy) for every order thread of the
 * run: one directory fetch instead of one per thread, and each answer's nonce serves the next
 * request of any thread. NULL (each client keeps its own) when there is no memory for it.
 */
static acme_client_shared_t *acme_worker_client_shared(acme_worker_t *w, const char *key)
{
    acme_client_shared_t *shared = NULL;

    apr_thread_mutex_lock(w->lock);
    if (w->shared) {
        shared = apr_hash_get(w->shared, key, APR_HASH_KEY_STRING);
        if (!shared && acme_client_shared_create(&shared, w->shared_pool) == APR_SUCCESS) {
            apr_hash_set(w->shared, apr_pstrdup(w->shared_pool, key), APR_HASH_KEY_STRING,
                         shared);
        }
    }
    apr_thread_mutex_unlock(w->lock);
    return shared;
}

static apr_status_t acme_worker_issue(acme_worker_run_t *run, acme_result_t *res)
{
    const apr_array_header_t *specs = run->item->dom->policy.key_specs;
    const acme_worker_ca_t *ca = run->item->ca;
    acme_client_options_t opts = {
        .ca_file = run->item->dom->policy.ca_file,
        .proxy = acme_proxy_for(run->item->dom->policy.proxies, ca->ca_url),
    };
    const char *key = apr_pstrcat(run->p, ca->ca_url, " ", opts.ca_file ? opts.ca_file : "",
                                  " ", opts.proxy ? opts.proxy : "", NULL);
    apr_status_t rv = APR_SUCCESS;
    int j;

    /* One client per CA and thread: the directory and the nonces carry over between domains. */
    run->client = apr_hash_get(run->clients, key, APR_HASH_KEY_STRING);
    if (!run->client) {
        rv = acme_client_create(&run->client, run->thread_pool, ca->ca_url, &opts, res);
        if (rv == APR_SUCCESS) {
            apr_hash_set(run->clients, apr_pstrdup(run->thread_pool, key), APR_HASH_KEY_STRING,
                         run->client);
            acme_client_share(run->client, acme_worker_client_shared(run->w, key));
        }
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_account_gate(run, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_account(run, res);
    }
    if (rv == APR_SUCCESS) {
        acme_worker_account_life(run);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_store_mkdirs(run->p, run->pending_dir, res);
    }
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        rv = acme_worker_order_spec(run, &APR_ARRAY_IDX(specs, j, acme_keyspec_t), res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_stage(run, res);
    }
    return rv;
}

/*
 * After CA-side failures (acme_renewal_failover) the domain moves to its next CA and is tried
 * there at once; at most one round over the CAs per run. 1 when the caller should try again.
 */
static int acme_worker_failover(acme_worker_run_t *run, const acme_result_t *res, int *switches)
{
    acme_worker_item_t *item = run->item;
    const char *from = item->ca->ca_url;

    if (!acme_renewal_failover(res, item->n_cas, &run->job->ca_index, &run->job->ca_failures)) {
        return 0;
    }
    item->ca = item->cas[run->job->ca_index];
    run->job->ca_url = item->ca->ca_url;
    run->job->order_json = NULL;        /* an order belongs to its CA */
    acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME00426: %s: the CA %s "
                                                           "failed (%s); switching to the next CA "
                                                           "%s", item->dom->name, from,
                                                           acme_result_describe(res, run->p),
                                                           item->ca->ca_url));
    acme_worker_job_save(run->w, run->p, run->job, NULL);
    return ++*switches < item->n_cas;
}

/*
 * With another CA to fail over to, a CA-side error is confirmed at once (one more try after
 * ACME_WORKER_SAME_CA_PAUSE) instead of after a retry delay: a CA answering 500s then costs
 * seconds, not the minutes of the backoff. 1 when the caller should try again.
 */
static int acme_worker_retry_same_ca(acme_worker_run_t *run, const acme_result_t *res,
                                     int *retried)
{
    apr_time_t until = apr_time_now() + ACME_WORKER_SAME_CA_PAUSE;

    if (*retried || run->item->n_cas < 2 || !acme_renewal_ca_side(res)
        || run->job->ca_failures < 1) {
        return 0;
    }
    *retried = 1;
    while (!acme_worker_stopping && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
    return !acme_worker_stopping;
}

/*
 * Whether a failed attempt is tried again in this run after a short pause: a transient,
 * CA-side failure (badNonce out of budget, a 5xx mid-order) with an order to resume (or none
 * opened yet because of badNonce), no time named by the CA, and quick retries left.
 */
static int acme_worker_quick_due(const acme_worker_run_t *run, const acme_result_t *res,
                                 int quick)
{
    return quick < ACME_WORKER_QUICK_RETRIES && !acme_worker_stopping
           && acme_renewal_ca_side(res) && res->retry_after == 0
           && (run->job->order_json || acme_problem_is(res, "badNonce"));
}

/* Pauses 1, 2, 4 s (stopping cuts it short) before a quick retry. 1 when the caller retries. */
static int acme_worker_retry_quick(acme_worker_run_t *run, const acme_result_t *res, int *quick)
{
    apr_time_t until;

    if (!acme_worker_quick_due(run, res, *quick)) {
        return 0;
    }
    until = apr_time_now() + (ACME_WORKER_QUICK_PAUSE << *quick);
    ++*quick;
    acme_worker_log(run->w, ACME_LOG_INFO, apr_psprintf(run->p, "ACME00427: %s: %s; the order is "
                                                        "resumed in %d s (quick retry %d of %d)",
                                                        run->item->dom->name,
                                                        acme_result_describe(res, run->p),
                                                        1 << (*quick - 1), *quick,
                                                        ACME_WORKER_QUICK_RETRIES));
    run->job->activity = "retrying soon";
    acme_worker_job_save(run->w, run->p, run->job, NULL);
    while (!acme_worker_stopping && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
    return !acme_worker_stopping;
}

static void acme_worker_handle(acme_worker_t *w, apr_pool_t *p, apr_pool_t *tp,
                               apr_hash_t *clients, acme_worker_item_t *item)
{
    const acme_domain_t *dom = item->dom;
    acme_worker_run_t run = {
        .w = w, .p = p, .thread_pool = tp, .clients = clients, .item = item,
        .pending_dir = apr_pstrcat(p, acme_store_path(p, w->store, ACME_STORE_STAGING, dom->name,
                                                      NULL), ACME_WORKER_PENDING_SUFFIX, NULL),
    };
    acme_result_t res;
    apr_time_t now, nb = 0, na = 0;
    apr_status_t rv;
    int switches = 0, retried = 0, recovered = 0, quick = 0;

    acme_result_reset(&res);
    acme_job_load(p, w->store, dom->name, &run.job, &res);
    acme_result_reset(&res);
    run.job->state = ACME_JOB_ORDERING;
    acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME00428: %s: requesting a certificate "
                                                   "from %s", dom->name, item->ca->ca_url));
    rv = acme_worker_issue(&run, &res);
    while (rv != APR_SUCCESS && (acme_worker_account_recover(&run, &res, &recovered)
                                 || acme_worker_account_tos_stop(&run, &res, &switches)
                                 || acme_worker_failover(&run, &res, &switches)
                                 || acme_worker_retry_same_ca(&run, &res, &retried)
                                 || acme_worker_retry_quick(&run, &res, &quick))) {
        acme_result_reset(&res);
        rv = acme_worker_issue(&run, &res);
    }
    now = apr_time_now();
    acme_metrics_count(w->metrics, ACME_METRICS_ORDERS, rv == APR_SUCCESS ? "success" : "failure",
                       NULL, 1);
    if (rv == APR_SUCCESS) {
        run.job->ca_url = item->ca->ca_url;
        run.job->ca_failures = 0;
        run.job->warning = NULL;
        run.job->ari_start = run.job->ari_end = run.job->ari_pick = run.job->ari_next = 0;
        run.job->ari_explanation = NULL;
        run.job->ca_hold = 0;
        run.job->state = ACME_JOB_STAGED;
        run.job->failures = 0;
        acme_result_reset(&run.job->last_error);
        run.job->order_json = NULL;
        run.job->activity = "waiting for activation";
        run.job->next_run = 0;
        run.job->updated = now;
        acme_worker_notify(w, p, dom, run.job, "renewed",
                           acme_worker_set_certs(p, dom, acme_store_path(p, w->store,
                                                                         ACME_STORE_STAGING,
                                                                         dom->name, NULL)),
                           NULL);
        acme_worker_job_save(w, p, run.job, NULL);
        acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(p, "ACME00429: %s: new certificate "
                                                         "staged; it is activated by a graceful "
                                                         "restart", dom->name));
        return;
    }
    if (item->active[0].present) {
        nb = item->active[0].not_before;
        na = item->active[0].not_after;
    }
    acme_job_failed(run.job, p, &res, now);
    run.job->failed_config = acme_worker_config_digest(p, dom);
    run.job->activity = NULL;
    run.job->next_run = acme_plan_retry_at(res.err_class, run.job->failures, now, res.retry_after,
                                           nb, na, acme_worker_random());
    run.job->updated = now;
    acme_worker_note_next(w, run.job->next_run);
    acme_worker_log(w, res.err_class == ACME_CLASS_ADMIN ? ACME_LOG_ERROR : ACME_LOG_WARNING,
                    apr_psprintf(p, "ACME00430: %s: certificate order failed (%s, attempt %d): %s; "
                                 "next attempt %s", dom->name, acme_class_name(res.err_class),
                                 run.job->failures, acme_result_describe(&res, p),
                                 acme_worker_time_text(p, run.job->next_run)));
    acme_worker_notify(w, p, dom, run.job, "errored", acme_worker_active_certs(p, item),
                       acme_result_describe(&res, p));
    acme_result_reset(&res);
    acme_worker_job_save(w, p, run.job, NULL);
    apr_thread_mutex_lock(w->lock);
    w->failures++;
    apr_thread_mutex_unlock(w->lock);
}

static void *APR_THREAD_FUNC acme_worker_thread(apr_thread_t *thread, void *data)
{
    acme_worker_t *w = data;
    apr_pool_t *tp = NULL, *p = NULL;
    apr_hash_t *clients;

    apr_pool_create(&tp, NULL);
    clients = apr_hash_make(tp);
    for (;;) {
        acme_worker_item_t *item = NULL;
        apr_thread_mutex_lock(w->lock);
        if (!acme_worker_stopping && w->next_due < w->due->nelts) {
            item = APR_ARRAY_IDX(w->due, w->next_due++, acme_worker_item_t *);
        }
        apr_thread_mutex_unlock(w->lock);
        if (!item) {
            break;
        }
        apr_pool_create(&p, tp);
        acme_worker_handle(w, p, tp, clients, item);
        apr_pool_destroy(p);
    }
    acme_worker_metrics_clients(w, tp, clients);
    apr_pool_destroy(tp);
    apr_thread_mutex_lock(w->lock);
    w->running--;
    apr_thread_mutex_unlock(w->lock);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static int acme_worker_running(acme_worker_t *w)
{
    int running;

    apr_thread_mutex_lock(w->lock);
    running = w->running;
    apr_thread_mutex_unlock(w->lock);
    return running;
}

static void acme_worker_run_due(acme_worker_t *w)
{
    int n = w->due->nelts < w->cfg->parallel_orders ? w->due->nelts : w->cfg->parallel_orders;
    apr_thread_t **threads = apr_pcalloc(w->pool, sizeof(*threads) * (apr_size_t)(n + 1));
    apr_pool_t *tpool = NULL, *spool = NULL;
    apr_time_t stop_seen = 0;
    apr_status_t trv;
    int i;

    /* Threads end (and free their pools) while the next ones start: not from the run's pool. */
    if (acme_worker_pool_make(w->pool, &tpool) != APR_SUCCESS) {
        n = 0;
    }
    /* Shared by this run's order threads (acme_worker_client_shared), fetched afresh. */
    if (n > 0 && acme_worker_pool_make(w->pool, &spool) == APR_SUCCESS) {
        apr_thread_mutex_lock(w->lock);
        w->shared_pool = spool;
        w->shared = apr_hash_make(spool);
        apr_thread_mutex_unlock(w->lock);
    }

    for (i = 0; i < n; ++i) {
        apr_thread_mutex_lock(w->lock);
        w->running++;
        apr_thread_mutex_unlock(w->lock);
        if (apr_thread_create(&threads[i], NULL, acme_worker_thread, w, tpool) != APR_SUCCESS) {
            threads[i] = NULL;
            apr_thread_mutex_lock(w->lock);
            w->running--;
            apr_thread_mutex_unlock(w->lock);
        }
    }
    /* A supervised worker ends with its parent: a stopped httpd must not leave it running. */
    while (acme_worker_running(w) > 0) {
        if (w->cfg->parent_pid && getppid() != w->cfg->parent_pid) {
            acme_worker_stopping = 1;
        }
        if (acme_worker_stopping && !stop_seen) {
            stop_seen = apr_time_now();
        }
        if (stop_seen && apr_time_now() - stop_seen > ACME_WORKER_STOP_GRACE) {
            /* Threads blocked in a poll or a request: every step is saved, so leave them. */
            w->abandoned = 1;
            return;
        }
        apr_sleep(apr_time_from_msec(100));
    }
    for (i = 0; i < n; ++i) {
        if (threads[i]) {
            apr_thread_join(&trv, threads[i]);
        }
    }
    if (spool) {
        apr_thread_mutex_lock(w->lock);
        w->shared = NULL;
        apr_thread_mutex_unlock(w->lock);
        apr_pool_destroy(spool);
    }
}

/* Does the server serve one of these serials for name? (one retry: children may still start) */
static apr_status_t acme_worker_selfcheck_one(apr_pool_t *p, json_t *entry, acme_result_t *res)
{
    const char *name = json_string_value(json_object_get(entry, "name"));
    const char *host = json_string_value(json_object_get(entry, "host"));
    int port = (int)json_integer_value(json_object_get(entry, "port"));
    json_t *serials = json_object_get(entry, "serials"), *v;
    const char *served = NULL;
    apr_status_t rv = APR_EGENERAL;
    int attempt;
    size_t i;

    for (attempt = 0; attempt < 2 && rv != APR_SUCCESS; ++attempt) {
        if (attempt) {
            apr_sleep(apr_time_from_sec(2));
        }
        acme_result_reset(res);
        if (!name || !host
            || acme_selfcheck_serial(p, host, port, name, apr_time_from_sec(5), &served, res)
               != APR_SUCCESS) {
            continue;
        }
        json_array_foreach(serials, i, v) {
            if (json_is_string(v) && !strcasecmp(json_string_value(v), served)) {
                rv = APR_SUCCESS;
            }
        }
        if (rv != APR_SUCCESS) {
            acme_result_fail(res, APR_EGENERAL, ACME_CLASS_ADMIN, apr_psprintf(p,
                "after activation %s:%d still serves serial %s for %s, not the new certificate; "
                "another module or an SSLCertificateFile in the virtual host may take precedence",
                host, port, served, name));
        }
    }
    return rv;
}

/* The `installed` notification: the server serves the new certificate of name. */
static void acme_worker_installed(acme_worker_t *w, const char *name)
{
    acme_result_t res;
    acme_job_t *job = NULL;
    int i;

    for (i = 0; w->cfg->notify_argv && i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (strcmp(item->dom->name, name) != 0) {
            continue;
        }
        acme_result_reset(&res);
        if (acme_job_load(w->pool, w->store, name, &job, &res) == APR_SUCCESS) {
            acme_worker_notify(w, w->pool, item->dom, job, "installed",
                               acme_worker_active_certs(w->pool, item), NULL);
            acme_worker_job_save(w, w->pool, job, NULL);
        }
        return;
    }
}

/* Verifies what the last self-restart activated; a mismatch is logged and shown in the status. */
static void acme_worker_selfcheck(acme_worker_t *w)
{
    const char *path = acme_store_path(w->pool, w->store, ACME_STORE_JOBS, ACME_SELFCHECK_FILE,
                                       NULL);
    json_t *list = NULL, *entry;
    acme_result_t res;
    size_t i;

    acme_result_reset(&res);
    if (!path || acme_store_read_json(w->pool, path, &list, &res) != APR_SUCCESS) {
        return;
    }
    apr_file_remove(path, w->pool);
    json_array_foreach(list, i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        acme_job_t *job = NULL;
        if (!name) {
            continue;
        }
        if (acme_worker_selfcheck_one(w->pool, entry, &res) == APR_SUCCESS) {
            acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(w->pool, "ACME00431: %s: self-check: "
                                                           "the new certificate is served", name));
            acme_worker_installed(w, name);
            continue;
        }
        acme_worker_log(w, ACME_LOG_ERROR, apr_psprintf(w->pool, "ACME00432: %s: %s", name,
                                                        acme_result_describe(&res, w->pool)));
        if (acme_job_load(w->pool, w->store, name, &job, &res) == APR_SUCCESS) {
            acme_job_failed(job, w->pool, &res, apr_time_now());
            job->failures = 0;      /* not an ordering failure: no backoff from it */
            acme_worker_job_save(w, w->pool, job, NULL);
        }
    }
}

/* The check cadence follows the shortest lifetime managed (acme_plan_check_interval). */
static apr_interval_time_t acme_worker_shortest_lifetime(const acme_worker_t *w)
{
    apr_interval_time_t shortest = 0;
    int i, j;

    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        for (j = 0; j < item->dom->policy.key_specs->nelts; ++j) {
            const acme_worker_active_t *act = &item->active[j];
            apr_interval_time_t l = act->not_after - act->not_before;
            if (act->present && l > 0 && (shortest == 0 || l < shortest)) {
                shortest = l;
            }
        }
    }
    return shortest;
}

int acme_worker_was_due(const acme_worker_t *w, const acme_worker_item_t *item)
{
    int i;

    for (i = 0; i < w->due->nelts; ++i) {
        if (APR_ARRAY_IDX(w->due, i, const acme_worker_item_t *) == item) {
            return 1;
        }
    }
    return 0;
}

/*
 * Once per check: a domain inside ACMEWarnWindow whose renewal keeps failing gets one CRITICAL
 * line and a `warning` in its job (the status shows it); a recovered one loses the warning.
 */
static void acme_worker_warn(acme_worker_t *w)
{
    apr_time_t now = apr_time_now();
    acme_plan_window_t window;
    const char *reason = NULL;
    int i, j;

    if (!w->cfg->warn_window
        || acme_renewal_warn_parse(w->cfg->warn_window, &window, &reason, w->pool)
           != APR_SUCCESS) {
        acme_renewal_warn_parse("auto", &window, &reason, w->pool);
    }
    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        apr_time_t warn_at = 0, expires = 0;
        acme_job_t *job = NULL;
        acme_result_t res;
        for (j = 0; j < item->dom->policy.key_specs->nelts; ++j) {
            const acme_worker_active_t *act = &item->active[j];
            apr_time_t at;
            if (!act->present) {
                continue;
            }
            at = acme_renewal_warn_at(&window, act->not_before, act->not_after);
            if (warn_at == 0 || at < warn_at) {
                warn_at = at;
                expires = act->not_after;
            }
        }
        acme_result_reset(&res);
        if (warn_at == 0 || item->staged
            || acme_job_load(w->pool, w->store, item->dom->name, &job, &res) != APR_SUCCESS) {
            continue;
        }
        if (acme_renewal_should_warn(now, warn_at, job->failures)
            && job->state == ACME_JOB_FAILED) {
            job->warning = acme_renewal_warning_text(w->pool, item->dom->name, expires, now,
                                                     job->failures,
                                                     acme_result_describe(&job->last_error,
                                                                          w->pool),
                                                     job->next_run);
            /* Saved first: whoever reads the CRIT line finds the warning in the status. */
            acme_worker_job_save(w, w->pool, job, NULL);
            acme_worker_log(w, ACME_LOG_CRIT, apr_pstrcat(w->pool, "ACME00438: ", job->warning,
                                                          NULL));
            acme_worker_notify(w, w->pool, item->dom, job, "expiring",
                               acme_worker_active_certs(w->pool, item),
                               acme_result_describe(&job->last_error, w->pool));
        }
        else if (job->warning) {
            job->warning = NULL;
        }
        else {
            continue;
        }
        acme_worker_job_save(w, w->pool, job, NULL);
    }
}

/* As the User (jobs/ is the User's): a job file that cannot be read starts afresh. */
static void acme_worker_jobs_repair(acme_worker_t *w)
{
    int i;

    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (!item->job_damaged) {
            continue;
        }
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME00433: %s: %s; the job "
                                                          "starts afresh (failure counts and any "
                                                          "open order are forgotten) and is "
                                                          "written again", item->dom->name,
                                                          item->job_damaged));
        acme_worker_job_save(w, w->pool, acme_job_make(w->pool, item->dom->name), NULL);
    }
}

int acme_worker_run(apr_pool_t *p, const acme_worker_config_t *cfg)
{
    apr_interval_time_t interval = cfg->check_interval ? cfg->check_interval
                                                        : ACME_WORKER_DEFAULT_INTERVAL;
    acme_worker_t w = {
        .cfg = cfg, .pool = p,
        .cas = apr_hash_make(p),
        .items = apr_array_make(p, cfg->domains->nelts + 1, sizeof(acme_worker_item_t)),
        .due = apr_array_make(p, cfg->domains->nelts + 1, sizeof(acme_worker_item_t *)),
        .metrics = acme_metrics_tally_make(p),
    };
    acme_result_t res;

    acme_result_reset(&res);
    apr_thread_mutex_create(&w.lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (acme_store_open(p, cfg->store_dir, &w.store, &res) != APR_SUCCESS
        || acme_worker_prepare(&w, &res) != APR_SUCCESS
        || acme_worker_drop_privileges(&w, &res) != APR_SUCCESS) {
        acme_worker_log(&w, ACME_LOG_ERROR, apr_psprintf(p, "ACME00434: renewal worker cannot "
                                                         "start: %s; the supervisor retries later",
                                                         acme_result_describe(&res, p)));
        return 2;
    }
    acme_worker_jobs_repair(&w);
    acme_worker_staging_tidy(&w);
    acme_worker_selfcheck(&w);
    acme_worker_dns01_leftovers(&w);
    interval = acme_plan_check_interval(cfg->check_interval, acme_worker_shortest_lifetime(&w));
    acme_worker_plan(&w, acme_plan_jitter(interval, acme_worker_random()));
    acme_worker_account_upkeep(&w);
    acme_worker_ca_unlock_idle(&w, 0);
    if (w.due->nelts > 0) {
        acme_worker_log(&w, ACME_LOG_INFO, apr_psprintf(p, "ACME00435: renewal worker: %d of %d "
                                                        "domains need a certificate", w.due->nelts,
                                                        w.items->nelts));
        acme_worker_run_due(&w);
    }
    acme_worker_metrics_save(&w);
    if (w.abandoned) {
        acme_worker_log(&w, ACME_LOG_NOTICE, "ACME00436: renewal worker stopped; unfinished orders "
                        "resume at its next start");
        return 3;
    }
    acme_worker_ca_unlock_idle(&w, 1);
    acme_worker_warn(&w);
    acme_worker_persist_watch(&w);
    acme_worker_note_next(&w, apr_time_now() + acme_plan_jitter(interval, acme_worker_random()));
    if (acme_job_next_run_save(p, w.store, w.next_run, &res) != APR_SUCCESS) {
        acme_worker_log(&w, ACME_LOG_ERROR, apr_psprintf(p, "ACME00437: renewal worker: when to "
                                                         "run next could not be recorded (%s); the "
                                                         "server starts it again soon",
                                                         acme_result_describe(&res, p)));
        return ACME_WORKER_EXIT_UNSCHEDULED;
    }
    return w.failures ? 1 : 0;
}
