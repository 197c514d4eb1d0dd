#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "acme_perms.h"
#include "acme_job.h"

static const char *const acme_job_state_names[] = {
    [ACME_JOB_IDLE] = "idle",
    [ACME_JOB_ORDERING] = "ordering",
    [ACME_JOB_STAGED] = "staged",
    [ACME_JOB_FAILED] = "failed",
};

acme_job_t *acme_job_make(apr_pool_t *p, const char *name)
{
    acme_job_t *job = apr_palloc(p, sizeof(*job));

    *job = (acme_job_t){ .name = apr_pstrdup(p, name), .state = ACME_JOB_IDLE };
    acme_result_reset(&job->last_error);
    return job;
}

const char *acme_job_state_name(acme_job_state_t state)
{
    return (unsigned)state < sizeof(acme_job_state_names) / sizeof(acme_job_state_names[0])
           ? acme_job_state_names[state] : "unknown";
}

/* Seconds as an apr_time_t; 0 (none) for a count no apr_time_t holds. */
static apr_time_t acme_job_time_from_sec(apr_int64_t sec)
{
    const apr_int64_t max = APR_INT64_MAX / APR_USEC_PER_SEC;

    return (sec > max || sec < -max) ? 0 : apr_time_from_sec(sec);
}

static apr_time_t acme_job_time_get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? acme_job_time_from_sec(json_integer_value(v)) : 0;
}

static const char *acme_job_str_get(apr_pool_t *p, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? apr_pstrdup(p, s) : NULL;
}

static acme_class_t acme_job_class_parse(const char *name)
{
    acme_class_t c;

    for (c = ACME_CLASS_NONE; c <= ACME_CLASS_PERMANENT; ++c) {
        if (name && !strcmp(acme_class_name(c), name)) {
            return c;
        }
    }
    return ACME_CLASS_RETRY_SOON;
}

static void acme_job_error_from_json(acme_job_t *job, apr_pool_t *p, json_t *err)
{
    if (!json_is_object(err)) {
        return;
    }
    job->last_error = (acme_result_t){
        .status = APR_EGENERAL,
        .err_class = acme_job_class_parse(json_string_value(json_object_get(err, "class"))),
        .http_status = (int)json_integer_value(json_object_get(err, "http_status")),
        .message = acme_job_str_get(p, err, "message"),
        .problem_type = acme_job_str_get(p, err, "type"),
        .detail = acme_job_str_get(p, err, "detail"),
        .instance = acme_job_str_get(p, err, "instance"),
        .subproblems = acme_job_str_get(p, err, "subproblems"),
        .retry_after = acme_job_time_get(err, "retry_after"),
    };
    job->last_error_at = acme_job_time_get(err, "at");
}

static void acme_job_ari_from_json(acme_job_t *job, apr_pool_t *p, json_t *ari)
{
    if (!json_is_object(ari)) {
        return;
    }
    job->ari_start = acme_job_time_get(ari, "start");
    job->ari_end = acme_job_time_get(ari, "end");
    job->ari_pick = acme_job_time_get(ari, "pick");
    job->ari_next = acme_job_time_get(ari, "retry_after");
    job->ari_explanation = acme_job_str_get(p, ari, "explanation_url");
}

void acme_job_profile_note(acme_job_t *job, apr_pool_t *p, const char *serial_hex,
                           const char *profile)
{
    const apr_array_header_t *old;
    apr_table_t *next;
    int i, kept = 0, skip;

    if (!serial_hex) {
        return;
    }
    next = apr_table_make(p, ACME_JOB_PROFILES_MAX);
    old = job->cert_profiles ? apr_table_elts(job->cert_profiles) : NULL;
    for (i = 0; old && i < old->nelts; ++i) {
        kept += strcmp(APR_ARRAY_IDX(old, i, apr_table_entry_t).key, serial_hex) != 0;
    }
    skip = kept - (ACME_JOB_PROFILES_MAX - 1);      /* the oldest make room */
    for (i = 0; old && i < old->nelts; ++i) {
        const apr_table_entry_t *e = &APR_ARRAY_IDX(old, i, apr_table_entry_t);
        if (strcmp(e->key, serial_hex) && skip-- <= 0) {
            apr_table_set(next, e->key, e->val);
        }
    }
    apr_table_set(next, serial_hex, acme_result_utf8(p, profile ? profile : ""));
    job->cert_profiles = next;
}

const char *acme_job_profile_of(const acme_job_t *job, const char *serial_hex)
{
    return job && job->cert_profiles && serial_hex ? apr_table_get(job->cert_profiles, serial_hex)
                                                   : NULL;
}

static void acme_job_profiles_from_json(acme_job_t *job, apr_pool_t *p, json_t *obj)
{
    const char *serial;
    json_t *v;

    json_object_foreach(obj, serial, v) {
        if (json_is_string(v)) {
            acme_job_profile_note(job, p, serial, json_string_value(v));
        }
    }
}

static json_t *acme_job_profiles_json(const acme_job_t *job)
{
    const apr_array_header_t *elts;
    json_t *obj;

    if (!job->cert_profiles || apr_is_empty_table(job->cert_profiles)) {
        return json_null();
    }
    obj = json_object();
    elts = apr_table_elts(job->cert_profiles);
    for (int i = 0; i < elts->nelts; ++i) {
        const apr_table_entry_t *e = &APR_ARRAY_IDX(elts, i, apr_table_entry_t);
        json_object_set_new(obj, e->key, json_string(e->val));
    }
    return obj;
}

static void acme_job_from_json(acme_job_t *job, apr_pool_t *p, json_t *json)
{
    const char *state = json_string_value(json_object_get(json, "state"));
    acme_job_state_t s;

    for (s = ACME_JOB_IDLE; s <= ACME_JOB_FAILED; ++s) {
        if (state && !strcmp(state, acme_job_state_names[s])) {
            job->state = s;
        }
    }
    job->activity = acme_job_str_get(p, json, "activity");
    job->next_run = acme_job_time_get(json, "next_run");
    job->renew_at = acme_job_time_get(json, "renew_at");
    job->failures = (int)json_integer_value(json_object_get(json, "failures"));
    job->order_json = acme_job_str_get(p, json, "order");
    job->ca_url = acme_job_str_get(p, json, "ca_url");
    job->updated = acme_job_time_get(json, "updated");
    job->ca_index = (int)json_integer_value(json_object_get(json, "ca_index"));
    job->ca_failures = (int)json_integer_value(json_object_get(json, "ca_failures"));
    job->rejected = (int)json_integer_value(json_object_get(json, "rejected"));
    job->ca_hold = acme_job_time_get(json, "ca_retry_after");
    job->failed_config = acme_job_str_get(p, json, "failed_config");
    job->renew_reason = acme_job_str_get(p, json, "renew_reason");
    job->warning = acme_job_str_get(p, json, "warning");
    job->notified_event = acme_job_str_get(p, json_object_get(json, "notified"), "event");
    job->notified_at = acme_job_time_get(json_object_get(json, "notified"), "at");
    job->notified_errored_at = acme_job_time_get(json_object_get(json, "notified"), "errored");
    job->notified_expiring_at = acme_job_time_get(json_object_get(json, "notified"), "expiring");
    acme_job_ari_from_json(job, p, json_object_get(json, "ari"));
    acme_job_error_from_json(job, p, json_object_get(json, "last_error"));
    acme_job_profiles_from_json(job, p, json_object_get(json, "cert_profiles"));
}

apr_status_t acme_job_load(apr_pool_t *p, const acme_store_t *st, const char *name,
                           acme_job_t **pjob, acme_result_t *res)
{
    const char *path = acme_store_path(p, st, ACME_STORE_JOBS, apr_pstrcat(p, name, ".json", NULL),
                                       NULL);
    acme_job_t *job = acme_job_make(p, name);
    json_t *json = NULL;
    apr_status_t rv;

    *pjob = job;
    if (!path) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "no job file name for '%s'", name));
    }
    rv = acme_store_read_json(p, path, &json, res);
    if (APR_STATUS_IS_ENOENT(rv)) {
        acme_result_reset(res);
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_job_from_json(job, p, json);
    return APR_SUCCESS;
}

static json_t *acme_job_time_json(apr_time_t t)
{
    return t ? json_integer(apr_time_sec(t)) : json_null();
}

/* A "not before" time (a CA's Retry-After, the next attempt): whole seconds, rounded up, so that
 * the stored form never lets a request out before the instant it stands for. */
static json_t *acme_job_time_json_up(apr_time_t t)
{
    return t ? json_integer(apr_time_sec(t + APR_USEC_PER_SEC - 1)) : json_null();
}

static json_t *acme_job_to_json_base(const acme_job_t *job);

static json_t *acme_job_error_json(const acme_job_t *job)
{
    const acme_result_t *e = &job->last_error;

    if (e->status == APR_SUCCESS) {
        return json_null();
    }
    return json_pack("{s:s?, s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:o, s:o}",
                     "message", e->message,
                     "class", acme_class_name(e->err_class),
                     "http_status", e->http_status,
                     "type", e->problem_type,
                     "detail", e->detail,
                     "instance", e->instance,
                     "subproblems", e->subproblems,
                     "retry_after", acme_job_time_json(e->retry_after),
                     "at", acme_job_time_json(job->last_error_at));
}

static json_t *acme_job_ari_json(const acme_job_t *job)
{
    if (!job->ari_start && !job->ari_next) {
        return json_null();
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:s?}",
                     "start", acme_job_time_json(job->ari_start),
                     "end", acme_job_time_json(job->ari_end),
                     "pick", acme_job_time_json(job->ari_pick),
                     "retry_after", acme_job_time_json_up(job->ari_next),
                     "explanation_url", job->ari_explanation);
}

json_t *acme_job_to_json(const acme_job_t *job)
{
    json_t *json = acme_job_to_json_base(job);

    if (json) {
        json_object_set_new(json, "ca_index", json_integer(job->ca_index));
        json_object_set_new(json, "ca_failures", json_integer(job->ca_failures));
        json_object_set_new(json, "rejected", json_integer(job->rejected));
        json_object_set_new(json, "ca_retry_after", acme_job_time_json_up(job->ca_hold));
        json_object_set_new(json, "failed_config", job->failed_config
                                                   ? json_string(job->failed_config) : json_null());
        json_object_set_new(json, "renew_reason", job->renew_reason
                                                  ? json_string(job->renew_reason) : json_null());
        json_object_set_new(json, "ari", acme_job_ari_json(job));
        json_object_set_new(json, "cert_profiles", acme_job_profiles_json(job));
        json_object_set_new(json, "warning", job->warning ? json_string(job->warning)
                                                          : json_null());
        json_object_set_new(json, "notified", job->notified_event
                            ? json_pack("{s:s, s:o, s:o, s:o}", "event", job->notified_event,
                                        "at", acme_job_time_json(job->notified_at),
                                        "errored", acme_job_time_json(job->notified_errored_at),
                                        "expiring",
                                        acme_job_time_json(job->notified_expiring_at))
                            : json_null());
    }
    return json;
}

static json_t *acme_job_to_json_base(const acme_job_t *job)
{
    return json_pack("{s:s, s:s, s:s?, s:o, s:o, s:i, s:o, s:s?, s:s?, s:o}",
                     "name", job->name,
                     "state", acme_job_state_name(job->state),
                     "activity", job->activity,
                     "next_run", acme_job_time_json_up(job->next_run),
                     "renew_at", acme_job_time_json(job->renew_at),
                     "failures", job->failures,
                     "last_error", acme_job_error_json(job),
                     "order", job->order_json,
                     "ca_url", job->ca_url,
                     "updated", acme_job_time_json(job->updated));
}

/*
 * The job with every text made valid UTF-8: messages carry hooks' stderr and other outside text,
 * and one bad byte would make the whole file unwritable (json_pack refuses it).
 */
static acme_job_t acme_job_clean(apr_pool_t *p, const acme_job_t *job)
{
    acme_job_t c = *job;

    c.activity = acme_result_utf8(p, c.activity);
    c.last_error.message = acme_result_utf8(p, c.last_error.message);
    c.last_error.problem_type = acme_result_utf8(p, c.last_error.problem_type);
    c.last_error.detail = acme_result_utf8(p, c.last_error.detail);
    c.last_error.instance = acme_result_utf8(p, c.last_error.instance);
    c.last_error.subproblems = acme_result_utf8(p, c.last_error.subproblems);
    c.order_json = acme_result_utf8(p, c.order_json);
    c.ca_url = acme_result_utf8(p, c.ca_url);
    c.renew_reason = acme_result_utf8(p, c.renew_reason);
    c.ari_explanation = acme_result_utf8(p, c.ari_explanation);
    c.warning = acme_result_utf8(p, c.warning);
    c.notified_event = acme_result_utf8(p, c.notified_event);
    return c;
}

static apr_status_t acme_job_write(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                                   int durable, acme_result_t *res);

apr_status_t acme_job_save(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                           acme_result_t *res)
{
    return acme_job_write(p, st, job, 1, res);
}

apr_status_t acme_job_save_volatile(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                                    acme_result_t *res)
{
    return acme_job_write(p, st, job, 0, res);
}

static apr_status_t acme_job_write(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job,
                                   int durable, acme_result_t *res)
{
    const char *path = acme_store_path(p, st, ACME_STORE_JOBS,
                                       apr_pstrcat(p, job->name, ".json", NULL), NULL);
    acme_job_t clean = acme_job_clean(p, job);
    json_t *json = acme_job_to_json(&clean);
    apr_status_t rv;

    if (!path || !json) {
        json_decref(json);
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "cannot serialise the job of '%s'", job->name));
    }
    rv = durable ? acme_store_write_json(p, path, json, ACME_PERMS_0644, res)
                 : acme_store_write_json_volatile(p, path, json, ACME_PERMS_0644, res);
    json_decref(json);
    return rv;
}

void acme_job_failed(acme_job_t *job, apr_pool_t *p, const acme_result_t *err, apr_time_t now)
{
    job->last_error = (acme_result_t){
        .status = err->status == APR_SUCCESS ? APR_EGENERAL : err->status,
        .err_class = err->err_class,
        .http_status = err->http_status,
        .message = err->message ? apr_pstrdup(p, err->message) : NULL,
        .problem_type = err->problem_type ? apr_pstrdup(p, err->problem_type) : NULL,
        .detail = err->detail ? apr_pstrdup(p, err->detail) : NULL,
        .instance = err->instance ? apr_pstrdup(p, err->instance) : NULL,
        .subproblems = err->subproblems ? apr_pstrdup(p, err->subproblems) : NULL,
        .retry_after = err->retry_after,
    };
    job->last_error_at = now;
    job->failures++;
    job->state = ACME_JOB_FAILED;
}

apr_status_t acme_job_next_run_save(apr_pool_t *p, const acme_store_t *st, apr_time_t when,
                                    acme_result_t *res)
{
    const char *path = acme_store_path(p, st, ACME_STORE_JOBS, ACME_JOB_NEXT_RUN_FILE, NULL);
    /* Rounded up as the jobs' own times: the worker never wakes before what it waits for. */
    const char *text = apr_psprintf(p, "%" APR_TIME_T_FMT "\n",
                                    apr_time_sec(when + APR_USEC_PER_SEC - 1));

    return acme_store_write_file(p, path, text, strlen(text), ACME_PERMS_0644, res);
}

/* The positive number a small file holds, 0 when it is missing or holds none. */
static apr_int64_t acme_job_number_read(apr_pool_t *p, const char *path)
{
    acme_result_t res;
    char *text = NULL, *end = NULL;
    apr_size_t len = 0;
    apr_int64_t n;

    acme_result_reset(&res);
    if (!path || acme_store_read_file(p, path, &text, &len, 64, &res) != APR_SUCCESS) {
        return 0;
    }
    n = apr_strtoi64(text, &end, 10);
    return (n > 0 && end != text) ? n : 0;
}

apr_time_t acme_job_next_run_load(apr_pool_t *p, const acme_store_t *st)
{
    return acme_job_time_from_sec(acme_job_number_read(p, acme_store_path(p, st, ACME_STORE_JOBS,
                                                                          ACME_JOB_NEXT_RUN_FILE,
                                                                          NULL)));
}

/* requests/<name>.force: the time root wrote it, 0 when there is none (or it is no file). */
static apr_time_t acme_job_force_mtime(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    const char *path = acme_store_path(p, st, ACME_STORE_REQUESTS,
                                       apr_pstrcat(p, name, ACME_JOB_FORCE_SUFFIX, NULL), NULL);
    apr_finfo_t fi;

    return path && apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_MTIME | APR_FINFO_LINK, p)
                   == APR_SUCCESS && fi.filetype == APR_REG ? fi.mtime : 0;
}

static apr_time_t acme_job_force_done(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    const char *done = acme_store_path(p, st, ACME_STORE_JOBS,
                                       apr_pstrcat(p, name, ".force-done", NULL), NULL);

    return done ? acme_job_number_read(p, done) : -1;
}

int acme_job_force_pending(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    apr_time_t asked = acme_job_force_mtime(p, st, name);
    apr_time_t done = acme_job_force_done(p, st, name);

    return asked && done >= 0 && done < asked;
}

int acme_job_force_interrupted(apr_pool_t *p, const acme_store_t *st, const acme_job_t *job)
{
    apr_time_t asked = acme_job_force_mtime(p, st, job->name);

    return asked && job->state == ACME_JOB_ORDERING
           && acme_job_force_done(p, st, job->name) >= asked;
}

int acme_job_force_take(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    const char *done = acme_store_path(p, st, ACME_STORE_JOBS,
                                       apr_pstrcat(p, name, ".force-done", NULL), NULL);
    apr_time_t asked = acme_job_force_mtime(p, st, name);
    const char *text;
    acme_result_t res;

    if (!asked || !done || acme_job_number_read(p, done) >= asked) {
        return 0;
    }
    /* Each request is acted on once; the parent removes it when the new set is installed. */
    text = apr_psprintf(p, "%" APR_TIME_T_FMT "\n", asked);
    acme_result_reset(&res);
    acme_store_write_file(p, done, text, strlen(text), ACME_PERMS_0644, &res);
    return 1;
}

int acme_job_force_requested(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    return acme_job_force_mtime(p, st, name) != 0;
}

void acme_job_force_clear(apr_pool_t *p, const acme_store_t *st, const char *name)
{
    const char *path = acme_store_path(p, st, ACME_STORE_REQUESTS,
                                       apr_pstrcat(p, name, ACME_JOB_FORCE_SUFFIX, NULL), NULL);
    apr_time_t asked = acme_job_force_mtime(p, st, name);

    /* Only a request a run took: one written meanwhile (while an earlier set was staged, or
     * fetched from a cluster) is for a renewal still to come, and the next run takes it. */
    if (path && asked && acme_job_force_done(p, st, name) >= asked) {
        apr_file_remove(path, p);
    }
}

const char *acme_job_force_stamp(apr_pool_t *p, const acme_store_t *st)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_REQUESTS, NULL, NULL);
    apr_size_t suffix = strlen(ACME_JOB_FORCE_SUFFIX);
    const char *stamp = NULL;
    apr_dir_t *d = NULL;
    apr_finfo_t fi;

    if (!dir || apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return NULL;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_MTIME, d) == APR_SUCCESS) {
        apr_size_t len = strlen(fi.name);
        if (len > suffix && !strcmp(fi.name + len - suffix, ACME_JOB_FORCE_SUFFIX)) {
            stamp = apr_psprintf(p, "%s%s@%" APR_TIME_T_FMT ";", stamp ? stamp : "", fi.name,
                                 fi.mtime);
        }
    }
    apr_dir_close(d);
    return stamp;
}

/* ------------------------------------------------------------------ account record */

acme_job_account_t *acme_job_account_make(apr_pool_t *p, const char *ca_url)
{
    acme_job_account_t *acct = apr_pcalloc(p, sizeof(*acct));

    acct->ca_url = ca_url ? apr_pstrdup(p, ca_url) : NULL;
    acct->history = apr_array_make(p, 4, sizeof(acme_job_account_event_t));
    return acct;
}

static void acme_job_account_history_from(acme_job_account_t *acct, apr_pool_t *p, json_t *list)
{
    json_t *v;
    size_t i;

    json_array_foreach(list, i, v) {
        acme_job_account_event_t ev = {
            .url = acme_job_str_get(p, v, "url"),
            .at = acme_job_time_get(v, "at"),
            .reason = acme_job_str_get(p, v, "reason"),
        };
        if (json_is_object(v) && ev.url) {
            APR_ARRAY_PUSH(acct->history, acme_job_account_event_t) = ev;
        }
    }
}

/* The account-life fields (terms of service, contact, deactivation); absent in older files. */
static void acme_job_account_life_from(acme_job_account_t *acct, apr_pool_t *p, json_t *json)
{
    json_t *tos = json_object_get(json, "terms_of_service");

    acct->contact_config = acme_job_str_get(p, json, "contact_config");
    acct->deactivated_at = acme_job_time_get(json, "deactivated_at");
    acct->eab_kid = acme_job_str_get(p, json, "eab_kid");
    if (json_is_object(tos)) {
        acct->tos_agreed = acme_job_str_get(p, tos, "agreed");
        acct->tos_current = acme_job_str_get(p, tos, "current");
        acct->tos_checked_at = acme_job_time_get(tos, "checked_at");
        acct->tos_announced = acme_job_str_get(p, tos, "announced");
        acct->tos_blocked = acme_job_str_get(p, tos, "blocked");
        acct->tos_blocked_at = acme_job_time_get(tos, "blocked_at");
        acct->tos_blocked_agreement = json_is_true(json_object_get(tos, "blocked_agreement"));
    }
}

static void acme_job_account_life_to(const acme_job_account_t *acct, json_t *json)
{
    json_t *tos = json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:b}", "agreed", acct->tos_agreed,
                            "current", acct->tos_current, "announced", acct->tos_announced,
                            "blocked", acct->tos_blocked,
                            "blocked_at", acme_job_time_json(acct->tos_blocked_at),
                            "blocked_agreement", acct->tos_blocked_agreement);

    json_object_set_new(tos, "checked_at", acme_job_time_json(acct->tos_checked_at));
    json_object_set_new(json, "terms_of_service", tos);
    json_object_set_new(json, "contact_config", acct->contact_config
                                                ? json_string(acct->contact_config) : json_null());
    json_object_set_new(json, "deactivated_at", acme_job_time_json(acct->deactivated_at));
    json_object_set_new(json, "eab_kid", acct->eab_kid ? json_string(acct->eab_kid)
                                                       : json_null());
}

apr_status_t acme_job_account_load(apr_pool_t *p, const char *path, const char *ca_url,
                                   acme_job_account_t **pacct, acme_result_t *res)
{
    acme_job_account_t *acct = acme_job_account_make(p, ca_url);
    json_t *json = NULL;
    const char *recorded;
    apr_status_t rv;

    *pacct = acct;
    rv = acme_store_read_json(p, path, &json, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    recorded = json_string_value(json_object_get(json, "ca_url"));
    if (!recorded || !ca_url || strcmp(recorded, ca_url)) {
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s belongs to another CA", path));
    }
    acct->url = acme_job_str_get(p, json, "url");
    acct->reregistered_at = acme_job_time_get(json, "reregistered_at");
    acme_job_account_history_from(acct, p, json_object_get(json, "history"));
    acme_job_account_life_from(acct, p, json);
    return APR_SUCCESS;
}

json_t *acme_job_account_to_json(const acme_job_account_t *acct)
{
    json_t *list = json_array(), *json;
    int i;

    for (i = 0; i < acct->history->nelts; ++i) {
        const acme_job_account_event_t *ev = &APR_ARRAY_IDX(acct->history, i,
                                                            acme_job_account_event_t);
        json_array_append_new(list, json_pack("{s:s, s:o, s:s?}", "url", ev->url,
                                              "at", acme_job_time_json(ev->at),
                                              "reason", ev->reason));
    }
    json = json_pack("{s:s?, s:s?, s:o, s:o}", "ca_url", acct->ca_url, "url", acct->url,
                     "reregistered_at", acme_job_time_json(acct->reregistered_at),
                     "history", list);
    if (json) {
        acme_job_account_life_to(acct, json);
    }
    return json;
}

apr_status_t acme_job_account_save(apr_pool_t *p, const char *path,
                                   const acme_job_account_t *acct, acme_result_t *res)
{
    json_t *json = acme_job_account_to_json(acct);
    apr_status_t rv = acme_store_write_json(p, path, json, ACME_PERMS_0644, res);

    json_decref(json);
    return rv;
}

void acme_job_account_note(acme_job_account_t *acct, apr_pool_t *p, const char *url,
                           const char *reason, apr_time_t now)
{
    acme_job_account_event_t *ev;
    int drop = acct->history->nelts + 1 - ACME_JOB_ACCOUNT_HISTORY_MAX;

    if (drop > 0) {
        memmove(acct->history->elts, acct->history->elts + drop * sizeof(*ev),
                (size_t)(acct->history->nelts - drop) * sizeof(*ev));
        acct->history->nelts -= drop;
    }
    ev = &APR_ARRAY_PUSH(acct->history, acme_job_account_event_t);
    ev->url = apr_pstrdup(p, url);
    ev->at = now;
    ev->reason = reason ? apr_pstrdup(p, reason) : NULL;
    if (!acct->url || strcmp(acct->url, ev->url)) {
        /* Another account: what the old one agreed to, was told or suffered is not its. */
        acct->contact_config = acct->tos_agreed = acct->tos_announced = NULL;
        acct->tos_blocked = NULL;
        acct->tos_blocked_at = acct->deactivated_at = 0;
        acct->eab_kid = NULL;
    }
    acct->url = ev->url;
}

int acme_job_account_may_reregister(const acme_job_account_t *acct, apr_time_t now,
                                    apr_time_t *not_before)
{
    apr_time_t next = acct->reregistered_at + ACME_JOB_ACCOUNT_REREGISTER_GAP;

    /* A time more than the gap ahead means the clock was set back: the record says nothing. */
    if (acct->reregistered_at == 0 || now >= next
        || acct->reregistered_at > now + ACME_JOB_ACCOUNT_REREGISTER_GAP) {
        return 1;
    }
    if (not_before) {
        *not_before = next;
    }
    return 0;
}
