/*
 * a2acme list --cluster ENDPOINTS (issue 16): what etcd says of a cluster of mod_acme nodes. Per
 * domain: the serial in etcd, the node holding its order lock, the order in flight, and the
 * serial each live node serves (from the node's presence key, as of its last worker run). Reads
 * only; opens nothing sealed (no cluster key needed) and needs no store.
 */
#include "a2acme_int.h"
#include "acme_cluster.h"
#include "acme_etcd.h"

#define A2_CLUSTER_TIMEOUT apr_time_from_sec(5)

/* domains[name], made on first sight. */
static json_t *a2_cluster_domain(json_t *domains, const char *name)
{
    json_t *d = json_object_get(domains, name);

    if (!d) {
        d = json_pack("{s:n, s:n, s:n, s:{}}", "serial", "holder", "order", "served");
        json_object_set_new(domains, name, d);
    }
    return d;
}

static apr_status_t a2_cluster_connect(a2_t *a, acme_etcd_t **etcd, acme_result_t *res)
{
    const a2_args_t *args = a->args;
    const char *prefix = args->cluster_prefix ? args->cluster_prefix
                                              : ACME_CLUSTER_PREFIX_DEFAULT, *why;
    acme_etcd_options_t opts = { .timeout = A2_CLUSTER_TIMEOUT };
    char *tls = args->cluster_tls ? apr_pstrdup(a->p, args->cluster_tls) : NULL, *last = NULL;

    if ((why = acme_cluster_endpoints_parse(a->p, args->cluster, &opts.endpoints))
        || (why = acme_cluster_prefix_check(a->p, prefix))) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, why);
    }
    opts.prefix = apr_pstrcat(a->p, prefix, "/", NULL);
    if (tls) {
        opts.client_cert = apr_strtok(tls, ",", &last);
        opts.client_key = apr_strtok(NULL, ",", &last);
        opts.ca_file = apr_strtok(NULL, ",", &last);
        if (!opts.client_key || !opts.ca_file) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, "--cluster-tls takes "
                                    "CERT,KEY,CA (the files of ACMEClusterTLS)");
        }
    }
    return acme_etcd_create(etcd, a->p, &opts, res);
}

/* nodes/: the live nodes, and what each serves. */
static void a2_cluster_nodes(const apr_array_header_t *kvs, json_t *nodes, json_t *domains)
{
    int i;

    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = &APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t);
        const char *node = kv->key + strlen("nodes/"), *name;
        json_t *doc = json_loadb(kv->value, kv->value_len, 0, NULL), *serial;

        json_array_append_new(nodes, json_string(node));
        json_object_foreach(json_object_get(doc, "served"), name, serial) {
            if (json_is_string(serial)) {
                json_object_set(json_object_get(a2_cluster_domain(domains, name), "served"),
                                node, serial);
            }
        }
        json_decref(doc);
    }
}

/* locks/, orders/ and certs/<domain>/record into domains. */
static void a2_cluster_domains(apr_pool_t *p, const apr_array_header_t *kvs, json_t *domains)
{
    int i;

    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = &APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t);
        acme_cluster_record_t rec;
        const char *domain;
        json_t *doc;

        if (!strncmp(kv->key, "locks/", 6)) {
            json_object_set_new(a2_cluster_domain(domains, kv->key + 6), "holder",
                                json_string(strncmp(kv->value, "node ", 5) ? kv->value
                                                                           : kv->value + 5));
        }
        else if (!strncmp(kv->key, "orders/", 7)) {
            doc = json_loadb(kv->value, kv->value_len, 0, NULL);
            json_object_set_new(a2_cluster_domain(domains, kv->key + 7), "order",
                                json_string(json_is_string(json_object_get(doc, "url"))
                                            ? json_string_value(json_object_get(doc, "url"))
                                            : "(unreadable)"));
            json_decref(doc);
        }
        else if ((domain = acme_cluster_key_domain(p, kv->key))
                 && !strcmp(kv->key + strlen("certs/") + strlen(domain), "/record")
                 && !acme_cluster_record_parse(p, kv->value, kv->value_len, &rec)) {
            json_object_set_new(a2_cluster_domain(domains, domain), "serial",
                                json_string(rec.serial));
        }
    }
}

static const char *a2_cluster_text(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "-";
}

static void a2_cluster_print(json_t *doc)
{
    json_t *nodes = json_object_get(doc, "nodes"), *d, *n;
    const char *name;
    size_t i;

    printf("%-32s %-20s %-12s %-8s", "DOMAIN", "ETCD SERIAL", "HOLDER", "ORDER");
    json_array_foreach(nodes, i, n) {
        printf(" %-20s", json_string_value(n));
    }
    putchar('\n');
    json_object_foreach(json_object_get(doc, "domains"), name, d) {
        printf("%-32s %-20s %-12s %-8s", name, a2_cluster_text(json_object_get(d, "serial")),
               a2_cluster_text(json_object_get(d, "holder")),
               json_is_string(json_object_get(d, "order")) ? "yes" : "-");
        json_array_foreach(nodes, i, n) {
            printf(" %-20s", a2_cluster_text(json_object_get(json_object_get(d, "served"),
                                                             json_string_value(n))));
        }
        putchar('\n');
        if (json_is_string(json_object_get(d, "order"))) {
            printf("  order in flight: %s\n", json_string_value(json_object_get(d, "order")));
        }
    }
}

int a2_cmd_cluster_list(a2_t *a)
{
    static const char *const prefixes[] = { "locks/", "orders/", "certs/" };
    json_t *doc = json_pack("{s:[], s:{}}", "nodes", "domains");
    apr_array_header_t *kvs = NULL;
    acme_etcd_t *etcd = NULL;
    acme_result_t res;
    size_t k;

    acme_result_reset(&res);
    if (a2_cluster_connect(a, &etcd, &res) != APR_SUCCESS
        || acme_etcd_list(etcd, a->p, "nodes/", &kvs, NULL, &res) != APR_SUCCESS) {
        json_decref(doc);
        return a2_failed(a->p, &res);
    }
    a2_cluster_nodes(kvs, json_object_get(doc, "nodes"), json_object_get(doc, "domains"));
    for (k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); ++k) {
        if (acme_etcd_list(etcd, a->p, prefixes[k], &kvs, NULL, &res) != APR_SUCCESS) {
            json_decref(doc);
            return a2_failed(a->p, &res);
        }
        a2_cluster_domains(a->p, kvs, json_object_get(doc, "domains"));
    }
    if (a->args->json) {
        a2_print_json(doc);
    }
    else {
        a2_cluster_print(doc);
    }
    json_decref(doc);
    return A2_EXIT_OK;
}
