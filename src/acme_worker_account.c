/* The renewal worker's ACME account at each CA: the key (read as root), its URL, registration
 * and recovery when a CA forgets it, the contact and the terms of service kept in line. */
#include "acme_worker_int.h"

/*
 * A key that cannot be read or parsed can never sign again: it is kept for the admin and a new
 * key makes a new account (the CA's certificates stay valid), so renewals go on.
 */
static apr_status_t acme_worker_account_key_aside(acme_worker_t *w, const char *path,
                                                  acme_result_t *res)
{
    const char *why = acme_result_describe(res, w->pool), *aside = NULL;
    apr_status_t rv = acme_store_set_aside(w->pool, path, &aside, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME01510: the account key %s "
                                                      "cannot be used (%s); set aside as %s, a new "
                                                      "key and account are made", path, why,
                                                      aside));
    return APR_SUCCESS;
}

apr_status_t acme_worker_account_key(acme_worker_t *w, acme_worker_ca_t *ca,
                                     acme_result_t *res)
{
    const char *dir = acme_store_path(w->pool, w->store, ACME_STORE_ACCOUNTS, ca->ca_id, NULL);
    const char *path = apr_pstrcat(w->pool, dir, "/account.key", NULL);
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    const char *pem = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    rv = acme_store_read_file(w->pool, path, &text, &len, 0, res);
    if (rv == APR_SUCCESS
        && (rv = acme_crypto_key_from_pem(w->pool, text, len, &ca->account_key, res))
           == APR_SUCCESS) {
        return rv;
    }
    if (!APR_STATUS_IS_ENOENT(rv) && (rv = acme_worker_account_key_aside(w, path, res))
                                     != APR_SUCCESS) {
        return rv;
    }
    acme_result_reset(res);
    ca->key_new = 1;
    if ((rv = acme_crypto_key_generate(w->pool, &spec, &ca->account_key, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(w->pool, ca->account_key, &pem, res)) != APR_SUCCESS) {
        return rv;
    }
    return acme_store_write_file(w->pool, path, pem, strlen(pem), ACME_PERMS_0600, res);
}

const char *acme_worker_account_url_path(acme_worker_t *w, apr_pool_t *p,
                                         const acme_worker_ca_t *ca)
{
    return acme_store_path(p, w->store, ACME_STORE_JOBS,
                           apr_pstrcat(p, "account.", ca->ca_id, ".json", NULL), NULL);
}

/*
 * The account record, in ca->pool (order threads add to it under ca->lock). A key made this run
 * has no account yet, whatever the record says: e.g. an admin removed the key of an account the
 * CA deactivated, to get a new one.
 */
void acme_worker_account_url_load(acme_worker_t *w, acme_worker_ca_t *ca)
{
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_job_account_load(ca->pool, acme_worker_account_url_path(w, w->pool, ca), ca->ca_url,
                              &ca->record, &res) != APR_SUCCESS
        && !APR_STATUS_IS_ENOENT(res.status)) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(w->pool, "ACME01511: %s; the account "
                                                          "is looked up by its key and the file "
                                                          "written again",
                                                          acme_result_describe(&res, w->pool)));
    }
    ca->account_url = ca->key_new ? NULL : ca->record->url;
}

/*
 * What a new account at the domain's CA is registered with. External account binding: once a
 * directive for it exists, its key id and HMAC key go into eab_kid / eab_hmac here (the client
 * already signs the binding), so first registrations and re-registrations both carry it.
 */
void acme_worker_account_params(acme_worker_run_t *run, acme_client_account_params_t *params)
{
    const acme_policy_t *pol = &run->item->dom->policy;
    const acme_worker_ca_t *ca = run->item->ca;
    const char **contact = apr_palloc(run->p, sizeof(*contact));

    *contact = pol->contact ? apr_pstrcat(run->p, "mailto:", pol->contact, NULL) : NULL;
    *params = (acme_client_account_params_t){
        .contact = *contact ? contact : NULL,
        .n_contact = *contact ? 1 : 0,
        .agree_tos = pol->agreement > 0,
        .eab_kid = ca->eab_hmac ? ca->eab_kid : NULL,
        .eab_hmac = ca->eab_hmac,
        .eab_only_if_required = ca->eab_only_if_required,
    };
}

/* Under ca->lock: the CA's account is `url` from now on; the record says why. */
void acme_worker_account_adopt(acme_worker_run_t *run, const char *url, const char *why,
                               int reregistered)
{
    acme_worker_ca_t *ca = run->item->ca;
    apr_time_t now = apr_time_now();
    acme_result_t res;

    acme_job_account_note(ca->record, ca->pool, url, why, now);
    if (reregistered) {
        ca->record->reregistered_at = now;
    }
    ca->account_url = ca->record->url;
    ca->key_new = 0;
    acme_result_reset(&res);
    if (acme_job_account_save(run->p, acme_worker_account_url_path(run->w, run->p, ca),
                              ca->record, &res) != APR_SUCCESS) {
        /* The next run looks the account up by its key: one request, no new account. */
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p,
            "ACME01512: the account URL %s at %s could not be recorded (%s); the next run looks "
            "it up by its key", url, ca->ca_url, acme_result_describe(&res, run->p)));
    }
}

/*
 * Under ca->lock: a failed recovery is remembered for the run (the other orders at this CA fail
 * alike, without asking the CA again) and logged once, at notice: which CA, what happened, what
 * happens next.
 */
static apr_status_t acme_worker_account_unrecovered(acme_worker_run_t *run, const char *lost,
                                                    acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_result_t *keep = apr_pcalloc(ca->pool, sizeof(*keep));

    *keep = *res;
    keep->message = apr_pstrdup(ca->pool, acme_result_describe(res, run->p));
    keep->problem_type = keep->detail = keep->instance = keep->subproblems = NULL;
    ca->recovery_failed = keep;
    acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p,
        "ACME01513: account at %s: the CA no longer accepts account %s and it could not be "
        "recovered: %s; orders at this CA fail until then%s", ca->ca_url, lost ? lost : "(none)",
        keep->message, keep->retry_after ? apr_psprintf(run->p, " (next attempt not before %s)",
                                       acme_worker_time_text(run->p, keep->retry_after)) : ""));
    return res->status;
}

/* Under ca->lock, after the CA said it has no account for the key: register it again. */
static apr_status_t acme_worker_account_reregister(acme_worker_run_t *run, const char *lost,
                                                   const char *why, acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_client_account_t *acct = NULL;
    apr_time_t not_before = 0;
    apr_status_t rv;

    if (!acme_job_account_may_reregister(ca->record, apr_time_now(), &not_before)) {
        /* Retried when the hour is up, not after the long admin backoff. */
        acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_AFTER, apr_psprintf(run->p,
            "the account was already registered again at %s; another re-registration "
            "waits an hour, so that an account deactivated on purpose is not recreated in a "
            "loop", acme_worker_time_text(run->p, ca->record->reregistered_at)));
        res->retry_after = not_before;
        return acme_worker_account_unrecovered(run, lost, res);
    }
    rv = acme_worker_register(run, &acct, res);
    if (rv != APR_SUCCESS) {
        return acme_worker_account_unrecovered(run, lost, res);
    }
    acme_worker_account_adopt(run, acct->url, apr_psprintf(run->p, "registered again: the CA "
                              "no longer knew %s (%s)", lost ? lost : "(none)", why), 1);
    acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p,
        "ACME01514: account at %s: the CA no longer knew account %s (%s); registered the account "
        "key again as %s, and orders at this CA go on with it now. Another re-registration at "
        "this CA waits until %s", ca->ca_url, lost ? lost : "(none)", why, acct->url,
        acme_worker_time_text(run->p, ca->record->reregistered_at
                                      + ACME_JOB_ACCOUNT_REREGISTER_GAP)));
    return APR_SUCCESS;
}

/*
 * Under ca->lock: the account `lost` is gone at the CA. The key is looked up first
 * (onlyReturnExisting): the CA may know it under another URL. A key whose account the CA
 * deactivated is never registered again here: that takes a new key, an admin's decision.
 */
static apr_status_t acme_worker_account_reestablish(acme_worker_run_t *run, const char *lost,
                                                    acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    const char *why = acme_result_describe(res, run->p);
    acme_client_account_t *acct = NULL;
    apr_status_t rv;

    acme_client_account_use(run->client, ca->account_key, NULL);
    acme_result_reset(res);
    rv = acme_client_account_find(run->client, run->p, &acct, res);
    if (APR_STATUS_IS_ENOENT(rv)) {
        acme_result_reset(res);
        return acme_worker_account_reregister(run, lost, why, res);
    }
    if (rv == APR_SUCCESS && acct->status && strcmp(acct->status, "valid")) {
        rv = acme_result_fail(res, APR_EACCES, ACME_CLASS_ADMIN, "");
    }
    if (rv != APR_SUCCESS && (acme_problem_account_lost(res) || res->status == APR_EACCES)) {
        res->err_class = ACME_CLASS_ADMIN;
        res->message = apr_psprintf(run->p, "the CA reports the account of the key in "
            "accounts/%s/ deactivated (%s); a new account needs a new key: remove that "
            "account.key (the server then makes a new key and account) or restore the account "
            "at the CA", ca->ca_id, acct && acct->status ? acct->status : why);
        res->retry_after = 0;
    }
    if (rv != APR_SUCCESS) {
        return acme_worker_account_unrecovered(run, lost, res);
    }
    if (!lost || strcmp(acct->url, lost)) {
        acme_worker_account_adopt(run, acct->url, apr_psprintf(run->p, "found again by key: "
                                  "the CA no longer knew %s (%s)", lost ? lost : "(none)", why),
                                  0);
        acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p,
            "ACME01515: account at %s: the CA no longer knew account %s (%s) but has the key's "
            "account as %s; orders at this CA go on with it now", ca->ca_url,
            lost ? lost : "(none)", why, acct->url));
    }
    return APR_SUCCESS;
}

/*
 * The CA no longer has the account the order was signed with (res): accountDoesNotExist, or
 * unauthorized for a deactivated or unknown account. Under the CA's lock, so that when several
 * order threads meet it at once only the first recovers and the others take its URL. 1 when
 * the domain should be ordered again at once, with a fresh order (the old one was the lost
 * account's). At most once per domain and run.
 */
int acme_worker_account_recover(acme_worker_run_t *run, acme_result_t *res, int *tried)
{
    acme_worker_ca_t *ca = run->item->ca;
    const char *lost;
    apr_status_t rv = APR_SUCCESS;

    if (*tried || !run->client || !acme_problem_account_lost(res)) {
        return 0;
    }
    *tried = 1;
    lost = acme_client_account_url(run->client);
    lost = lost ? apr_pstrdup(run->p, lost) : NULL;
    apr_thread_mutex_lock(ca->lock);
    if (ca->account_url && lost && strcmp(ca->account_url, lost)) {
        rv = APR_SUCCESS;       /* another order thread recovered it already */
    }
    else if (ca->recovery_failed) {
        *res = *ca->recovery_failed;
        rv = res->status;
    }
    else {
        rv = acme_worker_account_reestablish(run, lost, res);
    }
    if (rv == APR_SUCCESS) {
        acme_client_account_use(run->client, ca->account_key, ca->account_url);
    }
    apr_thread_mutex_unlock(ca->lock);
    if (rv != APR_SUCCESS) {
        return 0;
    }
    acme_result_reset(res);
    run->job->order_json = NULL;
    return 1;
}

static void acme_worker_account_record_save(acme_worker_run_t *run)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_job_account_save(run->p, acme_worker_account_url_path(run->w, run->p, ca),
                              ca->record, &res) != APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME01518: %s",
                                                               acme_result_describe(&res, run->p)));
    }
}

/* tos-changed for the domain whose order met it; the document also names the CA and terms. */
static void acme_worker_account_tos_notify(acme_worker_run_t *run, const char *terms,
                                   const char *text)
{
    const acme_domain_t *dom = run->item->dom;
    acme_notify_event_t ev = {
        .event = ACME_ACCOUNT_TOS_EVENT, .domain = dom->name, .idents = dom->idents,
        .error = text, .now = apr_time_now(),
    };
    acme_result_t res;
    json_t *doc;

    if (!run->w->cfg->notify_argv || run->w->cfg->notify_argv->nelts == 0) {
        return;
    }
    doc = acme_notify_document(&ev);
    json_object_set_new(doc, "ca", json_string(run->item->ca->ca_url));
    json_object_set_new(doc, "terms_of_service", terms ? json_string(terms) : json_null());
    acme_result_reset(&res);
    if (acme_notify_run(run->p, run->w->cfg->notify_argv, ACME_ACCOUNT_TOS_EVENT, dom->name, doc,
                        &res) != APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME01516: %s: %s",
                                                               dom->name,
                                                               acme_result_describe(&res,
                                                                                    run->p)));
    }
    json_decref(doc);
}

/*
 * Before any request at the CA: an account the admin deactivated (a2acme account deactivate)
 * is not registered again behind their back, and a CA that asked for agreement to new terms
 * (userActionRequired) gets no orders until the admin acts. No request either way.
 */
apr_status_t acme_worker_account_gate(acme_worker_run_t *run, acme_result_t *res)
{
    acme_worker_ca_t *ca = run->item->ca;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t emergency_at = acme_worker_emergency_at(run->item);

    /* Both flags live in jobs/, which the httpd User can write: a forged one must not let a
     * certificate expire. At the emergency floor the CA is asked anyway; a real block or
     * deactivation only costs the refused order (and is recorded again). */
    if (emergency_at > 0 && apr_time_now() >= emergency_at) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(ca->lock);
    if (ca->record->deactivated_at && !ca->key_new) {
        rv = acme_result_fail(res, APR_EACCES, ACME_CLASS_ADMIN, apr_psprintf(run->p,
            ACME_MSG_DEACTIVATED ": the account %s at %s was deactivated by an admin at %s "
            "(a2acme account deactivate); no orders with it. For a new account remove "
            "accounts/%s/account.key (the server makes a new key and account at its next "
            "order) or use another CA", ca->record->url ? ca->record->url : "?", ca->ca_url,
            acme_worker_time_text(run->p, ca->record->deactivated_at), ca->ca_id));
    }
    else if (acme_account_tos_blocked(ca->record, ca->agreement, NULL)) {
        rv = acme_result_fail(res, APR_EACCES, ACME_CLASS_ADMIN, apr_psprintf(run->p,
            ACME_MSG_TOS_STILL ": %s asked on %s for agreement to new terms of service (%s); no "
            "orders there until an admin agrees: read them, agree at the CA if it asks, then "
            "run 'a2acme account agree --ca %s'", ca->ca_url,
            acme_worker_time_text(run->p, ca->record->tos_blocked_at),
            ca->record->tos_blocked ? ca->record->tos_blocked : "the CA named none", ca->ca_url));
        res->problem_type = "urn:ietf:params:acme:error:userActionRequired";
    }
    apr_thread_mutex_unlock(ca->lock);
    return rv;
}

static void acme_worker_account_life_log(acme_worker_run_t *run, const acme_account_sync_t *s)
{
    acme_worker_ca_t *ca = run->item->ca;
    const char *text;

    if (s->tos == ACME_ACCOUNT_TOS_CHANGED) {
        text = apr_psprintf(run->p, ACME_MSG_TOS_CHANGED ": %s now names new terms of service "
            "(%s)%s", ca->ca_url, s->terms, s->tos_agreed_now ? "; ACMEAgreement accepted: "
            "recorded as agreed, orders go on" : "; orders go on unless the CA asks for "
            "agreement (see the status)");
        acme_worker_log(run->w, ACME_LOG_WARNING, text);
        acme_worker_account_tos_notify(run, s->terms, text);
    }
    if (s->contact_pushed) {
        acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p, ACME_MSG_CONTACT_PUSHED
            ": account %s at %s: contact updated to %s (ACMEContactEmail changed)",
            ca->account_url, ca->ca_url, ca->contact_cfg));
    }
    else if (s->contact == ACME_ACCOUNT_CONTACT_PUSH) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, ACME_MSG_CONTACT_FAILED
            ": account %s at %s: the contact could not be updated to %s: %s; tried again at "
            "the next run, renewals go on", ca->account_url, ca->ca_url, ca->contact_cfg,
            acme_result_describe(&s->contact_error, run->p)));
    }
}

/* Once per run and CA, with the account known: terms of service and contact (never fails). */
void acme_worker_account_life(acme_worker_run_t *run)
{
    acme_worker_ca_t *ca = run->item->ca;
    acme_account_sync_t sync;

    apr_thread_mutex_lock(ca->lock);
    if (!ca->life_done) {
        ca->life_done = 1;
        acme_account_sync(run->client, run->p, ca->pool, ca->record, ca->contact_cfg,
                          ca->agreement, &sync);
        if (sync.changed) {
            acme_worker_account_record_save(run);
        }
        acme_worker_account_life_log(run, &sync);
    }
    apr_thread_mutex_unlock(ca->lock);
}

/* The next of the domain's CAs after a blocked one; 0 when there is none to go to. */
static int acme_worker_account_tos_failover(acme_worker_run_t *run, int *switches)
{
    acme_worker_item_t *item = run->item;
    const char *from = item->ca->ca_url;

    if (item->n_cas < 2 || ++*switches >= item->n_cas) {
        return 0;
    }
    run->job->ca_index = (run->job->ca_index < 0 ? 0 : run->job->ca_index + 1) % item->n_cas;
    run->job->ca_failures = 0;
    item->ca = item->cas[run->job->ca_index];
    run->job->ca_url = item->ca->ca_url;
    run->job->order_json = NULL;
    acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME01517: %s: the CA %s "
                    "waits for agreement to new terms of service; switching to the next CA %s",
                    item->dom->name, from, item->ca->ca_url));
    acme_worker_job_save(run->w, run->p, run->job, NULL);
    return 1;
}

/*
 * userActionRequired (RFC 8555 §7.3.3): the CA wants a human to agree to new terms. The CA is
 * blocked (recorded, logged, notified once), the served certificates stay, and a domain with
 * another CA goes on there. 1 when the caller should try again (at the next CA).
 */
int acme_worker_account_tos_stop(acme_worker_run_t *run, acme_result_t *res, int *switches)
{
    acme_worker_ca_t *ca = run->item->ca;
    const char *terms, *text = NULL;

    if (!acme_problem_is(res, "userActionRequired")) {
        /* The gate refused an account the admin deactivated: another CA may have one. */
        return res->status == APR_EACCES && res->err_class == ACME_CLASS_ADMIN
               && !res->problem_type && acme_worker_account_tos_failover(run, switches);
    }
    res->err_class = ACME_CLASS_ADMIN;
    apr_thread_mutex_lock(ca->lock);
    if (!ca->record->tos_blocked_at) {
        terms = run->client ? acme_client_terms_required(run->client) : NULL;
        acme_account_tos_block(ca->record, ca->pool, terms, ca->agreement, apr_time_now());
        acme_worker_account_record_save(run);
        text = apr_psprintf(run->p, ACME_MSG_TOS_BLOCKED ": %s asks for agreement to new terms "
            "of service (%s)%s; no orders at this CA until an admin agrees (read them, agree "
            "at the CA if it asks, then 'a2acme account agree --ca %s'); the served "
            "certificates stay", ca->ca_url, terms ? terms : "the CA named none",
            res->instance ? apr_psprintf(run->p, ", see %s", res->instance) : "", ca->ca_url);
        acme_worker_log(run->w, ACME_LOG_ERROR, text);
        terms = terms ? apr_pstrdup(run->p, terms) : NULL;
    }
    apr_thread_mutex_unlock(ca->lock);
    if (text) {
        acme_worker_account_tos_notify(run, terms, text);
    }
    return acme_worker_account_tos_failover(run, switches);
}

/* The first domain naming ca, as the item the account-life messages are about; or NULL. */
static acme_worker_item_t *acme_worker_account_ca_item(acme_worker_t *w, const acme_worker_ca_t *ca)
{
    int i, j;

    for (i = 0; i < w->items->nelts; ++i) {
        acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        for (j = 0; j < item->n_cas; ++j) {
            if (item->cas[j] == ca) {
                return item;
            }
        }
    }
    return NULL;
}

/*
 * Each run, before the orders: a CA with an account whose configured contact changed, or whose
 * terms were not looked at for a day, gets them compared (one directory GET; a POST only for a
 * changed contact), also when no certificate is due there. A plain restart costs no request.
 * Orders at a CA compare them anyway (the directory is fetched for them) and skip this.
 */
void acme_worker_account_upkeep(acme_worker_t *w)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(w->pool, w->cas); hi; hi = apr_hash_next(hi)) {
        acme_worker_ca_t *ca = apr_hash_this_val(hi);
        acme_worker_item_t *item = acme_worker_account_ca_item(w, ca), copy;
        acme_client_options_t opts = { .ca_file = ca->ca_file };
        acme_worker_run_t run = { .w = w, .p = w->pool };
        acme_result_t res;

        if (item) {     /* the CA's traffic goes the way ACMEProxy says, upkeep included */
            opts.proxy = acme_proxy_for(item->dom->policy.proxies, ca->ca_url);
        }
        if (!item || ca->busy || ca->key_new || !ca->account_url || ca->record->deactivated_at
            || ca->life_done
            || !acme_account_upkeep_due(ca->record, ca->contact_cfg, apr_time_now())) {
            continue;
        }
        acme_result_reset(&res);
        if (acme_client_create(&run.client, w->pool, ca->ca_url, &opts, &res) != APR_SUCCESS) {
            continue;
        }
        copy = *item;
        copy.ca = ca;
        run.item = &copy;
        acme_client_account_use(run.client, ca->account_key, ca->account_url);
        acme_worker_account_life(&run);
        acme_worker_metrics_client(w, ca->ca_url, run.client);
    }
}
