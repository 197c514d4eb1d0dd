#include <apr_strings.h>

#include "acme_renewal.h"

int acme_renewal_ca_side(const acme_result_t *res)
{
    /* EAGAIN: a lock held here (a2acme rollover), not the CA's doing: no failover for it. */
    return res->status != APR_SUCCESS && res->err_class == ACME_CLASS_RETRY_SOON
           && !APR_STATUS_IS_EINTR(res->status) && !APR_STATUS_IS_EAGAIN(res->status);
}

int acme_renewal_failover(const acme_result_t *res, int n_cas, int *ca_index, int *ca_failures)
{
    int threshold;

    if (!acme_renewal_ca_side(res)) {
        *ca_failures = 0;
        return 0;
    }
    (*ca_failures)++;
    /* A CA that answered nothing at all gets no second chance before the next one is tried. */
    threshold = res->http_status == 0 ? 1 : ACME_RENEWAL_FAILOVER_AFTER;
    if (n_cas < 2 || *ca_failures < threshold) {
        return 0;
    }
    *ca_index = (*ca_index < 0 ? 0 : *ca_index + 1) % n_cas;
    *ca_failures = 0;
    return 1;
}

apr_time_t acme_renewal_ari_time(apr_time_t start, apr_time_t end, apr_time_t prev_start,
                                 apr_time_t prev_end, apr_time_t prev_pick, double u,
                                 apr_time_t local_at)
{
    if (end <= start) {
        return 0;
    }
    if (start == prev_start && end == prev_end && prev_pick >= start && prev_pick <= end) {
        return local_at > 0 && prev_pick > local_at ? local_at : prev_pick;
    }
    return acme_plan_ari_pick(start, end, u, local_at);
}

apr_status_t acme_renewal_warn_parse(const char *text, acme_plan_window_t *w,
                                     const char **reason, apr_pool_t *p)
{
    apr_status_t rv = acme_plan_window_parse(text, w, reason, p);

    if (rv == APR_SUCCESS && !w->is_fraction && w->absolute <= 0) {
        *w = (acme_plan_window_t){ .is_fraction = 1, .fraction = ACME_PLAN_WARN_DEFAULT };
    }
    return rv;
}

apr_time_t acme_renewal_warn_at(const acme_plan_window_t *w, apr_time_t not_before,
                                apr_time_t not_after)
{
    apr_time_t at;

    if (!w || w->is_fraction || w->absolute <= 0) {
        return acme_plan_warn_at(not_before, not_after,
                                 w && w->is_fraction ? w->fraction : ACME_PLAN_WARN_DEFAULT);
    }
    at = not_after - w->absolute;
    return at < not_before ? not_before : at;
}

int acme_renewal_should_warn(apr_time_t now, apr_time_t warn_at, int failures)
{
    return failures > 0 && warn_at > 0 && now >= warn_at;
}

const char *acme_renewal_warning_text(apr_pool_t *p, const char *name, apr_time_t not_after,
                                      apr_time_t now, int failures, const char *last_error,
                                      apr_time_t next_attempt)
{
    char exp[APR_RFC822_DATE_LEN], next[APR_RFC822_DATE_LEN];
    apr_interval_time_t left = not_after - now;

    apr_rfc822_date(exp, not_after);
    apr_rfc822_date(next, next_attempt > 0 ? next_attempt : now);
    return apr_psprintf(p, "%s: the certificate %s %s (%s) and renewal keeps failing "
                        "(%d attempt%s; last error: %s); next attempt %s",
                        name, left > 0 ? "expires" : "expired", exp,
                        left > 0 ? apr_psprintf(p, "in %" APR_TIME_T_FMT " s",
                                                apr_time_sec(left))
                                 : "it is no longer valid",
                        failures, failures == 1 ? "" : "s",
                        last_error ? last_error : "unknown", next);
}
