/*
 * The renewal worker's challenges: which type answers an authorization (the domain's
 * ACMEChallenges, what the CA offers), publishing and withdrawing http-01, tls-alpn-01 and
 * tls-sni-01 answers for the children, dns-01 through ACMEDns01Command.
 */
#include "acme_worker_int.h"

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
            acme_worker_share_answer(run, a->type, a->name, NULL, NULL);
        }
        else if (!strcmp(a->type, "tls-sni-01")) {
            acme_challenge_tlssni01_remove(run->p, store_dir, a->name);
        }
        else {
            acme_challenge_http01_remove(run->p, store_dir, a->name, a->token);
            acme_worker_share_answer(run, a->type, a->name, a->token, NULL);
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
        acme_worker_share_answer(run, chal->type, authz->identifier.value, NULL, key_authz);
        return acme_challenge_tlsalpn01_put(run->p, store_dir, &authz->identifier, key_authz,
                                            res);
    }
    if (!strcmp(chal->type, "tls-sni-01")) {
        return acme_challenge_tlssni01_put(run->p, store_dir, key_authz, &a->name, res);
    }
    acme_worker_share_answer(run, chal->type, authz->identifier.value, chal->token,
                             key_authz);      /* any node answers */
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
        .stop = acme_worker_stop_flag(),
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
void acme_worker_dns01_leftovers(acme_worker_t *w)
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
 * The CA's verdict on the answers just sent. The first look is a finalize when the run has one
 * (acme_worker_run_t.finalize_early): a CA that validated in the meantime takes it and the
 * order poll before it is saved; one that has not costs what that poll would have.
 */
static apr_status_t acme_worker_validated(acme_worker_run_t *run, acme_order_t *order,
                                          acme_result_t *res)
{
    apr_time_t answered = apr_time_now();
    apr_status_t rv;

    acme_worker_activity(run, "waiting for the CA to validate");
    if (!run->finalize_early) {
        return acme_client_order_wait(run->client, run->p, order, res);
    }
    rv = run->finalize_early(run, order, answered, res);
    if (rv != APR_SUCCESS || order->status != ACME_ORDER_PENDING) {
        return rv;
    }
    return acme_client_order_wait_after(run->client, run->p, order, 1, res);
}

/*
 * Answers every pending authorization: http-01/tls-alpn-01 answers are published and dns-01
 * records set up first (a failing dns-01 setup falls back to the next listed type the CA
 * offers for that name), then the propagation wait, then the CA is told to validate. Answers
 * and records are withdrawn whatever happened. Every authorization is checked against the
 * domain's names before anything is set up.
 */
apr_status_t acme_worker_answer(acme_worker_run_t *run, acme_order_t *order,
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
                             acme_worker_stop_flag(), res);
    }
    if (rv == APR_SUCCESS) {
        acme_worker_share_acks(run);    /* ACMECluster: every node can answer first */
    }
    for (i = 0; rv == APR_SUCCESS && i < an.respond->nelts; ++i) {
        rv = acme_client_challenge_respond(run->client, run->p,
                                           APR_ARRAY_IDX(an.respond, i,
                                                         const acme_client_challenge_t *), res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_validated(run, order, res);
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
