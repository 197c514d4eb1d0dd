/*
 * acmedrv: drives the protocol core (libacmecore) from the command line, for
 * the integration tests against Pebble. No httpd. Challenge answers are
 * published through pebble-challtestsrv's management API, which is test-only
 * and therefore lives here, not in src/.
 *
 *   acmedrv --dir URL [--ca-file F] --state DIR [global options] COMMAND [options] [name...]
 *
 * Results go to stdout as one JSON object, human errors to stderr.
 * Exit: 0 done, 1 the operation failed (JSON carries the error class),
 * 2 usage or local error, 3 simulated crash (--crash-after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acme_client.h"
#include "acme_crypto.h"
#include "acme_http.h"
#include "acme_order.h"
#include "acme_problem.h"

#define EXIT_FAILED 1
#define EXIT_USAGE  2
#define EXIT_CRASH  3

typedef struct {
    const char *dir_url;
    const char *ca_file;
    const char *state;
    const char *challtestsrv;
    const char *eab_kid;
    const char *eab_hmac;
    const char *eab_alg;
    const char *key_type;
    const char *account_key_type;
    const char *challenge;
    const char *alt_issuer;
    const char *crash_after;
    const char *profile;
    const char *cert_file;
    apr_array_header_t *contact;    /* const char * */
    apr_array_header_t *names;      /* const char * */
    const char *command;
    int agree_tos;
    int reason;
    int by_cert_key;
    int max_bad_nonce_retries;
    double retry_budget;
    int skip_provision;             /* respond without publishing: makes validation fail */
    double timeout;
    double connect_timeout;
    double poll_timeout;
} drv_args_t;

typedef struct {
    apr_pool_t *p;
    drv_args_t *args;
    acme_client_t *client;
    json_t *out;                    /* the result object printed at the end */
    apr_time_t start;
} drv_t;

/* ------------------------------------------------------------------ output */

static void print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
    fflush(stdout);
}

static const char *time_text(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    if (t == 0) {
        return NULL;
    }
    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void add_counts(drv_t *d)
{
    acme_client_counts_t n = { 0 };

    if (d->client) {
        acme_client_counts(d->client, &n);
    }
    json_object_set_new(d->out, "requests",
                        json_pack("{s:i, s:i, s:i, s:i, s:i}",
                                  "total", (json_int_t)n.total,
                                  "directory", (json_int_t)n.directory,
                                  "nonce", (json_int_t)n.nonce,
                                  "protocol", (json_int_t)(n.total - n.directory - n.nonce),
                                  "bad_nonce_retries", (json_int_t)n.bad_nonce_retries));
    json_object_set_new(d->out, "elapsed_ms",
                        json_integer((json_int_t)apr_time_as_msec(apr_time_now() - d->start)));
}

static int finish_ok(drv_t *d)
{
    json_object_set_new(d->out, "ok", json_true());
    add_counts(d);
    print_json(d->out);
    return 0;
}

static int finish_failed(drv_t *d, const acme_result_t *res)
{
    json_t *err = json_object();

    json_object_set_new(err, "class", json_string(acme_class_name(res->err_class)));
    json_object_set_new(err, "message", opt_str(res->message));
    json_object_set_new(err, "type", opt_str(res->problem_type));
    json_object_set_new(err, "detail", opt_str(res->detail));
    json_object_set_new(err, "instance", opt_str(res->instance));
    json_object_set_new(err, "subproblems", opt_str(res->subproblems));
    json_object_set_new(err, "http_status", json_integer(res->http_status));
    json_object_set_new(err, "retry_after", opt_str(time_text(d->p, res->retry_after)));
    json_object_set_new(d->out, "ok", json_false());
    json_object_set_new(d->out, "error", err);
    add_counts(d);
    print_json(d->out);
    fprintf(stderr, "acmedrv: %s (%s)\n", acme_result_describe(res, d->p),
            acme_class_name(res->err_class));
    return EXIT_FAILED;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "acmedrv: %s\n"
            "usage: acmedrv --dir URL [--ca-file F] --state DIR [--challtestsrv URL]\n"
            "         [--eab-kid K --eab-hmac H [--eab-alg HS256]] [--contact URI]... [--no-agree-tos]\n"
            "         [--timeout S] [--connect-timeout S] [--poll-timeout S] [--account-key-type T]\n"
            "         [--max-bad-nonce-retries N] [--retry-budget S]\n"
            "         COMMAND ...\n"
            "commands: directory | account | contact (with --contact) | issue [--key-type T] [--challenge http-01|tls-alpn-01|dns-01]\n"
            "          [--alt-issuer NAME] [--profile P] [--skip-provision]\n"
            "          [--crash-after account|newOrder|authz|challenge|ready|finalize] name...\n"
            "        | rollover [--key-type T] | revoke [--reason N] [--by-cert-key] | deactivate | ari [--cert F]\n",
            msg);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ state files */

/* A file of the state directory, or name itself when it is an absolute path. */
static const char *state_path(drv_t *d, const char *name)
{
    return name[0] == '/' ? name : apr_pstrcat(d->p, d->args->state, "/", name, NULL);
}

static apr_status_t read_file(drv_t *d, const char *name, const char **text, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;
    apr_status_t rv = apr_file_open(&f, state_path(d, name), APR_FOPEN_READ, 0, d->p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS) {
        n = (apr_size_t)fi.size;
        buf = apr_palloc(d->p, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
        buf[n] = '\0';
        *text = buf;
        if (len) {
            *len = n;
        }
    }
    apr_file_close(f);
    return rv;
}

/* Temp file + rename: a crash leaves the old or the new file, never half of one. */
static apr_status_t write_file(drv_t *d, const char *name, const char *text, int secret)
{
    const char *path = state_path(d, name), *tmp = apr_pstrcat(d->p, path, ".tmp", NULL);
    apr_fileperms_t perms = secret ? (APR_FPROT_UREAD | APR_FPROT_UWRITE)
                                   : (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD
                                      | APR_FPROT_WREAD);
    apr_file_t *f;
    apr_size_t n = strlen(text);
    apr_status_t rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                                    | APR_FOPEN_TRUNCATE, perms, d->p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_write_full(f, text, n, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_file_sync(f);
    }
    apr_file_close(f);
    return rv == APR_SUCCESS ? apr_file_rename(tmp, path, d->p) : rv;
}

static void remove_file(drv_t *d, const char *name)
{
    apr_file_remove(state_path(d, name), d->p);
}

static int local_error(drv_t *d, const char *what, apr_status_t rv)
{
    char buf[256];

    fprintf(stderr, "acmedrv: %s: %s\n", what, apr_strerror(rv, buf, sizeof(buf)));
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ crash simulation */

static void maybe_crash(drv_t *d, const char *step)
{
    if (d->args->crash_after && strcmp(d->args->crash_after, step) == 0) {
        json_object_set_new(d->out, "crashed_after", json_string(step));
        add_counts(d);
        print_json(d->out);
        fprintf(stderr, "acmedrv: simulated crash after %s\n", step);
        fflush(stderr);
        /* No cleanups, no atexit: as close to a kill as a test can ask for. */
        _Exit(EXIT_CRASH);
    }
}

/* ------------------------------------------------------------------ account */

static apr_status_t load_or_make_key(drv_t *d, const char *file, const char *type,
                                     acme_key_t **key, int *existed, acme_result_t *res)
{
    const char *pem, *reason;
    apr_size_t len;
    acme_keyspec_t spec;
    apr_status_t rv;

    *existed = 0;
    if (read_file(d, file, &pem, &len) == APR_SUCCESS) {
        *existed = 1;
        return acme_crypto_key_from_pem(d->p, pem, len, key, res);
    }
    if (acme_crypto_keyspec_parse(type, &spec, &reason, d->p) != APR_SUCCESS) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, reason);
    }
    rv = acme_crypto_key_generate(d->p, &spec, key, res);
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_key_to_pem(d->p, *key, &pem, res);
    }
    if (rv == APR_SUCCESS && (rv = write_file(d, file, pem, 1)) != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_ADMIN,
                                apr_psprintf(d->p, "cannot write %s", state_path(d, file)));
    }
    return rv;
}

static const char *load_account_url(drv_t *d)
{
    const char *text;
    apr_size_t len;
    json_t *doc;
    const char *url = NULL;

    if (read_file(d, "account.json", &text, &len) != APR_SUCCESS) {
        return NULL;
    }
    doc = json_loadb(text, len, 0, NULL);
    /* An account belongs to one CA: another directory means no account. */
    if (json_is_string(json_object_get(doc, "url"))
        && json_is_string(json_object_get(doc, "directory"))
        && strcmp(json_string_value(json_object_get(doc, "directory")), d->args->dir_url) == 0) {
        url = apr_pstrdup(d->p, json_string_value(json_object_get(doc, "url")));
    }
    json_decref(doc);
    return url;
}

static apr_status_t save_account_url(drv_t *d, acme_result_t *res)
{
    json_t *doc = json_pack("{s:s, s:s}", "url", acme_client_account_url(d->client),
                            "directory", d->args->dir_url);
    char *text = json_dumps(doc, JSON_INDENT(2));
    apr_status_t rv = write_file(d, "account.json", text, 0);

    free(text);
    json_decref(doc);
    if (rv != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_ADMIN, "cannot write account.json");
    }
    return APR_SUCCESS;
}

/*
 * Stored URL: no request. Stored key without URL: onlyReturnExisting, then
 * newAccount if the CA does not know the key. Fresh key: newAccount.
 */
static apr_status_t ensure_account(drv_t *d, acme_result_t *res)
{
    acme_key_t *key;
    int existed, found = 0, created = 0;
    const char *url;
    acme_client_account_t *acct = NULL;
    acme_client_account_params_t params = {
        .contact = (const char *const *)d->args->contact->elts,
        .n_contact = d->args->contact->nelts,
        .agree_tos = d->args->agree_tos,
        .eab_kid = d->args->eab_kid,
        .eab_hmac = d->args->eab_hmac,
        .eab_alg = d->args->eab_alg,
    };
    apr_status_t rv;

    rv = load_or_make_key(d, "account.key.pem", d->args->account_key_type, &key, &existed, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    url = existed ? load_account_url(d) : NULL;
    acme_client_account_use(d->client, key, url);
    if (!url && existed) {
        rv = acme_client_account_find(d->client, d->p, &acct, res);
        found = rv == APR_SUCCESS;
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return rv;
        }
    }
    if (!url && !found) {
        rv = acme_client_account_register(d->client, d->p, &params, &acct, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        created = acct->created;
    }
    if (!url && (rv = save_account_url(d, res)) != APR_SUCCESS) {
        return rv;
    }
    json_object_set_new(d->out, "account",
                        json_pack("{s:s, s:b, s:b, s:b}",
                                  "url", acme_client_account_url(d->client),
                                  "stored", url != NULL, "found", found, "created", created));
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ challtestsrv */

static size_t discard(char *data, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

static apr_status_t challtestsrv_post(drv_t *d, const char *path, json_t *body,
                                      acme_result_t *res)
{
    const char *url = apr_pstrcat(d->p, d->args->challtestsrv, "/", path, NULL);
    char *text = json_dumps(body, JSON_COMPACT);
    CURL *c = curl_easy_init();
    CURLcode rc = CURLE_FAILED_INIT;
    long code = 0;

    json_decref(body);
    if (c && text) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    if (c) {
        curl_easy_cleanup(c);
    }
    free(text);
    if (rc != CURLE_OK || code != 200) {
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(d->p, "challtestsrv %s failed (curl %d, HTTP %ld)",
                                             url, (int)rc, code));
    }
    return APR_SUCCESS;
}

typedef struct {
    const char *type;
    const char *key;                /* token or host, for the teardown */
} provisioned_t;

static apr_status_t provision(drv_t *d, const acme_client_authz_t *authz,
                              const acme_client_challenge_t *chal, const char *key_authz,
                              apr_array_header_t *done, acme_result_t *res)
{
    provisioned_t *pv;
    apr_status_t rv;

    if (d->args->skip_provision) {
        return APR_SUCCESS;
    }
    if (!d->args->challtestsrv) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "a challenge needs an answer: give --challtestsrv URL");
    }
    if (strcmp(chal->type, "http-01") == 0) {
        rv = challtestsrv_post(d, "add-http01",
                               json_pack("{s:s, s:s}", "token", chal->token, "content", key_authz),
                               res);
        pv = apr_array_push(done);
        *pv = (provisioned_t){ .type = chal->type, .key = chal->token };
        return rv;
    }
    if (strcmp(chal->type, "tls-alpn-01") == 0) {
        rv = challtestsrv_post(d, "add-tlsalpn01",
                               json_pack("{s:s, s:s}", "host", authz->identifier.value,
                                         "content", key_authz), res);
        pv = apr_array_push(done);
        *pv = (provisioned_t){ .type = chal->type, .key = authz->identifier.value };
        return rv;
    }
    if (strcmp(chal->type, "dns-01") == 0) {
        const char *host = apr_pstrcat(d->p, "_acme-challenge.", authz->identifier.value, ".",
                                       NULL);

        rv = challtestsrv_post(d, "set-txt",
                               json_pack("{s:s, s:s}", "host", host,
                                         "value", acme_client_dns01_value(d->p, key_authz)), res);
        pv = apr_array_push(done);
        *pv = (provisioned_t){ .type = chal->type, .key = host };
        return rv;
    }
    return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN,
                            apr_psprintf(d->p, "the driver cannot answer %s", chal->type));
}

static void teardown(drv_t *d, apr_array_header_t *done)
{
    for (int i = 0; i < done->nelts; ++i) {
        const provisioned_t *pv = &APR_ARRAY_IDX(done, i, provisioned_t);
        acme_result_t ignored;

        if (strcmp(pv->type, "http-01") == 0) {
            challtestsrv_post(d, "del-http01", json_pack("{s:s}", "token", pv->key), &ignored);
        }
        else if (strcmp(pv->type, "tls-alpn-01") == 0) {
            challtestsrv_post(d, "del-tlsalpn01", json_pack("{s:s}", "host", pv->key), &ignored);
        }
        else {
            challtestsrv_post(d, "clear-txt", json_pack("{s:s}", "host", pv->key), &ignored);
        }
    }
}

/* ------------------------------------------------------------------ issue */

static apr_status_t parse_names(drv_t *d, acme_ident_t **idents, int *n, acme_result_t *res)
{
    apr_array_header_t *names = d->args->names;
    acme_ident_t *list = apr_pcalloc(d->p, sizeof(*list) * (apr_size_t)(names->nelts + 1));
    unsigned char buf[16];

    if (names->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, "issue: no names given");
    }
    for (int i = 0; i < names->nelts; ++i) {
        char *v = apr_pstrdup(d->p, APR_ARRAY_IDX(names, i, const char *));

        for (char *c = v; *c; ++c) {
            *c = (char)apr_tolower(*c);
        }
        list[i].value = v;
        list[i].type = (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
                           ? ACME_IDENT_IP : ACME_IDENT_DNS;
    }
    *idents = list;
    *n = names->nelts;
    return APR_SUCCESS;
}

static apr_status_t save_order(drv_t *d, const acme_order_t *order, acme_result_t *res)
{
    const char *json;
    apr_status_t rv = acme_order_to_json(order, d->p, &json, res);

    if (rv == APR_SUCCESS && (rv = write_file(d, "order.json", json, 0)) != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_ADMIN, "cannot write order.json");
    }
    return rv;
}

/* The stored order, if it is for the same account, names and key type. */
static acme_order_t *load_order(drv_t *d, const acme_ident_t *idents, int n, const char *spec)
{
    const char *text;
    apr_size_t len;
    acme_order_t *order;
    acme_result_t ignored;

    if (read_file(d, "order.json", &text, &len) != APR_SUCCESS
        || acme_order_from_json(d->p, text, len, &order, &ignored) != APR_SUCCESS
        || order->status == ACME_ORDER_NEW
        || !order->account_url
        || strcmp(order->account_url, acme_client_account_url(d->client)) != 0
        || !acme_order_same_identifiers(order, idents, n)
        || !order->key_spec || strcmp(order->key_spec, spec) != 0) {
        return NULL;
    }
    return order;
}

static apr_status_t answer_challenges(drv_t *d, acme_order_t *order, apr_array_header_t *done,
                                      acme_result_t *res)
{
    apr_array_header_t *authzs;
    int fetched = 0, responded = 0;
    apr_status_t rv;

    rv = acme_client_order_authzs(d->client, d->p, order, &authzs, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    fetched = authzs->nelts;
    maybe_crash(d, "authz");
    for (int i = 0; i < authzs->nelts; ++i) {
        const acme_client_authz_t *authz = APR_ARRAY_IDX(authzs, i, acme_client_authz_t *);
        const acme_client_challenge_t *chal;
        const char *key_authz;

        if (strcmp(authz->status, "pending") != 0) {
            continue;
        }
        chal = acme_client_authz_challenge(authz, d->args->challenge);
        if (!chal) {
            return acme_result_fail(res, APR_ENOTIMPL, ACME_CLASS_ADMIN,
                                    apr_psprintf(d->p, "the CA offers no %s challenge for %s",
                                                 d->args->challenge, authz->identifier.value));
        }
        if ((rv = acme_client_key_authorization(d->client, d->p, chal->token, &key_authz, res))
            != APR_SUCCESS
            || (rv = provision(d, authz, chal, key_authz, done, res)) != APR_SUCCESS
            || (rv = acme_client_challenge_respond(d->client, d->p, chal, res)) != APR_SUCCESS) {
            return rv;
        }
        ++responded;
    }
    json_object_set_new(d->out, "authorizations",
                        json_pack("{s:i, s:i}", "fetched", (json_int_t)fetched,
                                  "responded", (json_int_t)responded));
    maybe_crash(d, "challenge");
    return APR_SUCCESS;
}

static apr_status_t report_chain(drv_t *d, const acme_client_chain_t *chain, acme_result_t *res)
{
    acme_cert_info_t info;
    const acme_cert_t *leaf = APR_ARRAY_IDX(chain->certs, 0, const acme_cert_t *);
    json_t *sans = json_array();
    apr_status_t rv = acme_crypto_cert_info(d->p, leaf, &info, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (int i = 0; i < info.sans->nelts; ++i) {
        json_array_append_new(sans, json_string(APR_ARRAY_IDX(info.sans, i, acme_ident_t).value));
    }
    json_object_set_new(d->out, "certificate",
                        json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i, s:b, s:s, s:s}",
                                  "serial", info.serial_hex,
                                  "not_before", opt_str(time_text(d->p, info.not_before)),
                                  "not_after", opt_str(time_text(d->p, info.not_after)),
                                  "issuer", opt_str(info.issuer),
                                  "issuer_cn", opt_str(info.issuer_cn),
                                  "top_issuer_cn", opt_str(chain->top_issuer_cn),
                                  "sans", sans,
                                  "chain_length", (json_int_t)chain->certs->nelts,
                                  "alternates", (json_int_t)chain->n_alternates,
                                  "is_alternate", chain->is_alternate,
                                  "url", chain->url,
                                  "file", state_path(d, "cert.pem")));
    return APR_SUCCESS;
}

static apr_status_t run_order(drv_t *d, acme_order_t *order, const acme_key_t *cert_key,
                              acme_result_t *res)
{
    apr_array_header_t *done = apr_array_make(d->p, 2, sizeof(provisioned_t));
    acme_client_chain_t *chain;
    const char *key_pem;
    apr_status_t rv = APR_SUCCESS;

    if (order->status == ACME_ORDER_PENDING) {
        rv = answer_challenges(d, order, done, res);
        if (rv == APR_SUCCESS) {
            rv = acme_client_order_wait(d->client, d->p, order, res);
        }
        teardown(d, done);
        if (rv != APR_SUCCESS) {
            save_order(d, order, res);
            return rv;
        }
        save_order(d, order, res);
        maybe_crash(d, "ready");
    }
    if (order->status == ACME_ORDER_READY) {
        rv = acme_client_order_finalize(d->client, d->p, order, cert_key, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        save_order(d, order, res);
        maybe_crash(d, "finalize");
    }
    if (order->status == ACME_ORDER_PROCESSING) {
        rv = acme_client_order_wait(d->client, d->p, order, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        save_order(d, order, res);
    }
    if (order->status != ACME_ORDER_VALID) {
        return order->status == ACME_ORDER_INVALID
            ? acme_client_order_explain(d->client, d->p, order, res)
            : acme_result_fail(res, APR_EGENERAL, ACME_CLASS_PERMANENT,
                               apr_psprintf(d->p, "order %s ended %s", order->url,
                                            acme_order_status_name(order->status)));
    }
    rv = acme_client_cert_download(d->client, d->p, order, cert_key, d->args->alt_issuer, &chain,
                                   res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = acme_crypto_key_to_pem(d->p, cert_key, &key_pem, res)) != APR_SUCCESS) {
        return rv;
    }
    if (write_file(d, "privkey.pem", key_pem, 1) != APR_SUCCESS
        || write_file(d, "cert.pem", apr_pstrmemdup(d->p, chain->pem, chain->pem_len), 0)
           != APR_SUCCESS) {
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_ADMIN,
                                "cannot write cert.pem / privkey.pem");
    }
    /* Done: the next issue is a new order. */
    remove_file(d, "order.json");
    remove_file(d, "order.key.pem");
    return report_chain(d, chain, res);
}

static int cmd_issue(drv_t *d)
{
    acme_ident_t *idents = NULL;
    int n = 0, resumed = 0, key_existed;
    acme_keyspec_t spec;
    const char *reason, *spec_name;
    acme_order_t *order;
    acme_key_t *cert_key;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_crypto_keyspec_parse(d->args->key_type, &spec, &reason, d->p) != APR_SUCCESS) {
        return usage_error(reason);
    }
    spec_name = acme_crypto_keyspec_name(&spec);
    if (parse_names(d, &idents, &n, &res) != APR_SUCCESS) {
        return usage_error(res.message);
    }
    if (ensure_account(d, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    maybe_crash(d, "account");
    order = load_order(d, idents, n, spec_name);
    if (order) {
        /* Resume: ask the CA where the stored order stands instead of ordering again. */
        if (acme_client_order_refresh(d->client, d->p, order, &res) == APR_SUCCESS
            && order->status != ACME_ORDER_INVALID) {
            resumed = 1;
        }
        else {
            order = NULL;
        }
    }
    if (!order) {
        remove_file(d, "order.key.pem");
    }
    if (load_or_make_key(d, "order.key.pem", spec_name, &cert_key, &key_existed, &res)
        != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    if (!order) {
        order = acme_order_make(d->p, idents, n, spec_name);
        order->profile = d->args->profile;
        if (acme_client_order_new(d->client, d->p, order, &res) != APR_SUCCESS) {
            return finish_failed(d, &res);
        }
        if (save_order(d, order, &res) != APR_SUCCESS) {
            return finish_failed(d, &res);
        }
    }
    json_object_set_new(d->out, "order",
                        json_pack("{s:s, s:b, s:s}", "url", order->url, "resumed", resumed,
                                  "initial_status", acme_order_status_name(order->status)));
    maybe_crash(d, "newOrder");
    if (run_order(d, order, cert_key, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    return finish_ok(d);
}

/* ------------------------------------------------------------------ other commands */

static int cmd_directory(drv_t *d)
{
    const acme_client_meta_t *meta;
    acme_result_t res;
    json_t *profiles = json_object();

    if (acme_client_meta(d->client, &meta, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    for (int i = 0; i < meta->profiles->nelts; ++i) {
        const acme_client_profile_t *prof = &APR_ARRAY_IDX(meta->profiles, i, acme_client_profile_t);

        json_object_set_new(profiles, prof->name, opt_str(prof->description));
    }
    json_object_set_new(d->out, "meta",
                        json_pack("{s:o, s:b, s:o, s:o, s:i}",
                                  "terms_of_service", opt_str(meta->terms_of_service),
                                  "external_account_required", meta->external_account_required,
                                  "renewal_info", opt_str(meta->renewal_info),
                                  "profiles", profiles,
                                  "caa_identities", (json_int_t)meta->caa_identities->nelts));
    return finish_ok(d);
}

static int cmd_account(drv_t *d)
{
    acme_result_t res;

    if (ensure_account(d, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    return finish_ok(d);
}

static int cmd_contact(drv_t *d)
{
    acme_client_account_t *acct;
    acme_result_t res;

    if (ensure_account(d, &res) != APR_SUCCESS
        || acme_client_account_update(d->client, d->p,
                                      (const char *const *)d->args->contact->elts,
                                      d->args->contact->nelts, &acct, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    json_object_set_new(d->out, "contact", acct->contact ? json_loads(acct->contact, 0, NULL)
                                                         : json_array());
    json_object_set_new(d->out, "status", opt_str(acct->status));
    return finish_ok(d);
}

static int cmd_rollover(drv_t *d)
{
    acme_keyspec_t spec;
    const char *reason, *pem;
    acme_key_t *new_key;
    acme_result_t res;

    if (acme_crypto_keyspec_parse(d->args->key_type, &spec, &reason, d->p) != APR_SUCCESS) {
        return usage_error(reason);
    }
    if (ensure_account(d, &res) != APR_SUCCESS
        || acme_crypto_key_generate(d->p, &spec, &new_key, &res) != APR_SUCCESS
        || acme_crypto_key_to_pem(d->p, new_key, &pem, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    /* Keep the new key before the CA switches, so a crash in between loses nothing. */
    if (write_file(d, "account.key.next.pem", pem, 1) != APR_SUCCESS) {
        return local_error(d, "cannot write account.key.next.pem", APR_EGENERAL);
    }
    if (acme_client_account_key_change(d->client, d->p, new_key, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    if (apr_file_rename(state_path(d, "account.key.next.pem"), state_path(d, "account.key.pem"),
                        d->p) != APR_SUCCESS) {
        return local_error(d, "cannot replace account.key.pem", APR_EGENERAL);
    }
    json_object_set_new(d->out, "new_key_type", json_string(acme_crypto_keyspec_name(&spec)));
    return finish_ok(d);
}

static int cmd_revoke(drv_t *d)
{
    const char *pem, *key_pem;
    apr_size_t len, key_len;
    acme_key_t *cert_key = NULL;
    apr_array_header_t *chain;
    acme_cert_info_t info;
    acme_result_t res;
    const char *file = d->args->cert_file ? d->args->cert_file : "cert.pem";
    apr_status_t rv;

    if ((rv = read_file(d, file, &pem, &len)) != APR_SUCCESS) {
        return local_error(d, state_path(d, file), rv);
    }
    if (d->args->by_cert_key) {
        if ((rv = read_file(d, "privkey.pem", &key_pem, &key_len)) != APR_SUCCESS) {
            return local_error(d, "privkey.pem", rv);
        }
        if (acme_crypto_key_from_pem(d->p, key_pem, key_len, &cert_key, &res) != APR_SUCCESS) {
            return finish_failed(d, &res);
        }
    }
    else if (ensure_account(d, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    if (acme_crypto_chain_parse(d->p, pem, len, &chain, &res) != APR_SUCCESS
        || acme_crypto_cert_info(d->p, APR_ARRAY_IDX(chain, 0, const acme_cert_t *), &info, &res)
           != APR_SUCCESS
        || acme_client_cert_revoke(d->client, d->p, pem, len, d->args->reason, cert_key, &res)
           != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    json_object_set_new(d->out, "revoked", json_pack("{s:s, s:i, s:b}", "serial", info.serial_hex,
                                                     "reason", (json_int_t)d->args->reason,
                                                     "by_cert_key", cert_key != NULL));
    return finish_ok(d);
}

static int cmd_deactivate(drv_t *d)
{
    acme_result_t res;

    if (ensure_account(d, &res) != APR_SUCCESS
        || acme_client_account_deactivate(d->client, d->p, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    json_object_set_new(d->out, "deactivated", json_true());
    return finish_ok(d);
}

static int cmd_ari(drv_t *d)
{
    const char *pem, *cert_id;
    apr_size_t len;
    apr_array_header_t *chain;
    acme_client_renewal_info_t info;
    acme_result_t res;
    apr_status_t rv;

    if ((rv = read_file(d, d->args->cert_file ? d->args->cert_file : "cert.pem", &pem, &len))
        != APR_SUCCESS) {
        return local_error(d, "certificate", rv);
    }
    if (acme_crypto_chain_parse(d->p, pem, len, &chain, &res) != APR_SUCCESS
        || acme_crypto_ari_cert_id(d->p, APR_ARRAY_IDX(chain, 0, const acme_cert_t *), &cert_id,
                                   &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    json_object_set_new(d->out, "cert_id", json_string(cert_id));
    if (acme_client_renewal_info(d->client, d->p, cert_id, &info, &res) != APR_SUCCESS) {
        return finish_failed(d, &res);
    }
    json_object_set_new(d->out, "renewal_info",
                        json_pack("{s:s, s:s, s:o, s:o}",
                                  "start", time_text(d->p, info.start),
                                  "end", time_text(d->p, info.end),
                                  "explanation_url", opt_str(info.explanation_url),
                                  "retry_after", opt_str(time_text(d->p, info.retry_after))));
    return finish_ok(d);
}

/* ------------------------------------------------------------------ main */

static int parse_args(apr_pool_t *p, int argc, const char *const *argv, drv_args_t *a)
{
    static const char *const with_value[] = {
        "--dir", "--ca-file", "--state", "--challtestsrv", "--eab-kid", "--eab-hmac", "--eab-alg",
        "--key-type", "--account-key-type", "--challenge", "--alt-issuer", "--crash-after",
        "--profile", "--cert", "--contact", "--reason", "--timeout", "--connect-timeout",
        "--poll-timeout", "--max-bad-nonce-retries", "--retry-budget",
    };

    *a = (drv_args_t){
        .key_type = "secp256r1", .account_key_type = "secp256r1", .challenge = "http-01",
        .agree_tos = 1, .reason = -1,
        .contact = apr_array_make(p, 1, sizeof(const char *)),
        .names = apr_array_make(p, 2, sizeof(const char *)),
    };
    for (int i = 1; i < argc; ++i) {
        const char *opt = argv[i], *val = NULL;
        int takes = 0;

        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); ++k) {
            takes |= strcmp(opt, with_value[k]) == 0;
        }
        if (takes) {
            if (i + 1 >= argc) {
                return usage_error(apr_psprintf(p, "%s needs a value", opt));
            }
            val = argv[++i];
        }
        if (!strcmp(opt, "--dir")) a->dir_url = val;
        else if (!strcmp(opt, "--ca-file")) a->ca_file = val;
        else if (!strcmp(opt, "--state")) a->state = val;
        else if (!strcmp(opt, "--challtestsrv")) a->challtestsrv = val;
        else if (!strcmp(opt, "--eab-kid")) a->eab_kid = val;
        else if (!strcmp(opt, "--eab-hmac")) a->eab_hmac = val;
        else if (!strcmp(opt, "--eab-alg")) a->eab_alg = val;
        else if (!strcmp(opt, "--key-type")) a->key_type = val;
        else if (!strcmp(opt, "--account-key-type")) a->account_key_type = val;
        else if (!strcmp(opt, "--challenge")) a->challenge = val;
        else if (!strcmp(opt, "--alt-issuer")) a->alt_issuer = val;
        else if (!strcmp(opt, "--crash-after")) a->crash_after = val;
        else if (!strcmp(opt, "--profile")) a->profile = val;
        else if (!strcmp(opt, "--cert")) a->cert_file = val;
        else if (!strcmp(opt, "--contact")) APR_ARRAY_PUSH(a->contact, const char *) = val;
        else if (!strcmp(opt, "--reason")) a->reason = atoi(val);
        else if (!strcmp(opt, "--timeout")) a->timeout = atof(val);
        else if (!strcmp(opt, "--connect-timeout")) a->connect_timeout = atof(val);
        else if (!strcmp(opt, "--poll-timeout")) a->poll_timeout = atof(val);
        else if (!strcmp(opt, "--max-bad-nonce-retries")) a->max_bad_nonce_retries = atoi(val);
        else if (!strcmp(opt, "--retry-budget")) a->retry_budget = atof(val);
        else if (!strcmp(opt, "--no-agree-tos")) a->agree_tos = 0;
        else if (!strcmp(opt, "--by-cert-key")) a->by_cert_key = 1;
        else if (!strcmp(opt, "--skip-provision")) a->skip_provision = 1;
        else if (opt[0] == '-' && opt[1] == '-') return usage_error(apr_psprintf(p, "unknown option %s", opt));
        else if (!a->command) a->command = opt;
        else APR_ARRAY_PUSH(a->names, const char *) = opt;
    }
    if (!a->dir_url || !a->command) {
        return usage_error("--dir and a command are required");
    }
    if (!a->state && strcmp(a->command, "directory") != 0) {
        return usage_error("--state DIR is required");
    }
    return 0;
}

static apr_interval_time_t seconds(double s)
{
    return s > 0 ? (apr_interval_time_t)(s * APR_USEC_PER_SEC) : 0;
}

static int run(apr_pool_t *p, int argc, const char *const *argv)
{
    drv_args_t args;
    drv_t d = { .p = p, .args = &args, .start = apr_time_now() };
    acme_client_options_t opts;
    acme_result_t res;
    int rc = parse_args(p, argc, argv, &args);

    if (rc != 0) {
        return rc;
    }
    if (args.state && apr_dir_make_recursive(args.state, APR_FPROT_OS_DEFAULT, p) != APR_SUCCESS) {
        return local_error(&d, args.state, APR_EGENERAL);
    }
    opts = (acme_client_options_t){
        .ca_file = args.ca_file,
        .timeout = seconds(args.timeout),
        .connect_timeout = seconds(args.connect_timeout),
        .poll_timeout = seconds(args.poll_timeout),
        .max_bad_nonce_retries = args.max_bad_nonce_retries,
        .retry_budget = seconds(args.retry_budget),
    };
    d.out = json_pack("{s:s}", "command", args.command);
    if (acme_client_create(&d.client, p, args.dir_url, &opts, &res) != APR_SUCCESS) {
        rc = finish_failed(&d, &res);
    }
    else if (!strcmp(args.command, "issue")) rc = cmd_issue(&d);
    else if (!strcmp(args.command, "account")) rc = cmd_account(&d);
    else if (!strcmp(args.command, "directory")) rc = cmd_directory(&d);
    else if (!strcmp(args.command, "rollover")) rc = cmd_rollover(&d);
    else if (!strcmp(args.command, "contact")) rc = cmd_contact(&d);
    else if (!strcmp(args.command, "revoke")) rc = cmd_revoke(&d);
    else if (!strcmp(args.command, "deactivate")) rc = cmd_deactivate(&d);
    else if (!strcmp(args.command, "ari")) rc = cmd_ari(&d);
    else rc = usage_error(apr_psprintf(p, "unknown command %s", args.command));
    json_decref(d.out);
    return rc;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    int rc;

    apr_app_initialize(&argc, &argv, NULL);
    if (acme_http_global_init() != APR_SUCCESS) {
        fputs("acmedrv: libcurl initialisation failed\n", stderr);
        return EXIT_USAGE;
    }
    apr_pool_create(&p, NULL);
    rc = run(p, argc, argv);
    apr_pool_destroy(p);
    curl_global_cleanup();
    apr_terminate();
    return rc;
}
