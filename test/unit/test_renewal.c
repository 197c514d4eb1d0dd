#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_job.h"
#include "acme_notify.h"
#include "acme_perms.h"
#include "acme_store.h"
#include "acme_renewal.h"
#include "unit_support.h"

#define SEC(n)   apr_time_from_sec(n)
#define DAY(n)   SEC((apr_int64_t)(n) * 86400)
#define NB       SEC(1767225600)        /* 2026-01-01T00:00:00Z */

static acme_result_t failure(acme_class_t cls, int http_status, apr_status_t status)
{
    acme_result_t r;

    acme_result_reset(&r);
    r.status = status;
    r.err_class = cls;
    r.http_status = http_status;
    return r;
}

static void test_failover_after_two_5xx(void **state)
{
    acme_result_t r = failure(ACME_CLASS_RETRY_SOON, 500, APR_EGENERAL);
    int idx = 0, fails = 0;

    (void)state;
    assert_int_equal(acme_renewal_failover(&r, 2, &idx, &fails), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(fails, 1);
    assert_int_equal(acme_renewal_failover(&r, 2, &idx, &fails), 1);
    assert_int_equal(idx, 1);
    assert_int_equal(fails, 0);
    /* wraps around */
    acme_renewal_failover(&r, 2, &idx, &fails);
    assert_int_equal(acme_renewal_failover(&r, 2, &idx, &fails), 1);
    assert_int_equal(idx, 0);
}

static void test_failover_unreachable_at_once(void **state)
{
    acme_result_t r = failure(ACME_CLASS_RETRY_SOON, 0, APR_ECONNREFUSED);
    int idx = 0, fails = 0;

    (void)state;
    assert_int_equal(acme_renewal_failover(&r, 3, &idx, &fails), 1);
    assert_int_equal(idx, 1);
}

static void test_no_failover_on_admin_errors(void **state)
{
    acme_result_t admin = failure(ACME_CLASS_ADMIN, 403, APR_EGENERAL);
    acme_result_t limit = failure(ACME_CLASS_RETRY_AFTER, 429, APR_EGENERAL);
    acme_result_t soon = failure(ACME_CLASS_RETRY_SOON, 503, APR_EGENERAL);
    acme_result_t stop = failure(ACME_CLASS_RETRY_SOON, 0, APR_EINTR);
    int idx = 0, fails = 0;

    (void)state;
    assert_int_equal(acme_renewal_failover(&soon, 2, &idx, &fails), 0);
    assert_int_equal(fails, 1);
    /* an admin error in between resets the count */
    assert_int_equal(acme_renewal_failover(&admin, 2, &idx, &fails), 0);
    assert_int_equal(fails, 0);
    assert_int_equal(acme_renewal_failover(&limit, 2, &idx, &fails), 0);
    assert_int_equal(acme_renewal_failover(&stop, 2, &idx, &fails), 0);
    assert_int_equal(idx, 0);
    /* a single CA never switches */
    assert_int_equal(acme_renewal_failover(&soon, 1, &idx, &fails), 0);
    assert_int_equal(acme_renewal_failover(&soon, 1, &idx, &fails), 0);
    assert_int_equal(idx, 0);
}

static void test_ari_time_stable_and_bounded(void **state)
{
    apr_time_t s = NB + DAY(50), e = NB + DAY(52), local = NB + DAY(60);
    apr_time_t pick, again;

    (void)state;
    pick = acme_renewal_ari_time(s, e, 0, 0, 0, 0.25, local);
    assert_true(pick >= s && pick <= e);
    /* same window: the earlier pick is kept whatever u says */
    again = acme_renewal_ari_time(s, e, s, e, pick, 0.99, local);
    assert_true(again == pick);
    /* a new window: a new pick inside it */
    again = acme_renewal_ari_time(s + DAY(1), e + DAY(1), s, e, pick, 0.5, local);
    assert_true(again >= s + DAY(1) && again <= e + DAY(1));
    /* never later than the local window */
    assert_true(acme_renewal_ari_time(s, e, 0, 0, 0, 0.5, NB + DAY(40)) == NB + DAY(40));
    assert_true(acme_renewal_ari_time(s, e, s, e, pick, 0.5, NB + DAY(40)) == NB + DAY(40));
    /* invalid window: keep the local schedule */
    assert_true(acme_renewal_ari_time(e, s, 0, 0, 0, 0.5, local) == 0);
}

static void test_warn_window(void **state)
{
    apr_pool_t *p = *state;
    acme_plan_window_t w;
    const char *reason = NULL;

    assert_int_equal(acme_renewal_warn_parse("auto", &w, &reason, p), APR_SUCCESS);
    assert_true(acme_renewal_warn_at(&w, NB, NB + DAY(90)) == NB + DAY(81));
    assert_true(acme_renewal_warn_at(NULL, NB, NB + DAY(90)) == NB + DAY(81));
    assert_int_equal(acme_renewal_warn_parse("20%", &w, &reason, p), APR_SUCCESS);
    assert_true(acme_renewal_warn_at(&w, NB, NB + DAY(10)) == NB + DAY(8));
    assert_int_equal(acme_renewal_warn_parse("2d", &w, &reason, p), APR_SUCCESS);
    assert_true(acme_renewal_warn_at(&w, NB, NB + DAY(45)) == NB + DAY(43));
    /* longer than the lifetime: from the start */
    assert_true(acme_renewal_warn_at(&w, NB, NB + DAY(1)) == NB);
    assert_int_not_equal(acme_renewal_warn_parse("soon", &w, &reason, p), APR_SUCCESS);
    assert_non_null(reason);
}

static void test_should_warn(void **state)
{
    apr_time_t at = NB + DAY(5);

    (void)state;
    assert_false(acme_renewal_should_warn(at - 1, at, 3));
    assert_false(acme_renewal_should_warn(at, at, 0));
    assert_true(acme_renewal_should_warn(at, at, 1));
    assert_false(acme_renewal_should_warn(at, 0, 1));
}

static void test_warning_text(void **state)
{
    apr_pool_t *p = *state;
    const char *t = acme_renewal_warning_text(p, "example.org", NB + DAY(1), NB, 3,
                                              "CA unreachable", NB + SEC(600));

    assert_non_null(strstr(t, "example.org"));
    assert_non_null(strstr(t, "Fri, 02 Jan 2026 00:00:00 GMT"));
    assert_non_null(strstr(t, "3 attempts"));
    assert_non_null(strstr(t, "CA unreachable"));
    t = acme_renewal_warning_text(p, "example.org", NB, NB + SEC(5), 1, NULL, 0);
    assert_non_null(strstr(t, "expired"));
}

static void test_notify_rate_limit(void **state)
{
    apr_time_t now = NB + DAY(3);

    (void)state;
    assert_true(acme_notify_due("errored", 0, now));
    assert_false(acme_notify_due("errored", now - SEC(60), now));
    assert_true(acme_notify_due("errored", now - ACME_NOTIFY_REPEAT, now));
    assert_false(acme_notify_due("expiring", now - SEC(1), now));
    assert_true(acme_notify_due("renewed", now - SEC(1), now));
    assert_true(acme_notify_due("installed", now, now));
}

static void test_notify_document(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *names = apr_array_make(p, 2, sizeof(acme_ident_t));
    apr_array_header_t *certs = apr_array_make(p, 2, sizeof(acme_notify_cert_t));
    acme_notify_event_t ev = {
        .event = "errored", .domain = "example.org", .idents = names, .certs = NULL,
        .error = "CA down", .now = NB,
    };
    json_t *doc;
    char *text;

    APR_ARRAY_PUSH(names, acme_ident_t) = (acme_ident_t){ .type = ACME_IDENT_DNS,
                                                          .value = "example.org" };
    APR_ARRAY_PUSH(names, acme_ident_t) = (acme_ident_t){ .type = ACME_IDENT_DNS,
                                                          .value = "www.example.org" };
    /* No certificate yet: serial and not_after are null, not missing. */
    doc = acme_notify_document(&ev);
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"certificates\":[],\"domain\":\"example.org\","
                        "\"error\":\"CA down\",\"event\":\"errored\","
                        "\"names\":[\"example.org\",\"www.example.org\"],"
                        "\"not_after\":null,\"serial\":null,\"time\":1767225600}");
    free(text);
    json_decref(doc);
    /* Two key types: the first one's serial on top, both listed. */
    APR_ARRAY_PUSH(certs, acme_notify_cert_t) = (acme_notify_cert_t){
        .key_type = "secp256r1", .serial = "1A2B", .not_after = NB + DAY(1) };
    APR_ARRAY_PUSH(certs, acme_notify_cert_t) = (acme_notify_cert_t){
        .key_type = "rsa2048", .serial = "3C4D", .not_after = NB + DAY(2) };
    ev = (acme_notify_event_t){ .event = "renewed", .domain = "example.org", .idents = names,
                                .certs = certs, .now = NB };
    doc = acme_notify_document(&ev);
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"certificates\":[{\"key_type\":\"secp256r1\","
                        "\"not_after\":1767312000,\"serial\":\"1A2B\"},{\"key_type\":\"rsa2048\","
                        "\"not_after\":1767398400,\"serial\":\"3C4D\"}],\"domain\":\"example.org\","
                        "\"error\":null,\"event\":\"renewed\","
                        "\"names\":[\"example.org\",\"www.example.org\"],"
                        "\"not_after\":1767312000,\"serial\":\"1A2B\",\"time\":1767225600}");
    free(text);
    json_decref(doc);
}

/* The job file keeps the new fields and reads files written before them. */
static void test_job_fields_round_trip(void **state)
{
    apr_pool_t *p = *state;
    const char *tmp = unit_tmpdir(p, "renewal");
    const char *dir = apr_pstrcat(p, tmp, "/store", NULL);
    const char *old_json = "{\"name\":\"old.test\",\"state\":\"failed\",\"failures\":2}";
    acme_store_t *st = unit_store_open(p, dir);
    acme_job_t *job = acme_job_make(p, "new.test"), *back = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    job->ca_index = 1;
    job->ca_failures = 1;
    job->renew_reason = "ari";
    job->ari_start = NB;
    job->ari_end = NB + DAY(1);
    job->ari_pick = NB + SEC(3600);
    job->ari_next = NB + SEC(60);
    job->ca_hold = NB + SEC(65) - 1;     /* stored rounded up: never earlier */
    job->ari_explanation = "https://ca.example/why";
    job->warning = "new.test: expires";
    job->notified_event = "errored";
    job->notified_at = job->notified_errored_at = NB + SEC(5);
    assert_int_equal(acme_job_save(p, st, job, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(p, st, "new.test", &back, &res), APR_SUCCESS);
    assert_int_equal(back->ca_index, 1);
    assert_int_equal(back->ca_failures, 1);
    assert_string_equal(back->renew_reason, "ari");
    assert_true(back->ari_start == NB && back->ari_end == NB + DAY(1));
    assert_true(back->ari_pick == NB + SEC(3600) && back->ari_next == NB + SEC(60));
    assert_true(back->ca_hold == NB + SEC(65));
    assert_string_equal(back->ari_explanation, "https://ca.example/why");
    assert_string_equal(back->warning, "new.test: expires");
    assert_string_equal(back->notified_event, "errored");
    assert_true(back->notified_errored_at == NB + SEC(5) && back->notified_expiring_at == 0);
    assert_int_equal(acme_store_write_file(p, apr_pstrcat(p, dir, "/jobs/old.test.json", NULL),
                                           old_json, strlen(old_json), ACME_PERMS_0644, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(p, st, "old.test", &back, &res), APR_SUCCESS);
    assert_int_equal(back->failures, 2);
    assert_int_equal(back->ca_index, 0);
    assert_null(back->renew_reason);
    assert_true(back->ari_start == 0 && back->ari_next == 0 && back->ca_hold == 0);
    assert_null(back->warning);
    unit_tmpdir_remove(p, tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_after_two_5xx),
        cmocka_unit_test(test_failover_unreachable_at_once),
        cmocka_unit_test(test_no_failover_on_admin_errors),
        cmocka_unit_test(test_ari_time_stable_and_bounded),
        cmocka_unit_test(test_warn_window),
        cmocka_unit_test(test_should_warn),
        cmocka_unit_test(test_warning_text),
        cmocka_unit_test(test_notify_rate_limit),
        cmocka_unit_test(test_notify_document),
        cmocka_unit_test(test_job_fields_round_trip),
    };

    return cmocka_run_group_tests(tests, unit_setup_pool, unit_teardown_pool);
}
