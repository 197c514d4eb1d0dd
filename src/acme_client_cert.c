/*
 * Certificates of an RFC 8555 client: download of the chain (and the alternates the CA
 * offers), revocation, and ARI renewal information.
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

/* ------------------------------------------------------------------ certificates */

static int issuer_matches(const char *cn, const char *wanted)
{
    apr_size_t n = strlen(wanted);

    for (const char *s = cn; s && *s; ++s) {
        if (strncasecmp(s, wanted, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Fetches and checks one chain. */
static apr_status_t chain_fetch(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                const acme_key_t *cert_key, const char *url,
                                acme_client_chain_t **out, acme_http_response_t **resp_out,
                                acme_result_t *res)
{
    acme_client_chain_t *chain = apr_pcalloc(p, sizeof(*chain));
    acme_http_response_t *resp;
    acme_cert_info_t info;
    const acme_cert_t *leaf, *top;
    const char *what = apr_psprintf(p, "certificate %s", url);
    apr_status_t rv;

    rv = acme_client_post_as_get(c, p, what, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_crypto_chain_parse(p, resp->body, resp->body_len, &chain->certs, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_pstrcat(p, res->message ? res->message : "invalid",
                                   acme_client_body_note(p, resp), NULL);
    }
    else {
        leaf = APR_ARRAY_IDX(chain->certs, 0, const acme_cert_t *);
        top = APR_ARRAY_IDX(chain->certs, chain->certs->nelts - 1, const acme_cert_t *);
        if (cert_key && acme_crypto_key_matches_cert(cert_key, leaf, res) != APR_SUCCESS) {
            /* Someone else's certificate: installing it would break TLS for every client. */
            rv = res->status;
            res->message = "the leaf certificate is for another key than the one in our CSR";
        }
        if (rv == APR_SUCCESS) {
            rv = acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)order->identifiers->elts,
                                         order->identifiers->nelts, res);
            if (rv != APR_SUCCESS) {
                res->message = apr_psprintf(p, "the leaf certificate is not for the names "
                                            "ordered: %s", res->message);
            }
        }
        if (rv == APR_SUCCESS) {
            rv = acme_crypto_chain_check(p, chain->certs, res);
        }
        if (rv == APR_SUCCESS) {
            rv = acme_crypto_cert_info(p, top, &info, res);
        }
    }
    if (rv != APR_SUCCESS) {
        res->err_class = ACME_CLASS_PERMANENT;
        res->message = apr_psprintf(p, "%s is unusable: %s", what,
                                    res->message ? res->message : "invalid");
        return rv;
    }
    chain->pem = resp->body;
    chain->pem_len = resp->body_len;
    chain->url = apr_pstrdup(p, url);
    chain->top_issuer_cn = info.issuer_cn;
    *out = chain;
    *resp_out = resp;
    return APR_SUCCESS;
}

apr_status_t acme_client_cert_download(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                       const acme_key_t *cert_key, const char *preferred_issuer,
                                       acme_client_chain_t **out, acme_result_t *res)
{
    acme_client_chain_t *chain;
    acme_http_response_t *resp;
    apr_array_header_t *alternates;
    apr_status_t rv;

    acme_result_reset(res);
    if (order->status != ACME_ORDER_VALID || !order->certificate_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "order %s is %s: no certificate to download",
                                             order->url, acme_order_status_name(order->status)));
    }
    rv = chain_fetch(c, p, order, cert_key, order->certificate_url, &chain, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    alternates = acme_http_links(resp, "alternate", p);
    chain->n_alternates = alternates->nelts;
    *out = chain;
    if (!preferred_issuer || !*preferred_issuer) {
        return APR_SUCCESS;
    }
    if (issuer_matches(chain->top_issuer_cn, preferred_issuer)) {
        chain->preferred_found = 1;
        return APR_SUCCESS;
    }
    for (int i = 0; i < alternates->nelts; ++i) {
        acme_client_chain_t *alt;
        acme_http_response_t *alt_resp;
        acme_result_t ares;

        /* A broken alternate is no reason to give up the good default. */
        if (chain_fetch(c, p, order, cert_key, str_array_item(alternates, i), &alt, &alt_resp,
                        &ares) != APR_SUCCESS) {
            continue;
        }
        if (issuer_matches(alt->top_issuer_cn, preferred_issuer)) {
            alt->n_alternates = chain->n_alternates;
            alt->is_alternate = 1;
            alt->preferred_found = 1;
            *out = alt;
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS;
}

apr_status_t acme_client_cert_revoke(acme_client_t *c, apr_pool_t *p, const char *cert_pem,
                                     apr_size_t len, int reason, const acme_key_t *cert_key,
                                     acme_result_t *res)
{
    apr_array_header_t *certs;
    unsigned char *der;
    apr_size_t der_len;
    acme_cert_info_t info;
    json_t *payload;
    client_post_t req = { .key = cert_key, .embed_jwk = cert_key != NULL };
    acme_http_response_t *resp;
    const acme_cert_t *leaf;
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!c->dir->revoke_cert) {
        return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the CA %s offers no revokeCert",
                                             c->directory_url));
    }
    rv = acme_crypto_chain_parse(p, cert_pem, len, &certs, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    leaf = APR_ARRAY_IDX(certs, 0, const acme_cert_t *);
    if ((rv = acme_crypto_cert_der(p, leaf, &der, &der_len, res)) != APR_SUCCESS
        || (rv = acme_crypto_cert_info(p, leaf, &info, res)) != APR_SUCCESS) {
        return rv;
    }
    payload = json_pack("{s:s}", "certificate", acme_b64_encode(p, der, der_len));
    if (reason >= 0) {
        json_object_set_new(payload, "reason", json_integer(reason));
    }
    req.url = c->dir->revoke_cert;
    req.payload = acme_client_payload(p, payload);
    req.what = apr_psprintf(p, "revocation of certificate %s", info.serial_hex);
    rv = acme_client_post_signed(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS && acme_problem_is(res, "alreadyRevoked")) {
        acme_result_reset(res);
        return APR_SUCCESS;
    }
    return rv;
}

/* ------------------------------------------------------------------ ARI */

static int digits(const char *s, int n, int *value)
{
    *value = 0;
    for (int i = 0; i < n; ++i) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
        *value = *value * 10 + (s[i] - '0');
    }
    return 1;
}

apr_status_t acme_client_parse_time(const char *s, apr_time_t *t)
{
    apr_time_exp_t tm = { 0 };
    int y, mo, d, h, mi, sec, usec = 0, off = 0, oh, om;
    apr_time_t when;

    if (!s || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo)
        || s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't')
        || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':'
        || !digits(s + 17, 2, &sec)) {
        return APR_EINVAL;
    }
    s += 19;
    if (*s == '.') {
        int scale = 100000;

        if (!apr_isdigit(s[1])) {
            return APR_EINVAL;
        }
        for (++s; apr_isdigit(*s); ++s, scale /= 10) {
            usec += (*s - '0') * scale;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        ++s;
    }
    else if ((*s == '+' || *s == '-') && digits(s + 1, 2, &oh) && s[3] == ':'
             && digits(s + 4, 2, &om) && oh < 24 && om < 60) {
        off = (*s == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        s += 6;
    }
    else {
        return APR_EINVAL;
    }
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return APR_EINVAL;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec > 59 ? 59 : sec;    /* a leap second counts as its neighbour */
    tm.tm_usec = usec;
    if (apr_time_exp_gmt_get(&when, &tm) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    *t = when - apr_time_from_sec(off);
    return APR_SUCCESS;
}

apr_status_t acme_client_renewal_info_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                            apr_time_t retry_after,
                                            acme_client_renewal_info_t *info,
                                            acme_result_t *res)
{
    json_t *doc = json_loadb(json ? json : "", len, 0, NULL);
    json_t *window = json_object_get(doc, "suggestedWindow");
    apr_status_t rv = APR_EINVAL;

    *info = (acme_client_renewal_info_t){ .retry_after = retry_after };
    if (json_is_object(window)
        && acme_client_parse_time(json_string_value(json_object_get(window, "start")),
                                  &info->start) == APR_SUCCESS
        && acme_client_parse_time(json_string_value(json_object_get(window, "end")),
                                  &info->end) == APR_SUCCESS
        && info->end > info->start) {
        info->explanation_url = acme_client_json_str(p, doc, "explanationURL");
        rv = APR_SUCCESS;
    }
    json_decref(doc);
    if (rv != APR_SUCCESS) {
        /* RFC 9773 §4.3.3: a broken answer is a long-term error. */
        return acme_result_fail(res, rv, ACME_CLASS_PERMANENT,
                                "renewalInfo: no valid suggestedWindow (start before end, "
                                "RFC 3339 times)");
    }
    return APR_SUCCESS;
}

apr_status_t acme_client_renewal_info(acme_client_t *c, apr_pool_t *p, const char *cert_id,
                                      acme_client_renewal_info_t *info, acme_result_t *res)
{
    acme_http_response_t *resp;
    const char *base, *url;
    apr_size_t n;
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    base = c->dir->meta.renewal_info;
    if (!base) {
        return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "the CA %s offers no renewalInfo (ARI)",
                                             c->directory_url));
    }
    n = strlen(base);
    url = apr_pstrcat(p, base, (n && base[n - 1] == '/') ? "" : "/", cert_id, NULL);
    rv = acme_client_get_url(c, p, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (acme_client_is_failure(resp)) {
        return acme_client_answer_failed(res, p, apr_psprintf(p, "GET renewalInfo %s", url), resp);
    }
    rv = acme_client_renewal_info_parse(p, resp->body, resp->body_len, resp->retry_after, info,
                                        res);
    if (rv != APR_SUCCESS) {
        res->message = apr_psprintf(p, "GET %s: %s", url, res->message);
        res->http_status = resp->status;
    }
    return rv;
}
