/*
 * etcdtool: drives src/acme_etcd.c from the command line for test/e2e/test_etcd_client.py,
 * against a real etcd cluster. One operation per run; the answer is one JSON object on stdout.
 *
 *   etcdtool ENDPOINT[,ENDPOINT...] PREFIX COMMAND ARG...
 *     put KEY VALUE [LEASE]      get KEY              list KEY-PREFIX     del KEY|KEY-PREFIX*
 *     grant TTL                  keepalive LEASE      revoke LEASE
 *     lock KEY VALUE LEASE       fput LOCK-KEY TOKEN KEY VALUE
 *     watch KEY-PREFIX REVISION WAIT-MS
 *     read KEY|KEY-PREFIX/ ...   (acme_etcd_read_many: "reads", one list of kvs per argument)
 *     lread KEY|KEY-PREFIX/ ...  (the same with acme_etcd_read_local)
 *
 * Exit: 0 done, 1 the operation failed ({"error": ...} with the message), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acme_etcd.h"

typedef struct {
    acme_etcd_t *etcd;
    apr_pool_t *p;
    int argc;
    char **argv;            /* the command's arguments */
    json_t *out;
    acme_result_t res;
} tool_t;

static apr_int64_t tool_i64(const char *s)
{
    return apr_strtoi64(s, NULL, 10);
}

static json_t *tool_kv(const acme_etcd_kv_t *kv)
{
    if (!kv) {
        return json_null();
    }
    return json_pack("{s:s, s:s%, s:I, s:I, s:I}", "key", kv->key, "value", kv->value,
                     kv->value_len, "create_revision", (json_int_t)kv->create_revision,
                     "mod_revision", (json_int_t)kv->mod_revision, "lease", (json_int_t)kv->lease);
}

static apr_status_t tool_get(tool_t *t)
{
    acme_etcd_kv_t *kv = NULL;
    apr_int64_t rev = 0;
    apr_status_t rv = acme_etcd_get(t->etcd, t->p, t->argv[0], &kv, &rev, &t->res);

    json_object_set_new(t->out, "kv", tool_kv(kv));
    json_object_set_new(t->out, "revision", json_integer((json_int_t)rev));
    return rv;
}

static apr_status_t tool_list(tool_t *t)
{
    apr_array_header_t *kvs = NULL;
    apr_int64_t rev = 0;
    apr_status_t rv = acme_etcd_list(t->etcd, t->p, t->argv[0], &kvs, &rev, &t->res);
    json_t *list = json_array();
    int i;

    for (i = 0; rv == APR_SUCCESS && i < kvs->nelts; ++i) {
        json_array_append_new(list, tool_kv(&APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t)));
    }
    json_object_set_new(t->out, "kvs", list);
    json_object_set_new(t->out, "revision", json_integer((json_int_t)rev));
    return rv;
}

static apr_status_t tool_del(tool_t *t)
{
    char *key = apr_pstrdup(t->p, t->argv[0]);
    apr_size_t n = strlen(key);
    int as_prefix = n > 0 && key[n - 1] == '*';
    long deleted = 0;
    apr_status_t rv;

    if (as_prefix) {
        key[n - 1] = '\0';
    }
    rv = acme_etcd_delete(t->etcd, t->p, key, as_prefix, &deleted, &t->res);
    json_object_set_new(t->out, "deleted", json_integer(deleted));
    return rv;
}

static apr_status_t tool_lease(tool_t *t, const char *cmd)
{
    apr_int64_t lease = 0;
    long ttl = 0;
    apr_status_t rv;

    if (!strcmp(cmd, "grant")) {
        rv = acme_etcd_lease_grant(t->etcd, t->p, (long)tool_i64(t->argv[0]), &lease, &t->res);
        json_object_set_new(t->out, "lease", json_integer((json_int_t)lease));
        return rv;
    }
    if (!strcmp(cmd, "keepalive")) {
        rv = acme_etcd_lease_keepalive(t->etcd, t->p, tool_i64(t->argv[0]), &ttl, &t->res);
        json_object_set_new(t->out, "ttl", json_integer(ttl));
        return rv;
    }
    return acme_etcd_lease_revoke(t->etcd, t->p, tool_i64(t->argv[0]), &t->res);
}

static apr_status_t tool_lock(tool_t *t)
{
    acme_etcd_kv_t *holder = NULL;
    int acquired = 0;
    apr_status_t rv = acme_etcd_lock(t->etcd, t->p, t->argv[0], t->argv[1], tool_i64(t->argv[2]),
                                     &acquired, &holder, &t->res);

    json_object_set_new(t->out, "acquired", json_boolean(acquired));
    json_object_set_new(t->out, "holder", tool_kv(holder));
    return rv;
}

static apr_status_t tool_fput(tool_t *t)
{
    int fenced = 0;
    apr_status_t rv = acme_etcd_put_fenced(t->etcd, t->p, t->argv[0], tool_i64(t->argv[1]),
                                           t->argv[2], t->argv[3], strlen(t->argv[3]), &fenced,
                                           &t->res);

    json_object_set_new(t->out, "fenced", json_boolean(fenced));
    return rv;
}

static apr_status_t tool_watch(tool_t *t)
{
    apr_array_header_t *events = NULL;
    apr_int64_t next = 0;
    apr_status_t rv = acme_etcd_watch(t->etcd, t->p, t->argv[0], tool_i64(t->argv[1]),
                                      apr_time_from_msec(tool_i64(t->argv[2])), &events, &next,
                                      &t->res);
    json_t *list = json_array();
    int i;

    for (i = 0; events && i < events->nelts; ++i) {
        const acme_etcd_event_t *e = &APR_ARRAY_IDX(events, i, acme_etcd_event_t);
        json_t *kv = tool_kv(&e->kv);
        json_object_set_new(kv, "deleted", json_boolean(e->deleted));
        json_array_append_new(list, kv);
    }
    json_object_set_new(t->out, "events", list);
    json_object_set_new(t->out, "next_revision", json_integer((json_int_t)next));
    return rv;
}

static apr_status_t tool_read(tool_t *t, int local)
{
    apr_array_header_t **kvs = apr_pcalloc(t->p, sizeof(*kvs) * (apr_size_t)(t->argc + 1));
    apr_status_t rv = (local ? acme_etcd_read_local : acme_etcd_read_many)(
        t->etcd, t->p, (const char *const *)t->argv, t->argc, kvs, &t->res);
    json_t *reads = json_array();
    int i, j;

    for (i = 0; rv == APR_SUCCESS && i < t->argc; ++i) {
        json_t *list = json_array();
        for (j = 0; j < kvs[i]->nelts; ++j) {
            json_array_append_new(list, tool_kv(&APR_ARRAY_IDX(kvs[i], j, acme_etcd_kv_t)));
        }
        json_array_append_new(reads, list);
    }
    json_object_set_new(t->out, "reads", reads);
    return rv;
}

/* The number of arguments each command takes (the optional LEASE of put aside). */
static int tool_arity(const char *cmd)
{
    static const struct { const char *name; int args; } table[] = {
        {"put", 2}, {"get", 1}, {"list", 1}, {"del", 1}, {"grant", 1}, {"keepalive", 1},
        {"revoke", 1}, {"lock", 3}, {"fput", 4}, {"watch", 3}, {"read", 1},
        {"lread", 1},
    };
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); ++i) {
        if (!strcmp(table[i].name, cmd)) {
            return table[i].args;
        }
    }
    return -1;
}

static apr_status_t tool_run(tool_t *t, const char *cmd)
{
    if (!strcmp(cmd, "put")) {
        return acme_etcd_put(t->etcd, t->p, t->argv[0], t->argv[1], strlen(t->argv[1]),
                             t->argc > 2 ? tool_i64(t->argv[2]) : 0, &t->res);
    }
    if (!strcmp(cmd, "get")) {
        return tool_get(t);
    }
    if (!strcmp(cmd, "list")) {
        return tool_list(t);
    }
    if (!strcmp(cmd, "del")) {
        return tool_del(t);
    }
    if (!strcmp(cmd, "lock")) {
        return tool_lock(t);
    }
    if (!strcmp(cmd, "fput")) {
        return tool_fput(t);
    }
    if (!strcmp(cmd, "watch")) {
        return tool_watch(t);
    }
    if (!strcmp(cmd, "read") || !strcmp(cmd, "lread")) {
        return tool_read(t, cmd[0] == 'l');
    }
    return tool_lease(t, cmd);
}

static acme_etcd_options_t tool_options(apr_pool_t *p, const char *endpoints, const char *prefix)
{
    apr_array_header_t *list = apr_array_make(p, 3, sizeof(const char *));
    char *copy = apr_pstrdup(p, endpoints), *last = NULL, *e;

    for (e = apr_strtok(copy, ",", &last); e; e = apr_strtok(NULL, ",", &last)) {
        APR_ARRAY_PUSH(list, const char *) = e;
    }
    return (acme_etcd_options_t){
        .endpoints = list, .prefix = prefix, .timeout = apr_time_from_sec(2),
        .ca_file = getenv("ETCDTOOL_CA"), .client_cert = getenv("ETCDTOOL_CERT"),
        .client_key = getenv("ETCDTOOL_KEY"),
    };
}

int main(int argc, char **argv)
{
    tool_t t = { .argc = argc - 4, .argv = argv + 4 };
    acme_etcd_options_t opts;
    apr_status_t rv;

    if (argc < 4 || tool_arity(argv[3]) < 0 || argc - 4 < tool_arity(argv[3])) {
        fprintf(stderr, "usage: etcdtool ENDPOINTS PREFIX COMMAND ARG... (see the source)\n");
        return 2;
    }
    apr_app_initialize(&argc, (const char *const **)&argv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    apr_pool_create(&t.p, NULL);
    acme_result_reset(&t.res);
    t.out = json_object();
    opts = tool_options(t.p, argv[1], argv[2]);
    rv = acme_etcd_create(&t.etcd, t.p, &opts, &t.res);
    if (rv == APR_SUCCESS) {
        rv = tool_run(&t, argv[3]);
    }
    if (rv != APR_SUCCESS) {
        json_object_set_new(t.out, "error", json_string(acme_result_describe(&t.res, t.p)));
        json_object_set_new(t.out, "class", json_string(acme_class_name(t.res.err_class)));
    }
    json_object_set_new(t.out, "requests",
                        json_integer(t.etcd ? (json_int_t)acme_etcd_requests(t.etcd) : 0));
    json_dumpf(t.out, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(t.out);
    apr_pool_destroy(t.p);
    apr_terminate();
    return rv == APR_SUCCESS ? 0 : 1;
}
