/* dns-persist-01 in the renewal worker: the standing _validation-persist records checked before
 * ordering, before answering and between renewals, and persistUntil warned about. */
#include "acme_worker_int.h"

/* What a _validation-persist record must name for this CA and account. */
typedef struct {
    const apr_array_header_t *issuers;  /* const char *: the CA's issuer domain names */
    const char *prefix;                 /* the CA's accountHashPrefix */
    const char *thumbprint;
    const char *account_url;
    const char *resolver;
} acme_worker_persist_t;

/* ACMEDns01Propagation check's resolver, else the system's: where the records are looked up. */
static const char *acme_worker_persist_resolver(apr_pool_t *p, const acme_domain_t *dom)
{
    acme_dns01_propagation_t prop;
    const char *reason = NULL;

    if (dom->policy.dns01_propagation
        && acme_dns01_propagation_parse(p, dom->policy.dns01_propagation, &prop, &reason)
           == APR_SUCCESS && prop.resolver) {
        return prop.resolver;
    }
    return acme_persist_system_resolver(p, NULL);
}

/* issuers: the challenge's issuerDomainNames, or NULL for the directory's (before ordering). */
static apr_status_t acme_worker_persist_ctx(acme_worker_run_t *run,
                                            const apr_array_header_t *issuers,
                                            acme_worker_persist_t *ctx, acme_result_t *res)
{
    const acme_client_meta_t *meta = NULL;
    const char *ca = run->item->ca->ca_url;
    apr_status_t rv = acme_client_meta(run->client, &meta, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *ctx = (acme_worker_persist_t){
        .issuers = issuers ? issuers : meta->issuer_domain_names,
        .prefix = meta->account_hash_prefix,
        .account_url = acme_client_account_url(run->client),
        .resolver = acme_worker_persist_resolver(run->p, run->item->dom),
    };
    if (!ctx->prefix || !*ctx->prefix || !ctx->issuers || ctx->issuers->nelts == 0) {
        return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN, apr_psprintf(run->p,
            "%s: the CA %s does not advertise %s (draft-ietf-acme-dns-persist-02 §3.2, §4.1), "
            "so no dns-persist-01 record can be checked for it; use another challenge type",
            ACME_PERSIST_MSG_CA, ca, !ctx->prefix || !*ctx->prefix
            ? "accountHashPrefix in its directory" : "valid issuerDomainNames"));
    }
    if (!ctx->account_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_RETRY_SOON,
                                "dns-persist-01: the account URL is not known yet");
    }
    return acme_jose_thumbprint(run->p, run->item->ca->account_key, &ctx->thumbprint, res);
}

/* Looks the record of one name up and judges it; ADMIN with what to fix when it is unusable. */
/* Asks resolver for want->fqdn and judges the TXT values: OK or *why. */
static apr_status_t acme_worker_persist_lookup(apr_pool_t *p, const char *resolver,
                                               const acme_persist_want_t *want,
                                               acme_persist_record_t *rec,
                                               acme_persist_verdict_t *v, const char **why,
                                               acme_result_t *res)
{
    apr_array_header_t *txts = NULL;
    unsigned char a[4096];
    apr_size_t n = 0;
    unsigned int id = 0;
    apr_status_t rv = acme_dns01_txt_exchange(p, resolver, want->fqdn, a, sizeof(a), &n, &id,
                                              res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (acme_persist_txt_answer(p, a, n, id, &txts) != APR_SUCCESS) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "dns-persist-01: the resolver %s sent no usable answer for TXT %s", resolver,
            want->fqdn));
    }
    *v = acme_persist_check(p, txts, want, rec, why);
    return APR_SUCCESS;
}

/*
 * Looks the record of one name up and judges it; ADMIN with what to fix when it is unusable.
 * *seen (optional) gets what it was checked against.
 */
static apr_status_t acme_worker_persist_name(acme_worker_run_t *run,
                                             const acme_worker_persist_t *ctx, const char *name,
                                             acme_persist_record_t *rec,
                                             acme_persist_want_t *seen, acme_result_t *res)
{
    apr_pool_t *p = run->p;
    int wild = !strncmp(name, "*.", 2);
    apr_array_header_t *uris = apr_array_make(p, 2, sizeof(const char *));
    acme_persist_want_t want = { .fqdn = acme_persist_fqdn(p, name), .issuers = ctx->issuers,
                                 .accounturis = uris, .wildcard = wild,
                                 .now = apr_time_sec(apr_time_now()) };
    acme_persist_verdict_t v = ACME_PERSIST_NONE;
    const char *why = NULL;
    apr_status_t rv;

    APR_ARRAY_PUSH(uris, const char *) = acme_persist_account_uri(p, ctx->prefix,
        wild ? name + 2 : name, ctx->thumbprint, ctx->account_url);
    APR_ARRAY_PUSH(uris, const char *) = acme_persist_account_uri(p, ctx->prefix, "*",
        ctx->thumbprint, ctx->account_url);
    want.expected = acme_persist_value(p, APR_ARRAY_IDX(ctx->issuers, 0, const char *),
                                       APR_ARRAY_IDX(uris, 0, const char *), wild, 0);
    rv = acme_worker_persist_lookup(p, ctx->resolver, &want, rec, &v, &why, res);
    if (rv != APR_SUCCESS || v == ACME_PERSIST_OK) {
        if (seen) {
            *seen = want;
        }
        return rv;
    }
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
        "%s: %s: dns-persist-01 for %s: %s (looked up at %s; nothing was ordered or answered "
        "for it, the served certificate (if any) is kept; 'a2acme dns-persist %s' prints the "
        "record)", ACME_PERSIST_MSG_CHECK, run->item->dom->name, name, why, ctx->resolver,
        name));
}

/* The window before persistUntil that warns: ACMEWarnWindow, a percentage of the lifetime. */
static apr_interval_time_t acme_worker_persist_window(acme_worker_t *w, apr_pool_t *p,
                                                      const acme_worker_item_t *item)
{
    apr_interval_time_t lifetime = 0;
    acme_plan_window_t window;
    const char *reason = NULL;
    int j;

    for (j = 0; j < item->dom->policy.key_specs->nelts; ++j) {
        const acme_worker_active_t *act = &item->active[j];
        if (act->present && (!lifetime || act->not_after - act->not_before < lifetime)) {
            lifetime = act->not_after - act->not_before;
        }
    }
    if (!w->cfg->warn_window
        || acme_renewal_warn_parse(w->cfg->warn_window, &window, &reason, p) != APR_SUCCESS) {
        acme_renewal_warn_parse("auto", &window, &reason, p);
    }
    if (!window.is_fraction) {
        return window.absolute;
    }
    return (apr_interval_time_t)(window.fraction
                                 * (double)(lifetime ? lifetime : apr_time_from_sec(90 * 86400)));
}

/*
 * persistUntil inside the warn window: a WARNING line each time, a notification at most once
 * per ACME_NOTIFY_REPEAT (*notified_at, updated).
 */
static void acme_worker_persist_expiring(acme_worker_t *w, apr_pool_t *p,
                                         const acme_worker_item_t *item, acme_job_t *job,
                                         const char *name, const acme_persist_record_t *rec,
                                         apr_time_t *notified_at)
{
    apr_time_t now = apr_time_now();
    const char *text;

    if (!rec->has_until || apr_time_from_sec(rec->persist_until) - now
                           >= acme_worker_persist_window(w, p, item)) {
        return;
    }
    text = apr_psprintf(p, "%s: %s: the dns-persist-01 record for %s expires at %s "
                        "(persistUntil=%" APR_INT64_T_FMT "); after that the CA refuses it and "
                        "renewals fail: publish it with a later persistUntil or none "
                        "('a2acme dns-persist %s')", ACME_PERSIST_MSG_EXPIRING, item->dom->name,
                        name, acme_worker_time_text(p, apr_time_from_sec(rec->persist_until)),
                        rec->persist_until, name);
    acme_worker_log(w, ACME_LOG_WARNING, text);
    if (acme_notify_due(ACME_PERSIST_EVENT_EXPIRING, *notified_at, now)) {
        acme_worker_notify(w, p, item->dom, job, ACME_PERSIST_EVENT_EXPIRING,
                           acme_worker_active_certs(p, item), text);
        *notified_at = now;
    }
}

static const char *acme_worker_persist_path(apr_pool_t *p, const acme_worker_t *w,
                                            const acme_domain_t *dom)
{
    return acme_store_path(p, w->store, ACME_STORE_JOBS,
                           apr_pstrcat(p, dom->name, ".persist.json", NULL), NULL);
}

/* jobs/<domain>.persist.json; an unreadable one is as none. */
static apr_array_header_t *acme_worker_persist_load(acme_worker_t *w, apr_pool_t *p,
                                                    const acme_domain_t *dom,
                                                    apr_time_t *notified_at)
{
    apr_array_header_t *watches = NULL;
    json_t *doc = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    *notified_at = 0;
    if (acme_store_read_json(p, acme_worker_persist_path(p, w, dom), &doc, &res) != APR_SUCCESS) {
        return apr_array_make(p, 1, sizeof(acme_persist_watch_t));
    }
    acme_persist_watch_parse(p, doc, &watches, notified_at);
    return watches;
}

static void acme_worker_persist_save(acme_worker_t *w, apr_pool_t *p, const acme_domain_t *dom,
                                     const apr_array_header_t *watches, apr_time_t notified_at)
{
    json_t *doc = acme_persist_watch_json(watches, notified_at);
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_store_write_json(p, acme_worker_persist_path(p, w, dom), doc, ACME_PERMS_0644,
                              &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME01610: %s: %s", dom->name,
                                                          acme_result_describe(&res, p)));
    }
    json_decref(doc);
}

/* Another listed type can validate name (a wildcard: dns-01 through ACMEDns01Command only). */
static int acme_worker_persist_other_way(const acme_domain_t *dom, const char *name)
{
    int dns01 = acme_worker_lists(dom, "dns-01") && dom->policy.dns01_command
                && dom->policy.dns01_command->nelts > 0;

    if (!strncmp(name, "*.", 2)) {
        return dns01;
    }
    return dns01 || acme_worker_lists(dom, "http-01") || acme_worker_lists(dom, "tls-alpn-01")
           || acme_worker_lists(dom, "tls-sni-01");
}

/* A failed check of name with another way to validate it: logged, 1 (the caller goes on). */
static int acme_worker_persist_skip(acme_worker_run_t *run, const char *name, acme_result_t *res)
{
    if (!acme_worker_persist_other_way(run->item->dom, name)) {
        return 0;
    }
    acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME01611: %s; another listed "
                    "challenge type is tried for %s", acme_result_describe(res, run->p), name));
    acme_result_reset(res);
    return 1;
}

/*
 * Before ordering: every DNS name's record must be there and right, else nothing is ordered
 * (a name another listed type can validate only gets a warning).
 */
apr_status_t acme_worker_persist_precheck(acme_worker_run_t *run, acme_result_t *res)
{
    const acme_domain_t *dom = run->item->dom;
    acme_worker_persist_t ctx;
    apr_array_header_t *watches;
    apr_time_t notified_at = 0;
    apr_status_t rv, ctx_rv;
    int i;

    if (!acme_worker_lists(dom, "dns-persist-01")) {
        return APR_SUCCESS;
    }
    acme_worker_activity(run, "checking the dns-persist-01 records");
    acme_worker_persist_load(run->w, run->p, dom, &notified_at);
    watches = apr_array_make(run->p, 2, sizeof(acme_persist_watch_t));
    ctx_rv = acme_worker_persist_ctx(run, NULL, &ctx, res);
    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        acme_persist_watch_t *watch = apr_array_push(watches);
        acme_persist_record_t rec;
        watch->name = id->value;
        if (id->type != ACME_IDENT_DNS) {
            --watches->nelts;
            continue;
        }
        rv = ctx_rv;
        if (rv == APR_SUCCESS && (rv = acme_worker_persist_name(run, &ctx, id->value, &rec,
                                                                &watch->want, res))
                                 == APR_SUCCESS) {
            acme_worker_persist_expiring(run->w, run->p, run->item, run->job, id->value, &rec,
                                         &notified_at);
            continue;
        }
        --watches->nelts;
        if (!acme_worker_persist_skip(run, id->value, res)) {
            return rv;
        }
        if (ctx_rv != APR_SUCCESS) {
            acme_worker_persist_ctx(run, NULL, &ctx, res);  /* the same reason for the next */
        }
    }
    acme_worker_persist_save(run->w, run->p, dom, watches, notified_at);
    acme_result_reset(res);
    return APR_SUCCESS;
}

/* The CA's dns-persist-01 challenge: its issuer names checked, the record looked up again. */
apr_status_t acme_worker_persist_answer(acme_worker_run_t *run,
                                       const acme_client_authz_t *authz,
                                       const acme_client_challenge_t *chal,
                                       acme_result_t *res)
{
    const char *name = authz->wildcard ? apr_pstrcat(run->p, "*.", authz->identifier.value, NULL)
                                       : authz->identifier.value;
    acme_worker_persist_t ctx;
    acme_persist_record_t rec;
    apr_status_t rv;

    if (!chal->issuer_domain_names || chal->issuer_domain_names->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_RETRY_SOON, apr_psprintf(run->p,
            "the CA's dns-persist-01 challenge for %s has no usable issuerDomainNames (1 to 10 "
            "lowercase names, draft-ietf-acme-dns-persist-02 §3.1); not answered", name));
    }
    rv = acme_worker_persist_ctx(run, chal->issuer_domain_names, &ctx, res);
    if (rv == APR_SUCCESS) {
        rv = acme_worker_persist_name(run, &ctx, name, &rec, NULL, res);
    }
    if (rv == APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(run->p, "ACME01612: %s: answering "
                        "dns-persist-01 for %s", run->item->dom->name, name));
    }
    return rv;
}

/* One record last found valid, looked up again: persistUntil near, or gone or changed. */
static void acme_worker_persist_recheck(acme_worker_t *w, const acme_worker_item_t *item,
                                        acme_job_t *job, acme_persist_watch_t *watch,
                                        apr_time_t *notified_at)
{
    apr_pool_t *p = w->pool;
    const char *resolver = acme_worker_persist_resolver(p, item->dom), *why = NULL;
    acme_persist_verdict_t v = ACME_PERSIST_NONE;
    acme_persist_record_t rec;
    acme_result_t res;

    acme_result_reset(&res);
    watch->want.now = apr_time_sec(apr_time_now());
    if (acme_worker_persist_lookup(p, resolver, &watch->want, &rec, &v, &why, &res)
        != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME01613: %s: %s", item->dom->name,
                                                       acme_result_describe(&res, p)));
        return;
    }
    if (v == ACME_PERSIST_OK) {
        acme_worker_persist_expiring(w, p, item, job, watch->name, &rec, notified_at);
        return;
    }
    acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "%s: %s: dns-persist-01 for %s: %s "
                    "(looked up at %s; the next renewal fails unless this is fixed)",
                    ACME_PERSIST_MSG_WATCH, item->dom->name, watch->name, why, resolver));
}

/*
 * Once per check, between renewals: the dns-persist-01 records last found valid are looked up
 * again (jobs/<domain>.persist.json says against what; no CA needed). Domains that ran this
 * time were checked already.
 */
void acme_worker_persist_watch(acme_worker_t *w)
{
    int i, j;

    for (i = 0; i < w->items->nelts && !acme_worker_orphaned(w); ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        apr_time_t notified_at = 0, before;
        apr_array_header_t *watches;
        acme_job_t *job = NULL;
        acme_result_t res;
        if (!acme_worker_lists(item->dom, "dns-persist-01") || acme_worker_was_due(w, item)) {
            continue;
        }
        watches = acme_worker_persist_load(w, w->pool, item->dom, &notified_at);
        acme_result_reset(&res);
        if (watches->nelts == 0
            || acme_job_load(w->pool, w->store, item->dom->name, &job, &res) != APR_SUCCESS) {
            continue;
        }
        before = notified_at;
        for (j = 0; j < watches->nelts; ++j) {
            acme_worker_persist_recheck(w, item, job,
                                        &APR_ARRAY_IDX(watches, j, acme_persist_watch_t),
                                        &notified_at);
        }
        if (notified_at != before) {
            acme_worker_persist_save(w, w->pool, item->dom, watches, notified_at);
            acme_worker_job_save(w, w->pool, job, NULL);
        }
    }
}
