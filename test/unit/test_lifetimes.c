/*
 * Short-lived certificates (issue 15): the renewal schedule of acme_plan/acme_renewal over a
 * simulated clock for the lifetimes that matter now - 160 h (Let's Encrypt shortlived), 45 days
 * (tlsserver), 64 and 90 days (classic) - with ARI windows as Let's Encrypt sets them (Boulder
 * RenewalInfoSimple: ideal = notAfter - L/3, L/2 under 10 days; window = ideal +- L/100).
 * For each lifetime: when renewal starts (local window, ARI), how many attempts fit before
 * expiry while the CA keeps failing (the worker retries at acme_plan_retry_at's time, as
 * acme_worker_handle does), and when the expiry warning fires (acme_worker_warn runs once per
 * check interval). The bounds are computed from the lifetime, so a change that stops the
 * schedule from scaling with it fails here. The figures are printed as the table in
 * docs/admin-guide.md ("Short-lived certificates").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "acme_plan.h"
#include "acme_renewal.h"
#include "unit_support.h"

#define SEC(n)      apr_time_from_sec((apr_int64_t)(n))
#define HOURS(n)    SEC((apr_int64_t)(n) * 3600)
#define DAYS(n)     HOURS((apr_int64_t)(n) * 24)
#define NB          SEC(1798761600)         /* 2027-01-01T00:00:00Z */

typedef struct {
    const char *name;
    apr_interval_time_t life;
} lifetime_t;

static const lifetime_t lifetimes[] = {
    { "160h (shortlived)", HOURS(160) },
    { "45d (tlsserver)", DAYS(45) },
    { "64d (classic 2027)", DAYS(64) },
    { "90d (classic)", DAYS(90) },
};

/* Let's Encrypt's ARI window for a certificate of lifetime L. */
static void le_window(apr_time_t nb, apr_interval_time_t life, apr_time_t *start,
                      apr_time_t *end)
{
    apr_time_t na = nb + life;
    apr_time_t ideal = na - (life < DAYS(10) ? life / 2 : life / 3);

    *start = ideal - life / 100;
    *end = ideal + life / 100;
}

typedef struct {
    int attempts;                   /* failed attempts before expiry */
    int after_emergency;            /* of them, at or after the emergency point (L/20 left) */
    apr_interval_time_t max_gap_before_emergency;
    apr_time_t last;                /* the last attempt before expiry */
} run_t;

/*
 * The CA fails every attempt with class cls (retry_after: its Retry-After as a delay, 0: none)
 * from `start` on; the worker comes back at acme_plan_retry_at's time with jitter u.
 */
static run_t fail_until_expiry(apr_interval_time_t life, apr_time_t start, acme_class_t cls,
                               apr_interval_time_t retry_after, double u)
{
    apr_time_t na = NB + life, emergency = acme_plan_emergency_at(NB, na), t = start, prev = 0;
    run_t r = { 0 };

    while (t < na && r.attempts < 100000) {
        r.attempts++;
        r.last = t;
        if (t >= emergency) {
            r.after_emergency++;
        }
        else if (prev && t - prev > r.max_gap_before_emergency) {
            r.max_gap_before_emergency = t - prev;
        }
        prev = t;
        t = acme_plan_retry_at(cls, r.attempts, t, retry_after ? t + retry_after : 0, NB, na, u);
        assert_true(t > prev);
    }
    return r;
}

/* When acme_worker_warn first sees the warning due: at its first check at or after warn_at. */
static apr_time_t warning_fires(apr_interval_time_t life, apr_time_t renew_start)
{
    apr_time_t na = NB + life;
    apr_time_t warn_at = acme_renewal_warn_at(NULL, NB, na);
    apr_interval_time_t every = acme_plan_check_interval(0, life);
    apr_time_t t = renew_start;

    /* The longest sleep between checks (jitter +25 %), the worst case for the warning. */
    while (!acme_renewal_should_warn(t, warn_at, 1)) {
        t += acme_plan_jitter(every, 0.999);
    }
    return t;
}

static double hours_of(apr_interval_time_t t)
{
    return (double)t / (double)HOURS(1);
}

static void test_renewal_starts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); ++i) {
        apr_interval_time_t life = lifetimes[i].life;
        apr_time_t na = NB + life, local = acme_plan_renew_at(NULL, NB, na), start, end;

        /* Locally: at 2/3 of the lifetime, at the midpoint under 10 days; never later than
         * 2/3, never before the midpoint. */
        assert_true(local <= NB + life * 2 / 3 + SEC(1));
        assert_true(local >= NB + life / 2);
        assert_true(local < acme_plan_emergency_at(NB, na));
        /* With ARI: inside Let's Encrypt's window, never after the local time; and the local
         * time itself is no later than that window (the midpoint for short lifetimes), so a CA
         * without ARI gets the renewal when Let's Encrypt would ask for it. */
        le_window(NB, life, &start, &end);
        assert_true(local <= end);
        for (double u = 0; u < 1; u += 0.25) {
            apr_time_t ari = acme_renewal_ari_time(start, end, 0, 0, 0, u, local);
            assert_true(ari >= start && ari <= end && ari <= local);
        }
    }
}

static void test_attempts_before_expiry(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); ++i) {
        apr_interval_time_t life = lifetimes[i].life;
        apr_time_t na = NB + life, local = acme_plan_renew_at(NULL, NB, na);
        apr_interval_time_t cap = life / 10 < ACME_PLAN_RETRY_CAP ? life / 10
                                                                  : ACME_PLAN_RETRY_CAP;
        apr_interval_time_t admin_cap = life / 10 < ACME_PLAN_ADMIN_MAX ? life / 10
                                                                        : ACME_PLAN_ADMIN_MAX;
        apr_interval_time_t to_emergency = acme_plan_emergency_at(NB, na) - local;
        run_t soon = fail_until_expiry(life, local, ACME_CLASS_RETRY_SOON, 0, 0.999);
        run_t admin = fail_until_expiry(life, local, ACME_CLASS_ADMIN, 0, 0.999);
        run_t limited = fail_until_expiry(life, local, ACME_CLASS_RETRY_AFTER, DAYS(1), 0.999);

        /* 5xx/timeouts: never a gap beyond the cap before the emergency point, so at least
         * (time to it) / cap attempts there; then more, closer together, until expiry. */
        assert_true(soon.max_gap_before_emergency <= cap);
        assert_true(soon.attempts - soon.after_emergency >= (int)(to_emergency / cap));
        assert_true(soon.after_emergency >= 3);
        assert_true(na - soon.last <= life / 100);
        /* Errors an admin must fix: 6 h, 12 h, then a day, capped at L/10. */
        assert_true(admin.max_gap_before_emergency <= admin_cap);
        assert_true(admin.attempts >= (int)(to_emergency / admin_cap));
        assert_true(admin.after_emergency >= 2);
        /* A CA asking for a day each time: the emergency point still gets its attempt. */
        assert_true(limited.after_emergency >= 2);
        assert_true(limited.attempts >= 2);
    }
}

static void test_warning_before_the_end(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); ++i) {
        apr_interval_time_t life = lifetimes[i].life;
        apr_time_t na = NB + life, local = acme_plan_renew_at(NULL, NB, na);
        apr_time_t fires = warning_fires(life, local);

        /* After renewal started failing, with at least L/20 (8 h at 160 h) left to act. */
        assert_true(fires > local);
        assert_true(fires >= acme_renewal_warn_at(NULL, NB, na));
        assert_true(na - fires >= life / 20 - SEC(1));
    }
}

/* The table of docs/admin-guide.md, "Short-lived certificates" (jitter at its worst). */
static void test_print_table(void **state)
{
    (void)state;
    printf("| lifetime | renew (local) | ARI window (LE) | attempts, CA failing 5xx "
           "(after emergency) | attempts, admin errors | attempts, Retry-After 1 d | "
           "warning fires | check every |\n|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); ++i) {
        apr_interval_time_t life = lifetimes[i].life;
        apr_time_t na = NB + life, local = acme_plan_renew_at(NULL, NB, na), start, end;
        run_t soon = fail_until_expiry(life, local, ACME_CLASS_RETRY_SOON, 0, 0.999);
        run_t admin = fail_until_expiry(life, local, ACME_CLASS_ADMIN, 0, 0.999);
        run_t limited = fail_until_expiry(life, local, ACME_CLASS_RETRY_AFTER, DAYS(1), 0.999);

        le_window(NB, life, &start, &end);
        printf("| %s | %.0f h (%.0f h left) | %.0f-%.0f h | %d (%d) | %d | %d | %.1f h left | "
               "%.1f h |\n", lifetimes[i].name, hours_of(local - NB), hours_of(na - local),
               hours_of(start - NB), hours_of(end - NB), soon.attempts, soon.after_emergency,
               admin.attempts, limited.attempts, hours_of(na - warning_fires(life, local)),
               hours_of(acme_plan_check_interval(0, life)));
    }
    fflush(stdout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renewal_starts),
        cmocka_unit_test(test_attempts_before_expiry),
        cmocka_unit_test(test_warning_before_the_end),
        cmocka_unit_test(test_print_table),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
