/*
 * The transport of the RFC 8555 client: creation, the directory (fetched once), the nonce pool,
 * signed requests re-sent after badNonce, and the helpers that judge a CA's answer. The rest of
 * the client is in acme_client_account.c, acme_client_order.c and acme_client_cert.c
 * (acme_client_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>

#include "acme_b64.h"
#include "acme_client.h"
#include "acme_client_int.h"
#include "acme_http.h"
#include "acme_jose.h"
#include "acme_problem.h"
#include "acme_persist.h"

/* ------------------------------------------------------------------ small helpers */

const char *acme_client_json_text(apr_pool_t *p, json_t *value)
{
    char *text;
    const char *copy;

    if (!value || json_is_null(value)) {
        return NULL;
    }
    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        return NULL;
    }
    copy = apr_pstrdup(p, text);
    free(text);
    return copy;
}

const char *acme_client_json_str(apr_pool_t *p, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? apr_pstrdup(p, s) : NULL;
}

/* Sends the JSON text of `doc` and drops the reference. */
const char *acme_client_payload(apr_pool_t *p, json_t *doc)
{
    const char *text = acme_client_json_text(p, doc);

    json_decref(doc);
    return text;
}

int acme_client_is_2xx(const acme_http_response_t *resp)
{
    return resp->status >= 200 && resp->status < 300;
}

apr_status_t acme_client_bad_answer(acme_result_t *res, apr_pool_t *p, const char *what,
                                    const acme_http_response_t *resp)
{
    acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                     apr_psprintf(p, "%s: the CA's answer is not what RFC 8555 describes", what));
    res->http_status = resp ? resp->status : 0;
    return res->status;
}

/*
 * What the CA actually sent, for messages about answers we cannot use: the media type, the
 * size and the first bytes, printable ASCII only (a CA's HTML error page lands in logs).
 */
const char *acme_client_body_note(apr_pool_t *p, const acme_http_response_t *resp)
{
    char start[41];
    apr_size_t n = 0;

    for (apr_size_t i = 0; i < resp->body_len && n < sizeof(start) - 1; ++i) {
        unsigned char ch = (unsigned char)resp->body[i];

        start[n++] = ch >= 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '.';
    }
    start[n] = '\0';
    return apr_psprintf(p, " (got %s, %" APR_SIZE_T_FMT " bytes%s%s%s)",
                        resp->content_type ? resp->content_type : "no Content-Type",
                        resp->body_len, n ? ": \"" : "", start,
                        n ? (resp->body_len > n ? "...\"" : "\"") : "");
}

/* A success status is no success when the body is a problem document (RFC 7807). */
int acme_client_is_failure(const acme_http_response_t *resp)
{
    return !acme_client_is_2xx(resp) || acme_http_is_type(resp, "application/problem+json");
}

/* The result for an answer that acme_client_is_failure(): the CA's problem, or a redirect we
 * ignored. */
apr_status_t acme_client_answer_failed(acme_result_t *res, apr_pool_t *p, const char *what,
                                       const acme_http_response_t *resp)
{
    apr_status_t rv = acme_problem_from_response(res, p, what, resp->status, resp->content_type,
                                                 resp->body, resp->body_len, resp->retry_after);

    /* An ACME CA names every resource itself; following redirects would only let it (or
     * someone between us) send our signed requests elsewhere. */
    if (resp->status >= 300 && resp->status < 400) {
        res->message = apr_psprintf(p, "%s: HTTP %d redirect to %s, not followed", what,
                                    resp->status, resp->location ? resp->location : "nowhere");
    }
    else if (acme_client_is_2xx(resp)) {
        res->message = apr_psprintf(p, "%s: a problem document with HTTP %d", what,
                                    resp->status);
    }
    return rv;
}

/*
 * Every request goes to the directory's origin: an order, authorization or certificate URL
 * elsewhere would make us sign requests for (or fetch from) a host that is not the CA.
 */
apr_status_t acme_client_check_origin(acme_client_t *c, apr_pool_t *p, const char *what,
                                      const char *kind, const char *url, acme_result_t *res)
{
    if (acme_http_same_origin(p, c->directory_url, url)) {
        return APR_SUCCESS;
    }
    acme_result_fail(res, APR_EACCES, ACME_CLASS_PERMANENT,
                     apr_psprintf(p, "%s: %s%s%s is not on the CA's host %s; refused, "
                                  "nothing is sent there", what, kind ? kind : "",
                                  kind ? " " : "", url ? url : "(none)",
                                  acme_http_origin(p, c->directory_url)));
    return res->status;
}

/* ------------------------------------------------------------------ create, counts */

apr_status_t acme_client_create(acme_client_t **out, apr_pool_t *p, const char *directory_url,
                                const acme_client_options_t *opts, acme_result_t *res)
{
    acme_client_t *c = apr_pcalloc(p, sizeof(*c));
    acme_http_options_t hopts;
    apr_status_t rv;

    acme_result_reset(res);
    if (!directory_url || !*directory_url) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, "no ACME directory URL given");
    }
    c->pool = p;
    c->directory_url = apr_pstrdup(p, directory_url);
    c->opts = opts ? *opts : (acme_client_options_t){ 0 };
    if (c->opts.max_bad_nonce_retries < 0) {
        c->opts.max_bad_nonce_retries = 0;
    }
    if (c->opts.retry_budget <= 0) {
        c->opts.retry_budget = CLIENT_DEFAULT_RETRY_BUDGET;
    }
    if (c->opts.poll_interval <= 0) {
        c->opts.poll_interval = CLIENT_DEFAULT_POLL_INTERVAL;
    }
    if (c->opts.poll_step_max <= 0) {
        c->opts.poll_step_max = CLIENT_DEFAULT_POLL_STEP_MAX;
    }
    if (c->opts.poll_timeout <= 0) {
        c->opts.poll_timeout = CLIENT_DEFAULT_POLL_TIMEOUT;
    }
    hopts = (acme_http_options_t){
        .ca_file = c->opts.ca_file,
        .proxy = c->opts.proxy,
        .connect_timeout = c->opts.connect_timeout,
        .timeout = c->opts.timeout,
        .max_response_size = c->opts.max_response_size,
    };
    rv = acme_http_create(&c->http, p, &hopts, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = c;
    return APR_SUCCESS;
}

unsigned acme_client_request_count(const acme_client_t *c)
{
    return c->counts.total;
}

void acme_client_counts(const acme_client_t *c, acme_client_counts_t *counts)
{
    *counts = c->counts;
}

const char *acme_client_user_agent(const acme_client_t *c)
{
    return acme_http_user_agent(c->http);
}

/* ------------------------------------------------------------------ nonces */

static void nonce_push(acme_client_t *c, const char *nonce)
{
    apr_size_t len = nonce ? strlen(nonce) : 0;

    if (len == 0 || len >= CLIENT_NONCE_MAX) {
        return;
    }
    if (c->n_nonces == CLIENT_NONCE_POOL) {
        /* Drop the oldest: it is the likeliest to have expired. */
        memmove(c->nonces[0], c->nonces[1], sizeof(c->nonces[0]) * (CLIENT_NONCE_POOL - 1));
        --c->n_nonces;
    }
    memcpy(c->nonces[c->n_nonces], nonce, len + 1);
    ++c->n_nonces;
}

void acme_client_share(acme_client_t *c, acme_client_shared_t *shared)
{
    c->shared = shared;
}

/*
 * Shared, a success's nonce goes to the pool of all the CA's clients; an error's stays here:
 * the re-send after badNonce signs with it (RFC 8555 6.5), and no other thread takes it first.
 */
static void note_response(acme_client_t *c, const acme_http_response_t *resp)
{
    if (c->shared && !acme_client_is_failure(resp)) {
        acme_client_shared_nonce_push(c->shared, resp->nonce);
    }
    else {
        nonce_push(c, resp->nonce);
    }
}

/* A nonce without a request: the client's own first, then the shared pool. */
static const char *nonce_pop(acme_client_t *c, apr_pool_t *p)
{
    char buf[ACME_CLIENT_SHARED_NONCE_MAX];

    if (c->n_nonces > 0) {
        --c->n_nonces;
        return apr_pstrdup(p, c->nonces[c->n_nonces]);
    }
    if (c->shared && acme_client_shared_nonce_pop(c->shared, buf, sizeof(buf))) {
        return apr_pstrdup(p, buf);
    }
    return NULL;
}

apr_status_t acme_client_get_url(acme_client_t *c, apr_pool_t *p, const char *url,
                                 acme_http_response_t **resp, acme_result_t *res)
{
    apr_status_t rv;

    if (strcmp(url, c->directory_url) != 0
        && acme_client_check_origin(c, p, apr_psprintf(p, "GET %s", url), NULL, url,
                                    res) != APR_SUCCESS) {
        return res->status;
    }
    rv = acme_http_get(c->http, p, url, resp, res);
    ++c->counts.total;
    c->counts.failed += rv != APR_SUCCESS || acme_client_is_failure(*resp);
    if (rv == APR_SUCCESS) {
        note_response(c, *resp);
    }
    return rv;
}

static apr_status_t nonce_take(acme_client_t *c, apr_pool_t *p, const char **nonce,
                               acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    *nonce = nonce_pop(c, p);
    if (!*nonce) {
        rv = acme_client_directory_load(c, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = acme_client_check_origin(c, p, "HEAD newNonce", NULL, c->dir->new_nonce, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = acme_http_head(c->http, p, c->dir->new_nonce, &resp, res);
        ++c->counts.total;
        ++c->counts.nonce;
        c->counts.failed += rv != APR_SUCCESS || !acme_client_is_2xx(resp);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!acme_client_is_2xx(resp) || !resp->nonce) {
            return resp->nonce
                ? acme_problem_from_response(res, p, apr_psprintf(p, "HEAD %s", c->dir->new_nonce),
                                             resp->status, resp->content_type, resp->body,
                                             resp->body_len, resp->retry_after)
                : acme_client_bad_answer(res, p, apr_psprintf(p, "HEAD %s (no Replay-Nonce)",
                                                              c->dir->new_nonce), resp);
        }
        /* Used at once: pushed to a shared pool, another thread could take it first. */
        *nonce = apr_pstrdup(p, resp->nonce);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ directory */

/* The limits a CA may publish in a profile object (see acme_client_profile_t). */
static void meta_profile_limits(apr_pool_t *p, json_t *item, acme_client_profile_t *prof)
{
    json_t *max = json_object_get(item, "maxNames"), *types = json_object_get(item,
                                                                             "identifierTypes");
    json_t *t;
    size_t i;

    prof->max_names = json_is_integer(max) && json_integer_value(max) > 0
                      && json_integer_value(max) < 1000000 ? (int)json_integer_value(max) : 0;
    prof->identifier_types = NULL;
    json_array_foreach(types, i, t) {
        if (json_is_string(t) && i < 16) {
            prof->identifier_types = apr_pstrcat(p, prof->identifier_types ? prof->identifier_types
                                                 : "", prof->identifier_types ? "," : "",
                                                 json_string_value(t), NULL);
        }
    }
}

/*
 * A dns-persist-01 issuerDomainNames array: 1 to 10 lowercase A-label names (draft §3.1); an
 * empty array (the client treats it as absent) for anything else.
 */
apr_array_header_t *acme_client_issuer_names(apr_pool_t *p, json_t *list)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(const char *));
    json_t *item;
    size_t i;

    if (!json_is_array(list) || json_array_size(list) > ACME_PERSIST_MAX_ISSUERS) {
        return out;
    }
    json_array_foreach(list, i, item) {
        const char *name = acme_persist_issuer_norm(p, json_string_value(item));
        if (!name || strcmp(name, json_string_value(item))) {
            apr_array_clear(out);
            return out;
        }
        APR_ARRAY_PUSH(out, const char *) = name;
    }
    return out;
}

/*
 * accountHashPrefix goes into TXT values, log lines and a2acme's zone-file output: a URI prefix
 * of printable characters without space, ';', quotes or backslash, else treated as absent.
 */
static const char *acme_client_hash_prefix(const char *prefix)
{
    const char *c;

    if (!prefix || !*prefix || strlen(prefix) > 200) {
        return NULL;
    }
    for (c = prefix; *c; ++c) {
        if (*c < 0x21 || *c > 0x7e || *c == ';' || *c == '"' || *c == '\\') {
            return NULL;
        }
    }
    return prefix;
}

apr_status_t acme_client_meta_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                    acme_client_meta_t *meta, acme_result_t *res)
{
    json_t *doc = json_loadb(json ? json : "", len, 0, NULL);
    json_t *m, *item, *caa, *profiles;
    const char *name;
    size_t i;

    *meta = (acme_client_meta_t){
        .caa_identities = apr_array_make(p, 1, sizeof(const char *)),
        .profiles = apr_array_make(p, 1, sizeof(acme_client_profile_t)),
    };
    if (!json_is_object(doc)) {
        json_decref(doc);
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_RETRY_SOON,
                                "the ACME directory is not a JSON object");
    }
    meta->renewal_info = acme_client_json_str(p, doc, "renewalInfo");
    m = json_object_get(doc, "meta");
    meta->terms_of_service = acme_client_json_str(p, m, "termsOfService");
    meta->website = acme_client_json_str(p, m, "website");
    meta->external_account_required = json_is_true(json_object_get(m, "externalAccountRequired"));
    caa = json_object_get(m, "caaIdentities");
    json_array_foreach(caa, i, item) {
        if (json_is_string(item)) {
            APR_ARRAY_PUSH(meta->caa_identities, const char *) =
                apr_pstrdup(p, json_string_value(item));
        }
    }
    meta->issuer_domain_names = acme_client_issuer_names(p, json_object_get(m,
                                                                            "issuerDomainNames"));
    meta->account_hash_prefix = acme_client_hash_prefix(acme_client_json_str(p, m,
                                                                 "accountHashPrefix"));
    profiles = json_object_get(m, "profiles");
    json_object_foreach(profiles, name, item) {
        acme_client_profile_t *prof = apr_array_push(meta->profiles);

        prof->name = apr_pstrdup(p, name);
        /* The draft says a string; later Pebbles send an object with a description. */
        prof->description = json_is_string(item) ? apr_pstrdup(p, json_string_value(item))
                                                 : acme_client_json_str(p, item, "description");
        meta_profile_limits(p, item, prof);
    }
    json_decref(doc);
    return APR_SUCCESS;
}

static apr_status_t directory_parse(acme_client_t *c, const acme_http_response_t *resp,
                                    acme_result_t *res)
{
    client_directory_t *dir = apr_pcalloc(c->pool, sizeof(*dir));
    json_t *doc;
    apr_status_t rv;

    rv = acme_client_meta_parse(c->pool, resp->body, resp->body_len, &dir->meta, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_psprintf(c->pool, "the ACME directory %s is not a JSON object%s",
                                    c->directory_url, acme_client_body_note(c->pool, resp));
        res->http_status = resp->status;
        return rv;
    }
    doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    dir->new_nonce = acme_client_json_str(c->pool, doc, "newNonce");
    dir->new_account = acme_client_json_str(c->pool, doc, "newAccount");
    dir->new_order = acme_client_json_str(c->pool, doc, "newOrder");
    dir->revoke_cert = acme_client_json_str(c->pool, doc, "revokeCert");
    dir->key_change = acme_client_json_str(c->pool, doc, "keyChange");
    json_decref(doc);
    if (!dir->new_nonce || !dir->new_account || !dir->new_order) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(c->pool, "%s is not an ACME v2 directory "
                                             "(newNonce, newAccount or newOrder missing)",
                                             c->directory_url));
    }
    c->dir = dir;
    return APR_SUCCESS;
}

/*
 * The directory another client of the CA fetched this run, parsed into this client's pool: 1
 * when there is one (rv says whether it parsed), 0 when this client must fetch it and then
 * call acme_client_shared_directory_put.
 */
static int directory_from_shared(acme_client_t *c, apr_pool_t *tmp, apr_status_t *rv,
                                 acme_result_t *res)
{
    acme_http_response_t resp = { .status = 200 };
    apr_interval_time_t wait = c->opts.timeout > 0 ? c->opts.timeout : apr_time_from_sec(30);

    if (!acme_client_shared_directory_claim(c->shared, tmp, wait + apr_time_from_sec(1),
                                            &resp.body, &resp.body_len)) {
        return 0;
    }
    *rv = directory_parse(c, &resp, res);
    return 1;
}

apr_status_t acme_client_directory_load(acme_client_t *c, acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_pool_t *tmp;
    apr_status_t rv;

    if (c->dir) {
        return APR_SUCCESS;
    }
    apr_pool_create(&tmp, c->pool);
    if (c->shared && directory_from_shared(c, tmp, &rv, res)) {
        apr_pool_destroy(tmp);
        return rv;
    }
    ++c->counts.directory;
    rv = acme_client_get_url(c, tmp, c->directory_url, &resp, res);
    if (rv == APR_SUCCESS && acme_client_is_failure(resp)) {
        rv = acme_client_answer_failed(res, c->pool, apr_psprintf(c->pool, "GET directory %s",
                                                                  c->directory_url), resp);
        if (resp->status >= 300 && resp->status < 400) {
            /* The configured URL is not the directory: a human decides whether to trust the
             * new one. */
            res->err_class = ACME_CLASS_ADMIN;
        }
    }
    else if (rv == APR_SUCCESS) {
        rv = directory_parse(c, resp, res);
    }
    else {
        /* The transport message lives in tmp, which goes now. */
        res->message = apr_pstrdup(c->pool, res->message);
    }
    if (c->shared) {
        /* Only a directory that parsed is shared; after a failure the next client fetches. */
        acme_client_shared_directory_put(c->shared, rv == APR_SUCCESS ? resp->body : NULL,
                                         rv == APR_SUCCESS ? resp->body_len : 0);
    }
    apr_pool_destroy(tmp);
    return rv;
}

apr_status_t acme_client_meta(acme_client_t *c, const acme_client_meta_t **meta,
                              acme_result_t *res)
{
    apr_status_t rv;

    acme_result_reset(res);
    rv = acme_client_directory_load(c, res);
    if (rv == APR_SUCCESS) {
        *meta = &c->dir->meta;
    }
    return rv;
}

/* ------------------------------------------------------------------ signed requests */

int acme_client_retry_plan(const acme_client_options_t *opts, int retries, apr_time_t started,
                           apr_time_t now, apr_interval_time_t *pause)
{
    apr_interval_time_t budget = opts && opts->retry_budget > 0 ? opts->retry_budget
                                                               : CLIENT_DEFAULT_RETRY_BUDGET;
    apr_time_t deadline = started + budget;
    apr_interval_time_t wait = 0;

    *pause = 0;
    if (now >= deadline || (opts && opts->max_bad_nonce_retries > 0
                            && retries >= opts->max_bad_nonce_retries)) {
        return 0;
    }
    if (retries >= CLIENT_RETRY_QUICK) {
        /* A CA refusing (nearly) every nonce is not hammered for the whole budget. */
        int shift = retries - CLIENT_RETRY_QUICK;
        wait = shift >= 5 ? CLIENT_RETRY_PAUSE_MAX : CLIENT_RETRY_PAUSE_FIRST << shift;
        wait = wait > CLIENT_RETRY_PAUSE_MAX ? CLIENT_RETRY_PAUSE_MAX : wait;
    }
    if (now + wait >= deadline) {
        return 0;
    }
    *pause = wait;
    return 1;
}

/* Refusals that say nothing about the request itself: sending it again is the cure. */
static int client_transient(const acme_result_t *res)
{
    return acme_problem_is(res, "badNonce");
}

/* A fixed buffer, so a long-lived client's pool does not grow; longer URLs are not kept. */
static void client_terms_note(acme_client_t *c, const char *url)
{
    if (url && strlen(url) < sizeof(c->terms_required)) {
        strcpy(c->terms_required, url);
    }
}

const char *acme_client_terms_required(const acme_client_t *c)
{
    return c->terms_required[0] ? c->terms_required : NULL;
}

static apr_status_t client_post_once(acme_client_t *c, apr_pool_t *p, const client_post_t *req,
                                     const acme_key_t *key, const char *kid,
                                     acme_http_response_t **out, acme_result_t *res)
{
    const char *nonce = NULL, *jws = NULL;
    acme_http_response_t *resp = NULL;
    apr_status_t rv;

    rv = nonce_take(c, p, &nonce, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_jose_sign(p, key, req->payload, req->url, nonce, kid, &jws, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_http_post_jose(c->http, p, req->url, jws, &resp, res);
    ++c->counts.total;
    c->counts.failed += rv != APR_SUCCESS || acme_client_is_failure(resp);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* An error's Replay-Nonce too (RFC 8555 6.5): the re-send after badNonce signs with it. */
    note_response(c, resp);
    *out = resp;
    if (!acme_client_is_failure(resp)) {
        return APR_SUCCESS;
    }
    rv = acme_client_answer_failed(res, p, req->what, resp);
    if (acme_problem_is(res, "userActionRequired") && acme_http_link(resp, "terms-of-service")) {
        /* New terms: the operator must read and agree to them, so name them. */
        res->message = apr_psprintf(p, "%s (terms of service: %s)", res->message,
                                    acme_http_link(resp, "terms-of-service"));
        client_terms_note(c, acme_http_link(resp, "terms-of-service"));
    }
    return rv;
}

/*
 * One signed POST, sent again after badNonce (signed with the error's nonce) until
 * acme_client_retry_plan says the request's time budget is spent. Non-2xx answers become a
 * problem in res.
 */
apr_status_t acme_client_post_signed(acme_client_t *c, apr_pool_t *p, const client_post_t *req,
                                     acme_http_response_t **out, acme_result_t *res)
{
    const acme_key_t *key = req->key ? req->key : c->account_key;
    const char *kid = req->embed_jwk ? NULL : c->account_url;
    apr_time_t started = apr_time_now();
    apr_interval_time_t pause = 0;
    apr_status_t rv;

    acme_result_reset(res);
    if (acme_client_check_origin(c, p, req->what, NULL, req->url, res) != APR_SUCCESS) {
        return res->status;
    }
    if (!key) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s: no account key", req->what));
    }
    if (!req->embed_jwk && !kid) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s: no account URL (register or find the "
                                             "account first)", req->what));
    }
    for (int retries = 0;; ++retries) {
        acme_result_reset(res);
        rv = client_post_once(c, p, req, key, kid, out, res);
        if (rv == APR_SUCCESS || !client_transient(res)
            || !acme_client_retry_plan(&c->opts, retries, started, apr_time_now(), &pause)) {
            if (rv != APR_SUCCESS && client_transient(res)) {
                res->message = apr_psprintf(p, "%s (sent %d times in %" APR_TIME_T_FMT " s)",
                                            res->message, retries + 1,
                                            apr_time_sec(apr_time_now() - started));
            }
            return rv;
        }
        ++c->counts.bad_nonce_retries;
        if (pause > 0) {
            apr_sleep(pause);
        }
    }
}

apr_status_t acme_client_post_as_get(acme_client_t *c, apr_pool_t *p, const char *what,
                                     const char *url, acme_http_response_t **resp,
                                     acme_result_t *res)
{
    client_post_t req = { .what = what, .url = url };

    return acme_client_post_signed(c, p, &req, resp, res);
}
