#include <strings.h>

#include "acme_worker_int.h"
#include "acme_b64.h"

/*
 * Set from a signal handler or the supervising thread, read by the order
 * threads between steps: the one piece of process-wide state a stop needs.
 */
static volatile sig_atomic_t acme_worker_stopping;

void acme_worker_request_stop(void)
{
    acme_worker_stopping = 1;
}

/*
 * Set from a signal handler: the server started a new generation (a reload), so a worker
 * waiting for on-demand names ends once idle and the next one runs with the new configuration.
 * Unlike a stop, orders in flight go on.
 */
static volatile sig_atomic_t acme_worker_finishing;

void acme_worker_request_finish(void)
{
    acme_worker_finishing = 1;
}

int acme_worker_finish_requested(void)
{
    return acme_worker_finishing != 0;
}

/* ------------------------------------------------------------------ small helpers */

int acme_worker_stop_requested(void)
{
    return acme_worker_stopping != 0;
}

/* The flag itself, for the waits that poll it (a dns-01 hook's run, the propagation check). */
volatile const int *acme_worker_stop_flag(void)
{
    return (volatile const int *)&acme_worker_stopping;
}

/*
 * A supervised worker ends with its parent: a stopped httpd must not leave it running. Asked
 * between domains (prepare, plan, the checks after the orders) and while orders run.
 */
int acme_worker_orphaned(const acme_worker_t *w)
{
    if (w->cfg->parent_pid && getppid() != w->cfg->parent_pid) {
        acme_worker_stopping = 1;
    }
    return acme_worker_stopping;
}

void acme_worker_log_at(const acme_worker_t *w, const char *file, int line,
                        acme_log_level_t level, const char *msg)
{
    if (w->cfg->log) {
        w->cfg->log(w->cfg->log_baton, level, file, line, msg);
    }
}

double acme_worker_random(void)
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

void acme_worker_note_next(acme_worker_t *w, apr_time_t t)
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
static apr_status_t acme_worker_job_write(acme_worker_t *w, apr_pool_t *p,
                                          const acme_job_t *job, int durable, acme_result_t *res)
{
    acme_result_t local;
    apr_status_t rv;

    if (!res) {
        acme_result_reset(&local);
        res = &local;
    }
    rv = durable ? acme_job_save(p, w->store, job, res)
                 : acme_job_save_volatile(p, w->store, job, res);
    if (rv != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00401: %s: the job state could "
                                                          "not be saved (%s); it is written again "
                                                          "at the next step or check", job->name,
                                                          acme_result_describe(res, p)));
        acme_worker_note_next(w, apr_time_now() + ACME_PLAN_RETRY_FIRST);
    }
    return rv;
}

apr_status_t acme_worker_job_save(acme_worker_t *w, apr_pool_t *p, const acme_job_t *job,
                                  acme_result_t *res)
{
    return acme_worker_job_write(w, p, job, 1, res);
}

void acme_worker_job_note(acme_worker_t *w, apr_pool_t *p, const acme_job_t *job)
{
    acme_worker_job_write(w, p, job, 0, NULL);
}

const char *acme_worker_file(apr_pool_t *p, const char *dir, const char *prefix,
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
apr_array_header_t *acme_worker_set_certs(apr_pool_t *p, const acme_domain_t *dom,
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

apr_status_t acme_worker_ca_get(acme_worker_t *w, const char *ca_url, const acme_policy_t *pol,
                                acme_worker_ca_t **pca, acme_result_t *res)
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

/* 1: the parent found this key file loadable, and it has not changed since. */
static int acme_worker_key_vouched(const acme_worker_t *w, apr_pool_t *p, const char *path)
{
    const char *vouched = w->cfg->keys_loadable
                          ? apr_hash_get((apr_hash_t *)w->cfg->keys_loadable, path,
                                         APR_HASH_KEY_STRING) : NULL;
    const char *now = vouched ? acme_store_file_stamp(p, path) : NULL;

    return now && !strcmp(vouched, now);
}

/* 1: the leaf names exactly the domain's identifiers (as text; anything else is parsed). */
static int acme_worker_sans_exact(const acme_cert_info_t *info, const acme_domain_t *dom)
{
    int i, j;

    if (!info->sans || info->sans->nelts != dom->idents->nelts) {
        return 0;
    }
    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        for (j = 0; j < info->sans->nelts; ++j) {
            const acme_ident_t *san = &APR_ARRAY_IDX(info->sans, j, acme_ident_t);
            if (san->type == id->type && id->value && san->value
                && !strcasecmp(san->value, id->value)) {
                break;
            }
        }
        if (j == info->sans->nelts) {
            return 0;
        }
    }
    return 1;
}

/*
 * What the parent read of this chain as it loaded it (w->cfg->chains_known), while the file is
 * still the one it read, its key is vouched for and it names exactly the domain's identifiers:
 * OpenSSL 3 parses a chain slower than all the rest of this, and every run did it for every
 * domain. 1: act is filled.
 */
static int acme_worker_active_known(const acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                                    const char *cert_file, const char *key_file,
                                    acme_worker_active_t *act)
{
    const acme_active_cert_t *c = w->cfg->chains_known
        ? apr_hash_get((apr_hash_t *)w->cfg->chains_known, cert_file, APR_HASH_KEY_STRING) : NULL;
    const char *now = c ? acme_store_file_stamp(p, cert_file) : NULL;

    if (!now || strcmp(now, c->cert_stamp) || !acme_worker_key_vouched(w, p, key_file)
        || !acme_worker_sans_exact(&c->info, dom)) {
        return 0;
    }
    *act = (acme_worker_active_t){
        .present = 1, .covers = 1, .not_before = c->info.not_before,
        .not_after = c->info.not_after, .serial = c->info.serial_hex,
        .cert_id = c->info.aki && c->info.aki_len > 0
                   ? apr_pstrcat(p, acme_b64_encode(p, c->info.aki, c->info.aki_len), ".",
                                 acme_b64_encode(p, c->info.serial_der, c->info.serial_der_len),
                                 NULL)
                   : NULL,
    };
    return 1;
}

static void acme_worker_active_load(acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                                    const acme_keyspec_t *spec, acme_worker_active_t *act)
{
    const char *dir = acme_store_path(p, w->store, ACME_STORE_DOMAINS, dom->name, NULL);
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    acme_result_t res;
    acme_cert_t *leaf;
    const char *key_file;

    *act = (acme_worker_active_t){ .present = 0 };
    acme_result_reset(&res);
    if (dir && acme_worker_active_known(w, p, dom, acme_worker_file(p, dir, "pubcert", spec,
                                                                    ".pem"),
                                        acme_worker_file(p, dir, "privkey", spec, ".pem"),
                                        act)) {
        return;
    }
    if (!dir
        || acme_activate_chain_read(p, acme_worker_file(p, dir, "pubcert", spec, ".pem"),
                                    &chain, &info, &res) != APR_SUCCESS) {
        if (!APR_STATUS_IS_ENOENT(res.status)) {
            acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00405: %s: %s; a new "
                                                              "certificate is ordered", dom->name,
                                                              acme_result_describe(&res, p)));
        }
        return;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    key_file = acme_worker_file(p, dir, "privkey", spec, ".pem");
    /* The parent does not serve a set whose key is damaged: order a new one. */
    if (!acme_worker_key_vouched(w, p, key_file)
        && acme_activate_key_check(p, key_file, leaf, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME00406: %s: %s; a new "
                                                          "certificate is ordered", dom->name,
                                                          acme_result_describe(&res, p)));
        return;
    }
    act->present = 1;
    act->not_before = info.not_before;
    act->not_after = info.not_after;
    act->serial = info.serial_hex;
    if (acme_crypto_ari_cert_id(p, leaf, &act->cert_id, &res) != APR_SUCCESS) {
        act->cert_id = NULL;
        acme_result_reset(&res);
    }
    act->covers = acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)dom->idents->elts,
                                          dom->idents->nelts, &res) == APR_SUCCESS
                  && info.sans->nelts == dom->idents->nelts;
}

/*
 * In a pool of its own, destroyed after: what OpenSSL objects and files register on a pool would
 * otherwise pile up on w->pool, and every file close (apr_pool_cleanup_kill) walks that list, so
 * a start with 10,000 domains took quadratic time.
 */
void acme_worker_active_read(acme_worker_t *w, const acme_domain_t *dom,
                                    const acme_keyspec_t *spec, acme_worker_active_t *act)
{
    apr_pool_t *p;

    apr_pool_create(&p, w->pool);
    acme_worker_active_load(w, p, dom, spec, act);
    act->serial = act->serial ? apr_pstrdup(w->pool, act->serial) : NULL;
    act->cert_id = act->cert_id ? apr_pstrdup(w->pool, act->cert_id) : NULL;
    apr_pool_destroy(p);
}

void acme_worker_active_refresh(acme_worker_t *w, acme_worker_item_t *item)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    int j;

    if (!item->active) {
        item->active = apr_pcalloc(w->pool, sizeof(*item->active) * (apr_size_t)specs->nelts);
    }
    for (j = 0; j < specs->nelts; ++j) {
        acme_worker_active_read(w, item->dom, &APR_ARRAY_IDX(specs, j, acme_keyspec_t),
                                &item->active[j]);
    }
}

int acme_worker_staged_present(acme_worker_t *w, const acme_domain_t *dom)
{
    const char *dir = acme_store_path(w->pool, w->store, ACME_STORE_STAGING, dom->name, NULL);
    apr_finfo_t finfo;

    return dir && apr_stat(&finfo, apr_pstrcat(w->pool, dir, "/" ACME_WORKER_STAGED_FILE, NULL),
                           APR_FINFO_TYPE, w->pool) == APR_SUCCESS;
}

apr_status_t acme_worker_seal(const acme_worker_t *w, apr_pool_t *p, const char *pem,
                              apr_size_t len, const char **sealed, acme_result_t *res)
{
    return w->seal_cert ? acme_seal_encrypt_to(p, w->seal_cert, pem, len, sealed, res)
                        : acme_seal_encrypt(p, w->cfg->seal_cert_pem, pem, len, sealed, res);
}

static apr_status_t acme_worker_prepare(acme_worker_t *w, acme_result_t *res)
{
    int i, j;
    apr_array_header_t *seal_chain = NULL;
    acme_result_t ignored;
    apr_status_t rv = acme_seal_proof_key_load(w->pool, w->cfg->store_dir, &w->proof_key, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_result_reset(&ignored);
    if (w->cfg->seal_cert_pem
        && acme_crypto_chain_parse(w->pool, w->cfg->seal_cert_pem, strlen(w->cfg->seal_cert_pem),
                                   &seal_chain, &ignored) == APR_SUCCESS) {
        w->seal_cert = APR_ARRAY_IDX(seal_chain, 0, acme_cert_t *);
    }

    for (i = 0; i < w->cfg->domains->nelts && !acme_worker_orphaned(w); ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(w->cfg->domains, i, const acme_domain_t *);
        acme_worker_item_t *item = apr_array_push(w->items);

        acme_job_t *job = NULL;
        acme_result_t jres;
        apr_pool_t *jp;

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
        apr_pool_create(&jp, w->pool);     /* see acme_worker_active_read */
        if (acme_job_load(jp, w->store, dom->name, &job, &jres) != APR_SUCCESS) {
            /* Copied: the message itself lives in jp. */
            item->job_damaged = apr_pstrdup(w->pool, acme_result_describe(&jres, w->pool));
        }
        item->ca = item->cas[job->ca_index > 0 ? job->ca_index % item->n_cas : 0];
        apr_pool_destroy(jp);
        /* Staged first, installed after: the parent may install the staged set in between,
         * and then the installed read finds it (the other order would see neither). */
        item->staged = acme_worker_staged_present(w, dom);
        acme_worker_active_refresh(w, item);
    }
    return acme_worker_ondemand_prepare(w, res);
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

/*
 * A parent killed outright (SIGKILL, OOM) cannot stop its worker, and a worker forked in the
 * instant before that kill would go on ordering beside the next server's worker. The kernel
 * tells us instead (SIGTERM: the worker stops at its next step). Set after the change of
 * credentials, which clears it; a parent already gone is seen by the getppid() check after.
 */
static void acme_worker_follow_parent(const acme_worker_t *w)
{
    if (w->cfg->parent_pid) {
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    }
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

    /* Each due domain is deferred at most once (acme_worker_cluster_claim): no allocation
     * while the threads run. Only these threads defer: an order made alone (on-demand) waits. */
    w->deferred = apr_pcalloc(w->pool, sizeof(*w->deferred) * (apr_size_t)(w->due->nelts + 1));
    w->n_deferred = w->next_deferred = 0;
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
    while (acme_worker_running(w) > 0) {
        if (acme_worker_orphaned(w) && !stop_seen) {
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
    w->deferred = NULL;
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
        w->selfcheck_failed = 1;
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
    for (i = 0; i < w->items->nelts && !acme_worker_orphaned(w); ++i) {
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
    acme_worker_follow_parent(&w);
    if (acme_worker_orphaned(&w)) {
        acme_worker_log(&w, ACME_LOG_NOTICE, "ACME00439: renewal worker stopped while preparing "
                        "(the server stopped); it plans again at its next start");
        return 3;
    }
    acme_worker_jobs_repair(&w);
    acme_worker_staging_tidy(&w);
    acme_worker_cluster_open(&w);       /* ACMECluster: what other nodes published is staged */
    acme_worker_cluster_fetch(&w);
    acme_worker_selfcheck(&w);
    acme_worker_dns01_leftovers(&w);
    interval = acme_plan_check_interval(cfg->check_interval, acme_worker_shortest_lifetime(&w));
    acme_worker_plan(&w, acme_plan_jitter(interval, acme_worker_random()));
    w.abandoned = acme_worker_orphaned(&w);
    if (!w.abandoned) {
        acme_worker_account_upkeep(&w);
    }
    acme_worker_ca_unlock_idle(&w, 0);
    if (w.due->nelts > 0 && !w.abandoned) {
        acme_worker_log(&w, ACME_LOG_INFO, apr_psprintf(p, "ACME00435: renewal worker: %d of %d "
                                                        "domains need a certificate", w.due->nelts,
                                                        w.items->nelts));
        acme_worker_cluster_spread(&w);
        acme_worker_run_due(&w);
    }
    if (!w.abandoned && !acme_worker_stopping) {
        w.stay_until = apr_time_now() + interval;
        if (w.next_run > 0 && w.next_run < w.stay_until) {
            w.stay_until = w.next_run;
        }
        acme_worker_api_run(&w);
        acme_worker_cluster_watch(&w);  /* ACMECluster: stays, serving others' renewals here */
    }
    acme_worker_cluster_close(&w);
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
    return w.selfcheck_failed ? ACME_WORKER_EXIT_SELFCHECK : w.failures ? 1 : 0;
}
