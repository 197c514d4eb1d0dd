#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>

#include "acme_b64.h"
#include "acme_client.h"
#include "acme_http.h"
#include "acme_jose.h"
#include "acme_problem.h"
#include "acme_persist.h"

#define CLIENT_DEFAULT_RETRY_BUDGET apr_time_from_sec(45)
/* Re-sends after badNonce go out at once this many times, then with a growing pause. */
#define CLIENT_RETRY_QUICK           8
#define CLIENT_RETRY_PAUSE_FIRST     apr_time_from_msec(50)
#define CLIENT_RETRY_PAUSE_MAX       apr_time_from_sec(1)
#define CLIENT_DEFAULT_POLL_INTERVAL apr_time_from_sec(1)
#define CLIENT_POLL_FIRST apr_time_from_msec(50)
#define CLIENT_DEFAULT_POLL_STEP_MAX apr_time_from_sec(10)
#define CLIENT_DEFAULT_POLL_TIMEOUT  apr_time_from_sec(120)
/* A CA asking for "Retry-After: 0" over and over must not make us spin. */
#define CLIENT_POLL_STEP_MIN         apr_time_from_msec(50)
#define CLIENT_NONCE_POOL            8
#define CLIENT_NONCE_MAX             256

typedef struct {
    const char *new_nonce;
    const char *new_account;
    const char *new_order;
    const char *revoke_cert;
    const char *key_change;
    acme_client_meta_t meta;
} client_directory_t;

struct acme_client_t {
    apr_pool_t *pool;
    const char *directory_url;
    acme_client_options_t opts;
    acme_http_t *http;
    client_directory_t *dir;        /* NULL until fetched */
    const acme_key_t *account_key;
    const char *account_url;
    const char *thumbprint;         /* of account_key, computed on first use */
    /* Fixed buffers: a long-lived client must not grow its pool per request. */
    char nonces[CLIENT_NONCE_POOL][CLIENT_NONCE_MAX];
    int n_nonces;
    acme_client_counts_t counts;
    char terms_required[1024];      /* Link terms-of-service of the last userActionRequired */
};

/* ------------------------------------------------------------------ small helpers */

static const char *json_text(apr_pool_t *p, json_t *value)
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

static const char *json_str(apr_pool_t *p, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? apr_pstrdup(p, s) : NULL;
}

/* Sends the JSON text of `doc` and drops the reference. */
static const char *take_payload(apr_pool_t *p, json_t *doc)
{
    const char *text = json_text(p, doc);

    json_decref(doc);
    return text;
}

static int is_2xx(const acme_http_response_t *resp)
{
    return resp->status >= 200 && resp->status < 300;
}

static apr_status_t bad_answer(acme_result_t *res, apr_pool_t *p, const char *what,
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
static const char *body_note(apr_pool_t *p, const acme_http_response_t *resp)
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
static int is_failure(const acme_http_response_t *resp)
{
    return !is_2xx(resp) || acme_http_is_type(resp, "application/problem+json");
}

/* The result for an answer that is_failure(): the CA's problem, or a redirect we ignored. */
static apr_status_t answer_failed(acme_result_t *res, apr_pool_t *p, const char *what,
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
    else if (is_2xx(resp)) {
        res->message = apr_psprintf(p, "%s: a problem document with HTTP %d", what,
                                    resp->status);
    }
    return rv;
}

/*
 * Every request goes to the directory's origin: an order, authorization or certificate URL
 * elsewhere would make us sign requests for (or fetch from) a host that is not the CA.
 */
static apr_status_t check_origin(acme_client_t *c, apr_pool_t *p, const char *what,
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

static void note_response(acme_client_t *c, const acme_http_response_t *resp)
{
    nonce_push(c, resp->nonce);
}

static apr_status_t client_get(acme_client_t *c, apr_pool_t *p, const char *url,
                               acme_http_response_t **resp, acme_result_t *res)
{
    apr_status_t rv;

    if (strcmp(url, c->directory_url) != 0
        && check_origin(c, p, apr_psprintf(p, "GET %s", url), NULL, url, res) != APR_SUCCESS) {
        return res->status;
    }
    rv = acme_http_get(c->http, p, url, resp, res);
    ++c->counts.total;
    c->counts.failed += rv != APR_SUCCESS || is_failure(*resp);
    if (rv == APR_SUCCESS) {
        note_response(c, *resp);
    }
    return rv;
}

static apr_status_t client_directory(acme_client_t *c, acme_result_t *res);

static apr_status_t nonce_take(acme_client_t *c, apr_pool_t *p, const char **nonce,
                               acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    if (c->n_nonces == 0) {
        rv = client_directory(c, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = check_origin(c, p, "HEAD newNonce", NULL, c->dir->new_nonce, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = acme_http_head(c->http, p, c->dir->new_nonce, &resp, res);
        ++c->counts.total;
        ++c->counts.nonce;
        c->counts.failed += rv != APR_SUCCESS || !is_2xx(resp);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!is_2xx(resp) || !resp->nonce) {
            return resp->nonce
                ? acme_problem_from_response(res, p, apr_psprintf(p, "HEAD %s", c->dir->new_nonce),
                                             resp->status, resp->content_type, resp->body,
                                             resp->body_len, resp->retry_after)
                : bad_answer(res, p, apr_psprintf(p, "HEAD %s (no Replay-Nonce)",
                                                  c->dir->new_nonce), resp);
        }
        note_response(c, resp);
    }
    --c->n_nonces;
    *nonce = apr_pstrdup(p, c->nonces[c->n_nonces]);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ directory */

static const char *str_array_item(apr_array_header_t *arr, int i)
{
    return APR_ARRAY_IDX(arr, i, const char *);
}

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
static apr_array_header_t *acme_client_issuer_names(apr_pool_t *p, json_t *list)
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
    meta->renewal_info = json_str(p, doc, "renewalInfo");
    m = json_object_get(doc, "meta");
    meta->terms_of_service = json_str(p, m, "termsOfService");
    meta->website = json_str(p, m, "website");
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
    meta->account_hash_prefix = acme_client_hash_prefix(json_str(p, m, "accountHashPrefix"));
    profiles = json_object_get(m, "profiles");
    json_object_foreach(profiles, name, item) {
        acme_client_profile_t *prof = apr_array_push(meta->profiles);

        prof->name = apr_pstrdup(p, name);
        /* The draft says a string; later Pebbles send an object with a description. */
        prof->description = json_is_string(item) ? apr_pstrdup(p, json_string_value(item))
                                                 : json_str(p, item, "description");
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
                                    c->directory_url, body_note(c->pool, resp));
        res->http_status = resp->status;
        return rv;
    }
    doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    dir->new_nonce = json_str(c->pool, doc, "newNonce");
    dir->new_account = json_str(c->pool, doc, "newAccount");
    dir->new_order = json_str(c->pool, doc, "newOrder");
    dir->revoke_cert = json_str(c->pool, doc, "revokeCert");
    dir->key_change = json_str(c->pool, doc, "keyChange");
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

static apr_status_t client_directory(acme_client_t *c, acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_pool_t *tmp;
    apr_status_t rv;

    if (c->dir) {
        return APR_SUCCESS;
    }
    apr_pool_create(&tmp, c->pool);
    ++c->counts.directory;
    rv = client_get(c, tmp, c->directory_url, &resp, res);
    if (rv == APR_SUCCESS && is_failure(resp)) {
        rv = answer_failed(res, c->pool, apr_psprintf(c->pool, "GET directory %s",
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
    apr_pool_destroy(tmp);
    return rv;
}

apr_status_t acme_client_meta(acme_client_t *c, const acme_client_meta_t **meta,
                              acme_result_t *res)
{
    apr_status_t rv;

    acme_result_reset(res);
    rv = client_directory(c, res);
    if (rv == APR_SUCCESS) {
        *meta = &c->dir->meta;
    }
    return rv;
}

/* ------------------------------------------------------------------ signed requests */

typedef struct {
    const char *what;               /* for messages: what we were doing (no secrets) */
    const char *url;
    const char *payload;            /* NULL: POST-as-GET */
    const acme_key_t *key;          /* NULL: the account key */
    int embed_jwk;                  /* jwk instead of kid */
} client_post_t;

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
    c->counts.failed += rv != APR_SUCCESS || is_failure(resp);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* An error's Replay-Nonce too (RFC 8555 6.5): the re-send after badNonce signs with it. */
    note_response(c, resp);
    *out = resp;
    if (!is_failure(resp)) {
        return APR_SUCCESS;
    }
    rv = answer_failed(res, p, req->what, resp);
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
static apr_status_t client_post(acme_client_t *c, apr_pool_t *p, const client_post_t *req,
                                acme_http_response_t **out, acme_result_t *res)
{
    const acme_key_t *key = req->key ? req->key : c->account_key;
    const char *kid = req->embed_jwk ? NULL : c->account_url;
    apr_time_t started = apr_time_now();
    apr_interval_time_t pause = 0;
    apr_status_t rv;

    acme_result_reset(res);
    if (check_origin(c, p, req->what, NULL, req->url, res) != APR_SUCCESS) {
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

static apr_status_t post_as_get(acme_client_t *c, apr_pool_t *p, const char *what,
                                const char *url, acme_http_response_t **resp, acme_result_t *res)
{
    client_post_t req = { .what = what, .url = url };

    return client_post(c, p, &req, resp, res);
}

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
    acct->status = json_str(p, doc, "status");
    acct->contact = json_text(p, json_object_get(doc, "contact"));
    acct->orders = json_str(p, doc, "orders");
    acct->created = resp->status == 201;
    json_decref(doc);
    return acct;
}

static apr_status_t account_new(acme_client_t *c, apr_pool_t *p, const char *what,
                                json_t *payload, acme_client_account_t **acct,
                                acme_result_t *res)
{
    client_post_t req = { .what = what, .url = c->dir->new_account,
                          .payload = take_payload(p, payload), .embed_jwk = 1 };
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = client_post(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!resp->location) {
        return bad_answer(res, p, apr_psprintf(p, "%s (no Location)", what), resp);
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
    rv = client_directory(c, res);
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
    rv = client_directory(c, res);
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

    rv = post_as_get(c, p, apr_psprintf(p, "account %s", c->account_url ? c->account_url : "?"),
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
                          .payload = take_payload(p, payload) };
    acme_http_response_t *resp;
    apr_status_t rv;

    rv = client_post(c, p, &req, &resp, res);
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
    rv = client_directory(c, res);
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
                        take_payload(p, json_pack("{s:s, s:o}", "account", c->account_url,
                                                  "oldKey", old_jwk)),
                        c->dir->key_change, NULL, NULL, &inner, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    req.what = apr_psprintf(p, "key change of account %s", c->account_url);
    req.url = c->dir->key_change;
    req.payload = inner;
    rv = client_post(c, p, &req, &resp, res);
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

/* ------------------------------------------------------------------ orders */

/* Every URL of an order, before any of them is used or stored. */
static apr_status_t order_check_urls(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                     const char *what, acme_result_t *res)
{
    apr_status_t rv = check_origin(c, p, what, "the order URL", order->url, res);

    for (int i = 0; rv == APR_SUCCESS && i < order->authz_urls->nelts; ++i) {
        rv = check_origin(c, p, what, "authorization", str_array_item(order->authz_urls, i),
                          res);
    }
    if (rv == APR_SUCCESS && order->finalize_url) {
        rv = check_origin(c, p, what, "finalize URL", order->finalize_url, res);
    }
    if (rv == APR_SUCCESS && order->certificate_url) {
        rv = check_origin(c, p, what, "certificate URL", order->certificate_url, res);
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
        res->message = apr_psprintf(p, "%s: %s%s", what, res->message, body_note(p, resp));
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
    req.payload = take_payload(p, payload);
    req.what = apr_psprintf(p, "newOrder for %s", idents_text(p, order->identifiers));
    return client_post(c, p, &req, resp, res);
}

apr_status_t acme_client_order_new(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                   acme_result_t *res)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    acme_result_reset(res);
    rv = client_directory(c, res);
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
        return bad_answer(res, p, "newOrder (no Location)", resp);
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
    rv = post_as_get(c, p, apr_psprintf(p, "order %s", order->url), order->url, &resp, res);
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
        chal->type = json_str(p, item, "type");
        chal->url = json_str(p, item, "url");
        chal->token = json_str(p, item, "token");
        chal->status = json_str(p, item, "status");
        chal->error = json_text(p, json_object_get(item, "error"));
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
        authz->identifier.value = json_str(p, ident, "value");
        authz->status = json_str(p, doc, "status");
        authz->wildcard = json_is_true(json_object_get(doc, "wildcard"));
        authz->expires = json_str(p, doc, "expires");
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

    rv = post_as_get(c, p, what, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_client_authz_parse(p, url, resp->body, resp->body_len, authz, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_pstrcat(p, res->message, body_note(p, resp), NULL);
        res->http_status = resp->status;
        return rv;
    }
    /* Refused before anything is provisioned for it, not only when we would answer it. */
    for (int i = 0; i < (*authz)->challenges->nelts; ++i) {
        const acme_client_challenge_t *chal =
            &APR_ARRAY_IDX((*authz)->challenges, i, acme_client_challenge_t);

        rv = check_origin(c, p, what, apr_pstrcat(p, chal->type, " challenge", NULL), chal->url,
                          res);
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
    return client_post(c, p, &req, &resp, res);
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
    apr_time_t start = apr_time_now();
    apr_time_t deadline = start + c->opts.poll_timeout;
    apr_status_t rv;
    int polls = 0;

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
    rv = client_post(c, p, &req, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return order_take(c, p, order, req.what, resp, res);
}

apr_status_t acme_client_order_finalize(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                        const acme_key_t *cert_key, acme_result_t *res)
{
    unsigned char *der;
    apr_size_t der_len;
    const char *payload;
    int same = 0;
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
    if (c->account_key && same_key(p, cert_key, c->account_key, &same, res) != APR_SUCCESS) {
        return res->status;
    }
    if (same) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "the certificate key must not be the account key");
    }
    rv = acme_crypto_csr_create(p, cert_key, (const acme_ident_t *)order->identifiers->elts,
                                order->identifiers->nelts, &der, &der_len, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    payload = take_payload(p, json_pack("{s:s}", "csr", acme_b64_encode(p, der, der_len)));
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
    payload = take_payload(p, json_pack("{s:s}", "csr", acme_b64_encode(p, der, der_len)));
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

    rv = post_as_get(c, p, what, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_crypto_chain_parse(p, resp->body, resp->body_len, &chain->certs, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_pstrcat(p, res->message ? res->message : "invalid",
                                   body_note(p, resp), NULL);
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
    rv = client_directory(c, res);
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
    req.payload = take_payload(p, payload);
    req.what = apr_psprintf(p, "revocation of certificate %s", info.serial_hex);
    rv = client_post(c, p, &req, &resp, res);
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
        info->explanation_url = json_str(p, doc, "explanationURL");
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
    rv = client_directory(c, res);
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
    rv = client_get(c, p, url, &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (is_failure(resp)) {
        return answer_failed(res, p, apr_psprintf(p, "GET renewalInfo %s", url), resp);
    }
    rv = acme_client_renewal_info_parse(p, resp->body, resp->body_len, resp->retry_after, info,
                                        res);
    if (rv != APR_SUCCESS) {
        res->message = apr_psprintf(p, "GET %s: %s", url, res->message);
        res->http_status = resp->status;
    }
    return rv;
}
