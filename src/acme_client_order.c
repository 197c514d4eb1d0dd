/*
 * Orders of an RFC 8555 client: new orders and their refresh, authorizations and challenges,
 * the wait for a state, finalization with a CSR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "acme_b64.h"
#include "acme_client.h"
#include "acme_client_int.h"
#include "acme_jose.h"
#include "acme_problem.h"

/* ------------------------------------------------------------------ orders */

/* Every URL of an order, before any of them is used or stored. */
static apr_status_t order_check_urls(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                     const char *what, acme_result_t *res)
{
    apr_status_t rv = acme_client_check_origin(c, p, what, "the order URL", order->url, res);

    for (int i = 0; rv == APR_SUCCESS && i < order->authz_urls->nelts; ++i) {
        rv = acme_client_check_origin(c, p, what, "authorization",
                                      str_array_item(order->authz_urls, i), res);
    }
    if (rv == APR_SUCCESS && order->finalize_url) {
        rv = acme_client_check_origin(c, p, what, "finalize URL", order->finalize_url, res);
    }
    if (rv == APR_SUCCESS && order->certificate_url) {
        rv = acme_client_check_origin(c, p, what, "certificate URL", order->certificate_url, res);
    }
    return rv;
}

/* The CA's answer becomes the order only when it is a valid order whose URLs are the CA's. */
static apr_status_t order_take(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                               const char *what, const acme_http_response_t *resp,
                               acme_result_t *res)
{
    acme_order_t next = *order;
    apr_status_t rv;

    if (!order->url) {
        /* newOrder: its Location is the order's URL from now on. */
        next.url = apr_pstrdup(p, resp->location);
        next.account_url = apr_pstrdup(p, c->account_url);
    }
    rv = acme_order_update(&next, p, resp->body, resp->body_len, res);

    if (rv != APR_SUCCESS) {
        res->message = apr_psprintf(p, "%s: %s%s", what, res->message,
                                    acme_client_body_note(p, resp));
        res->http_status = resp->status;
        return rv;
    }
    rv = order_check_urls(c, p, &next, what, res);
    if (rv == APR_SUCCESS) {
        next.retry_after = resp->retry_after;
        *order = next;
    }
    return rv;
}

static json_t *identifiers_json(const apr_array_header_t *idents)
{
    json_t *list = json_array();

    for (int i = 0; i < idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(idents, i, acme_ident_t);

        json_array_append_new(list, json_pack("{s:s, s:s}",
                                              "type", acme_order_ident_type_name(id->type),
                                              "value", id->value));
    }
    return list;
}

static const char *idents_text(apr_pool_t *p, const apr_array_header_t *idents)
{
    const char *text = "";

    for (int i = 0; i < idents->nelts; ++i) {
        text = apr_pstrcat(p, text, i ? "," : "", APR_ARRAY_IDX(idents, i, acme_ident_t).value,
                           NULL);
    }
    return text;
}

static int profile_offered(const acme_client_meta_t *meta, const char *name)
{
    for (int i = 0; i < meta->profiles->nelts; ++i) {
        if (strcmp(APR_ARRAY_IDX(meta->profiles, i, acme_client_profile_t).name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t order_post_new(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                   acme_http_response_t **resp, acme_result_t *res)
{
    json_t *payload = json_pack("{s:o}", "identifiers", identifiers_json(order->identifiers));
    client_post_t req = { .url = c->dir->new_order };

    if (order->profile) {
        json_object_set_new(payload, "profile", json_string(order->profile));
    }
    if (order->replaces) {
        json_object_set_new(payload, "replaces", json_string(order->replaces));
    }
    req.payload = acme_client_payload(p, payload);
    req.what = apr_psprintf(p, "newOrder for %s", idents_text(p, order->identifiers));
    return acme_client_post_signed(c, p, &req, resp, res);
}

apr_status_t acme_client_order_new(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                   acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!order->identifiers || order->identifiers->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, "newOrder: no identifiers");
    }
    if (order->profile && !profile_offered(&c->dir->meta, order->profile)) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the CA %s does not offer the profile \"%s\"",
                                             c->directory_url, order->profile));
    }
    if (order->replaces && !c->dir->meta.renewal_info) {
        order->replaces = NULL;
    }
    rv = order_post_new(c, p, order, &resp, res);
    if (rv != APR_SUCCESS && order->replaces && res->http_status >= 400 && res->http_status < 500
        && !acme_problem_is(res, "rateLimited")) {
        /* The CA refused the link (alreadyReplaced: someone, maybe our own earlier run, renewed
         * it; malformed: it does not know the certificate): order once more without it. */
        order->replaces = NULL;
        rv = order_post_new(c, p, order, &resp, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!resp->location) {
        return acme_client_bad_answer(res, p, "newOrder (no Location)", resp);
    }
    order->url = NULL;
    return order_take(c, p, order, apr_psprintf(p, "newOrder for %s",
                                                idents_text(p, order->identifiers)), resp, res);
}

apr_status_t acme_client_order_refresh(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                       acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    if (!order->url) {
        acme_result_reset(res);
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "order refresh: the order was never created");
    }
    rv = acme_client_post_as_get(c, p, apr_psprintf(p, "order %s", order->url), order->url,
                                 &resp, res);
    if (rv != APR_SUCCESS) {
        if (rv == APR_ENOENT) {
            res->err_class = ACME_CLASS_PERMANENT;
        }
        return rv;
    }
    return order_take(c, p, order, apr_psprintf(p, "order %s", order->url), resp, res);
}

static apr_status_t parse_challenges(apr_pool_t *p, json_t *list, apr_array_header_t *out)
{
    size_t i;
    json_t *item;

    /* Absent is no challenge to answer; anything but an array is not the CA's object. */
    if (list && !json_is_array(list)) {
        return APR_EINVAL;
    }
    json_array_foreach(list, i, item) {
        acme_client_challenge_t *chal;

        if (!json_string_value(json_object_get(item, "type"))
            || !json_string_value(json_object_get(item, "url"))) {
            return APR_EINVAL;
        }
        chal = apr_array_push(out);
        chal->type = acme_client_json_str(p, item, "type");
        chal->url = acme_client_json_str(p, item, "url");
        chal->token = acme_client_json_str(p, item, "token");
        chal->status = acme_client_json_str(p, item, "status");
        chal->error = acme_client_json_text(p, json_object_get(item, "error"));
        if (json_object_get(item, "issuerDomainNames")) {
            chal->issuer_domain_names = acme_client_issuer_names(p, json_object_get(item,
                                                                 "issuerDomainNames"));
        }
    }
    return APR_SUCCESS;
}

apr_status_t acme_client_authz_parse(apr_pool_t *p, const char *url, const char *json,
                                     apr_size_t len, acme_client_authz_t **out,
                                     acme_result_t *res)
{
    json_t *doc = json_loadb(json ? json : "", len, 0, NULL);
    json_t *ident = json_object_get(doc, "identifier");
    acme_client_authz_t *authz = apr_pcalloc(p, sizeof(*authz));
    const char *type = json_string_value(json_object_get(ident, "type"));
    apr_status_t rv = APR_EINVAL;

    authz->url = url ? apr_pstrdup(p, url) : NULL;
    authz->challenges = apr_array_make(p, 3, sizeof(acme_client_challenge_t));
    if (json_is_object(doc) && type && json_string_value(json_object_get(ident, "value"))
        && (strcmp(type, "dns") == 0 || strcmp(type, "ip") == 0)
        && json_string_value(json_object_get(doc, "status"))) {
        authz->identifier.type = strcmp(type, "ip") == 0 ? ACME_IDENT_IP : ACME_IDENT_DNS;
        authz->identifier.value = acme_client_json_str(p, ident, "value");
        authz->status = acme_client_json_str(p, doc, "status");
        authz->wildcard = json_is_true(json_object_get(doc, "wildcard"));
        authz->expires = acme_client_json_str(p, doc, "expires");
        rv = parse_challenges(p, json_object_get(doc, "challenges"), authz->challenges);
    }
    json_decref(doc);
    if (rv != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "authorization %s: not a valid authorization "
                                             "object", url ? url : "?"));
    }
    *out = authz;
    return APR_SUCCESS;
}

apr_status_t acme_client_authz_get(acme_client_t *c, apr_pool_t *p, const char *url,
                                   acme_client_authz_t **authz, acme_result_t *res)
{
    const char *what = apr_psprintf(p, "authorization %s", url);
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = acme_client_post_as_get(c, p, what, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_client_authz_parse(p, url, resp->body, resp->body_len, authz, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_pstrcat(p, res->message, acme_client_body_note(p, resp), NULL);
        res->http_status = resp->status;
        return rv;
    }
    /* Refused before anything is provisioned for it, not only when we would answer it. */
    for (int i = 0; i < (*authz)->challenges->nelts; ++i) {
        const acme_client_challenge_t *chal =
            &APR_ARRAY_IDX((*authz)->challenges, i, acme_client_challenge_t);

        rv = acme_client_check_origin(c, p, what, apr_pstrcat(p, chal->type, " challenge", NULL),
                                      chal->url, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t acme_client_order_authzs(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                      apr_array_header_t **out, acme_result_t *res)
{
    apr_array_header_t *authzs = apr_array_make(p, order->authz_urls->nelts,
                                                sizeof(acme_client_authz_t *));

    acme_result_reset(res);
    for (int i = 0; i < order->authz_urls->nelts; ++i) {
        acme_client_authz_t *authz;
        apr_status_t rv = acme_client_authz_get(c, p, str_array_item(order->authz_urls, i),
                                                &authz, res);

        if (rv != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(authzs, acme_client_authz_t *) = authz;
    }
    *out = authzs;
    return APR_SUCCESS;
}

const acme_client_challenge_t *acme_client_authz_challenge(const acme_client_authz_t *authz,
                                                           const char *type)
{
    for (int i = 0; i < authz->challenges->nelts; ++i) {
        const acme_client_challenge_t *chal =
            &APR_ARRAY_IDX(authz->challenges, i, acme_client_challenge_t);

        if (strcmp(chal->type, type) == 0) {
            return chal;
        }
    }
    return NULL;
}

apr_status_t acme_client_key_authorization(acme_client_t *c, apr_pool_t *p, const char *token,
                                           const char **key_authz, acme_result_t *res)
{
    acme_result_reset(res);
    if (!c->account_key) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "key authorization: no account key");
    }
    if (!c->thumbprint) {
        const char *thumb;
        apr_status_t rv = acme_jose_thumbprint(c->pool, c->account_key, &thumb, res);

        if (rv != APR_SUCCESS) {
            return rv;
        }
        c->thumbprint = thumb;
    }
    *key_authz = acme_jose_key_authorization(p, token, c->thumbprint);
    return APR_SUCCESS;
}

const char *acme_client_dns01_value(apr_pool_t *p, const char *key_authz)
{
    unsigned char digest[32];

    acme_crypto_sha256(key_authz, strlen(key_authz), digest);
    return acme_b64_encode(p, digest, sizeof(digest));
}

static apr_status_t challenge_failed(acme_result_t *res, apr_pool_t *p,
                                     const acme_client_challenge_t *chal, const char *what)
{
    return acme_problem_from_json(res, p, what, chal->error,
                                  chal->error ? strlen(chal->error) : 0, ACME_CLASS_PERMANENT);
}

apr_status_t acme_client_challenge_respond(acme_client_t *c, apr_pool_t *p,
                                           const acme_client_challenge_t *chal,
                                           acme_result_t *res)
{
    client_post_t req = { .url = chal->url, .payload = "{}" };
    acme_http_response_t *resp;

    acme_result_reset(res);
    req.what = apr_psprintf(p, "%s challenge %s", chal->type, chal->url);
    if (chal->status && (strcmp(chal->status, "valid") == 0
                         || strcmp(chal->status, "processing") == 0)) {
        return APR_SUCCESS;
    }
    if (chal->status && strcmp(chal->status, "invalid") == 0) {
        return challenge_failed(res, p, chal, apr_psprintf(p, "%s already failed", req.what));
    }
    return acme_client_post_signed(c, p, &req, &resp, res);
}

static int order_in_flight(const acme_order_t *order)
{
    return order->status == ACME_ORDER_PENDING || order->status == ACME_ORDER_PROCESSING;
}

apr_status_t acme_client_order_explain(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                       acme_result_t *res)
{
    const char *what = apr_psprintf(p, "order %s for %s is invalid", order->url,
                                    idents_text(p, order->identifiers));

    /* Only authorizations that went wrong say which name and which check failed. */
    for (int i = 0; i < order->authz_urls->nelts; ++i) {
        acme_client_authz_t *authz;
        acme_result_t ares;

        if (acme_client_authz_get(c, p, str_array_item(order->authz_urls, i), &authz, &ares)
            != APR_SUCCESS || strcmp(authz->status, "invalid") != 0) {
            continue;
        }
        for (int j = 0; j < authz->challenges->nelts; ++j) {
            const acme_client_challenge_t *chal =
                &APR_ARRAY_IDX(authz->challenges, j, acme_client_challenge_t);

            if (chal->error) {
                return challenge_failed(res, p, chal,
                                        apr_psprintf(p, "%s: %s validation of %s failed", what,
                                                     chal->type, authz->identifier.value));
            }
        }
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "%s: authorization of %s is invalid", what,
                                             authz->identifier.value));
    }
    if (order->error) {
        return acme_problem_from_json(res, p, what, order->error, strlen(order->error),
                                      ACME_CLASS_PERMANENT);
    }
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_PERMANENT, what);
}

/*
 * Without a Retry-After, poll soon and then less often: a CA that validates in
 * milliseconds is not kept waiting a whole second, a slow one is not polled
 * more than once per poll_interval.
 */
static apr_interval_time_t poll_delay(const acme_client_t *c, const acme_order_t *order,
                                      apr_time_t now, int polls)
{
    apr_interval_time_t delay = CLIENT_POLL_FIRST << (polls < 16 ? polls : 16);

    if (order->retry_after) {
        delay = order->retry_after - now;
    }
    else if (delay > c->opts.poll_interval) {
        delay = c->opts.poll_interval;
    }
    return delay < CLIENT_POLL_STEP_MIN ? CLIENT_POLL_STEP_MIN : delay;
}

apr_status_t acme_client_order_wait(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                    acme_result_t *res)
{
    return acme_client_order_wait_after(c, p, order, 0, res);
}

apr_status_t acme_client_order_wait_after(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                          int polls, acme_result_t *res)
{
    apr_time_t start = apr_time_now();
    apr_time_t deadline = start + c->opts.poll_timeout;
    apr_status_t rv;

    acme_result_reset(res);
    while (order_in_flight(order)) {
        apr_time_t now = apr_time_now();
        apr_interval_time_t delay = poll_delay(c, order, now, polls++);

        /* Never poll before the CA said; hand a long wait back to the caller instead. */
        if (delay > c->opts.poll_step_max || now + delay > deadline) {
            acme_result_fail(res, APR_TIMEUP,
                             order->retry_after ? ACME_CLASS_RETRY_AFTER : ACME_CLASS_RETRY_SOON,
                             apr_psprintf(p, "order %s still %s after %" APR_TIME_T_FMT " s; "
                                          "poll again in %" APR_TIME_T_FMT " s", order->url,
                                          acme_order_status_name(order->status),
                                          apr_time_sec(now - start), apr_time_sec(delay)));
            res->retry_after = now + delay;
            return res->status;
        }
        apr_sleep(delay);
        rv = acme_client_order_refresh(c, p, order, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (order->status == ACME_ORDER_INVALID) {
        return acme_client_order_explain(c, p, order, res);
    }
    return APR_SUCCESS;
}

static apr_status_t same_key(apr_pool_t *p, const acme_key_t *a, const acme_key_t *b, int *same,
                             acme_result_t *res)
{
    const char *ta, *tb;
    apr_status_t rv = acme_jose_thumbprint(p, a, &ta, res);

    if (rv == APR_SUCCESS) {
        rv = acme_jose_thumbprint(p, b, &tb, res);
    }
    if (rv == APR_SUCCESS) {
        *same = strcmp(ta, tb) == 0;
    }
    return rv;
}

static apr_status_t finalize_post(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                  const char *payload, acme_result_t *res)
{
    client_post_t req = { .url = order->finalize_url, .payload = payload };
    acme_http_response_t *resp;
    apr_status_t rv;

    req.what = apr_psprintf(p, "finalize of order %s", order->url);
    rv = acme_client_post_signed(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return order_take(c, p, order, req.what, resp, res);
}

/* {"csr": base64url(der)}: what every finalize sends. */
static const char *csr_payload(apr_pool_t *p, const unsigned char *der, apr_size_t der_len)
{
    return acme_client_payload(p, json_pack("{s:s}", "csr", acme_b64_encode(p, der, der_len)));
}

/* The finalize payload: a CSR for exactly the order's identifiers, signed by cert_key. */
static apr_status_t finalize_payload(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                     const acme_key_t *cert_key, const char **payload,
                                     acme_result_t *res)
{
    unsigned char *der;
    apr_size_t der_len;
    int same = 0;
    apr_status_t rv;

    if (c->account_key && same_key(p, cert_key, c->account_key, &same, res) != APR_SUCCESS) {
        return res->status;
    }
    if (same) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "the certificate key must not be the account key");
    }
    rv = acme_crypto_csr_create(p, cert_key, (const acme_ident_t *)order->identifiers->elts,
                                order->identifiers->nelts, &der, &der_len, res);
    if (rv == APR_SUCCESS) {
        *payload = csr_payload(p, der, der_len);
    }
    return rv;
}

/*
 * The early finalize: sent when the first poll would have been. Whatever refuses it (the CA
 * has not validated yet: orderNotReady; or anything else) leaves the order pending for the
 * wait, and is not counted as a failed request: it is the expected answer of a slower CA.
 */
static apr_status_t finalize_early(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                   const char *payload, apr_time_t answered, acme_result_t *res)
{
    apr_time_t at = answered + CLIENT_POLL_FIRST, now = apr_time_now();
    unsigned failed = c->counts.failed;

    if (now < at) {
        apr_sleep(at - now);
    }
    if (finalize_post(c, p, order, payload, res) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    c->counts.failed = failed;
    order->status = ACME_ORDER_PENDING;
    acme_result_reset(res);
    return APR_SUCCESS;
}

apr_status_t acme_client_order_finalize_early(acme_client_t *c, apr_pool_t *p,
                                              acme_order_t *order, const acme_key_t *cert_key,
                                              apr_time_t answered, acme_result_t *res)
{
    const char *payload = NULL;

    acme_result_reset(res);
    if (order->status != ACME_ORDER_PENDING || !order->finalize_url) {
        return APR_SUCCESS;
    }
    if (finalize_payload(c, p, order, cert_key, &payload, res) != APR_SUCCESS) {
        return res->status;
    }
    return finalize_early(c, p, order, payload, answered, res);
}

apr_status_t acme_client_order_finalize_early_csr(acme_client_t *c, apr_pool_t *p,
                                                  acme_order_t *order, const unsigned char *der,
                                                  apr_size_t der_len, apr_time_t answered,
                                                  acme_result_t *res)
{
    acme_result_reset(res);
    if (order->status != ACME_ORDER_PENDING || !order->finalize_url) {
        return APR_SUCCESS;
    }
    return finalize_early(c, p, order, csr_payload(p, der, der_len), answered, res);
}

apr_status_t acme_client_order_finalize(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                        const acme_key_t *cert_key, acme_result_t *res)
{
    const char *payload = NULL;
    apr_status_t rv;

    acme_result_reset(res);
    if (order->status == ACME_ORDER_PROCESSING || order->status == ACME_ORDER_VALID) {
        return APR_SUCCESS;
    }
    if (order->status != ACME_ORDER_READY || !order->finalize_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "order %s is %s, not ready to finalize",
                                             order->url, acme_order_status_name(order->status)));
    }
    if (finalize_payload(c, p, order, cert_key, &payload, res) != APR_SUCCESS) {
        return res->status;
    }
    rv = finalize_post(c, p, order, payload, res);
    if (rv == APR_SUCCESS || !acme_problem_is(res, "orderNotReady")) {
        return rv;
    }
    /* Our idea of the order was stale: act on what the CA says it is now. */
    {
        acme_result_t first = *res;

        if (acme_client_order_refresh(c, p, order, res) != APR_SUCCESS) {
            return res->status;
        }
        if (order->status == ACME_ORDER_READY) {
            return finalize_post(c, p, order, payload, res);
        }
        if (order->status == ACME_ORDER_PROCESSING || order->status == ACME_ORDER_VALID) {
            return APR_SUCCESS;
        }
        *res = first;
        res->err_class = ACME_CLASS_PERMANENT;
        return res->status;
    }
}

/*
 * Finalize with a CSR someone else made (the certificate API): the key stays with them. Same
 * orderNotReady handling as acme_client_order_finalize.
 */
apr_status_t acme_client_order_finalize_csr(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                            const unsigned char *der, apr_size_t der_len,
                                            acme_result_t *res)
{
    const char *payload;
    apr_status_t rv;

    acme_result_reset(res);
    if (order->status == ACME_ORDER_PROCESSING || order->status == ACME_ORDER_VALID) {
        return APR_SUCCESS;
    }
    if (order->status != ACME_ORDER_READY || !order->finalize_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "order %s is %s, not ready to finalize",
                                             order->url, acme_order_status_name(order->status)));
    }
    payload = csr_payload(p, der, der_len);
    rv = finalize_post(c, p, order, payload, res);
    if (rv == APR_SUCCESS || !acme_problem_is(res, "orderNotReady")) {
        return rv;
    }
    if (acme_client_order_refresh(c, p, order, res) != APR_SUCCESS) {
        return res->status;
    }
    if (order->status == ACME_ORDER_READY) {
        return finalize_post(c, p, order, payload, res);
    }
    if (order->status == ACME_ORDER_PROCESSING || order->status == ACME_ORDER_VALID) {
        return APR_SUCCESS;
    }
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, apr_psprintf(p,
        "order %s is %s after orderNotReady", order->url,
        acme_order_status_name(order->status)));
}
