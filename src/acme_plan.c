#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_plan.h"

#define SECONDS_MAX      (100LL * 365 * 24 * 3600)
#define NUMBER_DIGITS    10

/* ------------------------------------------------------------------ parsing */

typedef struct {
    char unit;
    apr_int64_t seconds;
} duration_unit_t;

static const duration_unit_t duration_units[] = {   /* largest first: the order required */
    { 'd', 24 * 3600 },
    { 'h', 3600 },
    { 'm', 60 },
    { 's', 1 },
};

/* Index into duration_units, -1 when c is no unit. */
static int unit_index(char c)
{
    c = (char)apr_tolower(c);
    for (int i = 0; i < (int)(sizeof(duration_units) / sizeof(duration_units[0])); i++) {
        if (duration_units[i].unit == c) {
            return i;
        }
    }
    return -1;
}

static const char *unit_reason(apr_pool_t *p, const char *text, const char *s, int last_unit)
{
    int u = unit_index(*s);

    if (*s == '\0') {
        return apr_psprintf(p, "'%s' has no unit: add one of s, m, h, d (e.g. '%sd' or '%ss')",
                            text, text, text);
    }
    if (*s == '.' || *s == ',') {
        return apr_psprintf(p, "'%s' is not a whole number: combine units instead (e.g. '1d12h' "
                            "rather than '1.5d')", text);
    }
    if (u < 0) {
        return apr_psprintf(p, "'%s' has the unknown unit '%c': use s, m, h or d", text, *s);
    }
    if (u <= last_unit) {
        return apr_psprintf(p, "'%s' repeats a unit or has them out of order: give each unit "
                            "at most once, largest first (e.g. '1d12h')", text);
    }
    return NULL;
}

static const char *duration_seconds(apr_pool_t *p, const char *text, apr_int64_t *total)
{
    const char *s = text;
    int last_unit = -1;

    *total = 0;
    while (*s) {
        apr_int64_t n = 0;
        const char *start = s;
        const char *reason;

        for (; apr_isdigit(*s); s++) {
            if (s - start == NUMBER_DIGITS) {
                return apr_psprintf(p, "'%s' is too long a duration", text);
            }
            n = n * 10 + (*s - '0');
        }
        if (s == start) {
            return apr_psprintf(p, "'%s' is not a duration: give a number and a unit (s, m, h, "
                                "d), e.g. '12h' or '1d12h'", text);
        }
        if ((reason = unit_reason(p, text, s, last_unit)) != NULL) {
            return reason;
        }
        last_unit = unit_index(*s++);
        *total += n * duration_units[last_unit].seconds;
        if (*total > SECONDS_MAX) {
            return apr_psprintf(p, "'%s' is too long a duration (more than 100 years)", text);
        }
    }
    return NULL;
}

static const char *parse_duration(apr_pool_t *p, const char *text, apr_interval_time_t *out)
{
    apr_int64_t seconds;
    const char *reason;

    if (!text || !*text) {
        return "empty duration: give a number and a unit, e.g. '12h'";
    }
    if (text[0] == '-') {
        return apr_psprintf(p, "'%s' is negative: a duration must be positive", text);
    }
    if ((reason = duration_seconds(p, text, &seconds)) != NULL) {
        return reason;
    }
    *out = apr_time_from_sec(seconds);
    return NULL;
}

apr_status_t acme_plan_duration_parse(const char *text, apr_interval_time_t *out,
                                      const char **reason, apr_pool_t *p)
{
    const char *why = parse_duration(p, text, out);

    if (reason) {
        *reason = why;
    }
    return why ? APR_EINVAL : APR_SUCCESS;
}

/* "<digits>[.<digits>]" of length len; -1 when it is not such a number. */
static double plain_number(const char *s, apr_size_t len)
{
    double value = 0, scale = 0;
    int digits = 0;

    for (apr_size_t i = 0; i < len; i++) {
        if (s[i] == '.' && scale == 0 && digits > 0) {
            scale = 1;
            continue;
        }
        if (!apr_isdigit(s[i]) || digits == 12) {
            return -1;
        }
        value = value * 10 + (s[i] - '0');
        scale *= 10;
        digits++;
    }
    if (digits == 0 || scale == 1) {
        return -1;
    }
    return scale > 0 ? value / scale : value;
}

static const char *parse_percent(apr_pool_t *p, const char *text, acme_plan_window_t *w)
{
    double value = plain_number(text, strlen(text) - 1);

    if (text[0] == '-') {
        return apr_psprintf(p, "renew window '%s' is negative: give the part of the lifetime "
                            "that remains at renewal, e.g. '33%%'", text);
    }
    if (value < 0) {
        return apr_psprintf(p, "renew window '%s' is not a percentage like '33%%'", text);
    }
    if (value == 0) {
        return apr_psprintf(p, "renew window '%s' would renew only at expiry: give more than 0%%",
                            text);
    }
    if (value >= 100) {
        return apr_psprintf(p, "renew window '%s' is the whole lifetime or more: give less than "
                            "100%% (e.g. '33%%')", text);
    }
    *w = (acme_plan_window_t){ .is_fraction = 1, .fraction = value / 100 };
    return NULL;
}

static const char *parse_window(apr_pool_t *p, const char *text, acme_plan_window_t *w)
{
    apr_interval_time_t d = 0;
    const char *reason;

    if (!text || !*text) {
        return "empty renew window: give 'auto', a percentage like '33%' or a duration like '21d'";
    }
    if (strcasecmp(text, "auto") == 0) {
        *w = (acme_plan_window_t){ .is_fraction = 0 };
        return NULL;
    }
    if (text[strlen(text) - 1] == '%') {
        return parse_percent(p, text, w);
    }
    if (!apr_isdigit(text[0]) && text[0] != '-') {
        return apr_psprintf(p, "renew window '%s' is neither 'auto', a percentage like '33%%' "
                            "nor a duration like '21d'", text);
    }
    if ((reason = parse_duration(p, text, &d)) != NULL) {
        return apr_pstrcat(p, "renew window: ", reason, NULL);
    }
    if (d == 0) {
        return apr_psprintf(p, "renew window '%s' would renew only at expiry: give a positive "
                            "duration like '21d'", text);
    }
    *w = (acme_plan_window_t){ .is_fraction = 0, .absolute = d };
    return NULL;
}

apr_status_t acme_plan_window_parse(const char *text, acme_plan_window_t *w,
                                    const char **reason, apr_pool_t *p)
{
    const char *why = parse_window(p, text, w);

    if (reason) {
        *reason = why;
    }
    return why ? APR_EINVAL : APR_SUCCESS;
}

/* ------------------------------------------------------------------ renewal times */

static apr_interval_time_t scale(apr_interval_time_t t, double f)
{
    return (apr_interval_time_t)((double)t * f);
}

static apr_time_t min_time(apr_time_t a, apr_time_t b)
{
    return a < b ? a : b;
}

static apr_time_t max_time(apr_time_t a, apr_time_t b)
{
    return a > b ? a : b;
}

static double clamp_u(double u)
{
    if (!(u >= 0)) {        /* also NaN */
        return 0;
    }
    return u < 1 ? u : 0.999999;
}

apr_time_t acme_plan_emergency_at(apr_time_t not_before, apr_time_t not_after)
{
    return not_after - (not_after - not_before) / 20;
}

static apr_interval_time_t remaining_at_renewal(const acme_plan_window_t *w,
                                                apr_interval_time_t life)
{
    if (w && w->is_fraction) {
        return scale(life, w->fraction);
    }
    if (w && w->absolute > 0) {
        return w->absolute;
    }
    return life < ACME_PLAN_AUTO_SHORT_LIFETIME ? life / 2 : life / 3;
}

apr_time_t acme_plan_renew_at(const acme_plan_window_t *w, apr_time_t not_before,
                              apr_time_t not_after)
{
    apr_interval_time_t life = not_after - not_before;
    apr_time_t at;

    if (life <= 0) {
        return not_before;
    }
    at = not_after - remaining_at_renewal(w, life);
    at = min_time(at, acme_plan_emergency_at(not_before, not_after));
    return max_time(at, not_before);
}

apr_time_t acme_plan_ari_pick(apr_time_t start, apr_time_t end, double u,
                              apr_time_t local_renew_at)
{
    apr_time_t at;

    if (end <= start) {
        return 0;
    }
    at = start + scale(end - start, clamp_u(u));
    return local_renew_at > 0 ? min_time(at, local_renew_at) : at;
}

apr_time_t acme_plan_warn_at(apr_time_t not_before, apr_time_t not_after, double fraction)
{
    apr_interval_time_t life = not_after - not_before;

    if (!(fraction > 0 && fraction < 1)) {
        fraction = ACME_PLAN_WARN_DEFAULT;
    }
    return life > 0 ? not_after - scale(life, fraction) : not_before;
}

/* ------------------------------------------------------------------ retries and checks */

apr_interval_time_t acme_plan_jitter(apr_interval_time_t base, double u)
{
    return scale(base, 0.75 + 0.5 * clamp_u(u));
}

/* Jitter that never exceeds cap: what would overshoot is folded back below it. */
static apr_interval_time_t jitter_below(apr_interval_time_t base, apr_interval_time_t cap,
                                        double u)
{
    apr_interval_time_t d = acme_plan_jitter(min_time(base, cap), u);

    return d > cap ? 2 * cap - d : d;
}

static apr_interval_time_t lifetime_cap(apr_time_t nb, apr_time_t na,
                                        apr_interval_time_t without_cert)
{
    apr_interval_time_t cap = na > nb ? (na - nb) / 10 : without_cert;

    return max_time(cap, ACME_PLAN_RETRY_FIRST);
}

/*
 * CA-side errors: the first retry is a minute (L/60 for certificates shorter than an hour, so
 * test certificates behave like real ones), doubling, capped at a quarter of the time the served
 * certificate has left (and L/10): every halving of the time left still holds several attempts.
 * Never more than ACME_PLAN_RETRY_CAP (6 h), the cap also without a certificate or once it has
 * expired: after a CA outage of days, a 90-day certificate is renewed within hours of the CA's
 * return, not after a delay that doubled to a week (a quarter of 30 days left).
 */
static apr_interval_time_t transient_delay(int failures, apr_time_t now, apr_time_t nb,
                                           apr_time_t na, double u)
{
    int doublings = failures > 31 ? 30 : failures - 1;
    apr_interval_time_t first = ACME_PLAN_RETRY_FIRST, cap = ACME_PLAN_RETRY_CAP;

    if (na > nb) {
        apr_interval_time_t life = na - nb, left = na - now;
        first = max_time(min_time(life / 60, ACME_PLAN_RETRY_FIRST), apr_time_from_sec(1));
        cap = min_time(min_time(life / 10, left > 0 ? left / 4 : ACME_PLAN_RETRY_CAP),
                       ACME_PLAN_RETRY_CAP);
        cap = max_time(cap, first);
    }
    if (doublings > 20) {
        doublings = 20;         /* 2^20 minutes is far beyond every cap */
    }
    return jitter_below(first << doublings, cap, u);
}

static apr_interval_time_t admin_delay(int failures, apr_time_t nb, apr_time_t na, double u)
{
    apr_interval_time_t base = ACME_PLAN_ADMIN_FIRST << (failures >= 3 ? 2 : failures - 1);
    apr_interval_time_t cap = min_time(ACME_PLAN_ADMIN_MAX,
                                       lifetime_cap(nb, na, ACME_PLAN_ADMIN_MAX));

    return jitter_below(base, cap, u);
}

static apr_time_t ca_retry_at(apr_time_t now, apr_time_t retry_after, double u)
{
    apr_time_t at = max_time(retry_after, now + ACME_PLAN_RETRY_AFTER_MIN);
    apr_interval_time_t spread = min_time((at - now) / 10, ACME_PLAN_RETRY_AFTER_JITTER);

    return at + scale(spread, clamp_u(u));
}

/*
 * The latest retry a served certificate allows, whatever the CA asked for or the backoff says:
 * its emergency point while that is ahead; past it, a quarter of the time left (as the transient
 * cap), but never sooner than min_wait. 0 (no bound) without a certificate or once it expired:
 * then nothing is lost by waiting as asked.
 */
static apr_time_t emergency_floor(apr_time_t now, apr_time_t nb, apr_time_t na,
                                  apr_interval_time_t min_wait)
{
    apr_time_t emergency = acme_plan_emergency_at(nb, na);

    if (na <= nb || now >= na) {
        return 0;
    }
    if (now < emergency) {
        return max_time(emergency, now + min_wait);
    }
    return now + max_time((na - now) / 4, min_wait);
}

static apr_time_t retry_unbounded(acme_class_t cls, int failures, apr_time_t now,
                                  apr_time_t retry_after, apr_time_t nb, apr_time_t na, double u)
{
    switch (cls) {
    case ACME_CLASS_NONE:
        return now;
    case ACME_CLASS_RETRY_AFTER:    /* without the CA's time: as transient */
        return retry_after > 0 ? ca_retry_at(now, retry_after, u)
                               : now + transient_delay(failures, now, nb, na, u);
    case ACME_CLASS_RETRY_SOON:
        return now + transient_delay(failures, now, nb, na, u);
    case ACME_CLASS_ADMIN:
    case ACME_CLASS_PERMANENT:
        break;
    }
    return now + admin_delay(failures, nb, na, u);
}

apr_time_t acme_plan_retry_at(acme_class_t cls, int consecutive_failures, apr_time_t now,
                              apr_time_t retry_after, apr_time_t not_before,
                              apr_time_t not_after, double u)
{
    int failures = consecutive_failures < 1 ? 1 : consecutive_failures;
    apr_time_t at = retry_unbounded(cls, failures, now, retry_after, not_before, not_after, u);
    /* A CA's Retry-After is still at least a minute: the floor pulls it forward, not to now. */
    apr_time_t floor = cls == ACME_CLASS_NONE ? 0
                       : emergency_floor(now, not_before, not_after,
                                         cls == ACME_CLASS_RETRY_AFTER && retry_after > 0
                                         ? ACME_PLAN_RETRY_AFTER_MIN : apr_time_from_sec(1));

    return floor > 0 ? min_time(at, floor) : at;
}

apr_interval_time_t acme_plan_check_interval(apr_interval_time_t configured,
                                             apr_interval_time_t shortest_lifetime)
{
    apr_interval_time_t every = configured > 0 ? configured : ACME_PLAN_CHECK_DEFAULT;

    if (shortest_lifetime > 0) {
        every = min_time(every, shortest_lifetime / 20);
    }
    return max_time(every, ACME_PLAN_CHECK_MIN);
}

apr_time_t acme_plan_worker_next(apr_time_t asked, apr_time_t now,
                                 apr_interval_time_t shortest_lifetime)
{
    apr_interval_time_t floor = ACME_PLAN_RETRY_FIRST;

    if (asked <= 0) {
        return now + ACME_PLAN_WORKER_UNKNOWN_NEXT;
    }
    if (shortest_lifetime > 0) {
        floor = max_time(min_time(shortest_lifetime / 60, ACME_PLAN_RETRY_FIRST),
                         apr_time_from_sec(1));
    }
    return max_time(asked, now + floor);
}
