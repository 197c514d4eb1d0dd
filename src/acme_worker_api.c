/*
 * The certificate API's orders (issue 17): after the managed domains, the worker takes the
 * CSRs the children queued in api-queue/ and orders each with the server's account and
 * challenge policy (those of the first managed domain: its CA, ACMEChallenges,
 * ACMEDns01Command), finalizing with the client's own CSR - the worker never has the
 * client's key. The chain or the reason it failed goes to api/<id>.{pem,json}, where the
 * child that queued it (or the client polling later) finds it.
 */
#include "acme_worker_int.h"
#include "acme_api_store.h"

#define ACME_WORKER_API_PER_RUN 32
#define ACME_WORKER_API_STEPS 8
#define ACME_WORKER_API_LINGER apr_time_from_sec(30)
#define ACME_WORKER_API_POLL apr_time_from_msec(250)

typedef struct {
    acme_worker_t *w;
    apr_pool_t *p;
    const char *id;
    const char *client;
    acme_api_csr_t *csr;
} acme_worker_api_t;

/* A domain for the CSR's names with the first managed domain's policy, and its item. */
static apr_status_t acme_worker_api_item(acme_worker_api_t *a, acme_worker_item_t *item,
                                         acme_result_t *res)
{
    const acme_worker_item_t *tmpl;
    acme_domain_t *dom;
    int i;

    if (a->w->items->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, "the server manages no "
                                "domain whose CA and account the API could use");
    }
    tmpl = &APR_ARRAY_IDX(a->w->items, 0, acme_worker_item_t);
    dom = acme_domain_make(a->p, NULL, 0);
    for (i = 0; i < a->csr->names->nelts; ++i) {
        const char *reason = NULL;
        if (acme_domain_add_name(a->p, dom, APR_ARRAY_IDX(a->csr->names, i, const char *),
                                 &reason) != APR_SUCCESS) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                    reason ? reason : "a name of the CSR is not valid");
        }
    }
    /* Not a DNS name ('~'): its job file and log lines cannot be taken for a domain's. */
    dom->name = apr_pstrcat(a->p, "api~", a->id, NULL);
    dom->policy = tmpl->dom->policy;
    *item = (acme_worker_item_t){
        .dom = dom, .ca = tmpl->ca, .cas = tmpl->cas, .n_cas = tmpl->n_cas,
        .active = apr_pcalloc(a->p, sizeof(acme_worker_active_t)
                                    * (apr_size_t)(dom->policy.key_specs->nelts + 1)),
    };
    return APR_SUCCESS;
}

static apr_status_t acme_worker_api_client(acme_worker_run_t *run, acme_result_t *res)
{
    const acme_worker_ca_t *ca = run->item->ca;
    acme_client_options_t opts = {
        .ca_file = run->item->dom->policy.ca_file,
        .proxy = acme_proxy_for(run->item->dom->policy.proxies, ca->ca_url),
    };
    apr_status_t rv = acme_client_create(&run->client, run->p, ca->ca_url, &opts, res);

    if (rv == APR_SUCCESS) {
        rv = acme_worker_account_gate(run, res);
    }
    return rv == APR_SUCCESS ? acme_worker_account(run, res) : rv;
}

/* acme_worker_run_t.finalize_early with the client's CSR. */
static apr_status_t acme_worker_api_finalize_early(acme_worker_run_t *run, acme_order_t *order,
                                                   apr_time_t answered, acme_result_t *res)
{
    const acme_api_csr_t *csr = run->early_baton;

    return acme_client_order_finalize_early_csr(run->client, run->p, order, csr->der,
                                                csr->der_len, answered, res);
}

static apr_status_t acme_worker_api_step(acme_worker_api_t *a, acme_worker_run_t *run,
                                         acme_order_t *order, acme_client_chain_t **chain,
                                         acme_result_t *res)
{
    switch (order->status) {
    case ACME_ORDER_NEW:
        return acme_client_order_new(run->client, a->p, order, res);
    case ACME_ORDER_PENDING:
        return acme_worker_answer(run, order, res);
    case ACME_ORDER_READY:
        return acme_client_order_finalize_csr(run->client, a->p, order, a->csr->der,
                                              a->csr->der_len, res);
    case ACME_ORDER_PROCESSING:
        return acme_client_order_wait(run->client, a->p, order, res);
    case ACME_ORDER_VALID:
        return acme_client_cert_download(run->client, a->p, order, a->csr->key,
                                         run->item->dom->policy.preferred_chain, chain, res);
    case ACME_ORDER_INVALID:
        return acme_client_order_explain(run->client, a->p, order, res);
    }
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_PERMANENT, "order in an unknown state");
}

static apr_status_t acme_worker_api_order(acme_worker_api_t *a, acme_client_chain_t **chain,
                                          acme_result_t *res)
{
    acme_worker_item_t item;
    acme_worker_run_t run = {
        .w = a->w, .p = a->p, .thread_pool = a->p,
        .finalize_early = acme_worker_api_finalize_early, .early_baton = a->csr,
    };
    acme_order_t *order;
    apr_status_t rv = acme_worker_api_item(a, &item, res);
    int steps;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    run.item = &item;
    run.clients = apr_hash_make(a->p);
    run.job = acme_job_make(a->p, item.dom->name);
    run.job->state = ACME_JOB_ORDERING;
    if ((rv = acme_worker_api_client(&run, res)) != APR_SUCCESS) {
        return rv;
    }
    order = acme_order_make(a->p, (const acme_ident_t *)item.dom->idents->elts,
                            item.dom->idents->nelts, "api");
    order->account_url = acme_client_account_url(run.client);
    *chain = NULL;
    for (steps = 0; rv == APR_SUCCESS && !*chain && steps < ACME_WORKER_API_STEPS; ++steps) {
        if (acme_worker_stop_requested()) {
            return acme_result_fail(res, APR_EINTR, ACME_CLASS_RETRY_SOON, "the renewal "
                                    "worker was stopped; submit the CSR again");
        }
        rv = acme_worker_api_step(a, &run, order, chain, res);
    }
    if (rv == APR_SUCCESS && !*chain) {
        rv = acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON, apr_psprintf(a->p,
            "the order is still %s after %d steps", acme_order_status_name(order->status),
            steps));
    }
    return rv;
}

static void acme_worker_api_done(acme_worker_api_t *a, const acme_client_chain_t *chain)
{
    const acme_cert_t *leaf = APR_ARRAY_IDX(chain->certs, 0, const acme_cert_t *);
    acme_cert_info_t info;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_crypto_cert_info(a->p, leaf, &info, &res) != APR_SUCCESS
        || acme_api_store_chain_put(a->p, a->w->store, a->id, chain->pem, chain->pem_len, &res)
           != APR_SUCCESS
        || acme_api_store_state_put(a->p, a->w->store, a->id, a->client, a->csr->names,
                                    ACME_API_STATE_VALID, NULL, info.not_before, info.not_after,
                                    &res) != APR_SUCCESS) {
        acme_worker_log(a->w, ACME_LOG_ERROR, apr_psprintf(a->p, "ACME11012: api: client %s: "
            "request %s: the certificate was issued but cannot be stored: %s; the client's "
            "next submission orders again", a->client, a->id, acme_result_describe(&res, a->p)));
        return;
    }
    acme_worker_log(a->w, ACME_LOG_NOTICE, apr_psprintf(a->p, "ACME11011: api: client %s: "
        "request %s: certificate issued (serial %s)", a->client, a->id, info.serial_hex));
}

static void acme_worker_api_one(acme_worker_t *w, apr_pool_t *p, const char *id)
{
    acme_worker_api_t a = { .w = w, .p = p, .id = id };
    acme_client_chain_t *chain = NULL;
    acme_result_t res;
    apr_status_t rv;

    acme_result_reset(&res);
    if (acme_api_store_take(p, w->store, id, &a.client, &a.csr, &res) != APR_SUCCESS) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME11013: api: %s; it was "
                                                          "removed", acme_result_describe(&res,
                                                                                          p)));
        acme_api_store_state_put(p, w->store, id, "?", NULL, ACME_API_STATE_INVALID,
                                 acme_result_describe(&res, p), 0, 0, &res);
        return;
    }
    acme_api_store_state_put(p, w->store, id, a.client, a.csr->names,
                             ACME_API_STATE_PROCESSING, NULL, 0, 0, &res);
    acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME11010: api: client %s: request "
        "%s: ordering a certificate for %s", a.client, id,
        apr_array_pstrcat(p, a.csr->names, ' ')));
    rv = acme_worker_api_order(&a, &chain, &res);
    apr_file_remove(acme_store_path(p, w->store, ACME_STORE_JOBS,
                                    apr_pstrcat(p, "api~", id, ".json", NULL), NULL), p);
    if (rv == APR_SUCCESS) {
        acme_worker_api_done(&a, chain);
        return;
    }
    acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME11014: api: client %s: request "
        "%s: the order failed (%s): %s", a.client, id, acme_class_name(res.err_class),
        acme_result_describe(&res, p)));
    acme_api_store_state_put(p, w->store, id, a.client, a.csr->names,
                             res.err_class == ACME_CLASS_RETRY_SOON
                             || res.err_class == ACME_CLASS_RETRY_AFTER
                             ? ACME_API_STATE_PENDING : ACME_API_STATE_INVALID,
                             acme_result_describe(&res, p), 0, 0, &res);
}

/* Orders what is queued now (at most a run's share); how many requests were taken. */
static int acme_worker_api_batch(acme_worker_t *w)
{
    apr_pool_t *p = NULL;
    apr_array_header_t *ids;
    int i, n = 0;

    if (apr_pool_create(&p, w->pool) != APR_SUCCESS) {
        return 0;
    }
    ids = acme_api_store_queued(p, w->store, ACME_WORKER_API_PER_RUN);
    for (i = 0; i < ids->nelts && !acme_worker_stop_requested(); ++i) {
        apr_pool_t *one = NULL;
        if (apr_pool_create(&one, p) != APR_SUCCESS) {
            break;
        }
        acme_worker_api_one(w, one, APR_ARRAY_IDX(ids, i, const char *));
        apr_pool_destroy(one);
        ++n;
    }
    apr_pool_destroy(p);
    return n;
}

/*
 * After API orders the worker stays a little while for more: the parent starts it only at its
 * monitor's pace (up to ~10 s), and clients often come in bursts (a panel adding sites, a
 * mail server asking for two certificates). Without API work it ends at once, as before.
 * More than one run's share waits on: the entries taken changed api-queue/, which starts the
 * worker again (acme_api_store_queue_stamp).
 * With on-demand sites it stays until it would run next anyway (w->stay_until): a handshake
 * waits at most ACMEOnDemandWait, and the parent's monitor would notice a name only at its
 * next tick. A reload ends that wait (acme_worker_request_finish), not the orders.
 */
#define ACME_WORKER_API_PRUNE_SCAN 20000

static apr_time_t acme_worker_api_later(apr_time_t a, apr_time_t b)
{
    return a > b ? a : b;
}

void acme_worker_api_run(acme_worker_t *w)
{
    apr_time_t until = 0;
    apr_pool_t *p = NULL;

    if (apr_pool_create(&p, w->pool) == APR_SUCCESS) {  /* old results, once per run */
        acme_api_store_prune(p, w->store, apr_time_now(), ACME_WORKER_API_PRUNE_SCAN);
        apr_pool_destroy(p);
    }
    if (w->cfg->ondemand) {
        until = w->stay_until;
    }
    for (;;) {
        if (acme_worker_api_batch(w) + acme_worker_ondemand_batch(w) > 0) {
            until = acme_worker_api_later(until, apr_time_now() + ACME_WORKER_API_LINGER);
        }
        if (!until || apr_time_now() >= until || acme_worker_stop_requested()
            || acme_worker_finish_requested() || w->ondemand_staged
            || (w->cfg->parent_pid && getppid() != w->cfg->parent_pid)) {
            return;
        }
        apr_sleep(ACME_WORKER_API_POLL);
    }
}
