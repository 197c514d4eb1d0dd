/* Prometheus metrics (src/acme_metrics.c): the exposition text and the counters in the store. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_metrics.h"
#include "acme_perms.h"
#include "unit_support.h"

static apr_pool_t *pool_of(void **state)
{
    return *state;
}

static acme_metrics_t *sample_metrics(apr_pool_t *p)
{
    acme_metrics_t *m = apr_pcalloc(p, sizeof(*m));
    acme_metrics_domain_t *d;
    acme_metrics_cert_t *c;

    m->domains = apr_array_make(p, 2, sizeof(acme_metrics_domain_t));
    m->certs = apr_array_make(p, 2, sizeof(acme_metrics_cert_t));
    d = apr_array_push(m->domains);
    *d = (acme_metrics_domain_t){ .domain = "a.example", .state = "valid",
                                  .renew_at = apr_time_from_sec(1700000000), .failures = 0 };
    d = apr_array_push(m->domains);
    *d = (acme_metrics_domain_t){ .domain = "b.example", .state = "failing", .failures = 3 };
    c = apr_array_push(m->certs);
    *c = (acme_metrics_cert_t){ .domain = "a.example", .key_type = "ec-p256",
                                .not_before = apr_time_from_sec(1690000000),
                                .not_after = apr_time_from_sec(1697776000) };
    m->worker_up = 1;
    m->store_problems = 2;
    return m;
}

static int has_line(const char *text, const char *line)
{
    const char *at = text;
    size_t len = strlen(line);

    while ((at = strstr(at, line)) != NULL) {
        if ((at == text || at[-1] == '\n') && at[len] == '\n') {
            return 1;
        }
        at += len;
    }
    return 0;
}

static void test_per_domain_series(void **state)
{
    apr_pool_t *p = pool_of(state);
    char *text = acme_metrics_text(p, sample_metrics(p));

    assert_true(has_line(text, "acme_certificate_not_after_seconds{domain=\"a.example\","
                               "key_type=\"ec-p256\"} 1697776000"));
    assert_true(has_line(text, "acme_certificate_not_before_seconds{domain=\"a.example\","
                               "key_type=\"ec-p256\"} 1690000000"));
    assert_true(has_line(text, "acme_renewal_next_seconds{domain=\"a.example\"} 1700000000"));
    /* No renewal time known: no series rather than a fake 0. */
    assert_null(strstr(text, "acme_renewal_next_seconds{domain=\"b.example\"}"));
    assert_true(has_line(text, "acme_renewal_failures{domain=\"b.example\"} 3"));
    assert_true(has_line(text, "acme_domain_state{domain=\"a.example\",state=\"valid\"} 1"));
    assert_true(has_line(text, "acme_domain_state{domain=\"a.example\",state=\"failing\"} 0"));
    assert_true(has_line(text, "acme_domain_state{domain=\"b.example\",state=\"failing\"} 1"));
    assert_true(has_line(text, "acme_domain_state{domain=\"b.example\","
                               "state=\"valid, renewal failing\"} 0"));
    assert_true(has_line(text, "acme_worker_up 1"));
    assert_true(has_line(text, "acme_store_problems 2"));
}

/* Every family has HELP and TYPE, once, before its samples; the text ends with a newline. */
static void test_help_and_type(void **state)
{
    static const char *const families[] = {
        "acme_certificate_not_after_seconds gauge", "acme_certificate_not_before_seconds gauge",
        "acme_renewal_next_seconds gauge", "acme_renewal_failures gauge",
        "acme_domain_state gauge", "acme_orders_total counter", "acme_ca_requests_total counter",
        "acme_activations_total counter", "acme_challenges_total counter",
        "acme_badnonce_retries_total counter", "acme_worker_up gauge",
        "acme_store_problems gauge", NULL
    };
    apr_pool_t *p = pool_of(state);
    acme_metrics_t *m = sample_metrics(p);
    json_t *w = json_pack("{s:{s:{s:i}}, s:{s:{s:i}}}", "ca_requests", "https://ca/", "ok", 1,
                          "challenges", "dns-01", "valid", 1);
    char *text;
    int i;

    m->worker_counts = w;
    text = acme_metrics_text(p, m);
    json_decref(w);

    for (i = 0; families[i]; ++i) {
        const char *type = apr_pstrcat(p, "# TYPE ", families[i], NULL);
        const char *name = apr_pstrndup(p, families[i], strcspn(families[i], " "));
        const char *at = strstr(text, type);
        assert_non_null(at);
        assert_null(strstr(at + 1, type));
        assert_non_null(strstr(text, apr_pstrcat(p, "# HELP ", name, " ", NULL)));
        /* The first sample comes right after the TYPE line. */
        at = strchr(at, '\n') + 1;
        assert_memory_equal(at, name, strlen(name));
        assert_true(at[strlen(name)] == '{' || at[strlen(name)] == ' ');
    }
    assert_int_equal(text[strlen(text) - 1], '\n');
}

static void test_escape(void **state)
{
    apr_pool_t *p = pool_of(state);

    assert_string_equal(acme_metrics_escape(p, "plain"), "plain");
    assert_string_equal(acme_metrics_escape(p, "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

/* Counters from the files; defaults shown as 0; label values escaped. */
static void test_counters(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_metrics_t *m = sample_metrics(p);
    json_t *w = json_pack("{s:{s:i}, s:{s:{s:i, s:i}}, s:{s:{s:i}}, s:{s:i}}",
                          "orders", "success", 2,
                          "ca_requests", "https://ca/\"dir\"", "ok", 40, "error", 1,
                          "challenges", "http-01", "valid", 2,
                          "badnonce_retries", "", 5);
    json_t *parent = json_pack("{s:{s:i}}", "activations", "success", 2);
    char *text;

    m->worker_counts = w;
    m->parent_counts = parent;
    text = acme_metrics_text(p, m);
    assert_true(has_line(text, "acme_orders_total{result=\"success\"} 2"));
    assert_true(has_line(text, "acme_orders_total{result=\"failure\"} 0"));
    assert_true(has_line(text, "acme_ca_requests_total{ca=\"https://ca/\\\"dir\\\"\","
                               "result=\"ok\"} 40"));
    assert_true(has_line(text, "acme_challenges_total{type=\"http-01\",result=\"valid\"} 2"));
    assert_true(has_line(text, "acme_badnonce_retries_total 5"));
    assert_true(has_line(text, "acme_activations_total{result=\"success\"} 2"));
    assert_true(has_line(text, "acme_activations_total{result=\"failure\"} 0"));
    json_decref(w);
    json_decref(parent);

    m->worker_counts = m->parent_counts = NULL;
    text = acme_metrics_text(p, m);
    assert_true(has_line(text, "acme_orders_total{result=\"success\"} 0"));
    assert_true(has_line(text, "acme_badnonce_retries_total 0"));
}

/* Two runs add up in the file; a damaged file starts again from zero. */
static void test_tally_save(void **state)
{
    apr_pool_t *p = pool_of(state);
    const char *dir = unit_tmpdir(p, "metrics");
    const char *path = apr_pstrcat(p, dir, "/metrics.json", NULL);
    acme_metrics_tally_t *t = acme_metrics_tally_make(p);
    acme_result_t res;
    json_t *json = NULL;

    acme_result_reset(&res);
    acme_metrics_count(t, ACME_METRICS_ORDERS, "success", NULL, 1);
    acme_metrics_count(t, ACME_METRICS_CA_REQUESTS, "https://ca/dir", "ok", 7);
    acme_metrics_count(t, ACME_METRICS_BADNONCE, NULL, NULL, 1);
    acme_metrics_count(t, ACME_METRICS_ORDERS, "failure", NULL, 0);   /* nothing */
    assert_int_equal(acme_metrics_tally_save(p, path, t, &res), APR_SUCCESS);
    assert_int_equal(acme_metrics_tally_save(p, path, t, &res), APR_SUCCESS);
    assert_int_equal(acme_store_read_json(p, path, &json, &res), APR_SUCCESS);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json, "orders"),
                                                        "success")), 2);
    assert_null(json_object_get(json_object_get(json, "orders"), "failure"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(
                         json, "ca_requests"), "https://ca/dir"), "ok")), 14);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json,
                                                                        "badnonce_retries"),
                                                        "")), 2);

    unit_write_file(p, path, "{not json", ACME_PERMS_0644);
    assert_int_equal(acme_metrics_tally_save(p, path, t, &res), APR_SUCCESS);
    assert_int_equal(acme_store_read_json(p, path, &json, &res), APR_SUCCESS);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json, "orders"),
                                                        "success")), 1);
    unit_tmpdir_remove(p, dir);
}

/* Negative or non-integer leaves in a (User-writable) file are not added. */
static void test_add_ignores_junk(void **state)
{
    json_t *into = json_object();
    json_t *from = json_pack("{s:i, s:s, s:{s:i}, s:f}", "a", -5, "b", "x", "c", "d", 3,
                             "e", 1.5);

    (void)state;
    acme_metrics_add(into, from);
    acme_metrics_add(into, from);
    assert_null(json_object_get(into, "a"));
    assert_null(json_object_get(into, "b"));
    assert_null(json_object_get(into, "e"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(into, "c"), "d")), 6);
    json_decref(into);
    json_decref(from);
}

/* Huge counts (the worker's file is the User's) saturate instead of overflowing. */
static void test_add_saturates(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_metrics_t m = { .worker_counts = NULL };
    json_t *into = json_object();
    json_t *from = json_pack("{s:{s:I}, s:{s:I, s:I}}", "orders", "success",
                             (json_int_t)APR_INT64_MAX, "badnonce_retries",
                             "", (json_int_t)APR_INT64_MAX, "x", (json_int_t)5);

    acme_metrics_add(into, from);
    acme_metrics_add(into, from);
    assert_true(json_integer_value(json_object_get(json_object_get(into, "orders"), "success"))
                == (json_int_t)APR_INT64_MAX);
    m.worker_counts = into;
    assert_non_null(strstr(acme_metrics_text(p, &m), "\nacme_badnonce_retries_total "
                                                     "9223372036854775807\n"));
    json_decref(into);
    json_decref(from);
}

static void test_worker_up(void **state)
{
    apr_time_t now = apr_time_from_sec(1700000000);

    (void)state;
    assert_false(acme_metrics_worker_up(0, now));
    assert_true(acme_metrics_worker_up(now + apr_time_from_sec(3600), now));
    assert_true(acme_metrics_worker_up(now - apr_time_from_sec(60), now));
    assert_false(acme_metrics_worker_up(now - ACME_METRICS_WORKER_GRACE - 1, now));
}

/* 10,000 domains: every one has its series (the handler's figure is in bench/). */
static void test_many_domains(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_metrics_t *m = apr_pcalloc(p, sizeof(*m));
    int i, n = 0;
    char *text, *at;

    m->domains = apr_array_make(p, 10000, sizeof(acme_metrics_domain_t));
    for (i = 0; i < 10000; ++i) {
        acme_metrics_domain_t *d = apr_array_push(m->domains);
        *d = (acme_metrics_domain_t){ .domain = apr_psprintf(p, "d%d.example", i),
                                      .state = "pending" };
    }
    text = acme_metrics_text(p, m);
    for (at = text; (at = strstr(at, "\nacme_renewal_failures{")) != NULL; ++at) {
        ++n;
    }
    assert_int_equal(n, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_domain_series, unit_setup_pool,
                                        unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_help_and_type, unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_escape, unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_counters, unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_tally_save, unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test(test_add_ignores_junk),
        cmocka_unit_test(test_worker_up),
        cmocka_unit_test_setup_teardown(test_add_saturates, unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_many_domains, unit_setup_pool, unit_teardown_pool),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
