#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <jansson.h>

#include "acme_b64.h"
#include "acme_command.h"
#include "acme_crypto.h"
#include "acme_dns01.h"
#include "acme_perms.h"
#include "acme_plan.h"

#define ACME_DNS01_QUERY_TIMEOUT_MS 2000
#define ACME_DNS01_POLL_INTERVAL apr_time_from_sec(2)

/* ------------------------------------------------------------------ configuration */

apr_status_t acme_dns01_propagation_parse(apr_pool_t *p, const char *text,
                                          acme_dns01_propagation_t *prop, const char **reason)
{
    char *copy = apr_pstrdup(p, text ? text : ""), *last = NULL;
    /* apr_strtok leaves `last` unset when it finds no token: never call it again then. */
    const char *w1 = apr_strtok(copy, " \t", &last);
    const char *w2 = w1 ? apr_strtok(NULL, " \t", &last) : NULL;
    const char *w3 = w2 ? apr_strtok(NULL, " \t", &last) : NULL;
    const char *why = NULL;

    *prop = (acme_dns01_propagation_t){ .delay = 0, .resolver = NULL, .max_wait = 0 };
    if (!w1 || !strcasecmp(w1, "none") || !strcmp(w1, "0")) {
        if (w1 && w2) {
            *reason = "'none' takes no further words";
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (strcasecmp(w1, "check") != 0) {
        if (w2) {
            *reason = apr_psprintf(p, "'%s' is neither 'none', a duration like '30s' nor "
                                   "'check <resolver-ip>[:port] [max]'", text);
            return APR_EINVAL;
        }
        if (acme_plan_duration_parse(w1, &prop->delay, &why, p) != APR_SUCCESS) {
            *reason = why;
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (!w2 || (w3 && apr_strtok(NULL, " \t", &last))) {
        *reason = "'check' needs the address of a resolver and optionally the longest wait, "
                  "e.g. 'check 192.0.2.53 2m' or 'check 127.0.0.1:5353'";
        return APR_EINVAL;
    }
    {
        char *host = apr_pstrdup(p, w2), *colon = strrchr(host, ':');
        struct in_addr a;
        if (colon) {
            char *end = NULL;
            long port = strtol(colon + 1, &end, 10);
            if (!*(colon + 1) || *end || port < 1 || port > 65535) {
                *reason = apr_psprintf(p, "'%s' has no valid port", w2);
                return APR_EINVAL;
            }
            *colon = '\0';
        }
        if (inet_pton(AF_INET, host, &a) != 1) {
            *reason = apr_psprintf(p, "resolver '%s' is not an IPv4 address (with an optional "
                                   ":port)", w2);
            return APR_EINVAL;
        }
    }
    prop->resolver = apr_pstrdup(p, w2);
    prop->max_wait = ACME_DNS01_CHECK_MAX_DEFAULT;
    if (w3 && acme_plan_duration_parse(w3, &prop->max_wait, &why, p) != APR_SUCCESS) {
        *reason = why;
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

const char *acme_dns01_txt_value(apr_pool_t *p, const char *key_authz)
{
    unsigned char digest[32];

    acme_crypto_sha256(key_authz, strlen(key_authz), digest);
    return acme_b64_encode(p, digest, sizeof(digest));
}

const char *acme_dns01_fqdn(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, ACME_DNS01_PREFIX, strncmp(name, "*.", 2) ? name : name + 2, NULL);
}

/* ------------------------------------------------------------------ pending teardowns */

static const char *acme_dns01_pending_path(apr_pool_t *p, acme_store_t *store, const char *domain)
{
    return acme_store_path(p, store, ACME_STORE_JOBS,
                           apr_pstrcat(p, domain, ".dns01.json", NULL), NULL);
}

static json_t *acme_dns01_pending_load(apr_pool_t *p, const char *path)
{
    acme_result_t res;
    json_t *json = NULL, *list;

    acme_result_reset(&res);
    if (path && acme_store_read_json(p, path, &json, &res) == APR_SUCCESS
        && json_is_array(list = json_object_get(json, "records"))) {
        return json_deep_copy(list);
    }
    return json_array();
}

static apr_status_t acme_dns01_pending_save(apr_pool_t *p, const char *path, json_t *list,
                                            acme_result_t *res)
{
    json_t *json;
    apr_status_t rv;

    if (!path) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "dns-01: no place in the store for pending teardowns");
    }
    if (json_array_size(list) == 0) {
        apr_file_remove(path, p);
        return APR_SUCCESS;
    }
    json = json_pack("{s:O}", "records", list);
    rv = acme_store_write_json(p, path, json, ACME_PERMS_0644, res);
    json_decref(json);
    return rv;
}

static int acme_dns01_same(json_t *entry, const acme_dns01_record_t *rec)
{
    const char *fqdn = json_string_value(json_object_get(entry, "fqdn"));
    const char *value = json_string_value(json_object_get(entry, "value"));

    return fqdn && value && !strcmp(fqdn, rec->fqdn) && !strcmp(value, rec->value);
}

static json_t *acme_dns01_strings(const apr_array_header_t *list)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(list, i, const char *)));
    }
    return arr;
}

/* ------------------------------------------------------------------ running the program */

static apr_status_t acme_dns01_run(apr_pool_t *p, const acme_dns01_t *d,
                                   const apr_array_header_t *command, const char *action,
                                   const acme_dns01_record_t *rec, const char **stderr_text,
                                   acme_result_t *res)
{
    apr_array_header_t *argv = apr_array_make(p, 8, sizeof(const char *));
    apr_array_header_t *env = apr_array_make(p, 6, sizeof(const char *));
    const char *names = "";
    acme_command_outcome_t out;
    acme_command_t cmd = {
        .argv = argv, .env = env,
        .timeout = d->timeout > 0 ? d->timeout : ACME_DNS01_TIMEOUT_DEFAULT,
        .what = apr_psprintf(p, "ACMEDns01Command (%s %s)", action, rec->fqdn),
        .cancel = d->stop,
    };
    apr_status_t rv;
    int i;

    if (!command || command->nelts == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "dns-01 for %s needs ACMEDns01Command, and none is set", rec->fqdn));
    }
    apr_array_cat(argv, command);
    APR_ARRAY_PUSH(argv, const char *) = action;
    APR_ARRAY_PUSH(argv, const char *) = rec->fqdn;
    APR_ARRAY_PUSH(argv, const char *) = rec->value;
    for (i = 0; d->names && i < d->names->nelts; ++i) {
        names = apr_pstrcat(p, names, i ? " " : "", APR_ARRAY_IDX(d->names, i, const char *),
                            NULL);
    }
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_DOMAIN=", d->domain, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NAMES=", names, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_STORE_DIR=",
                                                    d->store_dir ? d->store_dir : "", NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_ACTION=", action, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_FQDN=", rec->fqdn, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_TXT_VALUE=", rec->value, NULL);
    rv = acme_command_run(p, &cmd, &out, res);
    if (stderr_text) {
        *stderr_text = out.stderr_text;
    }
    return rv;
}

apr_status_t acme_dns01_setup(apr_pool_t *p, acme_store_t *store, const acme_dns01_t *d,
                              const acme_dns01_record_t *rec, const char **stderr_text,
                              acme_result_t *res)
{
    const char *path = acme_dns01_pending_path(p, store, d->domain);
    json_t *list = acme_dns01_pending_load(p, path), *entry;
    int have = 0;
    size_t i;
    apr_status_t rv = APR_SUCCESS;

    json_array_foreach(list, i, entry) {
        have |= acme_dns01_same(entry, rec);
    }
    if (!have) {
        while (json_array_size(list) >= ACME_DNS01_PENDING_MAX) {
            json_array_remove(list, 0);     /* the oldest, failing ever since */
        }
        json_array_append_new(list, json_pack("{s:s, s:s, s:o}", "fqdn", rec->fqdn,
                                              "value", rec->value,
                                              "command", acme_dns01_strings(d->command)));
        rv = acme_dns01_pending_save(p, path, list, res);
    }
    json_decref(list);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_dns01_run(p, d, d->command, "setup", rec, stderr_text, res);
}

static void acme_dns01_forget(apr_pool_t *p, const char *path, const acme_dns01_record_t *rec)
{
    json_t *list = acme_dns01_pending_load(p, path), *keep = json_array(), *entry;
    acme_result_t res;
    size_t i;

    json_array_foreach(list, i, entry) {
        if (!acme_dns01_same(entry, rec)) {
            json_array_append(keep, entry);
        }
    }
    acme_result_reset(&res);
    acme_dns01_pending_save(p, path, keep, &res);
    json_decref(keep);
    json_decref(list);
}

apr_status_t acme_dns01_teardown(apr_pool_t *p, acme_store_t *store, const acme_dns01_t *d,
                                 const acme_dns01_record_t *rec, const char **stderr_text,
                                 acme_result_t *res)
{
    apr_status_t rv = acme_dns01_run(p, d, d->command, "teardown", rec, stderr_text, res);

    if (rv == APR_SUCCESS) {
        acme_dns01_forget(p, acme_dns01_pending_path(p, store, d->domain), rec);
    }
    return rv;
}

apr_status_t acme_dns01_teardown_pending(apr_pool_t *p, acme_store_t *store,
                                         const acme_dns01_t *d, int *count, acme_result_t *res)
{
    const char *path = acme_dns01_pending_path(p, store, d->domain);
    json_t *list = acme_dns01_pending_load(p, path), *entry;
    apr_status_t rv = APR_SUCCESS;
    size_t i;

    *count = 0;
    json_array_foreach(list, i, entry) {
        acme_dns01_record_t rec = {
            .fqdn = json_string_value(json_object_get(entry, "fqdn")),
            .value = json_string_value(json_object_get(entry, "value")),
        };
        json_t *cmd_json = json_object_get(entry, "command"), *v;
        apr_array_header_t *command = apr_array_make(p, 4, sizeof(const char *));
        apr_status_t one;
        size_t k;
        if (!rec.fqdn || !rec.value) {
            continue;
        }
        rec.fqdn = apr_pstrdup(p, rec.fqdn);
        rec.value = apr_pstrdup(p, rec.value);
        /* The program that set the record up removes it, even if the configuration changed. */
        json_array_foreach(cmd_json, k, v) {
            if (json_is_string(v)) {
                APR_ARRAY_PUSH(command, const char *) = apr_pstrdup(p, json_string_value(v));
            }
        }
        one = acme_dns01_run(p, d, command->nelts ? command : d->command, "teardown", &rec,
                             NULL, res);
        if (one == APR_SUCCESS) {
            acme_dns01_forget(p, path, &rec);
            (*count)++;
        }
        else {
            rv = one;
        }
    }
    json_decref(list);
    return rv;
}

/* ------------------------------------------------------------------ propagation */

static apr_size_t acme_dns01_query(unsigned char *buf, apr_size_t size, const char *fqdn,
                                   apr_uint16_t id)
{
    apr_size_t n = 12;
    const char *label = fqdn;

    memset(buf, 0, 12);
    buf[0] = (unsigned char)(id >> 8);
    buf[1] = (unsigned char)id;
    buf[2] = 0x01;                              /* RD */
    buf[5] = 1;                                 /* QDCOUNT */
    while (*label) {
        const char *dot = strchr(label, '.');
        apr_size_t len = dot ? (apr_size_t)(dot - label) : strlen(label);
        if (len == 0 || len > 63 || n + len + 6 > size) {
            return 0;
        }
        buf[n++] = (unsigned char)len;
        memcpy(buf + n, label, len);
        n += len;
        label += len + (dot ? 1 : 0);
    }
    buf[n++] = 0;
    buf[n++] = 0; buf[n++] = 16;                /* TXT */
    buf[n++] = 0; buf[n++] = 1;                 /* IN */
    return n;
}

apr_size_t acme_dns01_skip_name(const unsigned char *m, apr_size_t len, apr_size_t off)
{
    while (off < len) {
        unsigned char c = m[off];
        if (c == 0) {
            return off + 1;
        }
        if ((c & 0xc0) == 0xc0) {
            return off + 2 <= len ? off + 2 : 0;
        }
        off += (apr_size_t)c + 1;
    }
    return 0;
}

static int acme_dns01_answer_has(const unsigned char *m, apr_size_t len, apr_uint16_t id,
                                 const char *value)
{
    apr_size_t off, vlen = strlen(value);
    unsigned int qd, an, i;

    if (len < 12 || ((apr_uint16_t)(m[0] << 8 | m[1])) != id || !(m[2] & 0x80)) {
        return 0;
    }
    qd = (unsigned int)(m[4] << 8 | m[5]);
    an = (unsigned int)(m[6] << 8 | m[7]);
    off = 12;
    for (i = 0; i < qd; ++i) {
        if (!(off = acme_dns01_skip_name(m, len, off)) || (off += 4) > len) {
            return 0;
        }
    }
    for (i = 0; i < an; ++i) {
        unsigned int type, rdlen;
        apr_size_t r;
        if (!(off = acme_dns01_skip_name(m, len, off)) || off + 10 > len) {
            return 0;
        }
        type = (unsigned int)(m[off] << 8 | m[off + 1]);
        rdlen = (unsigned int)(m[off + 8] << 8 | m[off + 9]);
        off += 10;
        if (off + rdlen > len) {
            return 0;
        }
        for (r = off; type == 16 && r < off + rdlen;) {
            apr_size_t slen = m[r];
            if (r + 1 + slen > off + rdlen) {
                break;
            }
            if (slen == vlen && !memcmp(m + r + 1, value, vlen)) {
                return 1;
            }
            r += 1 + slen;
        }
        off += rdlen;
    }
    return 0;
}

apr_status_t acme_dns01_txt_exchange(apr_pool_t *p, const char *server, const char *fqdn,
                                     unsigned char *a, apr_size_t size, apr_size_t *alen,
                                     unsigned int *qid, acme_result_t *res)
{
    char *host = apr_pstrdup(p, server), *colon = strrchr(host, ':');
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
    unsigned char q[300];
    unsigned char idb[2] = { 0, 0 };
    apr_uint16_t id;
    apr_size_t qlen;
    struct pollfd pfd;
    ssize_t n;
    int fd;

    *alen = 0;
    if (colon) {
        *colon = '\0';
        sa.sin_port = htons((unsigned short)atoi(colon + 1));
    }
    apr_generate_random_bytes(idb, sizeof(idb));
    *qid = id = (apr_uint16_t)(idb[0] << 8 | idb[1]);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1
        || !(qlen = acme_dns01_query(q, sizeof(q), fqdn, id))) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "dns-01: cannot ask %s for TXT %s", server, fqdn));
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "dns-01: socket: %s", strerror(errno)));
    }
    if (sendto(fd, q, qlen, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)qlen) {
        close(fd);
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "dns-01: cannot send a query to %s: %s", server,
                                             strerror(errno)));
    }
    pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, ACME_DNS01_QUERY_TIMEOUT_MS) <= 0
        || (n = recv(fd, a, size, 0)) <= 0) {
        close(fd);
        return acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
            "dns-01: the resolver %s did not answer a TXT query for %s", server, fqdn));
    }
    close(fd);
    *alen = (apr_size_t)n;
    return APR_SUCCESS;
}

apr_status_t acme_dns01_txt_present(apr_pool_t *p, const char *server, const char *fqdn,
                                    const char *value, int *found, acme_result_t *res)
{
    unsigned char a[4096];
    apr_size_t n = 0;
    unsigned int id = 0;
    apr_status_t rv = acme_dns01_txt_exchange(p, server, fqdn, a, sizeof(a), &n, &id, res);

    *found = rv == APR_SUCCESS && acme_dns01_answer_has(a, n, (apr_uint16_t)id, value);
    return rv;
}

static int acme_dns01_sleep(apr_interval_time_t t, volatile const int *stop)
{
    apr_time_t until = apr_time_now() + t;

    while (apr_time_now() < until) {
        if (stop && *stop) {
            return 0;
        }
        apr_sleep(apr_time_from_msec(100));
    }
    return 1;
}

apr_status_t acme_dns01_wait(apr_pool_t *p, const acme_dns01_t *d,
                             const apr_array_header_t *records, volatile const int *stop,
                             acme_result_t *res)
{
    const acme_dns01_propagation_t *prop = &d->propagation;
    apr_time_t deadline;
    const char *missing = NULL;

    if (prop->delay > 0 && !acme_dns01_sleep(prop->delay, stop)) {
        return acme_result_fail(res, APR_EINTR, ACME_CLASS_RETRY_SOON,
                                "the renewal worker was stopped");
    }
    if (!prop->resolver) {
        return APR_SUCCESS;
    }
    deadline = apr_time_now() + prop->max_wait;
    for (;;) {
        int i;
        missing = NULL;
        for (i = 0; i < records->nelts && !missing; ++i) {
            const acme_dns01_record_t *rec = &APR_ARRAY_IDX(records, i, acme_dns01_record_t);
            acme_result_t one;
            int found = 0;
            acme_result_reset(&one);
            if (acme_dns01_txt_present(p, prop->resolver, rec->fqdn, rec->value, &found, &one)
                != APR_SUCCESS || !found) {
                missing = rec->fqdn;
            }
        }
        if (!missing) {
            return APR_SUCCESS;
        }
        if (apr_time_now() + ACME_DNS01_POLL_INTERVAL > deadline) {
            break;
        }
        if (!acme_dns01_sleep(ACME_DNS01_POLL_INTERVAL, stop)) {
            return acme_result_fail(res, APR_EINTR, ACME_CLASS_RETRY_SOON,
                                    "the renewal worker was stopped");
        }
    }
    return acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON, apr_psprintf(p,
        "dns-01: the TXT record %s did not appear at the resolver %s within %" APR_TIME_T_FMT
        " s (ACMEDns01Propagation)", missing, prop->resolver, apr_time_sec(prop->max_wait)));
}
