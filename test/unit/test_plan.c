#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "acme_plan.h"
#include "unit_support.h"

#define SEC(n)   apr_time_from_sec(n)
#define MIN(n)   SEC((apr_int64_t)(n) * 60)
#define HOUR(n)  SEC((apr_int64_t)(n) * 3600)
#define DAY(n)   SEC((apr_int64_t)(n) * 86400)
#define NB       SEC(1767225600)        /* 2026-01-01T00:00:00Z */
#define NOW      (NB + DAY(1))
#define U_MAX    0.999999

/* Times computed through doubles may be off by a microsecond or so. */
static void assert_near(apr_time_t got, apr_time_t want, apr_interval_time_t tolerance)
{
    apr_interval_time_t diff = got > want ? got - want : want - got;

    if (diff > tolerance) {
        fail_msg("got %" APR_TIME_T_FMT ", want %" APR_TIME_T_FMT " (+- %" APR_TIME_T_FMT ")",
                 got, want, tolerance);
    }
}

/* ------------------------------------------------------------------ renew windows */

typedef struct {
    apr_interval_time_t life;
    apr_interval_time_t auto_elapsed;       /* acme-protocol.md §6, certbot column */
    apr_interval_time_t pct33_elapsed;      /* acme-protocol.md §6, mod_md 33 % column */
} lifetime_case_t;

/* jobs/next-run is the User's: a past time is pulled up to the shortest planned retry. */
static void test_worker_next_floor(void **state)
{
    apr_time_t now = apr_time_from_sec(1000000);
    apr_interval_time_t day = apr_time_from_sec(86400);

    (void)state;
    /* Nothing asked for: an hour. */
    assert_true(acme_plan_worker_next(0, now, day) == now + ACME_PLAN_WORKER_UNKNOWN_NEXT);
    /* A forged past time: a minute for certificates of a day and more, or without one. */
    assert_true(acme_plan_worker_next(apr_time_from_sec(1), now, 90 * day)
                == now + ACME_PLAN_RETRY_FIRST);
    assert_true(acme_plan_worker_next(now - 1, now, 0) == now + ACME_PLAN_RETRY_FIRST);
    /* Short-lived certificates: L/60, never under a second. */
    assert_true(acme_plan_worker_next(now, now, apr_time_from_sec(600))
                == now + apr_time_from_sec(10));
    assert_true(acme_plan_worker_next(now, now, apr_time_from_sec(6))
                == now + apr_time_from_sec(1));
    /* A time later than the floor is kept as asked. */
    assert_true(acme_plan_worker_next(now + day, now, 90 * day) == now + day);
}

static void test_renew_at_table(void **state)
{
    const lifetime_case_t cases[] = {
        { DAY(90),  DAY(60),                 DAY(60) + HOUR(7) + MIN(12) },      /* 60.3 d */
        { DAY(64),  DAY(64) * 2 / 3,         DAY(64) - (apr_time_t)(DAY(64) * 0.33) },
        { DAY(45),  DAY(30),                 DAY(30) + HOUR(3) + MIN(36) },      /* 30.15 d */
        { HOUR(160), HOUR(80),               HOUR(107) + MIN(12) },              /* 107.2 h */
        { DAY(6),   DAY(3),                  DAY(4) + HOUR(0) + MIN(28) + SEC(48) },
        { DAY(10),  DAY(10) * 2 / 3,         DAY(10) - (apr_time_t)(DAY(10) * 0.33) },
    };
    acme_plan_window_t automatic = { 0 };
    acme_plan_window_t pct33 = { .is_fraction = 1, .fraction = 0.33 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_time_t na = NB + cases[i].life;

        assert_near(acme_plan_renew_at(&automatic, NB, na), NB + cases[i].auto_elapsed, 1);
        assert_near(acme_plan_renew_at(NULL, NB, na), NB + cases[i].auto_elapsed, 1);
        assert_near(acme_plan_renew_at(&pct33, NB, na), NB + cases[i].pct33_elapsed, 2);
    }
}

static void test_renew_at_absolute_clamped(void **state)
{
    acme_plan_window_t d21 = { .absolute = DAY(21) };
    acme_plan_window_t h1 = { .absolute = HOUR(1) };
    acme_plan_window_t pct3 = { .is_fraction = 1, .fraction = 0.03 };

    assert_int_equal(acme_plan_renew_at(&d21, NB, NB + DAY(90)), NB + DAY(69));
    assert_int_equal(acme_plan_renew_at(&d21, NB, NB + DAY(45)), NB + DAY(24));
    /* longer than the lifetime: never before notBefore */
    assert_int_equal(acme_plan_renew_at(&d21, NB, NB + HOUR(160)), NB);
    assert_int_equal(acme_plan_renew_at(&d21, NB, NB + DAY(6)), NB);
    /* too close to expiry: never later than the emergency point (L/20 remaining) */
    assert_int_equal(acme_plan_renew_at(&h1, NB, NB + DAY(90)), NB + DAY(90) - DAY(90) / 20);
    assert_int_equal(acme_plan_renew_at(&h1, NB, NB + DAY(90)),
                     acme_plan_emergency_at(NB, NB + DAY(90)));
    assert_int_equal(acme_plan_renew_at(&pct3, NB, NB + DAY(90)),
                     acme_plan_emergency_at(NB, NB + DAY(90)));
    /* a broken certificate is due at once */
    assert_int_equal(acme_plan_renew_at(&d21, NB, NB), NB);
    assert_int_equal(acme_plan_renew_at(NULL, NB, NB - DAY(1)), NB);
}

static void test_emergency_and_warn(void **state)
{
    apr_time_t na = NB + DAY(90);

    assert_int_equal(acme_plan_emergency_at(NB, na), na - HOUR(108));   /* 4.5 days */
    assert_int_equal(acme_plan_emergency_at(NB, NB + HOUR(160)), NB + HOUR(152));
    assert_near(acme_plan_warn_at(NB, na, 0.10), na - DAY(9), 1);
    assert_near(acme_plan_warn_at(NB, na, 0), na - DAY(9), 1);
    assert_near(acme_plan_warn_at(NB, na, 1.5), na - DAY(9), 1);
    assert_near(acme_plan_warn_at(NB, na, 0.2), na - DAY(18), 1);
    assert_near(acme_plan_warn_at(NB, NB + HOUR(160), 0.10), NB + HOUR(144), 1);
    assert_int_equal(acme_plan_warn_at(NB, NB, 0.10), NB);
}

/* ------------------------------------------------------------------ ARI */

static void test_ari_pick(void **state)
{
    apr_time_t na = NB + DAY(90);
    apr_time_t local = acme_plan_renew_at(NULL, NB, na);              /* 60 d elapsed */
    apr_time_t start = na - DAY(30) - DAY(90) / 100;                   /* LE: 59.1 d */
    apr_time_t end = na - DAY(30) + DAY(90) / 100;                     /* LE: 60.9 d */
    apr_time_t early_start = NB + DAY(10), early_end = NB + DAY(11);

    assert_int_equal(acme_plan_ari_pick(start, end, 0, local), start);
    assert_near(acme_plan_ari_pick(start, end, 0.25, local), start + (end - start) / 4, 1);
    /* the part of the window after the local time is clamped to it */
    assert_int_equal(acme_plan_ari_pick(start, end, 0.75, local), local);
    assert_int_equal(acme_plan_ari_pick(start, end, U_MAX, local), local);
    /* no local bound: anywhere in [start, end) */
    assert_true(acme_plan_ari_pick(start, end, U_MAX, 0) < end);
    assert_true(acme_plan_ari_pick(start, end, U_MAX, 0) > local);
    /* a window in the past or early (mass revocation) is taken as is */
    assert_near(acme_plan_ari_pick(early_start, early_end, 0.5, local), NB + DAY(10) + HOUR(12),
                1);
    /* a window entirely after the local time: the local time */
    assert_int_equal(acme_plan_ari_pick(na - DAY(1), na, 0.5, local), local);
    /* invalid windows */
    assert_int_equal(acme_plan_ari_pick(end, start, 0.5, local), 0);
    assert_int_equal(acme_plan_ari_pick(start, start, 0.5, local), 0);
    /* out-of-range randomness stays inside the window */
    assert_int_equal(acme_plan_ari_pick(start, end, -3, 0), start);
    assert_true(acme_plan_ari_pick(start, end, 7, 0) < end);
    assert_int_equal(acme_plan_ari_pick(start, end, NAN, 0), start);
}

/* ------------------------------------------------------------------ retries */

static apr_interval_time_t retry_delay(acme_class_t cls, int n, apr_time_t nb, apr_time_t na,
                                       double u)
{
    return acme_plan_retry_at(cls, n, NOW, 0, nb, na, u) - NOW;
}

static void test_retry_transient_growth(void **state)
{
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 1, 0, 0, 0.5), SEC(60));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 2, 0, 0, 0.5), SEC(120));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 3, 0, 0, 0.5), SEC(240));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 1, 0, 0, 0), SEC(45));
    assert_near(retry_delay(ACME_CLASS_RETRY_SOON, 1, 0, 0, U_MAX), SEC(75), SEC(1));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 0, 0, 0, 0.5), SEC(60));  /* as 1 */

    for (int n = 1; n < 40; n++) {   /* never shrinks, never overflows */
        assert_true(retry_delay(ACME_CLASS_RETRY_SOON, n + 1, NB, NB + DAY(90), 0.5)
                    >= retry_delay(ACME_CLASS_RETRY_SOON, n, NB, NB + DAY(90), 0.5));
    }
}

typedef struct {
    apr_interval_time_t life;           /* 0: no certificate */
    apr_interval_time_t cap;
} cap_case_t;

static void test_retry_transient_caps(void **state)
{
    const cap_case_t cases[] = {
        { 0, HOUR(6) },
        { DAY(90), HOUR(6) },           /* L/10 would be 9 days: never above 6 h */
        { DAY(45), HOUR(6) },
        { HOUR(160), HOUR(6) },
        { DAY(6), HOUR(6) },
        { HOUR(40), HOUR(4) },          /* L/10 below 6 h */
        { MIN(5), SEC(30) },            /* expired: L/10, never above 6 h */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_time_t nb = cases[i].life ? NB : 0, na = cases[i].life ? NB + cases[i].life : 0;
        apr_interval_time_t cap = cases[i].cap;

        assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, 0.5), cap);
        assert_near(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, 0), cap * 3 / 4, 1);
        assert_true(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, U_MAX) <= cap);
        assert_true(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, U_MAX) >= cap * 3 / 4);
        assert_true(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, 0.9) <= cap);
    }
}

/* The cap shrinks with the time left, so a certificate near its end still gets many tries. */
static void test_retry_transient_remaining(void **state)
{
    apr_time_t na = NOW + DAY(8), nb = na - DAY(90);
    apr_interval_time_t prev = 0;
    int n, tries = 0;
    apr_time_t t = NOW;

    (void)state;
    /* 8 days left: a quarter would be 2 days; 6 h is the cap */
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, 0.5), HOUR(6));
    /* 16 h left: a quarter of it, 4 h */
    na = NOW + HOUR(16);
    nb = na - DAY(90);
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 30, nb, na, 0.5), HOUR(4));
    /* A 3-minute test certificate: first retry after 3 s, then 6, 12, capped by the time left. */
    nb = NOW - SEC(90);
    na = NOW + SEC(90);
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 1, nb, na, 0.5), SEC(3));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 2, nb, na, 0.5), SEC(6));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 3, nb, na, 0.5), SEC(12));
    assert_int_equal(retry_delay(ACME_CLASS_RETRY_SOON, 9, nb, na, 0.5), SEC(18));
    /* A 6-day certificate failing from its renewal point (3 days left) on: many attempts before
     * it expires, each delay at most a quarter of what is left. */
    nb = NOW - DAY(3);
    na = NOW + DAY(3);
    for (n = 1; t < na; ++n) {
        apr_interval_time_t d = acme_plan_retry_at(ACME_CLASS_RETRY_SOON, n, t, 0, nb, na, U_MAX)
                                - t;
        assert_true(d <= (na - t) / 4 + SEC(1) || d <= SEC(60) * 5 / 4 + SEC(1));
        assert_true(d > 0);
        prev = d;
        t += d;
        ++tries;
    }
    assert_true(prev > 0);
    assert_true(tries >= 20);
}

static void test_retry_after_ca_time(void **state)
{
    apr_time_t nb = NOW - DAY(89), na = NOW + DAY(1);  /* past the emergency point */

    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + HOUR(1), nb, na, 0),
                     NOW + HOUR(1));
    assert_near(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + HOUR(1), nb, na, U_MAX),
                NOW + HOUR(1) + MIN(5), SEC(1));
    assert_near(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + MIN(10), nb, na, U_MAX),
                NOW + MIN(11), SEC(1));
    /* past the emergency point, not beyond expiry: a quarter of the day left */
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 5, NOW, NOW + DAY(3), nb, na, 0),
                     NOW + HOUR(6));
    /* a time in the past or too soon: at least a minute */
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW - HOUR(1), nb, na, 0),
                     NOW + SEC(60));
    assert_near(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + SEC(5), nb, na, U_MAX),
                NOW + SEC(66), SEC(1));
    /* no time from the CA: transient schedule */
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 2, NOW, 0, 0, 0, 0.5),
                     NOW + SEC(120));
}

/* A CA asking for 400 days must not let a certificate that expires sooner lapse. */
static void test_retry_bounded_by_emergency_floor(void **state)
{
    apr_time_t nb = NOW - DAY(30), na = NOW + DAY(60);     /* emergency point: na - 4.5 d */
    apr_time_t emergency = acme_plan_emergency_at(nb, na);
    acme_class_t classes[] = { ACME_CLASS_RETRY_AFTER, ACME_CLASS_RETRY_SOON, ACME_CLASS_ADMIN,
                               ACME_CLASS_PERMANENT };
    unsigned i;

    (void)state;
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + DAY(400), nb, na,
                                        U_MAX), emergency);
    /* just before the emergency point: the backoff ends there too */
    for (i = 0; i < sizeof(classes) / sizeof(classes[0]); ++i) {
        apr_time_t t = emergency - MIN(30);
        assert_true(acme_plan_retry_at(classes[i], 9, t, t + DAY(400), nb, na, U_MAX)
                    <= emergency + SEC(60));
    }
    /* past it: within a quarter of the time left, a CA's time at least a minute */
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, na - HOUR(8), na + DAY(400),
                                        nb, na, 0), na - HOUR(6));
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, na - SEC(20), na + DAY(400),
                                        nb, na, 0), na - SEC(20) + SEC(60));
    /* without a certificate, or once it expired, the CA's time holds */
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, NOW, NOW + DAY(400), 0, 0, 0),
                     NOW + DAY(400));
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_RETRY_AFTER, 1, na + SEC(1), na + DAY(400),
                                        nb, na, 0), na + DAY(400));
}

static void test_retry_admin_and_permanent(void **state)
{
    const acme_class_t classes[] = { ACME_CLASS_ADMIN, ACME_CLASS_PERMANENT };

    for (size_t i = 0; i < 2; i++) {
        acme_class_t c = classes[i];

        assert_int_equal(retry_delay(c, 1, 0, 0, 0.5), HOUR(6));
        assert_int_equal(retry_delay(c, 2, 0, 0, 0.5), HOUR(12));
        assert_int_equal(retry_delay(c, 3, 0, 0, 0.5), HOUR(24));
        assert_int_equal(retry_delay(c, 50, 0, 0, 0.5), HOUR(24));
        assert_near(retry_delay(c, 1, 0, 0, 0), HOUR(4) + MIN(30), 1);
        assert_near(retry_delay(c, 1, 0, 0, U_MAX), HOUR(7) + MIN(30), SEC(1));
        assert_true(retry_delay(c, 3, 0, 0, U_MAX) <= HOUR(24));
        assert_int_equal(retry_delay(c, 3, NB, NB + DAY(90), 0.5), HOUR(24));
        /* short lifetimes: at most L/10 */
        assert_int_equal(retry_delay(c, 1, NB, NB + DAY(6), 0.5), HOUR(6));
        assert_int_equal(retry_delay(c, 2, NB, NB + DAY(6), 0.5), HOUR(12));
        assert_int_equal(retry_delay(c, 3, NB, NB + DAY(6), 0.5), HOUR(14) + MIN(24));
        assert_int_equal(retry_delay(c, 2, NB, NB + HOUR(160), 0.5), HOUR(12));
        assert_int_equal(retry_delay(c, 3, NB, NB + HOUR(160), 0.5), HOUR(16));
        assert_true(retry_delay(c, 3, NB, NB + HOUR(160), U_MAX) <= HOUR(16));
    }
}

static void test_retry_never_before_now(void **state)
{
    const acme_class_t classes[] = { ACME_CLASS_NONE, ACME_CLASS_RETRY_SOON,
                                     ACME_CLASS_RETRY_AFTER, ACME_CLASS_ADMIN,
                                     ACME_CLASS_PERMANENT };
    const double us[] = { 0, 0.5, U_MAX, -1, 2, NAN };
    const apr_time_t afters[] = { 0, NOW - DAY(1), NOW + SEC(1) };

    for (size_t c = 0; c < 5; c++) {
        for (int n = -1; n < 70; n += 7) {
            for (size_t u = 0; u < sizeof(us) / sizeof(us[0]); u++) {
                for (size_t a = 0; a < 3; a++) {
                    assert_true(acme_plan_retry_at(classes[c], n, NOW, afters[a], NB,
                                                   NB + MIN(1), us[u]) >= NOW);
                    assert_true(acme_plan_retry_at(classes[c], n, NOW, afters[a], 0, 0, us[u])
                                >= NOW);
                }
            }
        }
    }
    assert_int_equal(acme_plan_retry_at(ACME_CLASS_NONE, 3, NOW, 0, 0, 0, 0.5), NOW);
}

/* ------------------------------------------------------------------ checks */

static void test_check_interval(void **state)
{
    const apr_interval_time_t lives[] = { DAY(90), DAY(45), HOUR(160), DAY(6) };

    assert_int_equal(acme_plan_check_interval(0, 0), HOUR(12));
    assert_int_equal(acme_plan_check_interval(0, DAY(90)), HOUR(12));
    assert_int_equal(acme_plan_check_interval(0, HOUR(160)), HOUR(8));
    assert_int_equal(acme_plan_check_interval(0, DAY(6)), HOUR(7) + MIN(12));
    assert_int_equal(acme_plan_check_interval(HOUR(1), DAY(90)), HOUR(1));
    assert_int_equal(acme_plan_check_interval(DAY(2), 0), DAY(2));
    assert_int_equal(acme_plan_check_interval(0, MIN(10)), MIN(1));
    assert_int_equal(acme_plan_check_interval(SEC(10), 0), MIN(1));

    /* at least five checks fall inside every default or 33 % renew window */
    for (size_t i = 0; i < sizeof(lives) / sizeof(lives[0]); i++) {
        acme_plan_window_t pct33 = { .is_fraction = 1, .fraction = 0.33 };
        apr_interval_time_t every = acme_plan_jitter(acme_plan_check_interval(0, lives[i]), U_MAX);
        apr_time_t na = NB + lives[i];

        assert_true((na - acme_plan_renew_at(NULL, NB, na)) / every >= 5);
        assert_true((na - acme_plan_renew_at(&pct33, NB, na)) / every >= 5);
    }
}

static void test_jitter(void **state)
{
    assert_int_equal(acme_plan_jitter(HOUR(12), 0), HOUR(9));
    assert_int_equal(acme_plan_jitter(HOUR(12), 0.5), HOUR(12));
    assert_near(acme_plan_jitter(HOUR(12), U_MAX), HOUR(15), SEC(1));
    assert_true(acme_plan_jitter(HOUR(12), U_MAX) < HOUR(15));
    assert_int_equal(acme_plan_jitter(HOUR(12), -5), HOUR(9));
    assert_true(acme_plan_jitter(HOUR(12), 5) < HOUR(15));
}

/* ------------------------------------------------------------------ parsers */

typedef struct {
    const char *text;
    int ok;
    apr_interval_time_t value;
    const char *reason;             /* fragment, when not ok */
} duration_case_t;

static void test_duration_parse(void **state)
{
    const duration_case_t cases[] = {
        { "21d", 1, DAY(21), NULL },
        { "12h", 1, HOUR(12), NULL },
        { "30m", 1, MIN(30), NULL },
        { "3600s", 1, HOUR(1), NULL },
        { "1d12h", 1, HOUR(36), NULL },
        { "1h30m15s", 1, HOUR(1) + MIN(30) + SEC(15), NULL },
        { "2D", 1, DAY(2), NULL },
        { "0s", 1, 0, NULL },
        { "36500d", 1, DAY(36500), NULL },
        { "90", 0, 0, "has no unit: add one of s, m, h, d" },
        { "", 0, 0, "empty duration" },
        { "-5d", 0, 0, "negative" },
        { "1.5d", 0, 0, "not a whole number" },
        { "12x", 0, 0, "unknown unit 'x'" },
        { "12h ", 0, 0, "not a duration" },
        { "12h1d", 0, 0, "out of order" },
        { "1h1h", 0, 0, "repeats a unit" },
        { "d", 0, 0, "not a duration" },
        { "h12", 0, 0, "not a duration" },
        { "12hh", 0, 0, "not a duration" },
        { "99999999999d", 0, 0, "too long" },
        { "36600d", 0, 0, "more than 100 years" },
    };
    apr_pool_t *p = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_interval_time_t out = -1;
        const char *reason = NULL;
        apr_status_t rv = acme_plan_duration_parse(cases[i].text, &out, &reason, p);

        print_message("%s -> %s\n", cases[i].text, reason ? reason : "ok");
        if (cases[i].ok) {
            assert_int_equal(rv, APR_SUCCESS);
            assert_int_equal(out, cases[i].value);
            assert_null(reason);
        }
        else {
            assert_int_equal(rv, APR_EINVAL);
            assert_non_null(reason);
            assert_non_null(strstr(reason, cases[i].reason));
        }
    }
    assert_int_equal(acme_plan_duration_parse(NULL, NULL, NULL, p), APR_EINVAL);
}

typedef struct {
    const char *text;
    int ok;
    acme_plan_window_t window;
    const char *reason;
} window_case_t;

static void test_window_parse(void **state)
{
    const window_case_t cases[] = {
        { "auto", 1, { 0 }, NULL },
        { "AUTO", 1, { 0 }, NULL },
        { "33%", 1, { .is_fraction = 1, .fraction = 0.33 }, NULL },
        { "12.5%", 1, { .is_fraction = 1, .fraction = 0.125 }, NULL },
        { "99.9%", 1, { .is_fraction = 1, .fraction = 0.999 }, NULL },
        { "21d", 1, { .absolute = DAY(21) }, NULL },
        { "1d12h", 1, { .absolute = HOUR(36) }, NULL },
        { "0%", 0, { 0 }, "only at expiry" },
        { "0.0%", 0, { 0 }, "only at expiry" },
        { "100%", 0, { 0 }, "less than 100%" },
        { "150%", 0, { 0 }, "less than 100%" },
        { "-5%", 0, { 0 }, "negative" },
        { "%", 0, { 0 }, "not a percentage" },
        { "abc%", 0, { 0 }, "not a percentage" },
        { "33.%", 0, { 0 }, "not a percentage" },
        { ".5%", 0, { 0 }, "not a percentage" },
        { "90", 0, { 0 }, "no unit" },
        { "0d", 0, { 0 }, "only at expiry" },
        { "-21d", 0, { 0 }, "negative" },
        { "", 0, { 0 }, "empty renew window" },
        { NULL, 0, { 0 }, "empty renew window" },
        { "maybe", 0, { 0 }, "neither 'auto', a percentage" },
        { "21x", 0, { 0 }, "unknown unit 'x'" },
    };
    apr_pool_t *p = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        acme_plan_window_t w = { .is_fraction = 7, .fraction = 7, .absolute = 7 };
        const char *reason = NULL;
        apr_status_t rv = acme_plan_window_parse(cases[i].text, &w, &reason, p);

        print_message("%s -> %s\n", cases[i].text ? cases[i].text : "(null)",
                      reason ? reason : "ok");
        if (cases[i].ok) {
            assert_int_equal(rv, APR_SUCCESS);
            assert_int_equal(w.is_fraction, cases[i].window.is_fraction);
            assert_true(w.fraction - cases[i].window.fraction < 1e-9
                        && cases[i].window.fraction - w.fraction < 1e-9);
            assert_int_equal(w.absolute, cases[i].window.absolute);
        }
        else {
            assert_int_equal(rv, APR_EINVAL);
            assert_non_null(reason);
            assert_non_null(strstr(reason, cases[i].reason));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renew_at_table),
        cmocka_unit_test(test_renew_at_absolute_clamped),
        cmocka_unit_test(test_emergency_and_warn),
        cmocka_unit_test(test_ari_pick),
        cmocka_unit_test(test_retry_transient_growth),
        cmocka_unit_test(test_retry_transient_caps),
        cmocka_unit_test(test_retry_transient_remaining),
        cmocka_unit_test(test_retry_after_ca_time),
        cmocka_unit_test(test_retry_bounded_by_emergency_floor),
        cmocka_unit_test(test_retry_admin_and_permanent),
        cmocka_unit_test(test_retry_never_before_now),
        cmocka_unit_test(test_check_interval),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_window_parse),
        cmocka_unit_test(test_worker_next_floor),
    };
    return cmocka_run_group_tests_name("plan", tests, unit_setup_pool, unit_teardown_pool);
}
