#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_job.h"
#include "unit_support.h"

/* The job files go into fx->st. */
typedef unit_store_fixture_t fixture_t;

static int setup(void **state)
{
    *state = unit_store_fixture_make("job");
    return 0;
}

static int teardown(void **state)
{
    unit_store_fixture_free(*state);
    return 0;
}

static const char *job_path(fixture_t *fx, const char *name)
{
    return acme_store_path(fx->pool, fx->st, ACME_STORE_JOBS,
                           apr_pstrcat(fx->pool, name, ".json", NULL), NULL);
}

static void test_missing_file_gives_fresh_idle_job(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    acme_job_t *job = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_job_load(fx->pool, fx->st, "new.example", &job, &res), APR_SUCCESS);
    assert_int_equal(res.status, APR_SUCCESS);
    assert_non_null(job);
    assert_string_equal(job->name, "new.example");
    assert_int_equal(job->state, ACME_JOB_IDLE);
    assert_int_equal(job->failures, 0);
    assert_int_equal(job->next_run, 0);
    assert_int_equal(job->renew_at, 0);
    assert_int_equal(job->last_error.status, APR_SUCCESS);
    assert_null(job->order_json);
    assert_null(job->activity);
}

static void test_state_names(void **state)
{
    assert_string_equal(acme_job_state_name(ACME_JOB_IDLE), "idle");
    assert_string_equal(acme_job_state_name(ACME_JOB_ORDERING), "ordering");
    assert_string_equal(acme_job_state_name(ACME_JOB_STAGED), "staged");
    assert_string_equal(acme_job_state_name(ACME_JOB_FAILED), "failed");
    assert_string_equal(acme_job_state_name((acme_job_state_t)42), "unknown");
}

static void test_save_load_round_trip(void **state)
{
    fixture_t *fx = *state;
    acme_job_t *job = acme_job_make(fx->pool, "example.org"), *back = NULL;
    acme_result_t res;
    struct stat sb;

    job->state = ACME_JOB_ORDERING;
    job->activity = "waiting for the CA to validate www.example.org";
    job->next_run = apr_time_from_sec(1700000100);
    job->renew_at = apr_time_from_sec(1702000000);
    job->order_json = "{\"url\":\"https://ca/order/1\",\"status\":\"pending\"}";
    job->ca_url = "https://127.0.0.1:14000/dir";
    job->updated = apr_time_from_sec(1700000000);
    acme_result_reset(&res);
    assert_int_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
    /* The status handler (httpd User) reads it; it holds no secrets. */
    assert_int_equal(stat(job_path(fx, "example.org"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);

    assert_int_equal(acme_job_load(fx->pool, fx->st, "example.org", &back, &res), APR_SUCCESS);
    assert_string_equal(back->name, "example.org");
    assert_int_equal(back->state, ACME_JOB_ORDERING);
    assert_string_equal(back->activity, job->activity);
    assert_true(back->next_run == job->next_run);
    assert_true(back->renew_at == job->renew_at);
    assert_true(back->updated == job->updated);
    assert_string_equal(back->order_json, job->order_json);
    assert_string_equal(back->ca_url, job->ca_url);
    assert_int_equal(back->failures, 0);
    assert_int_equal(back->last_error.status, APR_SUCCESS);
}

static void test_failure_round_trip(void **state)
{
    fixture_t *fx = *state;
    apr_pool_t *scratch = NULL;
    acme_job_t *job = acme_job_make(fx->pool, "fail.example"), *back = NULL;
    acme_result_t err, res;
    apr_time_t now = apr_time_from_sec(1700000500);

    /* The error's strings live in a pool that is gone before the job is saved. */
    apr_pool_create(&scratch, fx->pool);
    acme_result_reset(&err);
    acme_result_fail(&err, APR_EGENERAL, ACME_CLASS_RETRY_AFTER,
                     apr_pstrdup(scratch, "new-order for fail.example was refused"));
    err.http_status = 429;
    err.problem_type = apr_pstrdup(scratch, "urn:ietf:params:acme:error:rateLimited");
    err.detail = apr_pstrdup(scratch, "too many certificates already issued");
    err.instance = apr_pstrdup(scratch, "https://ca/docs/rate-limits");
    err.subproblems = apr_pstrdup(scratch, "[{\"type\":\"urn:x\"}]");
    err.retry_after = apr_time_from_sec(1700003600);
    acme_job_failed(job, fx->pool, &err, now);
    acme_job_failed(job, fx->pool, &err, now);
    job->failed_config = "9f86d081884c7d659a2feaa0c55ad015";
    apr_pool_destroy(scratch);

    assert_int_equal(job->state, ACME_JOB_FAILED);
    assert_int_equal(job->failures, 2);
    acme_result_reset(&res);
    assert_int_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(fx->pool, fx->st, "fail.example", &back, &res), APR_SUCCESS);
    assert_int_equal(back->state, ACME_JOB_FAILED);
    assert_int_equal(back->failures, 2);
    assert_int_not_equal(back->last_error.status, APR_SUCCESS);
    assert_int_equal(back->last_error.err_class, ACME_CLASS_RETRY_AFTER);
    assert_int_equal(back->last_error.http_status, 429);
    assert_string_equal(back->last_error.message, "new-order for fail.example was refused");
    assert_string_equal(back->last_error.problem_type, "urn:ietf:params:acme:error:rateLimited");
    assert_string_equal(back->last_error.detail, "too many certificates already issued");
    assert_string_equal(back->last_error.instance, "https://ca/docs/rate-limits");
    assert_string_equal(back->last_error.subproblems, "[{\"type\":\"urn:x\"}]");
    assert_true(back->last_error.retry_after == apr_time_from_sec(1700003600));
    assert_true(back->last_error_at == now);
    assert_string_equal(back->failed_config, "9f86d081884c7d659a2feaa0c55ad015");
}

static void test_every_class_survives(void **state)
{
    fixture_t *fx = *state;
    acme_class_t classes[] = { ACME_CLASS_RETRY_SOON, ACME_CLASS_RETRY_AFTER, ACME_CLASS_ADMIN,
                               ACME_CLASS_PERMANENT };
    size_t i;

    for (i = 0; i < sizeof(classes) / sizeof(classes[0]); ++i) {
        acme_job_t *job = acme_job_make(fx->pool, "c.example"), *back = NULL;
        acme_result_t err, res;
        acme_result_reset(&err);
        acme_result_fail(&err, APR_EINVAL, classes[i], "x");
        acme_job_failed(job, fx->pool, &err, apr_time_from_sec(1));
        acme_result_reset(&res);
        assert_int_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
        assert_int_equal(acme_job_load(fx->pool, fx->st, "c.example", &back, &res), APR_SUCCESS);
        assert_int_equal(back->last_error.err_class, classes[i]);
    }
}

static void test_json_has_no_error_when_none(void **state)
{
    fixture_t *fx = *state;
    acme_job_t *job = acme_job_make(fx->pool, "ok.example");
    json_t *json = acme_job_to_json(job);

    assert_non_null(json);
    assert_string_equal(json_string_value(json_object_get(json, "state")), "idle");
    assert_true(json_is_null(json_object_get(json, "last_error")));
    assert_true(json_is_null(json_object_get(json, "next_run")));
    assert_int_equal(json_integer_value(json_object_get(json, "failures")), 0);
    json_decref(json);
}

static void test_unusable_names_refused(void **state)
{
    fixture_t *fx = *state;
    static const char *bad[] = { "../evil", "a/b", ".hidden", "" };
    acme_result_t res;
    acme_job_t *job = NULL;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        acme_result_reset(&res);
        assert_int_not_equal(acme_job_load(fx->pool, fx->st, bad[i], &job, &res), APR_SUCCESS);
        assert_non_null(res.message);
        acme_result_reset(&res);
        job = acme_job_make(fx->pool, bad[i]);
        assert_int_not_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
    }
    /* Nothing was written next to the store. */
    assert_int_not_equal(access(apr_pstrcat(fx->pool, fx->dir, "/store/evil.json", NULL), F_OK),
                         0);
}

static void test_corrupt_file_is_an_error(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    acme_job_t *job = NULL;
    const char *garbage = "{\"state\": \"idle\", ";

    acme_result_reset(&res);
    assert_int_equal(acme_store_write_file(fx->pool, job_path(fx, "bad.example"), garbage,
                                           strlen(garbage), 0644, &res), APR_SUCCESS);
    assert_int_not_equal(acme_job_load(fx->pool, fx->st, "bad.example", &job, &res),
                         APR_SUCCESS);
    assert_non_null(res.message);
    /* The caller still gets a usable job. */
    assert_non_null(job);
    assert_int_equal(job->state, ACME_JOB_IDLE);
}

static void test_next_run_file(void **state)
{
    fixture_t *fx = *state;
    const char *path = acme_store_path(fx->pool, fx->st, ACME_STORE_JOBS, ACME_JOB_NEXT_RUN_FILE,
                                       NULL);
    acme_result_t res;
    struct stat sb;

    assert_int_equal(acme_job_next_run_load(fx->pool, fx->st), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_job_next_run_save(fx->pool, fx->st, apr_time_from_sec(1800000000),
                                            &res), APR_SUCCESS);
    assert_true(acme_job_next_run_load(fx->pool, fx->st) == apr_time_from_sec(1800000000));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    /* Overwritten, not appended. */
    assert_int_equal(acme_job_next_run_save(fx->pool, fx->st, apr_time_from_sec(1800000060),
                                            &res), APR_SUCCESS);
    assert_true(acme_job_next_run_load(fx->pool, fx->st) == apr_time_from_sec(1800000060));

    assert_int_equal(acme_store_write_file(fx->pool, path, "soon\n", 5, 0644, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_job_next_run_load(fx->pool, fx->st), 0);
    assert_int_equal(acme_store_write_file(fx->pool, path, "-5\n", 3, 0644, &res), APR_SUCCESS);
    assert_int_equal(acme_job_next_run_load(fx->pool, fx->st), 0);
}

/* A worker killed between taking an admin's request and staging its result resumes it. */
static void test_force_request_survives_an_interrupted_run(void **state)
{
    fixture_t *fx = *state;
    const char *req = acme_store_path(fx->pool, fx->st, ACME_STORE_REQUESTS, "f.example.force",
                                      NULL);
    acme_job_t job = {.name = "f.example", .state = ACME_JOB_ORDERING};
    acme_result_t res;

    assert_int_equal(acme_job_force_pending(fx->pool, fx->st, "f.example"), 0);
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    mkdir(acme_store_path(fx->pool, fx->st, ACME_STORE_REQUESTS, NULL, NULL), 0755);
    acme_result_reset(&res);
    assert_int_equal(acme_store_write_file(fx->pool, req, "1\n", 2, 0644, &res), APR_SUCCESS);
    assert_int_equal(acme_job_force_pending(fx->pool, fx->st, "f.example"), 1);
    /* Not taken yet: it is pending, not interrupted. */
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    assert_int_equal(acme_job_force_take(fx->pool, fx->st, "f.example"), 1);
    assert_int_equal(acme_job_force_pending(fx->pool, fx->st, "f.example"), 0);
    assert_int_equal(acme_job_force_take(fx->pool, fx->st, "f.example"), 0);
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 1);
    /* A run that ended (staged or failed) acted on it: never twice. */
    job.state = ACME_JOB_STAGED;
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    job.state = ACME_JOB_FAILED;
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    job.state = ACME_JOB_IDLE;
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    /* Asked again after the run took it: a set installed meanwhile does not remove that. */
    assert_int_equal(apr_file_mtime_set(req, apr_time_now() + apr_time_from_sec(5), fx->pool),
                     APR_SUCCESS);
    acme_job_force_clear(fx->pool, fx->st, "f.example");
    assert_int_equal(acme_job_force_pending(fx->pool, fx->st, "f.example"), 1);
    assert_int_equal(acme_job_force_take(fx->pool, fx->st, "f.example"), 1);
    /* Installed: the parent removed the request. */
    job.state = ACME_JOB_ORDERING;
    acme_job_force_clear(fx->pool, fx->st, "f.example");
    assert_int_equal(acme_job_force_interrupted(fx->pool, fx->st, &job), 0);
    assert_int_equal(acme_job_force_pending(fx->pool, fx->st, "f.example"), 0);
}

/* Found by fuzz_store: a count of seconds no apr_time_t holds overflowed (undefined behaviour). */
static void test_huge_times_are_none(void **state)
{
    fixture_t *fx = *state;
    const char *path = acme_store_path(fx->pool, fx->st, ACME_STORE_JOBS, ACME_JOB_NEXT_RUN_FILE,
                                       NULL);
    const char *json = "{\"state\": \"idle\", \"next_run\": 9223372036854775807, "
                       "\"renew_at\": -9223372036854775807, \"updated\": 1700000000}";
    acme_result_t res;
    acme_job_t *job = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_store_write_file(fx->pool, path, "66666666666666666666\n", 21, 0644,
                                           &res), APR_SUCCESS);
    assert_int_equal(acme_job_next_run_load(fx->pool, fx->st), 0);
    assert_int_equal(acme_store_write_file(fx->pool, path, "9300000000000\n", 14, 0644, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_job_next_run_load(fx->pool, fx->st), 0);
    assert_int_equal(acme_store_write_file(fx->pool, job_path(fx, "huge.example"), json,
                                           strlen(json), 0644, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(fx->pool, fx->st, "huge.example", &job, &res), APR_SUCCESS);
    assert_true(job->next_run == 0);
    assert_true(job->renew_at == 0);
    assert_true(job->updated == apr_time_from_sec(1700000000));
}

/*
 * A hook's stderr in the error message may be any bytes (Latin-1, a cut UTF-8 character): the job
 * must still be saved, with the bad bytes replaced, not silently left as it was.
 */
static void test_invalid_utf8_is_saved_sanitised(void **state)
{
    fixture_t *fx = *state;
    acme_job_t *job = acme_job_make(fx->pool, "bytes.example"), *back = NULL;
    acme_result_t err, res;

    acme_result_reset(&err);
    acme_result_fail(&err, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                     "ACMEDns01Command (setup) failed; it said: Zone \xe9" "chou\xe9" "e \xc3");
    acme_job_failed(job, fx->pool, &err, apr_time_now());
    job->activity = "caf\xc3\xa9 \xff";
    acme_result_reset(&res);
    assert_int_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(fx->pool, fx->st, "bytes.example", &back, &res), APR_SUCCESS);
    assert_int_equal(back->state, ACME_JOB_FAILED);
    assert_string_equal(back->last_error.message,
                        "ACMEDns01Command (setup) failed; it said: Zone ?chou?e ?");
    assert_string_equal(back->activity, "caf\xc3\xa9 ?");
}

static void test_utf8_sanitiser(void **state)
{
    fixture_t *fx = *state;
    const char *ok = "\xe2\x82\xac \xf0\x9f\x94\x92 plain";

    assert_ptr_equal(acme_result_utf8(fx->pool, ok), ok);
    assert_null(acme_result_utf8(fx->pool, NULL));
    /* overlong, surrogate, above U+10FFFF, lone continuation, truncated sequence */
    assert_string_equal(acme_result_utf8(fx->pool, "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80|\xe2\x82"),
                        "??|???|????|?|??");
}

static const char *account_path(fixture_t *fx)
{
    return acme_store_path(fx->pool, fx->st, ACME_STORE_JOBS, "account.ca1.json", NULL);
}

/* At most one re-registration per CA per hour, whatever the clock does. */
static void test_account_reregister_once_per_hour(void **state)
{
    fixture_t *fx = *state;
    acme_job_account_t *acct = acme_job_account_make(fx->pool, "https://ca/dir");
    apr_time_t t0 = apr_time_from_sec(1700000000), nb = 0;
    apr_time_t hour = apr_time_from_sec(3600);

    assert_true(acme_job_account_may_reregister(acct, t0, &nb));
    acct->reregistered_at = t0;
    assert_false(acme_job_account_may_reregister(acct, t0, &nb));
    assert_int_equal(nb, t0 + hour);
    nb = 0;
    assert_false(acme_job_account_may_reregister(acct, t0 + hour - apr_time_from_sec(1), &nb));
    assert_int_equal(nb, t0 + hour);
    assert_true(acme_job_account_may_reregister(acct, t0 + hour, NULL));
    /* The clock set back a little: still within the hour. */
    assert_false(acme_job_account_may_reregister(acct, t0 - apr_time_from_sec(60), NULL));
    /* ... set back by more than the hour: the stored time says nothing any more. */
    assert_true(acme_job_account_may_reregister(acct, t0 - 2 * hour, NULL));
}

/* The limit survives a restart: the time is in the record, and so is the bounded history. */
static void test_account_record_round_trip(void **state)
{
    fixture_t *fx = *state;
    acme_job_account_t *acct = acme_job_account_make(fx->pool, "https://ca/dir"), *back = NULL;
    apr_time_t t0 = apr_time_from_sec(1700000000);
    acme_result_t res;
    int i;

    for (i = 0; i < ACME_JOB_ACCOUNT_HISTORY_MAX + 3; ++i) {
        acme_job_account_note(acct, fx->pool, apr_psprintf(fx->pool, "https://ca/acct/%d", i),
                              i ? "registered again" : "registered", t0 + apr_time_from_sec(i));
    }
    acct->reregistered_at = t0 + apr_time_from_sec(5);
    acme_result_reset(&res);
    assert_int_equal(acme_job_account_save(fx->pool, account_path(fx), acct, &res), APR_SUCCESS);
    assert_int_equal(unit_mode_of(account_path(fx)), 0644);
    assert_int_equal(acme_job_account_load(fx->pool, account_path(fx), "https://ca/dir", &back,
                                           &res), APR_SUCCESS);
    assert_string_equal(back->url, "https://ca/acct/12");
    assert_int_equal(back->reregistered_at, t0 + apr_time_from_sec(5));
    assert_false(acme_job_account_may_reregister(back, t0 + apr_time_from_sec(60), NULL));
    assert_int_equal(back->history->nelts, ACME_JOB_ACCOUNT_HISTORY_MAX);
    assert_string_equal(APR_ARRAY_IDX(back->history, 0, acme_job_account_event_t).url,
                        "https://ca/acct/3");
    assert_int_equal(APR_ARRAY_IDX(back->history, 0, acme_job_account_event_t).at,
                     t0 + apr_time_from_sec(3));
    assert_string_equal(APR_ARRAY_IDX(back->history, ACME_JOB_ACCOUNT_HISTORY_MAX - 1,
                                      acme_job_account_event_t).reason, "registered again");
    /* Another CA's record is not this CA's account; an old file without history still reads. */
    assert_int_not_equal(acme_job_account_load(fx->pool, account_path(fx), "https://other/dir",
                                               &back, &res), APR_SUCCESS);
    assert_null(back->url);
    assert_int_equal(back->history->nelts, 0);
    unit_write_file(fx->pool, account_path(fx),
                    "{\"url\":\"https://ca/acct/0\",\"ca_url\":\"https://ca/dir\"}\n", 0644);
    acme_result_reset(&res);
    assert_int_equal(acme_job_account_load(fx->pool, account_path(fx), "https://ca/dir", &back,
                                           &res), APR_SUCCESS);
    assert_string_equal(back->url, "https://ca/acct/0");
    assert_int_equal(back->reregistered_at, 0);
    assert_int_equal(back->history->nelts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_file_gives_fresh_idle_job, setup, teardown),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_class_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_has_no_error_when_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_names_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_run_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_request_survives_an_interrupted_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_huge_times_are_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_is_saved_sanitised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_sanitiser, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_reregister_once_per_hour, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_record_round_trip, setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
