#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "acme_order.h"

#define ORDER_JSON_VERSION 1

static const char *const status_names[] = {
    [ACME_ORDER_NEW] = "new",
    [ACME_ORDER_PENDING] = "pending",
    [ACME_ORDER_READY] = "ready",
    [ACME_ORDER_PROCESSING] = "processing",
    [ACME_ORDER_VALID] = "valid",
    [ACME_ORDER_INVALID] = "invalid",
};

#define N_STATUS ((int)(sizeof(status_names) / sizeof(status_names[0])))

acme_order_t *acme_order_make(apr_pool_t *p, const acme_ident_t *idents, int n_idents,
                              const char *key_spec)
{
    acme_order_t *order = apr_pcalloc(p, sizeof(*order));

    order->identifiers = apr_array_make(p, n_idents > 0 ? n_idents : 1, sizeof(acme_ident_t));
    order->authz_urls = apr_array_make(p, n_idents > 0 ? n_idents : 1, sizeof(const char *));
    for (int i = 0; i < n_idents; ++i) {
        acme_ident_t *id = apr_array_push(order->identifiers);

        id->type = idents[i].type;
        id->value = apr_pstrdup(p, idents[i].value);
    }
    order->key_spec = key_spec ? apr_pstrdup(p, key_spec) : NULL;
    return order;
}

const char *acme_order_status_name(acme_order_status_t status)
{
    return ((int)status >= 0 && (int)status < N_STATUS) ? status_names[status] : "unknown";
}

apr_status_t acme_order_status_parse(const char *text, acme_order_status_t *status)
{
    for (int i = 0; text && i < N_STATUS; ++i) {
        if (strcmp(text, status_names[i]) == 0) {
            *status = (acme_order_status_t)i;
            return APR_SUCCESS;
        }
    }
    return APR_EINVAL;
}

const char *acme_order_ident_type_name(acme_ident_type_t type)
{
    return type == ACME_IDENT_IP ? "ip" : "dns";
}

static apr_status_t ident_type_parse(const char *text, acme_ident_type_t *type)
{
    if (text && strcmp(text, "dns") == 0) {
        *type = ACME_IDENT_DNS;
        return APR_SUCCESS;
    }
    if (text && strcmp(text, "ip") == 0) {
        *type = ACME_IDENT_IP;
        return APR_SUCCESS;
    }
    return APR_EINVAL;
}

static int ident_equal(const acme_ident_t *a, const acme_ident_t *b)
{
    return a->type == b->type && strcasecmp(a->value, b->value) == 0;
}

/* Set equality: every a in b and every b in a (duplicates don't matter). */
static int ident_sets_equal(const acme_ident_t *a, int na, const acme_ident_t *b, int nb)
{
    for (int i = 0; i < na; ++i) {
        int found = 0;

        for (int j = 0; j < nb && !found; ++j) {
            found = ident_equal(&a[i], &b[j]);
        }
        if (!found) {
            return 0;
        }
    }
    for (int j = 0; j < nb; ++j) {
        int found = 0;

        for (int i = 0; i < na && !found; ++i) {
            found = ident_equal(&a[i], &b[j]);
        }
        if (!found) {
            return 0;
        }
    }
    return 1;
}

int acme_order_same_identifiers(const acme_order_t *order, const acme_ident_t *idents,
                                int n_idents)
{
    return ident_sets_equal((const acme_ident_t *)order->identifiers->elts,
                            order->identifiers->nelts, idents, n_idents);
}

/* Reads [{type, value}] into arr; APR_EINVAL for anything malformed. */
static apr_status_t read_identifiers(apr_pool_t *p, json_t *list, apr_array_header_t *arr)
{
    size_t i;
    json_t *item;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        return APR_EINVAL;
    }
    json_array_foreach(list, i, item) {
        const char *value = json_string_value(json_object_get(item, "value"));
        acme_ident_t id;

        if (!value || !*value
            || ident_type_parse(json_string_value(json_object_get(item, "type")), &id.type)) {
            return APR_EINVAL;
        }
        id.value = apr_pstrdup(p, value);
        APR_ARRAY_PUSH(arr, acme_ident_t) = id;
    }
    return APR_SUCCESS;
}

static apr_status_t read_urls(apr_pool_t *p, json_t *list, apr_array_header_t *arr)
{
    size_t i;
    json_t *item;

    if (!list) {
        return APR_SUCCESS;
    }
    if (!json_is_array(list)) {
        return APR_EINVAL;
    }
    json_array_foreach(list, i, item) {
        if (!json_is_string(item)) {
            return APR_EINVAL;
        }
        APR_ARRAY_PUSH(arr, const char *) = apr_pstrdup(p, json_string_value(item));
    }
    return APR_SUCCESS;
}

/* A member that is either absent or a string: anything else is not the CA's order object. */
static int absent_or_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return !v || json_is_string(v);
}

static const char *opt_string(apr_pool_t *p, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? apr_pstrdup(p, s) : NULL;
}

static const char *compact(apr_pool_t *p, json_t *value)
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

apr_status_t acme_order_update(acme_order_t *order, apr_pool_t *p, const char *json,
                               apr_size_t len, acme_result_t *res)
{
    json_t *doc = json_loadb(json ? json : "", len, 0, NULL);
    acme_order_status_t status;
    apr_array_header_t *idents = apr_array_make(p, 2, sizeof(acme_ident_t));
    apr_array_header_t *authz = apr_array_make(p, 2, sizeof(const char *));
    const char *finalize;

    if (!json_is_object(doc)
        || acme_order_status_parse(json_string_value(json_object_get(doc, "status")), &status)
        || status == ACME_ORDER_NEW
        || !absent_or_string(doc, "finalize") || !absent_or_string(doc, "certificate")
        || !absent_or_string(doc, "expires")
        || read_urls(p, json_object_get(doc, "authorizations"), authz)) {
        json_decref(doc);
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "the CA sent no valid order object");
    }
    if (read_identifiers(p, json_object_get(doc, "identifiers"), idents) == APR_SUCCESS
        && !ident_sets_equal((const acme_ident_t *)order->identifiers->elts,
                             order->identifiers->nelts,
                             (const acme_ident_t *)idents->elts, idents->nelts)) {
        json_decref(doc);
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "the CA's identifiers differ from the ones requested");
    }
    order->status = status;
    if (authz->nelts > 0) {
        order->authz_urls = authz;
    }
    finalize = opt_string(p, doc, "finalize");
    order->finalize_url = finalize ? finalize : order->finalize_url;
    order->certificate_url = opt_string(p, doc, "certificate");
    order->expires = opt_string(p, doc, "expires");
    order->error = compact(p, json_object_get(doc, "error"));
    json_decref(doc);
    return APR_SUCCESS;
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

static void set_opt(json_t *obj, const char *key, const char *value)
{
    if (value) {
        json_object_set_new(obj, key, json_string(value));
    }
}

apr_status_t acme_order_to_json(const acme_order_t *order, apr_pool_t *p, const char **out,
                                acme_result_t *res)
{
    json_t *doc = json_object(), *authz = json_array();
    char *text;

    for (int i = 0; order->authz_urls && i < order->authz_urls->nelts; ++i) {
        json_array_append_new(authz, json_string(APR_ARRAY_IDX(order->authz_urls, i,
                                                               const char *)));
    }
    json_object_set_new(doc, "version", json_integer(ORDER_JSON_VERSION));
    set_opt(doc, "account", order->account_url);
    set_opt(doc, "url", order->url);
    json_object_set_new(doc, "status", json_string(acme_order_status_name(order->status)));
    json_object_set_new(doc, "identifiers", identifiers_json(order->identifiers));
    json_object_set_new(doc, "authorizations", authz);
    set_opt(doc, "finalize", order->finalize_url);
    set_opt(doc, "certificate", order->certificate_url);
    set_opt(doc, "expires", order->expires);
    set_opt(doc, "keySpec", order->key_spec);
    set_opt(doc, "profile", order->profile);
    set_opt(doc, "replaces", order->replaces);
    if (order->error) {
        json_t *err = json_loads(order->error, 0, NULL);

        if (err) {
            json_object_set_new(doc, "error", err);
        }
    }
    text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    if (!text) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "cannot serialize the order");
    }
    *out = apr_pstrdup(p, text);
    free(text);
    return APR_SUCCESS;
}

apr_status_t acme_order_from_json(apr_pool_t *p, const char *json, apr_size_t len,
                                  acme_order_t **out, acme_result_t *res)
{
    json_t *doc = json_loadb(json ? json : "", len, 0, NULL);
    acme_order_t *order = apr_pcalloc(p, sizeof(*order));
    apr_status_t rv = APR_EINVAL;

    order->identifiers = apr_array_make(p, 2, sizeof(acme_ident_t));
    order->authz_urls = apr_array_make(p, 2, sizeof(const char *));
    if (json_is_object(doc)
        && json_integer_value(json_object_get(doc, "version")) == ORDER_JSON_VERSION
        && acme_order_status_parse(json_string_value(json_object_get(doc, "status")),
                                   &order->status) == APR_SUCCESS
        && read_identifiers(p, json_object_get(doc, "identifiers"), order->identifiers)
           == APR_SUCCESS
        && read_urls(p, json_object_get(doc, "authorizations"), order->authz_urls)
           == APR_SUCCESS) {
        order->account_url = opt_string(p, doc, "account");
        order->url = opt_string(p, doc, "url");
        order->finalize_url = opt_string(p, doc, "finalize");
        order->certificate_url = opt_string(p, doc, "certificate");
        order->expires = opt_string(p, doc, "expires");
        order->key_spec = opt_string(p, doc, "keySpec");
        order->profile = opt_string(p, doc, "profile");
        order->replaces = opt_string(p, doc, "replaces");
        order->error = compact(p, json_object_get(doc, "error"));
        /* Anything past NEW exists at the CA, so it must say where. */
        rv = (order->status == ACME_ORDER_NEW || order->url) ? APR_SUCCESS : APR_EINVAL;
    }
    json_decref(doc);
    if (rv != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_PERMANENT,
                                "stored order is not a valid order record");
    }
    *out = order;
    return APR_SUCCESS;
}
