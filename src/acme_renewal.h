#ifndef ACME_RENEWAL_H
#define ACME_RENEWAL_H

#include <apr_pools.h>
#include <apr_time.h>

#include "acme_plan.h"
#include "acme_result.h"

/*
 * Renewal decisions the worker takes per domain, kept free of I/O and of httpd so that they can
 * be unit-tested: CA failover, the ARI pick that stays stable across checks, and the expiry
 * warning. The arithmetic itself is acme_plan's.
 */

/* CA-side failures (5xx, timeouts, repeated badNonce) at one CA before moving to the next. */
#define ACME_RENEWAL_FAILOVER_AFTER 2

/*
 * 1 when the failure is the CA's (class RETRY_SOON from the protocol core, not a stop of our
 * own): only those move a domain to another CA. Admin-action, rate-limit and permanent errors
 * would follow the domain to any CA, or must be fixed by a human.
 */
int acme_renewal_ca_side(const acme_result_t *res);

/*
 * Counts a failed attempt at CA *ca_index of n_cas and switches to the next one after
 * ACME_RENEWAL_FAILOVER_AFTER consecutive CA-side failures, at once when the CA did not answer at
 * all (no HTTP status: unreachable, timed out). A failure that is not CA-side resets the count.
 * Returns 1 when *ca_index changed (the count restarts at 0).
 */
int acme_renewal_failover(const acme_result_t *res, int n_cas, int *ca_index, int *ca_failures);

/*
 * The ARI renewal time: the earlier pick (prev_pick, made for the window prev_start..prev_end)
 * is kept while the CA's window stays the same, so that a time picked uniformly is not re-drawn
 * at every check; a new window gets a new pick start + u * (end - start). Never later than
 * local_at (> 0). 0 when the window is invalid (end <= start): keep the local schedule.
 */
apr_time_t acme_renewal_ari_time(apr_time_t start, apr_time_t end, apr_time_t prev_start,
                                 apr_time_t prev_end, apr_time_t prev_pick, double u,
                                 apr_time_t local_at);

/*
 * Parses ACMEWarnWindow: a percentage of the lifetime left ("10%") or a duration left ("2d").
 * "auto" is 10 %.
 */
apr_status_t acme_renewal_warn_parse(const char *text, acme_plan_window_t *w,
                                     const char **reason, apr_pool_t *p);

/* When the warning starts for a certificate valid from not_before to not_after (w NULL: 10 %). */
apr_time_t acme_renewal_warn_at(const acme_plan_window_t *w, apr_time_t not_before,
                                apr_time_t not_after);

/* 1 when an admin must hear about it now: inside the warn window and renewal failing. */
int acme_renewal_should_warn(apr_time_t now, apr_time_t warn_at, int failures);

/* The CRITICAL line: domain, expiry, attempts, last error, next attempt. */
const char *acme_renewal_warning_text(apr_pool_t *p, const char *name, apr_time_t not_after,
                                      apr_time_t now, int failures, const char *last_error,
                                      apr_time_t next_attempt);

#endif
