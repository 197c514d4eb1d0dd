#include <stdint.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "acme_metrics.h"
#include "acme_perms.h"

/* The status's states (src/acme_status.c), in the order a dashboard lists them. */
const char *const acme_metrics_states[] = {
    "valid", "renewing", "valid, renewal failing", "staged", "ordering", "pending", "failing",
    NULL
};

struct acme_metrics_tally_t {
    apr_thread_mutex_t *lock;
    json_t *counts;
};

static apr_status_t acme_metrics_tally_free(void *data)
{
    acme_metrics_tally_t *t = data;

    json_decref(t->counts);
    t->counts = NULL;
    return APR_SUCCESS;
}

acme_metrics_tally_t *acme_metrics_tally_make(apr_pool_t *p)
{
    acme_metrics_tally_t *t = apr_pcalloc(p, sizeof(*t));

    apr_thread_mutex_create(&t->lock, APR_THREAD_MUTEX_DEFAULT, p);
    t->counts = json_object();
    apr_pool_cleanup_register(p, t, acme_metrics_tally_free, apr_pool_cleanup_null);
    return t;
}

/* The object under key in obj, made when missing (or when something else stands there). */
static json_t *acme_metrics_child(json_t *obj, const char *key)
{
    json_t *child = json_object_get(obj, key);

    if (!json_is_object(child)) {
        child = json_object();
        json_object_set_new(obj, key, child);
    }
    return child;
}

static void acme_metrics_bump(json_t *obj, const char *key, apr_int64_t n)
{
    json_t *v = json_object_get(obj, key);
    json_int_t have = json_is_integer(v) ? json_integer_value(v) : 0;

    /* The worker's file is the User's: a huge value saturates rather than overflow. */
    json_object_set_new(obj, key, json_integer(have > (json_int_t)APR_INT64_MAX - (json_int_t)n
                                               ? (json_int_t)APR_INT64_MAX : have + (json_int_t)n));
}

void acme_metrics_count(acme_metrics_tally_t *t, const char *family, const char *key1,
                        const char *key2, apr_int64_t n)
{
    json_t *obj;

    if (!t || n <= 0) {
        return;
    }
    apr_thread_mutex_lock(t->lock);
    obj = acme_metrics_child(t->counts, family);
    if (key2) {
        obj = acme_metrics_child(obj, key1 ? key1 : "");
    }
    acme_metrics_bump(obj, key2 ? key2 : key1 ? key1 : "", n);
    apr_thread_mutex_unlock(t->lock);
}

void acme_metrics_add(json_t *into, const json_t *from)
{
    const char *key;
    json_t *value;

    if (!json_is_object(into) || !json_is_object(from)) {
        return;
    }
    json_object_foreach((json_t *)from, key, value) {
        if (json_is_object(value)) {
            acme_metrics_add(acme_metrics_child(into, key), value);
        }
        else if (json_is_integer(value) && json_integer_value(value) > 0) {
            acme_metrics_bump(into, key, json_integer_value(value));
        }
    }
}

apr_status_t acme_metrics_tally_save(apr_pool_t *p, const char *path, acme_metrics_tally_t *t,
                                     acme_result_t *res)
{
    json_t *have = NULL, *sum = json_object();
    acme_result_t ignored;
    apr_status_t rv;

    acme_result_reset(&ignored);
    if (acme_store_read_json(p, path, &have, &ignored) == APR_SUCCESS) {
        acme_metrics_add(sum, have);
    }
    apr_thread_mutex_lock(t->lock);
    acme_metrics_add(sum, t->counts);
    apr_thread_mutex_unlock(t->lock);
    rv = acme_store_write_json(p, path, sum, ACME_PERMS_0644, res);
    json_decref(sum);
    return rv;
}

const char *acme_metrics_parent_path(apr_pool_t *p, const acme_store_t *st)
{
    return apr_pstrcat(p, acme_store_base(st), "/", ACME_METRICS_PARENT_FILE, NULL);
}

apr_status_t acme_metrics_activation_note(apr_pool_t *p, const acme_store_t *st,
                                          const char *result, int n, acme_result_t *res)
{
    apr_pool_t *tmp;
    acme_metrics_tally_t *t;
    apr_status_t rv;

    apr_pool_create(&tmp, p);
    t = acme_metrics_tally_make(tmp);
    acme_metrics_count(t, ACME_METRICS_ACTIVATIONS, result, NULL, n);
    rv = acme_metrics_tally_save(tmp, acme_metrics_parent_path(tmp, st), t, res);
    if (rv != APR_SUCCESS) {
        res->message = apr_pstrdup(p, res->message);
    }
    apr_pool_destroy(tmp);
    return rv;
}

int acme_metrics_worker_up(apr_time_t next_run, apr_time_t now)
{
    return next_run > 0 && now <= next_run + ACME_METRICS_WORKER_GRACE;
}

const char *acme_metrics_escape(apr_pool_t *p, const char *value)
{
    apr_size_t n = 0;
    const char *s;
    char *out, *o;

    for (s = value; *s; ++s) {
        n += (*s == '\\' || *s == '"' || *s == '\n') ? 2 : 1;
    }
    if (n == strlen(value)) {
        return value;
    }
    out = o = apr_palloc(p, n + 1);
    for (s = value; *s; ++s) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            *o++ = '\\';
            *o++ = *s == '\n' ? 'n' : *s;
        }
        else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------ the text */

#define ACME_METRICS_BUF 65536

/* Output in large pieces: 10,000 domains make about 100,000 lines. */
typedef struct {
    acme_metrics_sink_fn *sink;
    void *ctx;
    apr_pool_t *p;
    apr_size_t len;
    char buf[ACME_METRICS_BUF];
} acme_metrics_out_t;

static void acme_metrics_flush(acme_metrics_out_t *o)
{
    if (o->len) {
        o->sink(o->ctx, o->buf, o->len);
        o->len = 0;
    }
}

static void acme_metrics_putn(acme_metrics_out_t *o, const char *s, apr_size_t len);

static void acme_metrics_put(acme_metrics_out_t *o, const char *s)
{
    acme_metrics_putn(o, s, strlen(s));
}

static void acme_metrics_family(acme_metrics_out_t *o, const char *name, const char *type,
                                const char *help)
{
    acme_metrics_put(o, apr_pstrcat(o->p, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                                    type, "\n", NULL));
}

/* Appends len bytes (through the sink when they do not fit). */
static void acme_metrics_putn(acme_metrics_out_t *o, const char *s, apr_size_t len)
{
    if (o->len + len > sizeof(o->buf)) {
        acme_metrics_flush(o);
    }
    if (len > sizeof(o->buf)) {
        o->sink(o->ctx, s, len);
        return;
    }
    memcpy(o->buf + o->len, s, len);
    o->len += len;
}

/*
 * name{labels} value: labels already escaped, without braces ("" for none). Built by hand, not
 * with a formatter: 10,000 domains make about 100,000 of these lines per scrape.
 */
static void acme_metrics_sample(acme_metrics_out_t *o, const char *name, const char *labels,
                                apr_int64_t value)
{
    char num[24], *n = num + sizeof(num);
    apr_uint64_t v = value < 0 ? (apr_uint64_t)0 - (apr_uint64_t)value : (apr_uint64_t)value;

    *--n = '\n';
    do {
        *--n = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0) {
        *--n = '-';
    }
    *--n = ' ';
    acme_metrics_putn(o, name, strlen(name));
    if (*labels) {
        acme_metrics_putn(o, "{", 1);
        acme_metrics_putn(o, labels, strlen(labels));
        acme_metrics_putn(o, "}", 1);
    }
    acme_metrics_putn(o, n, (apr_size_t)(num + sizeof(num) - n));
}

static const char *acme_metrics_domain_label(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "domain=\"", acme_metrics_escape(p, domain), "\"", NULL);
}

static void acme_metrics_cert_times(acme_metrics_out_t *o, const acme_metrics_t *m, int after)
{
    apr_pool_t *scratch;
    int i;

    acme_metrics_family(o, after ? "acme_certificate_not_after_seconds"
                                 : "acme_certificate_not_before_seconds", "gauge",
                        after ? "End of the served certificate's validity (Unix time)."
                              : "Start of the served certificate's validity (Unix time).");
    apr_pool_create(&scratch, o->p);
    for (i = 0; m->certs && i < m->certs->nelts; ++i) {
        const acme_metrics_cert_t *c = &APR_ARRAY_IDX(m->certs, i, acme_metrics_cert_t);
        apr_time_t t = after ? c->not_after : c->not_before;
        if (!t) {
            continue;
        }
        acme_metrics_sample(o, after ? "acme_certificate_not_after_seconds"
                                     : "acme_certificate_not_before_seconds",
                            apr_pstrcat(scratch, acme_metrics_domain_label(scratch, c->domain),
                                        ",key_type=\"",
                                        acme_metrics_escape(scratch, c->key_type), "\"", NULL),
                            apr_time_sec(t));
        apr_pool_clear(scratch);
    }
    apr_pool_destroy(scratch);
}

/* Renewal time and consecutive failures, one series per domain. */
static void acme_metrics_renewal(acme_metrics_out_t *o, const acme_metrics_t *m)
{
    apr_pool_t *scratch;
    int i, pass;

    apr_pool_create(&scratch, o->p);
    for (pass = 0; pass < 2; ++pass) {
        const char *name = pass ? "acme_renewal_failures" : "acme_renewal_next_seconds";
        acme_metrics_family(o, name, "gauge", pass
                            ? "Consecutive failed certificate orders of the domain."
                            : "When the domain's certificate is due for renewal (Unix time).");
        for (i = 0; m->domains && i < m->domains->nelts; ++i) {
            const acme_metrics_domain_t *d = &APR_ARRAY_IDX(m->domains, i,
                                                            acme_metrics_domain_t);
            if (!pass && !d->renew_at) {
                continue;
            }
            acme_metrics_sample(o, name, acme_metrics_domain_label(scratch, d->domain),
                                pass ? d->failures : apr_time_sec(d->renew_at));
            apr_pool_clear(scratch);
        }
    }
    apr_pool_destroy(scratch);
}

static void acme_metrics_domain_state(acme_metrics_out_t *o, const acme_metrics_t *m)
{
    const char *state_labels[sizeof(acme_metrics_states) / sizeof(acme_metrics_states[0])];
    apr_pool_t *scratch;
    int i, s;

    for (s = 0; acme_metrics_states[s]; ++s) {
        state_labels[s] = apr_pstrcat(o->p, ",state=\"", acme_metrics_states[s], "\"", NULL);
    }
    acme_metrics_family(o, "acme_domain_state", "gauge",
                        "The domain's state as in the status (1 for the current one).");
    apr_pool_create(&scratch, o->p);
    for (i = 0; m->domains && i < m->domains->nelts; ++i) {
        const acme_metrics_domain_t *d = &APR_ARRAY_IDX(m->domains, i, acme_metrics_domain_t);
        const char *dl = acme_metrics_domain_label(scratch, d->domain);
        for (s = 0; acme_metrics_states[s]; ++s) {
            acme_metrics_sample(o, "acme_domain_state", apr_pstrcat(scratch, dl, state_labels[s],
                                                                    NULL),
                                d->state && !strcmp(d->state, acme_metrics_states[s]));
        }
        apr_pool_clear(scratch);
    }
    apr_pool_destroy(scratch);
}

/* Sums every integer leaf (badNonce retries are kept as {"": n}). */
static apr_int64_t acme_metrics_sum(const json_t *obj)
{
    apr_int64_t sum = 0;
    const char *key;
    json_t *value;

    if (json_is_integer(obj)) {
        return json_integer_value(obj) > 0 ? json_integer_value(obj) : 0;
    }
    if (!json_is_object(obj)) {
        return 0;
    }
    json_object_foreach((json_t *)obj, key, value) {
        apr_int64_t add = acme_metrics_sum(value);
        sum = sum > APR_INT64_MAX - add ? APR_INT64_MAX : sum + add;
    }
    return sum;
}

/*
 * A counter labelled by one key (label1) or two (label1, then label2 inside): every integer
 * leaf becomes a series. defaults (NULL-terminated) are shown as 0 when never counted, so that
 * rate() over them works from the first scrape.
 */
static void acme_metrics_counter(acme_metrics_out_t *o, const char *name, const char *help,
                                 const json_t *counts, const char *label1, const char *label2,
                                 const char *const *defaults)
{
    json_t *shown = json_object();
    const char *k1, *k2;
    json_t *v1, *v2;

    for (; defaults && *defaults; ++defaults) {
        json_object_set_new(shown, *defaults, json_integer(0));
    }
    acme_metrics_add(shown, counts);
    acme_metrics_family(o, name, "counter", help);
    json_object_foreach(shown, k1, v1) {
        const char *l1 = apr_pstrcat(o->p, label1, "=\"", acme_metrics_escape(o->p, k1), "\"",
                                     NULL);
        if (!label2 && json_is_integer(v1)) {
            acme_metrics_sample(o, name, l1, json_integer_value(v1));
        }
        if (!label2 || !json_is_object(v1)) {
            continue;
        }
        json_object_foreach(v1, k2, v2) {
            if (json_is_integer(v2)) {
                acme_metrics_sample(o, name, apr_pstrcat(o->p, l1, ",", label2, "=\"",
                                                         acme_metrics_escape(o->p, k2), "\"",
                                                         NULL), json_integer_value(v2));
            }
        }
    }
    json_decref(shown);
}

static void acme_metrics_counters(acme_metrics_out_t *o, const acme_metrics_t *m)
{
    static const char *const results[] = { "success", "failure", NULL };
    static const char *const activations[] = { "success", "failure", "rejected", NULL };
    const json_t *w = m->worker_counts, *parent = m->parent_counts;

    acme_metrics_counter(o, "acme_orders_total", "Certificate orders of a domain, by result.",
                         json_object_get(w, ACME_METRICS_ORDERS), "result", NULL, results);
    acme_metrics_counter(o, "acme_ca_requests_total", "Requests the worker sent to a CA, by "
                         "result (error: no answer or an error answer).",
                         json_object_get(w, ACME_METRICS_CA_REQUESTS), "ca", "result", NULL);
    acme_metrics_counter(o, "acme_activations_total", "Staged certificate sets the server "
                         "tried to activate, by result.",
                         json_object_get(parent, ACME_METRICS_ACTIVATIONS), "result", NULL,
                         activations);
    acme_metrics_counter(o, "acme_challenges_total", "Challenges answered, by type and "
                         "result.", json_object_get(w, ACME_METRICS_CHALLENGES), "type",
                         "result", NULL);
    acme_metrics_family(o, "acme_badnonce_retries_total", "counter",
                        "Requests sent again after a badNonce error.");
    acme_metrics_sample(o, "acme_badnonce_retries_total", "",
                        acme_metrics_sum(json_object_get(w, ACME_METRICS_BADNONCE)));
}

void acme_metrics_write(apr_pool_t *p, const acme_metrics_t *m, acme_metrics_sink_fn *sink,
                        void *ctx)
{
    acme_metrics_out_t *o = apr_palloc(p, sizeof(*o));

    o->sink = sink;
    o->ctx = ctx;
    o->p = p;
    o->len = 0;
    acme_metrics_cert_times(o, m, 1);
    acme_metrics_cert_times(o, m, 0);
    acme_metrics_renewal(o, m);
    acme_metrics_domain_state(o, m);
    acme_metrics_counters(o, m);
    acme_metrics_family(o, "acme_worker_up", "gauge", "1 while the renewal worker keeps its "
                        "schedule (its next run is at most 15 minutes overdue).");
    acme_metrics_sample(o, "acme_worker_up", "", m->worker_up ? 1 : 0);
    acme_metrics_family(o, "acme_store_problems", "gauge",
                        "Store files the last scrape could not read (damaged or unreadable).");
    acme_metrics_sample(o, "acme_store_problems", "", m->store_problems);
    acme_metrics_flush(o);
}

typedef struct {
    apr_pool_t *p;
    char *text;
    apr_size_t len;
    apr_size_t cap;
} acme_metrics_string_t;

static void acme_metrics_string_sink(void *ctx, const char *data, apr_size_t len)
{
    acme_metrics_string_t *s = ctx;

    if (s->len + len + 1 > s->cap) {
        apr_size_t cap = (s->len + len + 1) * 2;
        char *text = apr_palloc(s->p, cap);
        memcpy(text, s->text, s->len);
        s->text = text;
        s->cap = cap;
    }
    memcpy(s->text + s->len, data, len);
    s->len += len;
    s->text[s->len] = '\0';
}

char *acme_metrics_text(apr_pool_t *p, const acme_metrics_t *m)
{
    acme_metrics_string_t s = { .p = p, .text = apr_pstrdup(p, ""), .len = 0, .cap = 1 };

    acme_metrics_write(p, m, acme_metrics_string_sink, &s);
    return s.text;
}
