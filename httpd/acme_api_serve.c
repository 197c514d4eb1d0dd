#include <string.h>
#include <strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_lib.h>

#include "acme_api.h"
#include "acme_api_csr.h"
#include "acme_api_serve.h"
#include "acme_api_store.h"
#include "acme_config.h"
#include "acme_config_api.h"
#include "acme_serve.h"

APLOG_USE_MODULE(acme);

#define ACME_API_POLL apr_time_from_msec(250)
#define ACME_API_CHAIN_TYPE "application/pem-certificate-chain"

typedef struct {
    request_rec *r;
    acme_conf_t *conf;
    acme_config_api_t *api;
    const acme_config_api_client_t *client;
    const char *base;                   /* the path in front of /certificates or /domains */
    const char *body;
    apr_size_t body_len;
} acme_api_req_t;

static int acme_api_json(request_rec *r, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

    json_decref(json);
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (text && !r->header_only) {
        ap_rputs(text, r);
        ap_rputs("\n", r);
    }
    free(text);
    return OK;
}

static int acme_api_error(request_rec *r, int status, const char *message)
{
    return acme_api_json(r, status, json_pack("{s:s}", "error", message));
}

/* ------------------------------------------------------------------ who is asking */

static int acme_api_ip_ok(const request_rec *r, const acme_config_api_client_t *c)
{
    int i;

    if (c->ips->nelts == 0) {
        return 1;
    }
    for (i = 0; i < c->ips->nelts; ++i) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(c->ips, i, apr_ipsubnet_t *), r->useragent_addr)) {
            return 1;
        }
    }
    return 0;
}

static int acme_api_user_ok(const request_rec *r, const acme_config_api_client_t *c)
{
    int i;

    if (c->users->nelts == 0) {
        return 1;
    }
    for (i = 0; r->user && i < c->users->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(c->users, i, const char *), r->user)) {
            return 1;
        }
    }
    return 0;
}

static int acme_api_hmac_ok(acme_api_req_t *q, const acme_config_api_client_t *c,
                            const char **why)
{
    request_rec *r = q->r;

    if (!c->hmac_key) {
        return 1;
    }
    return acme_api_hmac_check(r->pool, c->hmac_key, c->hmac_key_len, r->method,
                               r->parsed_uri.path ? r->parsed_uri.path : r->uri,
                               apr_table_get(r->headers_in, "X-ACME-Timestamp"),
                               apr_table_get(r->headers_in, "X-ACME-Signature"),
                               q->body, q->body_len, apr_time_now(), why) == APR_SUCCESS;
}

/*
 * The first block whose every ACMEApiAuth holds. A signed request that matched is recorded:
 * the same signature again is a replay.
 */
static int acme_api_identify(acme_api_req_t *q)
{
    request_rec *r = q->r;
    const char *why = "no <ACMEApiClient> block matches the address or user", *sig;
    acme_result_t res;
    int i;

    for (i = 0; i < q->api->clients->nelts && !q->client; ++i) {
        const acme_config_api_client_t *c = APR_ARRAY_IDX(q->api->clients, i,
                                                          const acme_config_api_client_t *);
        if (acme_api_ip_ok(r, c) && acme_api_user_ok(r, c) && acme_api_hmac_ok(q, c, &why)) {
            q->client = c;
        }
    }
    if (!q->client) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "ACME11002: api: %s %s from %s%s%s "
                      "refused: %s", r->method, r->uri, r->useragent_ip,
                      r->user ? " user " : "", r->user ? r->user : "", why);
        return acme_api_error(r, HTTP_FORBIDDEN, why);
    }
    sig = apr_table_get(r->headers_in, "X-ACME-Signature");
    acme_result_reset(&res);
    if (q->client->hmac_key
        && acme_api_store_seen(r->pool, q->conf->store, sig, apr_time_now(), &res)
           == APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "ACME11003: api: client %s: %s %s "
                      "refused: its signature was used before (a replayed request)",
                      q->client->name, r->method, r->uri);
        return acme_api_error(r, HTTP_FORBIDDEN, "this signature was used before: sign every "
                              "request with a new X-ACME-Timestamp");
    }
    return DECLINED;
}

/* ------------------------------------------------------------------ the body */

static int acme_api_body(acme_api_req_t *q)
{
    request_rec *r = q->r;
    char *buf = apr_palloc(r->pool, ACME_API_CSR_MAX + 1);
    apr_size_t len = 0;
    long n;
    int rv = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);

    q->body = "";
    q->body_len = 0;
    if (rv != OK) {
        return rv;
    }
    if (r->remaining > ACME_API_CSR_MAX) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    if (!ap_should_client_block(r)) {
        return OK;
    }
    while ((n = ap_get_client_block(r, buf + len, ACME_API_CSR_MAX + 1 - len)) > 0) {
        len += (apr_size_t)n;
        if (len > ACME_API_CSR_MAX) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    if (n < 0) {
        return HTTP_BAD_REQUEST;
    }
    buf[len] = '\0';
    q->body = buf;
    q->body_len = len;
    return OK;
}

/* ------------------------------------------------------------------ certificates */

static const char *acme_api_location(acme_api_req_t *q, const char *id)
{
    return ap_construct_url(q->r->pool, apr_pstrcat(q->r->pool, q->base, "/certificates/", id,
                                                    NULL), q->r);
}

static int acme_api_send_chain(acme_api_req_t *q, int status, const char *id)
{
    request_rec *r = q->r;
    char *pem = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_api_store_chain(r->pool, q->conf->store, id, &pem, &len, &res) != APR_SUCCESS) {
        return -1;
    }
    r->status = status;
    ap_set_content_type(r, ACME_API_CHAIN_TYPE);
    ap_set_content_length(r, (apr_off_t)len);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Location", acme_api_location(q, id));
    if (!r->header_only) {
        ap_rwrite(pem, (int)len, r);
    }
    return OK;
}

static const char *acme_api_state_of(json_t *st)
{
    const char *s = st ? json_string_value(json_object_get(st, "state")) : NULL;
    return s ? s : "";
}

/* A valid certificate that is not due yet: before 2/3 of its lifetime. */
static int acme_api_fresh(json_t *st, apr_time_t now)
{
    json_int_t nb = json_integer_value(json_object_get(st, "not_before"));
    json_int_t na = json_integer_value(json_object_get(st, "not_after"));
    apr_time_t renew = apr_time_from_sec(nb + (na - nb) * 2 / 3);

    return !strcmp(acme_api_state_of(st), ACME_API_STATE_VALID) && na > nb && now < renew;
}

/* The state as the client sees it: no file names, no other client's details. */
static int acme_api_send_state(acme_api_req_t *q, int status, const char *id, json_t *st)
{
    json_t *out = json_pack("{s:s, s:s, s:O, s:O}", "id", id, "state", acme_api_state_of(st),
                            "error", json_object_get(st, "error") ? json_object_get(st, "error")
                                                                  : json_null(),
                            "names", json_object_get(st, "names") ? json_object_get(st, "names")
                                                                  : json_array());

    if (status == HTTP_ACCEPTED) {
        apr_table_setn(q->r->headers_out, "Location", acme_api_location(q, id));
        apr_table_setn(q->r->headers_out, "Retry-After", "5");
    }
    return acme_api_json(q->r, status, out);
}

/* Polls the request's state until it is final or ACMEApiWait is over (a bounded wait). */
/*
 * Queued or being ordered, and recently: a request the worker left behind (killed mid-order)
 * is queued again by the next POST of its CSR rather than waited for forever.
 */
#define ACME_API_STALE apr_time_from_sec(900)
static int acme_api_in_progress(json_t *st, apr_time_t now)
{
    const char *state = acme_api_state_of(st);
    apr_time_t updated = apr_time_from_sec(json_integer_value(json_object_get(st, "updated")));

    return (!strcmp(state, ACME_API_STATE_QUEUED) || !strcmp(state, ACME_API_STATE_PROCESSING))
           && updated > now - ACME_API_STALE && updated < now + ACME_API_STALE;
}

/* ACMEApiWait, or less when the client asks for less with ?wait=<seconds> (0: answer now). */
static apr_interval_time_t acme_api_wait_time(const acme_api_req_t *q)
{
    const char *args = q->r->args, *w = args ? strstr(args, "wait=") : NULL;
    apr_interval_time_t t;

    if (!w || (w != args && w[-1] != '&') || !apr_isdigit(w[5])) {
        return q->api->wait;
    }
    t = apr_time_from_sec(apr_atoi64(w + 5));
    return t >= 0 && t < q->api->wait ? t : q->api->wait;
}

static json_t *acme_api_wait(acme_api_req_t *q, const char *id)
{
    apr_time_t until = apr_time_now() + acme_api_wait_time(q);
    json_t *st = NULL;
    acme_result_t res;

    for (;;) {
        acme_result_reset(&res);
        st = NULL;
        acme_api_store_state(q->r->pool, q->conf->store, id, &st, &res);
        if (st && !acme_api_in_progress(st, apr_time_now())) {
            return st;
        }
        if (apr_time_now() + ACME_API_POLL > until) {
            return st;
        }
        apr_sleep(ACME_API_POLL);
    }
}

static int acme_api_finish(acme_api_req_t *q, const char *id, json_t *st)
{
    request_rec *r = q->r;
    const char *state = acme_api_state_of(st);

    if (!strcmp(state, ACME_API_STATE_VALID) && acme_api_send_chain(q, HTTP_CREATED, id) == OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "ACME11005: api: client %s: certificate "
                      "%s delivered", q->client->name, id);
        return OK;
    }
    if (!strcmp(state, ACME_API_STATE_INVALID)) {
        return acme_api_send_state(q, HTTP_BAD_GATEWAY, id, st);
    }
    if (!strcmp(state, ACME_API_STATE_PENDING)) {
        apr_table_setn(r->headers_out, "Retry-After", "60");
        return acme_api_send_state(q, HTTP_SERVICE_UNAVAILABLE, id, st);
    }
    return acme_api_send_state(q, HTTP_ACCEPTED, id, st);
}

static int acme_api_csr_refused(acme_api_req_t *q, int status, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, q->r, "ACME11006: api: client %s: CSR refused: "
                  "%s", q->client->name, why);
    return acme_api_error(q->r, status, why);
}

static const char *acme_api_names_text(apr_pool_t *p, const apr_array_header_t *names)
{
    return apr_array_pstrcat(p, names, ' ');
}

static int acme_api_post_certificate(acme_api_req_t *q)
{
    request_rec *r = q->r;
    const char *reason = NULL;
    acme_api_csr_t *csr = NULL;
    json_t *st = NULL;
    acme_result_t res;

    if (acme_api_csr_check(r->pool, q->body, q->body_len, &csr, &reason) != APR_SUCCESS) {
        return acme_api_csr_refused(q, HTTP_BAD_REQUEST, reason);
    }
    if (!acme_api_patterns_allow(q->client->patterns, (const char *const *)csr->names->elts,
                                 csr->names->nelts)) {
        return acme_api_csr_refused(q, HTTP_FORBIDDEN, apr_psprintf(r->pool, "the client may "
                                    "not ask for all of: %s", acme_api_names_text(r->pool,
                                                                                   csr->names)));
    }
    acme_result_reset(&res);
    acme_api_store_state(r->pool, q->conf->store, csr->id, &st, &res);
    if (st && acme_api_fresh(st, apr_time_now()) && acme_api_send_chain(q, HTTP_CREATED, csr->id)
                                                     == OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "ACME11007: api: client %s: the CSR %s was "
                      "issued before and is not due for renewal: the same certificate is "
                      "returned", q->client->name, csr->id);
        return OK;
    }
    if (!acme_api_in_progress(st, apr_time_now())) {
        acme_result_reset(&res);
        if (acme_api_store_queue(r->pool, q->conf->store, csr, q->client->name, &res)
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, res.status, r, "ACME11008: api: client %s: "
                          "the CSR cannot be queued: %s", q->client->name,
                          acme_result_describe(&res, r->pool));
            return acme_api_error(r, HTTP_SERVICE_UNAVAILABLE, "the request cannot be queued "
                                  "now; try again later");
        }
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "ACME11001: api: client %s: CSR %s for "
                      "%s queued for the renewal worker", q->client->name, csr->id,
                      acme_api_names_text(r->pool, csr->names));
    }
    return acme_api_finish(q, csr->id, acme_api_wait(q, csr->id));
}

static int acme_api_get_certificate(acme_api_req_t *q, const char *id)
{
    request_rec *r = q->r;
    json_t *st = NULL, *names;
    const char **list;
    acme_result_t res;
    size_t i, n;

    acme_result_reset(&res);
    if (!acme_api_id_valid(id)
        || acme_api_store_state(r->pool, q->conf->store, id, &st, &res) != APR_SUCCESS) {
        return acme_api_error(r, HTTP_NOT_FOUND, "no such certificate request");
    }
    /* Only a client that may ask for every name sees it. */
    names = json_object_get(st, "names");
    n = json_array_size(names);
    list = apr_pcalloc(r->pool, (n + 1) * sizeof(*list));
    for (i = 0; i < n; ++i) {
        list[i] = json_string_value(json_array_get(names, i));
    }
    if (n == 0 || !acme_api_patterns_allow(q->client->patterns, list, (int)n)) {
        return acme_api_error(r, HTTP_NOT_FOUND, "no such certificate request");
    }
    if (!strcmp(acme_api_state_of(st), ACME_API_STATE_VALID)
        && acme_api_send_chain(q, HTTP_OK, id) == OK) {
        return OK;
    }
    return acme_api_send_state(q, HTTP_OK, id, st);
}

/* ------------------------------------------------------------------ domains */

/* A managed domain the client may see and renew: every one of its names is allowed to it. */
static int acme_api_domain_visible(const acme_api_req_t *q, const acme_domain_t *dom)
{
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(dom->idents, i, acme_ident_t).value;
        if (!acme_api_patterns_allow(q->client->patterns, &name, 1)) {
            return 0;
        }
    }
    return dom->idents->nelts > 0;
}

static const acme_domain_t *acme_api_domain(const acme_api_req_t *q, const char *name)
{
    const acme_domain_t *dom = acme_config_domain_for(q->conf, name);

    return dom && !strcasecmp(dom->name, name) && acme_api_domain_visible(q, dom) ? dom : NULL;
}

static int acme_api_domains(acme_api_req_t *q, const char *item)
{
    request_rec *r = q->r;
    const char *slash = item ? strchr(item, '/') : NULL;
    const char *name = slash ? apr_pstrndup(r->pool, item, (apr_size_t)(slash - item)) : item;
    const acme_domain_t *dom = name ? acme_api_domain(q, name) : NULL;
    acme_result_t res;
    json_t *list;
    int i;

    if (!item && r->method_number == M_GET) {
        list = json_array();
        for (i = 0; i < q->conf->domains->nelts; ++i) {
            const acme_domain_t *d = APR_ARRAY_IDX(q->conf->domains, i, const acme_domain_t *);
            if (acme_api_domain_visible(q, d)) {
                json_array_append_new(list, acme_serve_status_domain(r->pool, q->conf, d));
            }
        }
        return acme_api_json(r, HTTP_OK, json_pack("{s:o}", "domains", list));
    }
    if (!dom) {
        return acme_api_error(r, HTTP_NOT_FOUND, "no such domain");
    }
    if (!slash && r->method_number == M_GET) {
        return acme_api_json(r, HTTP_OK, acme_serve_status_domain(r->pool, q->conf, dom));
    }
    if (!slash || strcmp(slash, "/renew") || r->method_number != M_POST) {
        return acme_api_error(r, HTTP_NOT_FOUND, "GET <base>/domains/<name> or POST "
                              "<base>/domains/<name>/renew");
    }
    acme_result_reset(&res);
    if (acme_api_store_renew_put(r->pool, q->conf->store, dom->name, &res) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, res.status, r, "ACME11018: api: client %s: the "
                      "renewal of %s cannot be requested: %s", q->client->name, dom->name,
                      acme_result_describe(&res, r->pool));
        return acme_api_error(r, HTTP_SERVICE_UNAVAILABLE, "the renewal cannot be requested "
                              "now; try again later");
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "ACME11016: api: client %s: renewal of %s "
                  "requested", q->client->name, dom->name);
    return acme_api_json(r, HTTP_ACCEPTED, json_pack("{s:s, s:s}", "name", dom->name,
                                                     "renewal", "requested"));
}

/* ------------------------------------------------------------------ routing */

static int acme_api_rate_ok(acme_api_req_t *q)
{
    const acme_api_rate_t *rate = &q->client->rate;
    long retry = 0;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_api_store_rate(q->r->pool, q->conf->store, q->client->name, rate, apr_time_now(),
                            &retry, &res)) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, q->r, "ACME11004: api: client %s: %s %s "
                  "refused: more than %d requests in %ld s (ACMEApiRate)", q->client->name,
                  q->r->method, q->r->uri, rate->n, (long)apr_time_sec(rate->period));
    apr_table_setn(q->r->headers_out, "Retry-After", apr_ltoa(q->r->pool, retry));
    return acme_api_error(q->r, HTTP_TOO_MANY_REQUESTS, "too many requests from this client; "
                          "see Retry-After");
}

/* Splits ".../certificates[/<id>]": the base, the collection and the item (or NULL). */
static const char *acme_api_route(apr_pool_t *p, const char *path, const char *collection,
                                  const char **base, const char **item)
{
    const char *needle = apr_pstrcat(p, "/", collection, NULL);
    const char *at = NULL, *s = path;
    apr_size_t n = strlen(needle);

    while ((s = strstr(s, needle))) {
        if (s[n] == '\0' || s[n] == '/') {
            at = s;     /* the last one: a base may itself contain the word */
        }
        s += n;
    }
    if (!at) {
        return NULL;
    }
    *base = apr_pstrndup(p, path, (apr_size_t)(at - path));
    *item = at[n] == '/' && at[n + 1] ? apr_pstrdup(p, at + n + 1) : NULL;
    return collection;
}

static int acme_api_dispatch(acme_api_req_t *q)
{
    request_rec *r = q->r;
    const char *path = r->parsed_uri.path ? r->parsed_uri.path : r->uri, *item = NULL;
    int rv;

    if (acme_api_route(r->pool, path, "certificates", &q->base, &item)) {
        if (!item && r->method_number == M_POST) {
            if ((rv = acme_api_rate_ok(q)) != DECLINED) {
                return rv;
            }
            return acme_api_post_certificate(q);
        }
        if (item && r->method_number == M_GET && !strchr(item, '/')) {
            return acme_api_get_certificate(q, item);
        }
        r->allowed = AP_METHOD_BIT << (item ? M_GET : M_POST);
        return acme_api_error(r, HTTP_METHOD_NOT_ALLOWED, item ? "GET only" : "POST only");
    }
    if (acme_api_route(r->pool, path, "domains", &q->base, &item)) {
        if (r->method_number == M_POST && (rv = acme_api_rate_ok(q)) != DECLINED) {
            return rv;
        }
        return acme_api_domains(q, item);
    }
    return acme_api_error(r, HTTP_NOT_FOUND, "unknown API resource (certificates, domains)");
}

int acme_api_serve_handler(request_rec *r)
{
    acme_api_req_t q = { .r = r };
    int rv;

    if (!r->handler || strcmp(r->handler, "acme-api") != 0) {
        return DECLINED;
    }
    q.conf = acme_config_get(r->server->process->pconf);
    q.api = acme_config_api_get(r->server->process->pconf);
    if (!q.conf->store) {
        return acme_api_error(r, HTTP_SERVICE_UNAVAILABLE, "the certificate store is not "
                              "available; see the error log");
    }
    if ((rv = acme_api_body(&q)) != OK) {
        if (rv == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "ACME11009: api: %s %s from %s "
                          "refused: body larger than %d bytes", r->method, r->uri,
                          r->useragent_ip, ACME_API_CSR_MAX);
            return acme_api_error(r, rv, "the body is larger than 64 KiB");
        }
        return rv;
    }
    if ((rv = acme_api_identify(&q)) != DECLINED) {
        return rv;
    }
    return acme_api_dispatch(&q);
}
