#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "acme_cluster.h"
#include "acme_vault.h"

/* One "scheme://host:port": no path, user info or query; IPv6 in brackets. */
static const char *acme_cluster_endpoint_check(apr_pool_t *p, const char *url)
{
    const char *rest, *colon;
    char *end = NULL;
    long port;

    if (!strncmp(url, "http://", 7)) {
        rest = url + 7;
    }
    else if (!strncmp(url, "https://", 8)) {
        rest = url + 8;
    }
    else {
        return apr_psprintf(p, "'%s' is no etcd endpoint: write http://host:port or "
                            "https://host:port (e.g. https://10.0.0.1:2379)", url);
    }
    colon = strrchr(rest, ':');
    if (!colon || colon == rest || (rest[0] == '[' && colon[-1] != ']')
        || strpbrk(rest, "/@?# ")) {
        return apr_psprintf(p, "'%s': the endpoint needs a host and a port and nothing else "
                            "(e.g. https://10.0.0.1:2379)", url);
    }
    port = strtol(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end || port < 1 || port > 65535) {
        return apr_psprintf(p, "'%s': the port must be a number from 1 to 65535", url);
    }
    return NULL;
}

const char *acme_cluster_endpoints_parse(apr_pool_t *p, const char *list,
                                         apr_array_header_t **endpoints)
{
    char *copy = apr_pstrdup(p, list), *last = NULL, *one;
    const char *err;

    *endpoints = apr_array_make(p, 3, sizeof(const char *));
    for (one = apr_strtok(copy, ",", &last); one; one = apr_strtok(NULL, ",", &last)) {
        if ((err = acme_cluster_endpoint_check(p, one))) {
            return err;
        }
        if ((*endpoints)->nelts >= ACME_CLUSTER_ENDPOINTS_MAX) {
            return "more than 16 etcd endpoints";
        }
        APR_ARRAY_PUSH(*endpoints, const char *) = one;
    }
    if ((*endpoints)->nelts == 0) {
        return "no etcd endpoint given (e.g. https://10.0.0.1:2379,https://10.0.0.2:2379)";
    }
    return NULL;
}

const char *acme_cluster_prefix_check(apr_pool_t *p, const char *prefix)
{
    apr_size_t n = strlen(prefix);
    const char *c;

    if (n < 2 || prefix[0] != '/' || prefix[n - 1] == '/' || strstr(prefix, "//") || n > 128) {
        return apr_psprintf(p, "prefix '%s' must start with '/', not end with one and hold no "
                            "empty part (e.g. prefix=/mod_acme)", prefix);
    }
    for (c = prefix; *c; ++c) {
        if (!isalnum((unsigned char)*c) && !strchr("/._-", *c)) {
            return apr_psprintf(p, "prefix '%s': only letters, digits and / . _ - are allowed",
                                prefix);
        }
    }
    return NULL;
}

const char *acme_cluster_node_check(apr_pool_t *p, const char *name)
{
    const char *c;

    if (!*name || strlen(name) > ACME_CLUSTER_NODE_MAX) {
        return "a node name has 1 to 64 characters";
    }
    for (c = name; *c; ++c) {
        if (!isalnum((unsigned char)*c) && !strchr("._-", *c)) {
            return apr_psprintf(p, "node name '%s': only letters, digits and . _ - are allowed",
                                name);
        }
    }
    return NULL;
}

apr_size_t acme_cluster_secret_len(const char *buf, apr_size_t n)
{
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        --n;
    }
    return n >= ACME_VAULT_MIN_SECRET ? n : 0;
}

const char *acme_cluster_key_lock(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "locks/", domain, NULL);
}

const char *acme_cluster_key_order(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "orders/", domain, NULL);
}

const char *acme_cluster_key_record(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "certs/", domain, "/record", NULL);
}

const char *acme_cluster_key_certs(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "certs/", domain, "/", NULL);
}

const char *acme_cluster_key_cert(apr_pool_t *p, const char *domain, const char *spec,
                                  const char *what)
{
    return apr_pstrcat(p, "certs/", domain, "/", spec, "/", what, NULL);
}

const char *acme_cluster_key_node(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, "nodes/", name, NULL);
}

const char *acme_cluster_key_answer(apr_pool_t *p, const char *type, const char *what)
{
    return apr_pstrcat(p, "challenges/", type, "/", what, NULL);
}

const char *acme_cluster_key_ack(apr_pool_t *p, const char *type, const char *what,
                                 const char *node)
{
    return apr_pstrcat(p, "acks/", type, "/", what, "/", node, NULL);
}

const char *acme_cluster_key_domain(apr_pool_t *p, const char *key)
{
    const char *slash;

    if (strncmp(key, "certs/", 6) || !(slash = strchr(key + 6, '/')) || slash == key + 6) {
        return NULL;
    }
    return apr_pstrndup(p, key + 6, (apr_size_t)(slash - (key + 6)));
}

const char *acme_cluster_record_to_json(apr_pool_t *p, const acme_cluster_record_t *rec)
{
    json_t *json = json_pack("{s:i, s:s, s:s?, s:s, s:I, s:I, s:I, s:s?}", "version", 1,
                             "domain", rec->domain, "node", rec->node, "serial", rec->serial,
                             "not_before", (json_int_t)apr_time_sec(rec->not_before),
                             "not_after", (json_int_t)apr_time_sec(rec->not_after),
                             "published", (json_int_t)apr_time_sec(rec->published),
                             "config_digest", rec->config_digest);
    json_t *specs = json_array();
    const char *out = NULL;
    char *text;
    int i;

    for (i = 0; rec->specs && i < rec->specs->nelts; ++i) {
        json_array_append_new(specs, json_string(APR_ARRAY_IDX(rec->specs, i, const char *)));
    }
    if (json && json_object_set_new(json, "specs", specs) == 0
        && (text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS))) {
        out = apr_pstrdup(p, text);
        free(text);
    }
    json_decref(json);
    return out;
}

static const char *acme_cluster_record_specs(apr_pool_t *p, json_t *specs,
                                             acme_cluster_record_t *rec)
{
    size_t i;

    if (!json_is_array(specs) || json_array_size(specs) == 0 || json_array_size(specs) > 8) {
        return "the record names no key spec";
    }
    rec->specs = apr_array_make(p, (int)json_array_size(specs), sizeof(const char *));
    for (i = 0; i < json_array_size(specs); ++i) {
        const char *s = json_string_value(json_array_get(specs, i));
        if (!s || !*s || strpbrk(s, "/ ") || strlen(s) > 32) {
            return "the record names a key spec that is not one";
        }
        APR_ARRAY_PUSH(rec->specs, const char *) = apr_pstrdup(p, s);
    }
    return NULL;
}

const char *acme_cluster_record_parse(apr_pool_t *p, const char *text, apr_size_t len,
                                      acme_cluster_record_t *rec)
{
    json_t *json = json_loadb(text, len, 0, NULL), *specs = NULL;
    const char *domain = NULL, *node = NULL, *serial = NULL, *digest = NULL, *err = NULL;
    json_int_t version = 0, nb = 0, na = 0, pub = 0;

    memset(rec, 0, sizeof(*rec));
    if (!json || json_unpack(json, "{s:I, s:s, s?s, s:s, s:I, s:I, s:I, s?s, s:o}", "version",
                             &version, "domain", &domain, "node", &node, "serial", &serial,
                             "not_before", &nb, "not_after", &na, "published", &pub,
                             "config_digest", &digest, "specs", &specs) != 0) {
        err = "the record is not the JSON object a node publishes";
    }
    else if (version != 1) {
        err = "the record has a version this node does not know (a newer mod_acme wrote it)";
    }
    else if (!*serial || strspn(serial, "0123456789ABCDEF") != strlen(serial)
             || na <= nb || nb <= 0) {
        err = "the record's serial or validity is not one of a certificate";
    }
    else if (!(err = acme_cluster_record_specs(p, specs, rec))) {
        rec->domain = apr_pstrdup(p, domain);
        rec->node = node ? apr_pstrdup(p, node) : NULL;
        rec->serial = apr_pstrdup(p, serial);
        rec->config_digest = digest ? apr_pstrdup(p, digest) : NULL;
        rec->not_before = apr_time_from_sec(nb);
        rec->not_after = apr_time_from_sec(na);
        rec->published = apr_time_from_sec(pub);
    }
    json_decref(json);
    return err;
}

int acme_cluster_record_newer(const acme_cluster_record_t *rec, apr_time_t not_before,
                              const char *serial)
{
    if (serial && !strcmp(serial, rec->serial)) {
        return 0;
    }
    return rec->not_before > not_before || (!serial && rec->not_before >= not_before);
}
