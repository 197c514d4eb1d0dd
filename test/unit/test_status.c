/* The server-status summary (issue 18): what counts as valid, expiring and failing, the earliest
 * renewal, the newest activation, the worker's state as shown, and the ?auto lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_job.h"
#include "acme_renewal.h"
#include "acme_status.h"
#include "unit_support.h"

#define DAY apr_time_from_sec(86400)
#define T0 apr_time_from_sec(1767225600)

static acme_active_t *active_with(apr_pool_t *p, apr_time_t not_before, apr_time_t life,
                                  apr_time_t activated)
{
    acme_active_t *active = apr_pcalloc(p, sizeof(*active));
    acme_active_cert_t *cert;

    active->certs = apr_array_make(p, 1, sizeof(acme_active_cert_t));
    active->complete = 1;
    cert = apr_array_push(active->certs);
    *cert = (acme_active_cert_t){ .spec = "secp256r1", .activated = activated };
    cert->info.not_before = not_before;
    cert->info.not_after = not_before + life;
    return active;
}

static void test_counts(void **state)
{
    apr_pool_t *p = *state;
    acme_status_summary_t sum = { .worker = NULL };
    acme_job_t *failed = acme_job_make(p, "f.test"), *idle = acme_job_make(p, "i.test");
    apr_time_t now = T0 + 85 * DAY;

    failed->state = ACME_JOB_FAILED;
    failed->renew_at = T0 + 60 * DAY;
    idle->renew_at = T0 + 120 * DAY;
    /* 90 days from T0: at day 85 inside the 10 % window (9 days), failing. */
    acme_status_summary_add(&sum, active_with(p, T0, 90 * DAY, T0 + DAY), failed, NULL, now);
    /* 90 days from day 80: valid and not expiring. */
    acme_status_summary_add(&sum, active_with(p, T0 + 80 * DAY, 90 * DAY, T0 + 80 * DAY), idle,
                            NULL, now);
    /* Nothing served yet, no job. */
    acme_status_summary_add(&sum, NULL, NULL, NULL, now);
    assert_int_equal(sum.domains, 3);
    assert_int_equal(sum.valid, 2);
    assert_int_equal(sum.failing, 1);
    assert_int_equal(sum.expiring, 1);
    assert_true(sum.next_renewal == T0 + 60 * DAY);
    assert_true(sum.last_activation == T0 + 80 * DAY);
}

static void test_warn_window_is_the_configured_one(void **state)
{
    apr_pool_t *p = *state;
    acme_status_summary_t sum = { .worker = NULL };
    acme_plan_window_t w;
    const char *reason = NULL;

    assert_int_equal(acme_renewal_warn_parse("30d", &w, &reason, p), APR_SUCCESS);
    /* Day 65 of 90: 25 days left, inside 30 days but not inside 10 %. */
    acme_status_summary_add(&sum, active_with(p, T0, 90 * DAY, T0), NULL, &w, T0 + 65 * DAY);
    acme_status_summary_add(&sum, active_with(p, T0, 90 * DAY, T0), NULL, NULL, T0 + 65 * DAY);
    assert_int_equal(sum.expiring, 1);
}

static void test_worker_state_shown_only_when_known(void **state)
{
    json_t *j;

    (void)state;
    j = json_pack("{s:s}", "state", "running");
    assert_string_equal(acme_status_worker_state(j), "running");
    json_decref(j);
    j = json_pack("{s:s}", "state", "<script>");
    assert_string_equal(acme_status_worker_state(j), "unknown");
    json_decref(j);
    j = json_pack("{s:i}", "state", 1);
    assert_string_equal(acme_status_worker_state(j), "unknown");
    json_decref(j);
    assert_string_equal(acme_status_worker_state(NULL), "unknown");
}

static void test_auto_lines(void **state)
{
    acme_status_summary_t sum = {
        .domains = 12, .valid = 10, .expiring = 1, .failing = 2,
        .next_renewal = apr_time_from_sec(1800000000), .last_activation = 0, .worker = "idle",
    };

    assert_string_equal(acme_status_summary_auto(*state, &sum),
                        "ACMEDomains: 12\nACMEDomainsValid: 10\nACMEDomainsExpiring: 1\n"
                        "ACMEDomainsFailing: 2\nACMENextRenewal: 1800000000\nACMEWorker: idle\n"
                        "ACMELastActivation: 0\n");
    assert_non_null(strstr(acme_status_summary_html(*state, &sum),
                           "<dt>Last activation: none</dt>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_warn_window_is_the_configured_one),
        cmocka_unit_test(test_worker_state_shown_only_when_known),
        cmocka_unit_test(test_auto_lines),
    };

    return cmocka_run_group_tests(tests, unit_setup_pool, unit_teardown_pool);
}
