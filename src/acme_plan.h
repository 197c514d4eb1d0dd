#ifndef ACME_PLAN_H
#define ACME_PLAN_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_errno.h>

#include "acme_result.h"

/*
 * Renewal arithmetic: when to renew, retry, check and warn. Pure functions: no I/O, no clock,
 * no random source - the caller passes "now" and uniform random numbers u in [0, 1), so that
 * every schedule is reproducible in tests. Lifetimes are always the certificate's real one,
 * L = notAfter - notBefore, never a fixed number of days (CAs are shortening lifetimes).
 *
 * The numbers:
 *   renew ("auto")    when L/3 remains; L/2 when L < 10 days (as certbot, LE's ARI centre)
 *   renew (fraction)  when fraction * L remains          } never later than the emergency
 *   renew (absolute)  when `absolute` remains             } point, never before notBefore
 *   emergency         when L/20 remains
 *   ARI               uniform in the CA's window, never later than the local renew time
 *   retry RETRY_SOON  60 s (L/60 when L < 1 h) doubling per consecutive failure; cap
 *                     min(6 h, L/10, a quarter of the time left); 6 h without a cert,
 *                     min(L/10, 6 h) once it expired
 *   retry RETRY_AFTER the CA's time, at least now + 60 s, plus up to min(wait/10, 5 min)
 *   every retry       (any class, the CA's time included) at the latest at the emergency point
 *                     of the served certificate; past it, within a quarter of the time left (a
 *                     CA's time: at least 60 s). A CA's hint (Retry-After of up to a year) must
 *                     not let a certificate expire; a quarter of the time left still spaces the
 *                     attempts out. No bound without a certificate or once it expired.
 *   retry ADMIN,      6 h, 12 h, then 24 h per consecutive failure; cap min(24 h, L/10)
 *         PERMANENT
 *   (RETRY_SOON, ADMIN and PERMANENT delays carry +-25 % jitter, folded back below the cap so
 *    that capped retries still spread over [0.75, 1] x cap; no cap is below the first delay)
 *   check interval    configured (default 12 h), at most L/20 of the shortest lifetime so that
 *                     the renew window sees >= 5 checks; at least 1 minute; +-25 % jitter
 *   warn              when 10 % of L remains (default)
 */

#define ACME_PLAN_AUTO_SHORT_LIFETIME  apr_time_from_sec(10 * 24 * 3600)
#define ACME_PLAN_CHECK_DEFAULT        apr_time_from_sec(12 * 3600)
#define ACME_PLAN_CHECK_MIN            apr_time_from_sec(60)
#define ACME_PLAN_RETRY_FIRST          apr_time_from_sec(60)
#define ACME_PLAN_RETRY_CAP            apr_time_from_sec(6 * 3600)
#define ACME_PLAN_RETRY_AFTER_MIN      apr_time_from_sec(60)
#define ACME_PLAN_RETRY_AFTER_JITTER   apr_time_from_sec(5 * 60)
#define ACME_PLAN_ADMIN_FIRST          apr_time_from_sec(6 * 3600)
#define ACME_PLAN_ADMIN_MAX            apr_time_from_sec(24 * 3600)
#define ACME_PLAN_WARN_DEFAULT         0.10

/*
 * How long before expiry to renew. All zero ({0}) means "auto", the default.
 * is_fraction: renew when `fraction` (0 < f < 1) of the lifetime remains;
 * otherwise absolute > 0: renew when `absolute` remains.
 */
typedef struct {
    int is_fraction;
    double fraction;                /* of lifetime remaining */
    apr_interval_time_t absolute;   /* time remaining */
} acme_plan_window_t;

/*
 * Parses a duration: a sequence of <number><unit> with units d, h, m, s, each at most once and
 * from largest to smallest ("21d", "12h", "3600s", "1d12h"). A bare number is refused (its unit
 * would be a guess). At most 100 years. On failure returns APR_EINVAL and sets *reason (allocated
 * in p; reason may be NULL).
 */
apr_status_t acme_plan_duration_parse(const char *text, apr_interval_time_t *out,
                                      const char **reason, apr_pool_t *p);

/*
 * Parses a renew window: "auto", a percentage of the lifetime remaining ("33%", "12.5%";
 * 0 < x < 100) or a duration of time remaining ("21d"; > 0). APR_EINVAL and *reason on failure.
 */
apr_status_t acme_plan_window_parse(const char *text, acme_plan_window_t *w,
                                    const char **reason, apr_pool_t *p);

/*
 * When to renew a certificate valid from not_before to not_after under window w (NULL: auto).
 * A certificate without a positive lifetime is due at not_before.
 */
apr_time_t acme_plan_renew_at(const acme_plan_window_t *w, apr_time_t not_before,
                              apr_time_t not_after);

/* The point past which renewal is an emergency: 1/20 of the lifetime remains. */
apr_time_t acme_plan_emergency_at(apr_time_t not_before, apr_time_t not_after);

/*
 * A renewal time from an ARI suggestedWindow (RFC 9773): start + u * (end - start), never later
 * than local_renew_at (<= 0: no local bound). 0 when end <= start: the window is invalid and the
 * caller keeps its own schedule.
 */
apr_time_t acme_plan_ari_pick(apr_time_t start, apr_time_t end, double u,
                              apr_time_t local_renew_at);

/*
 * When to try again after `consecutive_failures` (>= 1) failures of class cls, the last one at
 * now. retry_after is the CA's requested time (0: none; RETRY_AFTER without it is treated as
 * RETRY_SOON). not_before/not_after describe the current certificate (0, 0: none yet); they scale
 * the caps and bound every retry by the emergency floor (see above). Never returns a time before
 * now; ACME_CLASS_NONE returns now.
 */
apr_time_t acme_plan_retry_at(acme_class_t cls, int consecutive_failures, apr_time_t now,
                              apr_time_t retry_after, apr_time_t not_before,
                              apr_time_t not_after, double u);

/*
 * When the parent starts the worker again after a normal exit, given the time the worker asked
 * for in the User-writable jobs/next-run (0: none or unreadable): never sooner than the
 * shortest retry the worker plans for the served certificates (L/60 of the shortest lifetime,
 * between 1 s and ACME_PLAN_RETRY_FIRST; ACME_PLAN_RETRY_FIRST without one), so a forged or
 * stale time in the past cannot fork a worker at every monitor tick; an hour when nothing was
 * asked for.
 */
apr_time_t acme_plan_worker_next(apr_time_t asked, apr_time_t now,
                                 apr_interval_time_t shortest_lifetime);

#define ACME_PLAN_WORKER_UNKNOWN_NEXT apr_time_from_sec(3600)

/*
 * The period between checks: configured (0: 12 h), at most shortest_lifetime / 20 (0: no
 * certificate yet), at least 1 minute. Apply acme_plan_jitter to each sleep.
 */
apr_interval_time_t acme_plan_check_interval(apr_interval_time_t configured,
                                             apr_interval_time_t shortest_lifetime);

/* base scaled uniformly into [0.75, 1.25) x base by u. */
apr_interval_time_t acme_plan_jitter(apr_interval_time_t base, double u);

/* When to warn the admin: `fraction` of the lifetime remains (outside (0, 1): 10 %). */
apr_time_t acme_plan_warn_at(apr_time_t not_before, apr_time_t not_after, double fraction);

#endif
