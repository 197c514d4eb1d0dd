/*
 * etcd v3 over its JSON gateway: see acme_etcd.h. The transport is a libcurl easy handle of its
 * own (not acme_http's): etcd is not the CA, takes client certificates, never goes through the
 * CA's proxy, and streams watch results over one long response.
 */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acme_etcd.h"

#define ACME_ETCD_MAX_RESPONSE (32u * 1024 * 1024)  /* a list of every certificate of a fleet */
#define ACME_ETCD_MAX_EVENTS 10000

struct acme_etcd_t {
    apr_pool_t *pool;
    acme_etcd_options_t opts;
    CURL *curl;
    int current;                /* index of the endpoint that answered last */
    apr_uint64_t requests;
};

typedef struct {
    char *data;
    apr_size_t len, cap;
    int overflow;
    /* watch streams only: */
    acme_etcd_t *etcd;
    apr_pool_t *p;
    apr_array_header_t *events;
    apr_int64_t header_revision;
    apr_int64_t compacted;      /* compact_revision of a canceled watch */
    int canceled;
} acme_etcd_body_t;

static apr_status_t acme_etcd_cleanup(void *data)
{
    acme_etcd_t *etcd = data;

    if (etcd->curl) {
        curl_easy_cleanup(etcd->curl);
        etcd->curl = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t acme_etcd_create(acme_etcd_t **out, apr_pool_t *p, const acme_etcd_options_t *opts,
                              acme_result_t *res)
{
    acme_etcd_t *etcd = apr_pcalloc(p, sizeof(*etcd));

    if (!opts->endpoints || opts->endpoints->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "no etcd endpoint is configured");
    }
    etcd->pool = p;
    etcd->opts = *opts;
    etcd->opts.prefix = opts->prefix ? opts->prefix : "";
    etcd->opts.timeout = opts->timeout > 0 ? opts->timeout : apr_time_from_sec(5);
    etcd->curl = curl_easy_init();
    if (!etcd->curl) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "cannot create a libcurl handle for etcd");
    }
    apr_pool_cleanup_register(p, etcd, acme_etcd_cleanup, apr_pool_cleanup_null);
    *out = etcd;
    return APR_SUCCESS;
}

const char *acme_etcd_endpoint(const acme_etcd_t *etcd)
{
    return APR_ARRAY_IDX(etcd->opts.endpoints, etcd->current, const char *);
}

apr_uint64_t acme_etcd_requests(const acme_etcd_t *etcd)
{
    return etcd->requests;
}

/* ------------------------------------------------------------------ encoding */

static const char *acme_etcd_b64(apr_pool_t *p, const char *data, apr_size_t len)
{
    char *out = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)len));

    apr_base64_encode(out, data, (int)len);
    return out;
}

/* Standard base64 from etcd; NULL when it is not. */
static char *acme_etcd_unb64(apr_pool_t *p, const char *text, apr_size_t *len)
{
    apr_size_t n = strlen(text), i;
    char *out;

    for (i = 0; i < n; ++i) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '+' || c == '/' || c == '=')) {
            return NULL;
        }
    }
    out = apr_palloc(p, (apr_size_t)apr_base64_decode_len(text) + 1);
    *len = (apr_size_t)apr_base64_decode(out, text);
    out[*len] = '\0';
    return out;
}

static const char *acme_etcd_key(apr_pool_t *p, const acme_etcd_t *etcd, const char *key)
{
    const char *full = apr_pstrcat(p, etcd->opts.prefix, key, NULL);

    return acme_etcd_b64(p, full, strlen(full));
}

/* The end of the range holding every key that starts with key: its last byte + 1. */
static const char *acme_etcd_range_end(apr_pool_t *p, const acme_etcd_t *etcd, const char *key)
{
    char *full = apr_pstrcat(p, etcd->opts.prefix, key, NULL);
    apr_size_t n = strlen(full);

    while (n > 0 && (unsigned char)full[n - 1] == 0xff) {
        --n;
    }
    if (n == 0) {
        return acme_etcd_b64(p, "\0", 1);   /* every key */
    }
    full[n - 1] = (char)((unsigned char)full[n - 1] + 1);
    return acme_etcd_b64(p, full, n);
}

/* 64-bit integers come as JSON strings; proto3 leaves zero values out altogether. */
static apr_int64_t acme_etcd_i64(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    apr_int64_t n = 0;
    char *end = NULL;

    if (json_is_integer(v)) {
        return (apr_int64_t)json_integer_value(v);
    }
    if (json_is_string(v)) {
        n = apr_strtoi64(json_string_value(v), &end, 10);
        return (end && *end == '\0') ? n : 0;
    }
    return 0;
}

/* 1: parsed; 0: malformed or outside the prefix (never shown to the caller). */
static int acme_etcd_kv_parse(const acme_etcd_t *etcd, apr_pool_t *p, json_t *j,
                              acme_etcd_kv_t *kv)
{
    json_t *key = json_object_get(j, "key"), *value = json_object_get(j, "value");
    apr_size_t klen = 0, plen = strlen(etcd->opts.prefix);
    char *full;

    if (!json_is_string(key) || !(full = acme_etcd_unb64(p, json_string_value(key), &klen))
        || klen < plen || memcmp(full, etcd->opts.prefix, plen) != 0
        || memchr(full, '\0', klen)) {
        return 0;
    }
    *kv = (acme_etcd_kv_t){
        .key = full + plen, .value = "", .create_revision = acme_etcd_i64(j, "create_revision"),
        .mod_revision = acme_etcd_i64(j, "mod_revision"), .lease = acme_etcd_i64(j, "lease"),
    };
    if (json_is_string(value)) {
        kv->value = acme_etcd_unb64(p, json_string_value(value), &kv->value_len);
        return kv->value != NULL;
    }
    return 1;
}

/* ------------------------------------------------------------------ transport */

static size_t acme_etcd_collect(char *data, size_t size, size_t nmemb, void *baton)
{
    acme_etcd_body_t *body = baton;
    size_t n = size * nmemb;

    if (body->len + n > ACME_ETCD_MAX_RESPONSE) {
        body->overflow = 1;
        return 0;
    }
    if (body->len + n + 1 > body->cap) {
        apr_size_t cap = (body->cap ? body->cap * 2 : 4096);
        char *grown;
        while (cap < body->len + n + 1) {
            cap *= 2;
        }
        grown = realloc(body->data, cap);
        if (!grown) {
            body->overflow = 1;
            return 0;
        }
        body->data = grown;
        body->cap = cap;
    }
    memcpy(body->data + body->len, data, n);
    body->len += n;
    body->data[body->len] = '\0';
    return n;
}

static void acme_etcd_setopts(acme_etcd_t *etcd, const char *url, const char *json,
                              struct curl_slist *headers, acme_etcd_body_t *body,
                              curl_write_callback cb, apr_interval_time_t timeout)
{
    CURL *c = etcd->curl;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");         /* etcd is reached directly, never via env */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)apr_time_as_msec(etcd->opts.timeout));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)apr_time_as_msec(timeout));
    if (etcd->opts.ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, etcd->opts.ca_file);
    }
    if (etcd->opts.client_cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, etcd->opts.client_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, etcd->opts.client_key);
    }
    if (etcd->opts.client_cert && etcd->opts.client_key_pem) {
        /* read as root before the worker became the User, who must not read the file */
        struct curl_blob blob = { (void *)etcd->opts.client_key_pem,
                                  etcd->opts.client_key_pem_len, CURL_BLOB_COPY };
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &blob);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

/* One POST to one endpoint. *http: the status; 0 when nothing complete came back. */
static CURLcode acme_etcd_post(acme_etcd_t *etcd, int idx, const char *path, const char *json,
                               acme_etcd_body_t *body, curl_write_callback cb,
                               apr_interval_time_t timeout, long *http)
{
    const char *base = APR_ARRAY_IDX(etcd->opts.endpoints, idx, const char *);
    char *url = apr_pstrcat(body->p, base, path, NULL);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    CURLcode rc;

    acme_etcd_setopts(etcd, url, json, headers, body, cb, timeout);
    etcd->requests++;
    rc = curl_easy_perform(etcd->curl);
    *http = 0;
    curl_easy_getinfo(etcd->curl, CURLINFO_RESPONSE_CODE, http);
    curl_slist_free_all(headers);
    return rc;
}

/* etcd's own error ({"error", "code", "message"}) as one line. */
static const char *acme_etcd_error_text(apr_pool_t *p, const acme_etcd_body_t *body, long http)
{
    json_t *doc = body->data ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    json_t *msg = json_object_get(doc, "message");
    const char *text;

    if (!json_is_string(msg)) {
        msg = json_object_get(doc, "error");
    }
    text = json_is_string(msg) ? apr_pstrdup(p, json_string_value(msg)) : "no error text";
    json_decref(doc);
    return apr_psprintf(p, "HTTP %ld: %s", http, acme_result_utf8(p, text));
}

/*
 * POSTs req (consumed) to path, trying each endpoint once from the one that answered last;
 * *resp: the JSON answer (the caller decrefs). Transport failures and 5xx move on to the next
 * endpoint (a member without quorum or leader answers 503); anything else is final.
 */
static apr_status_t acme_etcd_call(acme_etcd_t *etcd, apr_pool_t *p, const char *path,
                                   json_t *req, json_t **resp, acme_result_t *res)
{
    char *json = json_dumps(req, JSON_COMPACT);
    int n = etcd->opts.endpoints->nelts, i;
    const char *why = "nothing was tried";
    apr_status_t rv = APR_EGENERAL;

    json_decref(req);
    *resp = NULL;
    for (i = 0; json && i < n; ++i) {
        int idx = (etcd->current + i) % n;
        acme_etcd_body_t body = { .p = p };
        long http = 0;
        CURLcode rc = acme_etcd_post(etcd, idx, path, json, &body, acme_etcd_collect,
                                     etcd->opts.timeout, &http);
        if (rc == CURLE_OK && http == 200) {
            *resp = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
            why = *resp ? NULL : "the answer is not JSON";
        }
        else {
            why = rc != CURLE_OK ? (body.overflow ? "the answer is too large"
                                    : curl_easy_strerror(rc))
                                 : acme_etcd_error_text(p, &body, http);
        }
        free(body.data);
        if (!why || (rc == CURLE_OK && http > 0 && http < 500)) {
            etcd->current = idx;
            break;
        }
        why = apr_psprintf(p, "%s: %s", APR_ARRAY_IDX(etcd->opts.endpoints, idx, const char *),
                           why);
    }
    free(json);
    if (!why) {
        return APR_SUCCESS;
    }
    rv = acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                          apr_psprintf(p, "etcd %s failed (%s)", path, why));
    return rv;
}

/* ------------------------------------------------------------------ key-value */

#define ACME_ETCD_PREFIX 1
#define ACME_ETCD_KEYS_ONLY 2
#define ACME_ETCD_SERIALIZABLE 4

static apr_status_t acme_etcd_range(acme_etcd_t *etcd, apr_pool_t *p, const char *key,
                                    unsigned flags, apr_array_header_t **kvs,
                                    apr_int64_t *revision, acme_result_t *res)
{
    json_t *req = json_pack("{s:s}", "key", acme_etcd_key(p, etcd, key)), *resp, *list, *j;
    apr_status_t rv;
    size_t i;

    if (flags & ACME_ETCD_PREFIX) {
        json_object_set_new(req, "range_end", json_string(acme_etcd_range_end(p, etcd, key)));
    }
    if (flags & ACME_ETCD_KEYS_ONLY) {
        json_object_set_new(req, "keys_only", json_true());
    }
    if (flags & ACME_ETCD_SERIALIZABLE) {
        json_object_set_new(req, "serializable", json_true());
    }
    if ((rv = acme_etcd_call(etcd, p, "/v3/kv/range", req, &resp, res)) != APR_SUCCESS) {
        return rv;
    }
    *kvs = apr_array_make(p, 4, sizeof(acme_etcd_kv_t));
    list = json_object_get(resp, "kvs");
    json_array_foreach(list, i, j) {
        acme_etcd_kv_t kv;
        if (acme_etcd_kv_parse(etcd, p, j, &kv)) {
            APR_ARRAY_PUSH(*kvs, acme_etcd_kv_t) = kv;
        }
    }
    if (revision) {
        *revision = acme_etcd_i64(json_object_get(resp, "header"), "revision");
    }
    json_decref(resp);
    return APR_SUCCESS;
}

apr_status_t acme_etcd_get(acme_etcd_t *etcd, apr_pool_t *p, const char *key,
                           acme_etcd_kv_t **kv, apr_int64_t *revision, acme_result_t *res)
{
    apr_array_header_t *kvs = NULL;
    apr_status_t rv = acme_etcd_range(etcd, p, key, 0, &kvs, revision, res);

    *kv = NULL;
    if (rv == APR_SUCCESS && kvs->nelts > 0) {
        *kv = &APR_ARRAY_IDX(kvs, 0, acme_etcd_kv_t);
    }
    return rv;
}

apr_status_t acme_etcd_list(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                            apr_array_header_t **kvs, apr_int64_t *revision, acme_result_t *res)
{
    return acme_etcd_range(etcd, p, key_prefix, ACME_ETCD_PREFIX, kvs, revision, res);
}

const acme_etcd_kv_t *acme_etcd_first(const apr_array_header_t *kvs)
{
    return kvs && kvs->nelts > 0 ? &APR_ARRAY_IDX(kvs, 0, acme_etcd_kv_t) : NULL;
}

/* Reads per transaction: etcd refuses more than 128 operations in one by default. */
#define ACME_ETCD_READ_CHUNK 64

/* One read of a read-only transaction: key, or every key under it when it ends in '/'. A
 * transaction whose reads are all serializable is answered by the member asked alone. */
static json_t *acme_etcd_read_op(apr_pool_t *p, const acme_etcd_t *etcd, const char *key,
                                 unsigned flags)
{
    json_t *range = json_pack("{s:s}", "key", acme_etcd_key(p, etcd, key));
    apr_size_t n = strlen(key);

    if (n > 0 && key[n - 1] == '/') {
        json_object_set_new(range, "range_end", json_string(acme_etcd_range_end(p, etcd, key)));
    }
    if (flags & ACME_ETCD_SERIALIZABLE) {
        json_object_set_new(range, "serializable", json_true());
    }
    return json_pack("{s:o}", "request_range", range);
}

static apr_status_t acme_etcd_read_chunk(acme_etcd_t *etcd, apr_pool_t *p,
                                         const char *const *keys, int n, unsigned flags,
                                         apr_array_header_t **kvs, acme_result_t *res)
{
    json_t *ops = json_array(), *resp = NULL, *list, *j;
    apr_status_t rv;
    size_t k;
    int i;

    for (i = 0; i < n; ++i) {
        json_array_append_new(ops, acme_etcd_read_op(p, etcd, keys[i], flags));
    }
    rv = acme_etcd_call(etcd, p, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < n; ++i) {
        json_t *r = json_array_get(json_object_get(resp, "responses"), (size_t)i);
        kvs[i] = apr_array_make(p, 2, sizeof(acme_etcd_kv_t));
        list = json_object_get(json_object_get(r, "response_range"), "kvs");
        json_array_foreach(list, k, j) {
            acme_etcd_kv_t kv;
            if (acme_etcd_kv_parse(etcd, p, j, &kv)) {
                APR_ARRAY_PUSH(kvs[i], acme_etcd_kv_t) = kv;
            }
        }
    }
    json_decref(resp);
    return APR_SUCCESS;
}

static apr_status_t acme_etcd_read(acme_etcd_t *etcd, apr_pool_t *p, const char *const *keys,
                                   int n, unsigned flags, apr_array_header_t **kvs,
                                   acme_result_t *res)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; rv == APR_SUCCESS && i < n; i += ACME_ETCD_READ_CHUNK) {
        rv = acme_etcd_read_chunk(etcd, p, keys + i, n - i < ACME_ETCD_READ_CHUNK
                                                     ? n - i : ACME_ETCD_READ_CHUNK,
                                  flags, kvs + i, res);
    }
    return rv;
}

apr_status_t acme_etcd_read_many(acme_etcd_t *etcd, apr_pool_t *p, const char *const *keys,
                                 int n, apr_array_header_t **kvs, acme_result_t *res)
{
    return acme_etcd_read(etcd, p, keys, n, 0, kvs, res);
}

apr_status_t acme_etcd_read_local(acme_etcd_t *etcd, apr_pool_t *p, const char *const *keys,
                                  int n, apr_array_header_t **kvs, acme_result_t *res)
{
    return acme_etcd_read(etcd, p, keys, n, ACME_ETCD_SERIALIZABLE, kvs, res);
}

apr_status_t acme_etcd_keys(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                            apr_array_header_t **kvs, apr_int64_t *revision, acme_result_t *res)
{
    return acme_etcd_range(etcd, p, key_prefix, ACME_ETCD_PREFIX | ACME_ETCD_KEYS_ONLY, kvs,
                           revision, res);
}

static json_t *acme_etcd_put_request(apr_pool_t *p, const acme_etcd_t *etcd, const char *key,
                                     const char *value, apr_size_t len, apr_int64_t lease)
{
    json_t *put = json_pack("{s:s, s:s}", "key", acme_etcd_key(p, etcd, key),
                            "value", acme_etcd_b64(p, value, len));

    if (lease) {
        json_object_set_new(put, "lease", json_string(apr_psprintf(p, "%" APR_INT64_T_FMT,
                                                                   lease)));
    }
    return put;
}

apr_status_t acme_etcd_put(acme_etcd_t *etcd, apr_pool_t *p, const char *key, const char *value,
                           apr_size_t len, apr_int64_t lease, acme_result_t *res)
{
    json_t *resp = NULL;
    apr_status_t rv = acme_etcd_call(etcd, p, "/v3/kv/put",
                                     acme_etcd_put_request(p, etcd, key, value, len, lease),
                                     &resp, res);

    json_decref(resp);
    return rv;
}

apr_status_t acme_etcd_delete(acme_etcd_t *etcd, apr_pool_t *p, const char *key, int as_prefix,
                              long *deleted, acme_result_t *res)
{
    json_t *req = json_pack("{s:s}", "key", acme_etcd_key(p, etcd, key)), *resp = NULL;
    apr_status_t rv;

    if (as_prefix) {
        json_object_set_new(req, "range_end", json_string(acme_etcd_range_end(p, etcd, key)));
    }
    rv = acme_etcd_call(etcd, p, "/v3/kv/deleterange", req, &resp, res);
    if (rv == APR_SUCCESS && deleted) {
        *deleted = (long)acme_etcd_i64(resp, "deleted");
    }
    json_decref(resp);
    return rv;
}

/* ------------------------------------------------------------------ leases */

apr_status_t acme_etcd_lease_grant(acme_etcd_t *etcd, apr_pool_t *p, long ttl_seconds,
                                   apr_int64_t *lease, acme_result_t *res)
{
    json_t *resp = NULL;
    apr_status_t rv = acme_etcd_call(etcd, p, "/v3/lease/grant",
                                     json_pack("{s:I}", "TTL", (json_int_t)ttl_seconds),
                                     &resp, res);

    if (rv == APR_SUCCESS) {
        *lease = acme_etcd_i64(resp, "ID");
        if (*lease == 0) {
            rv = acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                                  "etcd granted no lease (no ID in its answer)");
        }
    }
    json_decref(resp);
    return rv;
}

static json_t *acme_etcd_lease_id(apr_pool_t *p, apr_int64_t lease)
{
    return json_pack("{s:s}", "ID", apr_psprintf(p, "%" APR_INT64_T_FMT, lease));
}

apr_status_t acme_etcd_lease_keepalive(acme_etcd_t *etcd, apr_pool_t *p, apr_int64_t lease,
                                       long *ttl_left, acme_result_t *res)
{
    json_t *resp = NULL;
    apr_status_t rv = acme_etcd_call(etcd, p, "/v3/lease/keepalive", acme_etcd_lease_id(p, lease),
                                     &resp, res);

    if (rv == APR_SUCCESS) {
        *ttl_left = (long)acme_etcd_i64(json_object_get(resp, "result"), "TTL");
    }
    json_decref(resp);
    return rv;
}

apr_status_t acme_etcd_lease_revoke(acme_etcd_t *etcd, apr_pool_t *p, apr_int64_t lease,
                                    acme_result_t *res)
{
    json_t *resp = NULL;
    apr_status_t rv = acme_etcd_call(etcd, p, "/v3/lease/revoke", acme_etcd_lease_id(p, lease),
                                     &resp, res);

    json_decref(resp);
    return rv;
}

/* ------------------------------------------------------------------ transactions */

/* The first kv of the first range response of a transaction's answer, or NULL. */
/* The kv of the range at position idx of a transaction's responses, or NULL. */
static acme_etcd_kv_t *acme_etcd_txn_kv(const acme_etcd_t *etcd, apr_pool_t *p, json_t *resp,
                                        size_t idx)
{
    json_t *r = json_array_get(json_object_get(resp, "responses"), idx);
    json_t *kvs = json_object_get(json_object_get(r, "response_range"), "kvs");
    acme_etcd_kv_t *kv = apr_pcalloc(p, sizeof(*kv));

    if (json_array_size(kvs) > 0 && acme_etcd_kv_parse(etcd, p, json_array_get(kvs, 0), kv)) {
        return kv;
    }
    return NULL;
}

/* A transaction's operations: [put key, range key, range also...] or [range key, also...]. */
static json_t *acme_etcd_lock_ops(apr_pool_t *p, const acme_etcd_t *etcd, json_t *put,
                                  const char *key, const char *const *also, int n_also)
{
    json_t *ops = json_array();
    int i;

    if (put) {
        json_array_append_new(ops, json_pack("{s:o}", "request_put", put));
    }
    json_array_append_new(ops, json_pack("{s:{s:s}}", "request_range", "key",
                                         acme_etcd_key(p, etcd, key)));
    for (i = 0; i < n_also; ++i) {
        json_array_append_new(ops, json_pack("{s:{s:s}}", "request_range", "key",
                                             acme_etcd_key(p, etcd, also[i])));
    }
    return ops;
}

apr_status_t acme_etcd_lock(acme_etcd_t *etcd, apr_pool_t *p, const char *key, const char *value,
                            apr_int64_t lease, int *acquired, acme_etcd_kv_t **holder,
                            acme_result_t *res)
{
    return acme_etcd_lock_reading(etcd, p, key, value, lease, NULL, 0, acquired, holder, NULL,
                                  res);
}

apr_status_t acme_etcd_lock_reading(acme_etcd_t *etcd, apr_pool_t *p, const char *key,
                                    const char *value, apr_int64_t lease,
                                    const char *const *also, int n_also, int *acquired,
                                    acme_etcd_kv_t **holder, acme_etcd_kv_t **also_kvs,
                                    acme_result_t *res)
{
    json_t *req = json_pack("{s:[{s:s, s:s, s:s}], s:o, s:o}",
                            "compare", "key", acme_etcd_key(p, etcd, key), "target", "CREATE",
                            "create_revision", "0",
                            "success", acme_etcd_lock_ops(p, etcd, acme_etcd_put_request(
                                p, etcd, key, value, strlen(value), lease), key, also, n_also),
                            "failure", acme_etcd_lock_ops(p, etcd, NULL, key, also, n_also));
    json_t *resp = NULL;
    apr_status_t rv = acme_etcd_call(etcd, p, "/v3/kv/txn", req, &resp, res);
    int i;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *acquired = json_is_true(json_object_get(resp, "succeeded"));
    *holder = acme_etcd_txn_kv(etcd, p, resp, *acquired ? 1 : 0);
    for (i = 0; also_kvs && i < n_also; ++i) {
        also_kvs[i] = acme_etcd_txn_kv(etcd, p, resp, (size_t)(i + (*acquired ? 2 : 1)));
    }
    json_decref(resp);
    if (!*holder) {     /* the holder's lease ran out between the compare and the range */
        *acquired = 0;
        return acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "the etcd lock %s changed hands while it was "
                                             "taken; try again", key));
    }
    return APR_SUCCESS;
}

apr_status_t acme_etcd_put_fenced(acme_etcd_t *etcd, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t token, const char *key, const char *value,
                                  apr_size_t len, int *fenced, acme_result_t *res)
{
    acme_etcd_op_t op = { .key = key, .value = value, .len = len };

    return acme_etcd_txn_fenced(etcd, p, lock_key, token, &op, 1, fenced, res);
}

static json_t *acme_etcd_op_request(apr_pool_t *p, const acme_etcd_t *etcd,
                                    const acme_etcd_op_t *op)
{
    if (op->remove && op->prefix) {
        return json_pack("{s:{s:s, s:s}}", "request_delete_range", "key",
                         acme_etcd_key(p, etcd, op->key), "range_end",
                         acme_etcd_range_end(p, etcd, op->key));
    }
    if (op->remove) {
        return json_pack("{s:{s:s}}", "request_delete_range", "key",
                         acme_etcd_key(p, etcd, op->key));
    }
    return json_pack("{s:o}", "request_put",
                     acme_etcd_put_request(p, etcd, op->key, op->value, op->len, 0));
}

apr_status_t acme_etcd_txn_fenced(acme_etcd_t *etcd, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t token, const acme_etcd_op_t *ops, int n,
                                  int *fenced, acme_result_t *res)
{
    json_t *success = json_array(), *resp = NULL, *req;
    apr_status_t rv;
    int i;

    for (i = 0; i < n; ++i) {
        json_array_append_new(success, acme_etcd_op_request(p, etcd, &ops[i]));
    }
    req = json_pack("{s:[{s:s, s:s, s:s}], s:o}", "compare", "key",
                    acme_etcd_key(p, etcd, lock_key), "target", "CREATE", "create_revision",
                    apr_psprintf(p, "%" APR_INT64_T_FMT, token), "success", success);
    if ((rv = acme_etcd_call(etcd, p, "/v3/kv/txn", req, &resp, res)) != APR_SUCCESS) {
        return rv;
    }
    *fenced = !json_is_true(json_object_get(resp, "succeeded"));
    json_decref(resp);
    if (*fenced) {
        return acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "the etcd lock %s is no longer ours (revision %"
                                             APR_INT64_T_FMT "); %s was not written",
                                             lock_key, token, n > 0 ? ops[0].key : "nothing"));
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ watch */

static void acme_etcd_watch_message(acme_etcd_body_t *body, json_t *msg)
{
    json_t *result = json_object_get(msg, "result"), *events, *e;
    size_t i;

    if (!json_is_object(result)) {
        body->canceled = 1;     /* {"error": ...}: the stream is over */
        return;
    }
    body->header_revision = acme_etcd_i64(json_object_get(result, "header"), "revision");
    if (json_is_true(json_object_get(result, "canceled"))) {
        body->canceled = 1;
        body->compacted = acme_etcd_i64(result, "compact_revision");
        return;
    }
    events = json_object_get(result, "events");
    json_array_foreach(events, i, e) {
        acme_etcd_event_t ev = { .deleted = 0 };
        json_t *type = json_object_get(e, "type");
        if (body->events->nelts >= ACME_ETCD_MAX_EVENTS) {
            break;
        }
        ev.deleted = json_is_string(type) && !strcmp(json_string_value(type), "DELETE");
        if (acme_etcd_kv_parse(body->etcd, body->p, json_object_get(e, "kv"), &ev.kv)) {
            APR_ARRAY_PUSH(body->events, acme_etcd_event_t) = ev;
        }
    }
}

/* Takes every complete JSON message off the front of the stream; 0 ends the transfer. */
static size_t acme_etcd_watch_collect(char *data, size_t size, size_t nmemb, void *baton)
{
    acme_etcd_body_t *body = baton;
    size_t n = acme_etcd_collect(data, size, nmemb, baton);
    apr_size_t used = 0;

    if (n == 0) {
        return 0;
    }
    while (used < body->len && !body->canceled) {
        json_error_t err;
        json_t *msg = json_loadb(body->data + used, body->len - used, JSON_DISABLE_EOF_CHECK,
                                 &err);
        if (!msg) {
            break;              /* incomplete: wait for the rest */
        }
        used += (apr_size_t)err.position;
        acme_etcd_watch_message(body, msg);
        json_decref(msg);
    }
    memmove(body->data, body->data + used, body->len - used);
    body->len -= used;
    return (body->events->nelts > 0 || body->canceled) ? 0 : n;
}

apr_status_t acme_etcd_watch(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                             apr_int64_t start_revision, apr_interval_time_t wait,
                             apr_array_header_t **events, apr_int64_t *next_revision,
                             acme_result_t *res)
{
    json_t *req = json_pack("{s:{s:s, s:s, s:s}}", "create_request",
                            "key", acme_etcd_key(p, etcd, key_prefix),
                            "range_end", acme_etcd_range_end(p, etcd, key_prefix),
                            "start_revision",
                            apr_psprintf(p, "%" APR_INT64_T_FMT, start_revision));
    char *json = json_dumps(req, JSON_COMPACT);
    acme_etcd_body_t body = { .p = p, .etcd = etcd };
    long http = 0;
    CURLcode rc;

    json_decref(req);
    /* curl takes a timeout of 0 ms as none at all: a watch would never end */
    wait = wait < apr_time_from_msec(100) ? apr_time_from_msec(100) : wait;
    body.events = *events = apr_array_make(p, 4, sizeof(acme_etcd_event_t));
    rc = acme_etcd_post(etcd, etcd->current, "/v3/watch", json ? json : "{}", &body,
                        acme_etcd_watch_collect, wait, &http);
    free(json);
    free(body.data);
    *next_revision = body.header_revision > 0 ? body.header_revision + 1 : start_revision;
    if (body.events->nelts > 0) {
        const acme_etcd_event_t *last = &APR_ARRAY_IDX(body.events, body.events->nelts - 1,
                                                       acme_etcd_event_t);
        *next_revision = last->kv.mod_revision + 1;
        return APR_SUCCESS;
    }
    if (body.canceled || (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT) || http != 200) {
        *next_revision = body.compacted ? 0 : start_revision;
        etcd->current = (etcd->current + 1) % etcd->opts.endpoints->nelts;
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "etcd watch of %s failed (%s)", key_prefix,
                                             body.compacted ? "history compacted"
                                             : curl_easy_strerror(rc)));
    }
    return APR_SUCCESS;     /* wait ran out with nothing new */
}
