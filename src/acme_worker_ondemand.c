/*
 * On-demand certificates in the worker (issue 19): the names the children saw in SNI on a
 * vhost with ACMEOnDemand on, taken from the queue (acme_ondemand_queue.h), judged by the
 * registry's rules (acme_ondemand.h: refusals cached, backoff, rate, cap), put to the ask
 * endpoint, and for a yes ordered at once like a managed domain and staged for the parent.
 * Approved names become managed domains at the server's next start (the parent reads the
 * registry); until then this file orders them.
 */
#include <apr_fnmatch.h>

#include "acme_worker_int.h"
#include "acme_ondemand_ask.h"
#include "acme_ondemand_queue.h"

#define ACME_WORKER_ONDEMAND_PER_BATCH 64
#define ACME_WORKER_ONDEMAND_DOWN_LOG apr_time_from_sec(60)

apr_status_t acme_worker_ondemand_prepare(acme_worker_t *w, acme_result_t *res)
{
    const acme_worker_ondemand_t *od = w->cfg->ondemand;
    int i, j;

    if (!od) {
        return APR_SUCCESS;
    }
    w->ondemand_sites = apr_array_make(w->pool, od->sites->nelts,
                                       sizeof(acme_worker_ondemand_run_site_t));
    for (i = 0; i < od->sites->nelts; ++i) {
        const acme_worker_ondemand_site_t *site =
            &APR_ARRAY_IDX(od->sites, i, acme_worker_ondemand_site_t);
        acme_worker_ondemand_run_site_t *rs = apr_array_push(w->ondemand_sites);
        rs->site = site;
        rs->n_cas = site->policy->ca_urls->nelts;
        rs->cas = apr_pcalloc(w->pool, sizeof(*rs->cas) * (apr_size_t)rs->n_cas);
        for (j = 0; j < rs->n_cas; ++j) {
            apr_status_t rv = acme_worker_ca_get(w, APR_ARRAY_IDX(site->policy->ca_urls, j,
                                                                   const char *),
                                                 site->policy, &rs->cas[j], res);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
    }
    return APR_SUCCESS;
}

/*
 * The index in od->sites of the site whose ServerName or ServerAlias matches name, else 0 (the
 * first, the catch-all). Shared by the worker (which site's policy orders) and the parent
 * (which policy an approved name is managed with), so both always agree.
 */
int acme_worker_ondemand_site_find(const acme_worker_ondemand_t *od, const char *name)
{
    int i, j;

    for (i = 0; i < od->sites->nelts; ++i) {
        const acme_worker_ondemand_site_t *site =
            &APR_ARRAY_IDX(od->sites, i, acme_worker_ondemand_site_t);
        for (j = 0; j < site->patterns->nelts; ++j) {
            const char *pat = APR_ARRAY_IDX(site->patterns, j, const char *);
            if (apr_fnmatch(pat, name, APR_FNM_PERIOD | APR_FNM_CASE_BLIND) == APR_SUCCESS) {
                return i;
            }
        }
    }
    return 0;
}

/* The run-time site of name (w->ondemand_sites is in od->sites' order). */
static const acme_worker_ondemand_run_site_t *acme_worker_ondemand_site(acme_worker_t *w,
                                                                       const char *name)
{
    return &APR_ARRAY_IDX(w->ondemand_sites, acme_worker_ondemand_site_find(w->cfg->ondemand,
                                                                            name),
                          acme_worker_ondemand_run_site_t);
}

/* A managed domain already has the name: on-demand leaves it alone. */
static int acme_worker_ondemand_managed(const acme_worker_t *w, const char *name)
{
    acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = name };
    int i;

    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (acme_domain_has_ident(item->dom, &ident)) {
            return 1;
        }
    }
    return 0;
}

static const char *acme_worker_ondemand_path(acme_worker_t *w, apr_pool_t *p)
{
    return acme_store_path(p, w->store, ACME_STORE_JOBS, ACME_ONDEMAND_FILE, NULL);
}

/* The registry, or a new one when there is none or it is not ours (logged: answers are lost,
 * approved names are asked again, nothing is ordered that the endpoint did not approve). */
static acme_ondemand_registry_t *acme_worker_ondemand_load(acme_worker_t *w, apr_pool_t *p)
{
    acme_ondemand_registry_t *reg = NULL;
    json_t *doc = NULL;
    acme_result_t res;
    apr_status_t rv;

    acme_result_reset(&res);
    rv = acme_store_read_json(p, acme_worker_ondemand_path(w, p), &doc, &res);
    if (rv == APR_SUCCESS) {
        rv = acme_ondemand_registry_read(p, doc, w->proof_key, &reg, &res);
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        acme_worker_log(w, ACME_LOG_ERROR, apr_psprintf(p, "ACME09501: on-demand: the registry "
            "%s cannot be used (%s); starting a new one: names are asked again before they are "
            "ordered", acme_worker_ondemand_path(w, p), acme_result_describe(&res, p)));
    }
    return reg ? reg : acme_ondemand_registry_make(p);
}

static void acme_worker_ondemand_save(acme_worker_t *w, apr_pool_t *p,
                                      const acme_ondemand_registry_t *reg)
{
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_store_write_json(p, acme_worker_ondemand_path(w, p),
                              acme_ondemand_registry_json(reg, p, w->proof_key, apr_time_now()),
                              ACME_PERMS_0600, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_ERROR, apr_psprintf(p, "ACME09502: on-demand: the registry "
            "cannot be saved (%s); this batch's answers are asked again later",
            acme_result_describe(&res, p)));
    }
}

/* Orders name now with its site's policy; 1 when a set was staged. */
static int acme_worker_ondemand_order(acme_worker_t *w, apr_pool_t *p,
                                      const acme_worker_ondemand_run_site_t *rs, const char *name)
{
    acme_domain_t *dom = acme_domain_make(p, NULL, 0);
    acme_worker_item_t item;
    apr_hash_t *clients = apr_hash_make(p);
    acme_job_t *job = NULL;
    acme_result_t res;
    const char *why = NULL;

    if (acme_domain_add_name(p, dom, name, &why) != APR_SUCCESS) {
        return 0;
    }
    dom->policy = *rs->site->policy;
    acme_result_reset(&res);
    acme_job_load(p, w->store, name, &job, &res);
    item = (acme_worker_item_t){
        .dom = dom, .cas = rs->cas, .n_cas = rs->n_cas,
        .ca = rs->cas[job && job->ca_index > 0 ? job->ca_index % rs->n_cas : 0],
        .active = apr_pcalloc(p, sizeof(acme_worker_active_t)
                                 * (apr_size_t)(dom->policy.key_specs->nelts + 1)),
    };
    acme_worker_order_item(w, p, p, clients, &item);
    acme_worker_metrics_clients(w, p, clients);
    return acme_worker_staged_present(w, dom);
}

static void acme_worker_ondemand_down(acme_worker_t *w, apr_pool_t *p, const char *url,
                                      const char *detail)
{
    apr_time_t now = apr_time_now();

    if (w->ondemand_down_logged && now - w->ondemand_down_logged < ACME_WORKER_ONDEMAND_DOWN_LOG) {
        return;
    }
    w->ondemand_down_logged = now;
    acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME09503: on-demand: the ask endpoint "
        "%s does not answer (%s); names are refused until it does (logged once a minute)",
        url, detail));
}

/* The endpoint's verdict on name: 1 approved now. */
static int acme_worker_ondemand_ask(acme_worker_t *w, apr_pool_t *p,
                                    acme_ondemand_registry_t *reg,
                                    const acme_worker_ondemand_run_site_t *rs, const char *name)
{
    const char *detail = NULL;
    acme_ondemand_ask_t ans = acme_ondemand_ask(p, rs->site->ask_url, name,
                                                w->cfg->ondemand->ask_timeout, &detail);

    if (ans == ACME_ONDEMAND_ASK_UNREACHABLE) {
        acme_worker_ondemand_down(w, p, rs->site->ask_url, detail);
    }
    acme_ondemand_answered(reg, name, ans == ACME_ONDEMAND_ASK_YES, apr_time_now());
    acme_worker_log(w, ans == ACME_ONDEMAND_ASK_YES ? ACME_LOG_NOTICE : ACME_LOG_INFO,
                    apr_psprintf(p, "ACME09504: on-demand: %s: the ask endpoint %s (%s)%s", name,
                                 ans == ACME_ONDEMAND_ASK_YES ? "approves it" : "refuses it",
                                 detail ? detail : "-",
                                 ans == ACME_ONDEMAND_ASK_YES ? "; ordering a certificate"
                                 : "; asked again in 10 minutes at the earliest"));
    return ans == ACME_ONDEMAND_ASK_YES;
}

static void acme_worker_ondemand_one(acme_worker_t *w, apr_pool_t *p,
                                     acme_ondemand_registry_t *reg, const char *name)
{
    const acme_worker_ondemand_run_site_t *rs = acme_worker_ondemand_site(w, name);
    const char *why = NULL;
    acme_ondemand_verdict_t v;
    acme_domain_t probe = { .name = name };
    int ok;

    if (acme_worker_ondemand_managed(w, name)) {
        return;
    }
    v = acme_ondemand_decide(reg, p, name, &w->cfg->ondemand->policy, apr_time_now(), &why);
    if (v == ACME_ONDEMAND_LATER || v == ACME_ONDEMAND_NEVER) {
        acme_worker_log(w, ACME_LOG_DEBUG, apr_psprintf(p, "ACME09505: on-demand: %s: not now "
                                                        "(%s)", name, why ? why : "-"));
        return;
    }
    if (v == ACME_ONDEMAND_ASK) {
        if (!acme_worker_ondemand_ask(w, p, reg, rs, name)) {
            return;
        }
        /* Saved before the order: the parent activates the staged set only for a name it
         * finds approved here. */
        acme_worker_ondemand_save(w, p, reg);
    }
    if (acme_worker_staged_present(w, &probe)) {
        return;                         /* ordered already; the parent activates it */
    }
    ok = acme_worker_ondemand_order(w, p, rs, name);
    acme_ondemand_order_done(reg, name, ok, apr_time_now());
    w->ondemand_staged += ok;
}

int acme_worker_ondemand_batch(acme_worker_t *w)
{
    apr_pool_t *p = NULL;
    apr_array_header_t *names;
    acme_ondemand_registry_t *reg;
    int i, dropped = 0, n;

    if (!w->cfg->ondemand || !w->ondemand_sites || w->ondemand_sites->nelts == 0
        || apr_pool_create(&p, w->pool) != APR_SUCCESS) {
        return 0;
    }
    names = acme_ondemand_queue_take(p, w->cfg->store_dir, ACME_WORKER_ONDEMAND_PER_BATCH,
                                     w->cfg->ondemand->policy.allow_ip, &dropped);
    n = names->nelts;
    if (dropped) {
        acme_worker_log(w, ACME_LOG_DEBUG, apr_psprintf(p, "ACME09506: on-demand: %d queued "
                                                        "names are not valid; removed", dropped));
    }
    if (n > 0) {
        reg = acme_worker_ondemand_load(w, p);
        for (i = 0; i < n && !acme_worker_stop_requested(); ++i) {
            acme_worker_ondemand_one(w, p, reg, APR_ARRAY_IDX(names, i, const char *));
        }
        acme_worker_ondemand_save(w, p, reg);
    }
    apr_pool_destroy(p);
    return n;
}
