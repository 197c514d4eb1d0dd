/*
 * The account of an RFC 8555 client: registration (with terms of service and external
 * account binding), lookup, contact updates, deactivation and key change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "acme_client.h"
#include "acme_client_int.h"
#include "acme_jose.h"
#include "acme_problem.h"

/* ------------------------------------------------------------------ account */

void acme_client_account_use(acme_client_t *c, const acme_key_t *key, const char *account_url)
{
    c->account_key = key;
    c->account_url = account_url ? apr_pstrdup(c->pool, account_url) : NULL;
    c->thumbprint = NULL;
}

const char *acme_client_account_url(const acme_client_t *c)
{
    return c->account_url;
}

const acme_key_t *acme_client_account_key(const acme_client_t *c)
{
    return c->account_key;
}

static acme_client_account_t *account_from(acme_client_t *c, apr_pool_t *p,
                                           const acme_http_response_t *resp)
{
    acme_client_account_t *acct = apr_pcalloc(p, sizeof(*acct));
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);

    acct->url = c->account_url;
    acct->status = acme_client_json_str(p, doc, "status");
    acct->contact = acme_client_json_text(p, json_object_get(doc, "contact"));
    acct->orders = acme_client_json_str(p, doc, "orders");
    acct->created = resp->status == 201;
    json_decref(doc);
    return acct;
}

static apr_status_t account_new(acme_client_t *c, apr_pool_t *p, const char *what,
                                json_t *payload, acme_client_account_t **acct,
                                acme_result_t *res)
{
    client_post_t req = { .what = what, .url = c->dir->new_account,
                          .payload = acme_client_payload(p, payload), .embed_jwk = 1 };
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = acme_client_post_signed(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!resp->location) {
        return acme_client_bad_answer(res, p, apr_psprintf(p, "%s (no Location)", what), resp);
    }
    c->account_url = apr_pstrdup(c->pool, resp->location);
    if (acct) {
        *acct = account_from(c, p, resp);
    }
    return APR_SUCCESS;
}

static json_t *contact_json(const char *const *contact, int n)
{
    json_t *list = json_array();

    for (int i = 0; i < n; ++i) {
        json_array_append_new(list, json_string(contact[i]));
    }
    return list;
}

/* Adds the external account binding to a newAccount payload when there is one to add. */
static apr_status_t account_bind(acme_client_t *c, apr_pool_t *p,
                                 const acme_client_account_params_t *params, json_t *payload,
                                 int *bound, acme_result_t *res)
{
    json_t *eab = NULL;
    apr_status_t rv;

    *bound = 0;
    if (!params->eab_kid || !params->eab_hmac
        || (params->eab_only_if_required && !c->dir->meta.external_account_required)) {
        return APR_SUCCESS;
    }
    rv = acme_jose_sign_eab(p, c->account_key, params->eab_kid, params->eab_hmac,
                            params->eab_alg, c->dir->new_account, &eab, res);
    if (rv == APR_SUCCESS) {
        json_object_set_new(payload, "externalAccountBinding", eab);
        *bound = 1;
    }
    return rv;
}

apr_status_t acme_client_account_register(acme_client_t *c, apr_pool_t *p,
                                          const acme_client_account_params_t *params,
                                          acme_client_account_t **acct, acme_result_t *res)
{
    const acme_client_account_params_t none = { 0 };
    json_t *payload;
    apr_status_t rv;
    int bound = 0;

    acme_result_reset(res);
    params = params ? params : &none;
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (c->dir->meta.terms_of_service && !params->agree_tos) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the CA %s asks to agree to its terms of "
                                             "service (%s) before creating an account: read "
                                             "them, then add ACMEAgreement accepted",
                                             c->directory_url, c->dir->meta.terms_of_service));
    }
    if (c->dir->meta.external_account_required && !(params->eab_kid && params->eab_hmac)) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the CA %s requires external account binding: "
                                             "configure the key id and HMAC key it gave you "
                                             "(ACMEExternalAccountBinding key-id hmac-file)",
                                             c->directory_url));
    }
    payload = json_object();
    if (params->agree_tos) {
        json_object_set_new(payload, "termsOfServiceAgreed", json_true());
    }
    if (params->n_contact > 0) {
        json_object_set_new(payload, "contact", contact_json(params->contact, params->n_contact));
    }
    if ((rv = account_bind(c, p, params, payload, &bound, res)) != APR_SUCCESS) {
        json_decref(payload);
        return rv;
    }
    rv = account_new(c, p, apr_psprintf(p, "newAccount at %s", c->dir->new_account), payload,
                     acct, res);
    if (rv != APR_SUCCESS && bound
        && (acme_problem_is(res, "unauthorized") || acme_problem_is(res, "malformed")
            || acme_problem_is(res, "externalAccountRequired"))) {
        /* The usual cause is a wrong kid or HMAC key: say so, without the key. */
        res->err_class = ACME_CLASS_ADMIN;
        res->message = apr_psprintf(p, "newAccount at %s refused the external account binding "
                                    "(key id \"%s\"): check the EAB key id and HMAC key; a CA "
                                    "that accepts each binding only once needs a new one from "
                                    "it for a new account (HTTP %d)", c->dir->new_account,
                                    params->eab_kid, res->http_status);
    }
    return rv;
}

apr_status_t acme_client_account_find(acme_client_t *c, apr_pool_t *p,
                                      acme_client_account_t **acct, acme_result_t *res)
{
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return account_new(c, p, apr_psprintf(p, "account lookup at %s", c->dir->new_account),
                       json_pack("{s:b}", "onlyReturnExisting", 1), acct, res);
}

apr_status_t acme_client_account_get(acme_client_t *c, apr_pool_t *p,
                                     acme_client_account_t **acct, acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = acme_client_post_as_get(c, p, apr_psprintf(p, "account %s",
                                                    c->account_url ? c->account_url : "?"),
                                 c->account_url, &resp, res);
    if (rv == APR_SUCCESS) {
        *acct = account_from(c, p, resp);
    }
    return rv;
}

static apr_status_t account_post(acme_client_t *c, apr_pool_t *p, const char *what,
                                 json_t *payload, acme_client_account_t **acct,
                                 acme_result_t *res)
{
    client_post_t req = { .what = what, .url = c->account_url,
                          .payload = acme_client_payload(p, payload) };
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = acme_client_post_signed(c, p, &req, &resp, res);
    if (rv == APR_SUCCESS && acct) {
        *acct = account_from(c, p, resp);
    }
    return rv;
}

apr_status_t acme_client_account_update(acme_client_t *c, apr_pool_t *p,
                                        const char *const *contact, int n_contact,
                                        acme_client_account_t **acct, acme_result_t *res)
{
    return account_post(c, p, apr_psprintf(p, "contact update of account %s",
                                           c->account_url ? c->account_url : "?"),
                        json_pack("{s:o}", "contact", contact_json(contact, n_contact)), acct,
                        res);
}

apr_status_t acme_client_account_deactivate(acme_client_t *c, apr_pool_t *p,
                                            acme_result_t *res)
{
    return account_post(c, p, apr_psprintf(p, "deactivation of account %s",
                                           c->account_url ? c->account_url : "?"),
                        json_pack("{s:s}", "status", "deactivated"), NULL, res);
}

apr_status_t acme_client_account_key_change(acme_client_t *c, apr_pool_t *p,
                                            const acme_key_t *new_key, acme_result_t *res)
{
    json_t *old_jwk;
    const char *inner;
    client_post_t req = { 0 };
    acme_http_response_t *resp = NULL;
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!c->dir->key_change) {
        return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the CA %s offers no keyChange",
                                             c->directory_url));
    }
    if (!c->account_key || !c->account_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "key change: no account to change the key of");
    }
    rv = acme_jose_jwk(p, c->account_key, &old_jwk, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* The inner JWS: new key, its jwk, same url, no nonce (RFC 8555 §7.3.5). */
    rv = acme_jose_sign(p, new_key,
                        acme_client_payload(p, json_pack("{s:s, s:o}", "account", c->account_url,
                                                         "oldKey", old_jwk)),
                        c->dir->key_change, NULL, NULL, &inner, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    req.what = apr_psprintf(p, "key change of account %s", c->account_url);
    req.url = c->dir->key_change;
    req.payload = inner;
    rv = acme_client_post_signed(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS) {
        if (res->http_status == 409) {
            res->err_class = ACME_CLASS_ADMIN;
            res->message = apr_psprintf(p, "%s: the new key already belongs to account %s",
                                        req.what, resp && resp->location ? resp->location
                                                                         : "(unknown)");
        }
        return rv;
    }
    c->account_key = new_key;
    c->thumbprint = NULL;
    return APR_SUCCESS;
}
