/*
 * The renewal worker's orders: one domain through the CA (account, key, newOrder or the stored
 * order, challenges, finalize, download), staging, failover and the quick retries, and the
 * order threads. Challenges are answered by acme_worker_challenge.c.
 */
#include "acme_worker_int.h"

void acme_worker_activity(acme_worker_run_t *run, const char *what)
{
    acme_worker_activity_set(run, what);
    acme_worker_job_note(run->w, run->p, run->job);
}

/*
 * A step of one request, bounded by its timeout and followed by a save of the job anyway: in
 * memory only. A write per step was a tenth of the worker's CPU (a file created and synced).
 */
void acme_worker_activity_set(acme_worker_run_t *run, const char *what)
{
    run->job->activity = what;
    run->job->updated = apr_time_now();
}

static apr_status_t acme_worker_save_order(acme_worker_run_t *run, const acme_order_t *order,
                                           int durable, acme_result_t *res)
{
    const char *json = NULL;
    apr_status_t rv = acme_order_to_json(order, run->p, &json, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    run->job->order_json = json;
    run->job->ca_url = run->item->ca->ca_url;
    run->job->updated = apr_time_now();
    /* Into etcd only before finalize: a node taking over can finish an order up to there; one
     * finalized here has a key only this node holds, and a new order is all another can do. */
    if (order->status == ACME_ORDER_PENDING || order->status == ACME_ORDER_READY) {
        acme_worker_cluster_order_save(run, json);
    }
    if (!durable) {
        return APR_SUCCESS;     /* in memory: the next step's note writes it */
    }
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

apr_status_t acme_worker_account(acme_worker_run_t *run, acme_result_t *res)
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

    if (!fresh && run->fresh_key && run->fresh_spec
        && !strcmp(run->fresh_spec, acme_crypto_keyspec_name(spec))) {
        *key = run->fresh_key;
        return APR_SUCCESS;
    }
    if (!fresh && apr_stat(&finfo, sealed_path, APR_FINFO_TYPE, run->p) == APR_SUCCESS
        && acme_store_read_file(run->p, pub_path, &text, &len, 0, res) == APR_SUCCESS) {
        return acme_seal_public_from_pem(run->p, text, len, key, res);
    }
    acme_result_reset(res);
    if (!fresh) {
        run->key_gone = 1;
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_PERMANENT,
                                "the key of the pending order is gone; a new order follows");
    }
    if ((rv = acme_crypto_key_generate(run->p, spec, key, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(run->p, *key, &pem, res)) != APR_SUCCESS
        || (rv = acme_worker_seal(run->w, run->p, pem, strlen(pem), &sealed, res)) != APR_SUCCESS
        || (rv = acme_seal_public_pem(run->p, *key, &pub, res)) != APR_SUCCESS
        || (rv = acme_store_write_file(run->p, sealed_path, sealed, strlen(sealed),
                                       ACME_PERMS_0600, res)) != APR_SUCCESS) {
        return rv;
    }
    acme_worker_cluster_key_keep(run, spec, pem);
    run->fresh_key = *key;
    run->fresh_spec = acme_crypto_keyspec_name(spec);
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
    int first;

    /* Once per CA and run: it was a synced file write per order. */
    apr_thread_mutex_lock(run->item->ca->lock);
    first = !run->item->ca->directory_cached;
    run->item->ca->directory_cached = 1;
    apr_thread_mutex_unlock(run->item->ca->lock);
    acme_result_reset(&res);
    if (first && path && json) {
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
        acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p, "ACME00424: %s: %s",
                                                              dom->name,
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
    acme_worker_activity_set(run, "creating the order");
    apr_thread_mutex_lock(lock);
    rv = acme_client_order_new(run->client, run->p, order, res);
    if (rv == APR_SUCCESS) {
        rv = acme_worker_save_order(run, order, 1, res);
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

    acme_worker_activity_set(run, "downloading the certificate");
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
        acme_worker_activity_set(run, "answering challenges");
        return acme_worker_answer(run, order, res);
    case ACME_ORDER_READY:
        acme_worker_activity_set(run, "finalizing");
        rv = acme_worker_cert_key(run, spec, !run->early_key, &key, res);
        run->early_key = 0;
        if (rv == APR_SUCCESS) {
            rv = acme_client_order_finalize(run->client, run->p, order, key, res);
        }
        /* Not written here: a run resuming it asks the CA for the order's state anyway. */
        return rv == APR_SUCCESS ? acme_worker_save_order(run, order, 0, res) : rv;
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

/*
 * acme_worker_run_t.finalize_early for a certificate key of this node: made fresh now, kept for
 * the ready order's finalize when the CA refuses this one.
 */
static apr_status_t acme_worker_order_finalize_early(acme_worker_run_t *run, acme_order_t *order,
                                                     apr_time_t answered, acme_result_t *res)
{
    const acme_keyspec_t *spec = run->early_baton;
    acme_key_t *key = NULL;
    apr_status_t rv = acme_worker_cert_key(run, spec, 1, &key, res);

    if (rv == APR_SUCCESS) {
        rv = acme_client_order_finalize_early(run->client, run->p, order, key, answered, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (order->status == ACME_ORDER_PENDING) {
        run->early_key = 1;
        return APR_SUCCESS;
    }
    return acme_worker_save_order(run, order, 0, res);
}

static apr_status_t acme_worker_order_spec_run(acme_worker_run_t *run,
                                               const acme_keyspec_t *spec, acme_result_t *res)
{
    const char *cert_path = acme_worker_file(run->p, run->pending_dir, "pubcert", spec, ".pem");
    acme_order_t *order = NULL;
    apr_finfo_t finfo;
    apr_status_t rv;
    int steps;

    if (apr_stat(&finfo, cert_path, APR_FINFO_TYPE, run->p) == APR_SUCCESS) {
        return APR_SUCCESS;     /* done before a crash or restart */
    }
    run->finalize_early = acme_worker_order_finalize_early;
    run->early_baton = spec;
    run->early_key = 0;
    rv = acme_worker_order_resume(run, spec, &order, res);
    for (steps = 0; rv == APR_SUCCESS && steps < ACME_WORKER_MAX_STEPS; ++steps) {
        acme_order_status_t before = order->status;
        if (acme_worker_stop_requested()) {
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

/*
 * An order whose certificate key is not here (one another node finalized before it stopped
 * holding the lock, or a store restored without its pending keys) cannot give a usable
 * certificate: a fresh order follows at once, not after a permanent failure's back-off.
 */
static apr_status_t acme_worker_order_spec(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                           acme_result_t *res)
{
    apr_status_t rv = acme_worker_order_spec_run(run, spec, res);

    if (rv == APR_SUCCESS || !run->key_gone) {
        return rv;
    }
    acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p, "ACME00440: %s: the order "
                    "being resumed was finalized with a key this node does not have; a new "
                    "order is placed now", run->item->dom->name));
    run->key_gone = 0;
    run->job->order_json = NULL;
    acme_result_reset(res);
    return acme_worker_order_spec_run(run, spec, res);
}

apr_status_t acme_worker_stage(acme_worker_run_t *run, acme_result_t *res)
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
    /* Written unsynced, as a set from etcd is: one sync of the directory's files before it is
     * renamed into staging/ (what the order wrote is synced already; a sync of it is cheap). */
    rv = acme_store_write_json_volatile(run->p, apr_pstrcat(run->p, run->pending_dir,
                                                            "/" ACME_WORKER_STAGED_FILE, NULL),
                                        json, ACME_PERMS_0644, res);
    json_decref(json);
    if (rv == APR_SUCCESS) {
        rv = acme_store_sync_files(run->p, run->pending_dir, res);
    }
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
        /* Into etcd first: once staged, the parent may install (move) the set at any moment. */
        acme_worker_cluster_publish(run);
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
    while (!acme_worker_stop_requested() && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
    return !acme_worker_stop_requested();
}

/*
 * Whether a failed attempt is tried again in this run after a short pause: a transient,
 * CA-side failure (badNonce out of budget, a 5xx mid-order) with an order to resume (or none
 * opened yet because of badNonce), no time named by the CA, and quick retries left.
 */
static int acme_worker_quick_due(const acme_worker_run_t *run, const acme_result_t *res,
                                 int quick)
{
    return quick < ACME_WORKER_QUICK_RETRIES && !acme_worker_stop_requested()
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
    while (!acme_worker_stop_requested() && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
    return !acme_worker_stop_requested();
}

/*
 * The first attempt. In a cluster only with the domain's lock (*claimed APR_SUCCESS); with
 * *claimed APR_EEXIST another node's certificate was staged instead, and nothing is ordered.
 */
static apr_status_t acme_worker_first_try(acme_worker_run_t *run, apr_status_t *claimed,
                                          acme_result_t *res)
{
    *claimed = acme_worker_cluster_claim(run, res);
    if (*claimed == APR_EEXIST) {
        return APR_SUCCESS;
    }
    return *claimed == APR_SUCCESS ? acme_worker_issue(run, res) : *claimed;
}

/* Another node holds the domain's lock: this thread goes on with the run's other domains. */
static void acme_worker_order_defer(acme_worker_t *w, acme_worker_item_t *item)
{
    apr_thread_mutex_lock(w->lock);
    item->deferred = 1;
    w->deferred[w->n_deferred++] = item;
    apr_thread_mutex_unlock(w->lock);
}

/* The order succeeded and its set is staged: the job says so, the admin is told. */
static void acme_worker_order_staged(acme_worker_run_t *run, apr_time_t now)
{
    acme_worker_t *w = run->w;
    const acme_domain_t *dom = run->item->dom;
    acme_job_t *job = run->job;

    job->ca_url = run->item->ca->ca_url;
    job->ca_failures = 0;
    job->warning = NULL;
    job->ari_start = job->ari_end = job->ari_pick = job->ari_next = 0;
    job->ari_explanation = NULL;
    job->ca_hold = 0;
    job->state = ACME_JOB_STAGED;
    run->item->staged = 1;              /* this run's: it ends without watching (cluster) */
    job->failures = 0;
    acme_result_reset(&job->last_error);
    job->order_json = NULL;
    job->activity = "waiting for activation";
    job->next_run = 0;
    job->updated = now;
    /* The set's certificates are read for a notification only: parsing them costs. */
    acme_worker_notify(w, run->p, dom, job, "renewed",
                       w->cfg->notify_argv && w->cfg->notify_argv->nelts > 0
                       ? acme_worker_set_certs(run->p, dom, acme_store_path(
                             run->p, w->store, ACME_STORE_STAGING, dom->name, NULL))
                       : NULL, NULL);
    acme_worker_job_save(w, run->p, job, NULL);
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(run->p, "ACME00429: %s: new certificate "
                                                     "staged; the server activates it next",
                                                     dom->name));
}

/* The order failed for good in this run: when to try again, logged and notified. */
static void acme_worker_order_failed(acme_worker_run_t *run, acme_result_t *res, apr_time_t now)
{
    acme_worker_t *w = run->w;
    const acme_worker_item_t *item = run->item;
    const acme_domain_t *dom = item->dom;
    apr_pool_t *p = run->p;
    apr_time_t nb = 0, na = 0;

    if (item->active[0].present) {
        nb = item->active[0].not_before;
        na = item->active[0].not_after;
    }
    acme_job_failed(run->job, p, res, now);
    run->job->failed_config = acme_worker_config_digest(p, dom);
    run->job->activity = NULL;
    run->job->next_run = acme_plan_retry_at(res->err_class, run->job->failures, now,
                                            res->retry_after, nb, na, acme_worker_random());
    run->job->updated = now;
    acme_worker_note_next(w, run->job->next_run);
    acme_worker_log(w, res->err_class == ACME_CLASS_ADMIN ? ACME_LOG_ERROR : ACME_LOG_WARNING,
                    apr_psprintf(p, "ACME00430: %s: certificate order failed (%s, attempt %d): %s; "
                                 "next attempt %s", dom->name, acme_class_name(res->err_class),
                                 run->job->failures, acme_result_describe(res, p),
                                 acme_worker_time_text(p, run->job->next_run)));
    acme_worker_notify(w, p, dom, run->job, "errored", acme_worker_active_certs(p, item),
                       acme_result_describe(res, p));
    acme_result_reset(res);
    acme_worker_job_save(w, p, run->job, NULL);
    apr_thread_mutex_lock(w->lock);
    w->failures++;
    apr_thread_mutex_unlock(w->lock);
}

void acme_worker_order_item(acme_worker_t *w, apr_pool_t *p, apr_pool_t *tp,
                            apr_hash_t *clients, acme_worker_item_t *item)
{
    const acme_domain_t *dom = item->dom;
    acme_worker_run_t run = {
        .w = w, .p = p, .thread_pool = tp, .clients = clients, .item = item,
        .pending_dir = apr_pstrcat(p, acme_store_path(p, w->store, ACME_STORE_STAGING, dom->name,
                                                      NULL), ACME_WORKER_PENDING_SUFFIX, NULL),
    };
    acme_result_t res;
    apr_status_t rv, claimed;
    int switches = 0, retried = 0, recovered = 0, quick = 0;

    acme_result_reset(&res);
    acme_job_load(p, w->store, dom->name, &run.job, &res);
    acme_result_reset(&res);
    run.job->state = ACME_JOB_ORDERING;
    acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME00428: %s: requesting a certificate "
                                                   "from %s", dom->name, item->ca->ca_url));
    rv = acme_worker_first_try(&run, &claimed, &res);
    if (claimed == APR_EBUSY) {
        acme_worker_order_defer(w, item);
        return;
    }
    while (rv != APR_SUCCESS && claimed == APR_SUCCESS
           && (acme_worker_account_recover(&run, &res, &recovered)
               || acme_worker_account_tos_stop(&run, &res, &switches)
               || acme_worker_failover(&run, &res, &switches)
               || acme_worker_retry_same_ca(&run, &res, &retried)
               || acme_worker_retry_quick(&run, &res, &quick))) {
        acme_result_reset(&res);
        rv = acme_worker_issue(&run, &res);
    }
    acme_worker_cluster_release(&run);
    acme_metrics_count(w->metrics, ACME_METRICS_ORDERS, rv == APR_SUCCESS ? "success" : "failure",
                       NULL, 1);
    if (rv == APR_SUCCESS) {
        acme_worker_order_staged(&run, apr_time_now());
    }
    else {
        acme_worker_order_failed(&run, &res, apr_time_now());
    }
}

void *APR_THREAD_FUNC acme_worker_thread(apr_thread_t *thread, void *data)
{
    acme_worker_t *w = data;
    apr_pool_t *tp = NULL, *p = NULL;
    apr_hash_t *clients;

    apr_pool_create(&tp, NULL);
    clients = apr_hash_make(tp);
    for (;;) {
        acme_worker_item_t *item = NULL;
        apr_thread_mutex_lock(w->lock);
        if (acme_worker_stop_requested()) {
            item = NULL;
        }
        else if (w->next_due < w->due->nelts) {
            item = APR_ARRAY_IDX(w->due, w->next_due++, acme_worker_item_t *);
        }
        else if (w->next_deferred < w->n_deferred) {
            item = w->deferred[w->next_deferred++];
        }
        apr_thread_mutex_unlock(w->lock);
        if (!item) {
            break;
        }
        apr_pool_create(&p, tp);
        acme_worker_order_item(w, p, tp, clients, item);
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
