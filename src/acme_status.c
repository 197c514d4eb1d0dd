#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "acme_status.h"

static json_t *acme_status_time(apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN];

    if (!t) {
        return json_null();
    }
    apr_rfc822_date(buf, t);
    return json_string(buf);
}

/* "160h", "45d", "90d", "6d12h": the real lifetime, notAfter - notBefore, as people say it. */
static const char *acme_status_lifetime_text(char *buf, apr_size_t len, apr_interval_time_t life)
{
    apr_int64_t sec = apr_time_sec(life), days = sec / 86400, hours = (sec % 86400) / 3600;

    if (sec <= 0) {
        return "0s";
    }
    if (days >= 10 && hours == 0) {
        apr_snprintf(buf, len, "%" APR_INT64_T_FMT "d", days);
    }
    else if (days >= 10) {
        apr_snprintf(buf, len, "%" APR_INT64_T_FMT "d%" APR_INT64_T_FMT "h", days, hours);
    }
    else if (sec % 3600 == 0) {
        apr_snprintf(buf, len, "%" APR_INT64_T_FMT "h", sec / 3600);
    }
    else {
        apr_snprintf(buf, len, "%" APR_INT64_T_FMT "s", sec);
    }
    return buf;
}

/* Profile (as ordered; null when not recorded or the CA's default) and real lifetime. */
static void acme_status_cert_profile(json_t *out, const acme_active_cert_t *cert,
                                     const acme_job_t *job)
{
    const char *profile = acme_job_profile_of(job, cert->info.serial_hex);
    apr_interval_time_t life = cert->info.not_after - cert->info.not_before;
    char buf[64];

    json_object_set_new(out, "profile", profile && *profile ? json_string(profile)
                                                            : json_null());
    json_object_set_new(out, "lifetime_seconds", json_integer(apr_time_sec(life)));
    json_object_set_new(out, "lifetime", json_string(acme_status_lifetime_text(buf, sizeof(buf),
                                                                               life)));
}

static json_t *acme_status_cert(const acme_active_cert_t *cert, const acme_job_t *job)
{
    const acme_cert_info_t *info = &cert->info;
    json_t *out = json_pack("{s:s, s:s?, s:s?, s:s?, s:o, s:o, s:I, s:I}",
                     "key_type", cert->spec,
                     "serial", info->serial_hex,
                     "issuer", info->issuer,
                     "subject", info->subject,
                     "not_before", acme_status_time(info->not_before),
                     "not_after", acme_status_time(info->not_after),
                     "not_before_epoch", (json_int_t)apr_time_sec(info->not_before),
                     "not_after_epoch", (json_int_t)apr_time_sec(info->not_after));

    if (out) {
        acme_status_cert_profile(out, cert, job);
        json_object_set_new(out, "activated", acme_status_time(cert->activated));
        json_object_set_new(out, "activated_epoch",
                            json_integer((json_int_t)apr_time_sec(cert->activated)));
    }
    return out;
}

const char *acme_status_state(const acme_active_t *active, const acme_job_t *job)
{
    int served = active && active->complete;
    acme_job_state_t state = job ? job->state : ACME_JOB_IDLE;

    if (state == ACME_JOB_ORDERING) {
        return served ? "renewing" : "ordering";
    }
    if (served) {
        return state == ACME_JOB_FAILED ? "valid, renewal failing" : "valid";
    }
    if (state == ACME_JOB_STAGED) {
        return "staged";
    }
    return state == ACME_JOB_FAILED ? "failing" : "pending";
}

const char *acme_status_state_of(const acme_active_t *active, const acme_job_t *job)
{
    return acme_status_state(active, job);
}

json_t *acme_status_domain(const acme_domain_t *dom, const acme_active_t *active,
                           const acme_job_t *job)
{
    json_t *names = json_array(), *certs = json_array();
    json_t *out;
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        json_array_append_new(names,
                              json_string(APR_ARRAY_IDX(dom->idents, i, acme_ident_t).value));
    }
    for (i = 0; active && i < active->certs->nelts; ++i) {
        json_array_append_new(certs, acme_status_cert(&APR_ARRAY_IDX(active->certs, i,
                                                                     acme_active_cert_t), job));
    }
    out = json_pack("{s:s, s:o, s:s, s:s, s:o}",
                    "name", dom->name,
                    "names", names,
                    "state", acme_status_state(active, job),
                    "ca", APR_ARRAY_IDX(dom->policy.ca_urls,
                                        job && job->ca_index > 0
                                        ? job->ca_index % dom->policy.ca_urls->nelts : 0,
                                        const char *),
                    "certificates", certs);
    if (out && dom->ondemand) {
        json_object_set_new(out, "ondemand", json_true());  /* approved on demand (issue 19) */
    }
    if (job) {
        json_t *j = acme_job_to_json(job);
        json_object_del(j, "order");
        json_object_del(j, "name");
        json_object_set_new(out, "renewal", j);
        json_object_set_new(out, "next_renewal", acme_status_time(job->renew_at));
        json_object_set_new(out, "renewal_reason", job->renew_reason
                                                   ? json_string(job->renew_reason) : json_null());
        json_object_set_new(out, "next_attempt", acme_status_time(job->state == ACME_JOB_FAILED
                                                                  ? job->next_run : 0));
        if (job->warning) {
            json_object_set_new(out, "warning", json_string(job->warning));
        }
    }
    if (active && active->last_activation_error) {
        json_object_set_new(out, "activation_error", json_string(active->last_activation_error));
    }
    return out;
}

json_t *acme_status_account(const acme_job_account_t *rec)
{
    int changed = rec->tos_current && rec->tos_agreed && strcmp(rec->tos_current, rec->tos_agreed);
    json_t *tos = json_pack("{s:s?, s:s?, s:b, s:s?, s:o}",
                            "agreed", rec->tos_agreed, "current", rec->tos_current,
                            "changed", changed, "blocked", rec->tos_blocked,
                            "blocked_since", acme_status_time(rec->tos_blocked_at));

    /* A block without named terms still stops orders: say so rather than show null. */
    if (rec->tos_blocked_at && !rec->tos_blocked) {
        json_object_set_new(tos, "blocked", json_string("(the CA named no terms)"));
    }
    json_object_set_new(tos, "orders_stopped", json_boolean(rec->tos_blocked_at != 0));
    return json_pack("{s:s?, s:s?, s:o, s:s?, s:o, s:s?}", "ca", rec->ca_url, "url", rec->url,
                     "terms_of_service", tos, "contact", rec->contact_config,
                     "deactivated_at", acme_status_time(rec->deactivated_at),
                     "eab_kid", rec->eab_kid);
}

/* ------------------------------------------------------------------ server-status summary */

void acme_status_summary_add(acme_status_summary_t *sum, const acme_active_t *active,
                             const acme_job_t *job, const acme_plan_window_t *warn,
                             apr_time_t now)
{
    const char *state = acme_status_state(active, job);
    int i, expiring = 0;

    sum->domains++;
    sum->valid += !strncmp(state, "valid", 5);
    sum->failing += job && job->state == ACME_JOB_FAILED;
    if (job && job->renew_at > 0 && (!sum->next_renewal || job->renew_at < sum->next_renewal)) {
        sum->next_renewal = job->renew_at;
    }
    for (i = 0; active && i < active->certs->nelts; ++i) {
        const acme_active_cert_t *cert = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        apr_time_t warn_at = acme_renewal_warn_at(warn, cert->info.not_before,
                                                  cert->info.not_after);
        expiring |= cert->info.not_after > 0 && now >= warn_at;
        if (cert->activated > sum->last_activation) {
            sum->last_activation = cert->activated;
        }
    }
    sum->expiring += expiring;
}

const char *acme_status_worker_state(json_t *worker)
{
    static const char *const known[] = { "running", "idle", "restarting" };
    const char *state = json_string_value(json_object_get(worker, "state"));
    apr_size_t i;

    for (i = 0; state && i < sizeof(known) / sizeof(known[0]); ++i) {
        if (!strcmp(state, known[i])) {
            return known[i];
        }
    }
    return "unknown";
}

const char *acme_status_summary_auto(apr_pool_t *p, const acme_status_summary_t *sum)
{
    return apr_psprintf(p, "ACMEDomains: %d\nACMEDomainsValid: %d\nACMEDomainsExpiring: %d\n"
                        "ACMEDomainsFailing: %d\nACMENextRenewal: %" APR_INT64_T_FMT "\n"
                        "ACMEWorker: %s\nACMELastActivation: %" APR_INT64_T_FMT "\n",
                        sum->domains, sum->valid, sum->expiring, sum->failing,
                        (apr_int64_t)apr_time_sec(sum->next_renewal),
                        sum->worker ? sum->worker : "unknown",
                        (apr_int64_t)apr_time_sec(sum->last_activation));
}

static const char *acme_status_date_text(apr_pool_t *p, apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN];

    if (!t) {
        return "none";
    }
    apr_rfc822_date(buf, t);
    return apr_pstrdup(p, buf);
}

const char *acme_status_summary_html(apr_pool_t *p, const acme_status_summary_t *sum)
{
    /* Only numbers, fixed words and dates: nothing here needs HTML escaping. */
    return apr_psprintf(p, "<hr />\n<h2>mod_acme</h2>\n<dl>\n"
                        "<dt>Managed domains: %d</dt>\n<dt>Valid: %d</dt>\n"
                        "<dt>Expiring (inside the warn window): %d</dt>\n"
                        "<dt>Renewal failing: %d</dt>\n<dt>Next renewal: %s</dt>\n"
                        "<dt>Renewal worker: %s</dt>\n<dt>Last activation: %s</dt>\n</dl>\n",
                        sum->domains, sum->valid, sum->expiring, sum->failing,
                        acme_status_date_text(p, sum->next_renewal),
                        sum->worker ? sum->worker : "unknown",
                        acme_status_date_text(p, sum->last_activation));
}
