#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_problem.h"
#include "unit_support.h"

#define NS "urn:ietf:params:acme:error:"

typedef struct {
    const char *name;
    int status;
    acme_class_t expected;
} case_t;

/* Every type of RFC 8555 §6.7 (+ RFC 9773, profiles draft, legacy), with its usual status. */
static const case_t cases[] = {
    { "accountDoesNotExist",     400, ACME_CLASS_ADMIN },
    { "alreadyReplaced",         409, ACME_CLASS_PERMANENT },
    { "alreadyRevoked",          400, ACME_CLASS_PERMANENT },
    { "badCSR",                  400, ACME_CLASS_ADMIN },
    { "badNonce",                400, ACME_CLASS_RETRY_SOON },
    { "badPublicKey",            400, ACME_CLASS_ADMIN },
    { "badRevocationReason",     400, ACME_CLASS_ADMIN },
    { "badSignatureAlgorithm",   400, ACME_CLASS_ADMIN },
    { "caa",                     403, ACME_CLASS_ADMIN },
    { "compound",                403, ACME_CLASS_PERMANENT },
    { "connection",              400, ACME_CLASS_RETRY_SOON },
    { "dns",                     400, ACME_CLASS_RETRY_SOON },
    { "externalAccountRequired", 403, ACME_CLASS_ADMIN },
    { "incorrectResponse",       403, ACME_CLASS_PERMANENT },
    { "invalidContact",          400, ACME_CLASS_ADMIN },
    { "invalidProfile",          400, ACME_CLASS_ADMIN },
    { "malformed",               400, ACME_CLASS_PERMANENT },
    { "malformed",               405, ACME_CLASS_PERMANENT },
    { "orderNotReady",           403, ACME_CLASS_PERMANENT },
    { "rateLimited",             429, ACME_CLASS_RETRY_AFTER },
    { "rejectedIdentifier",      400, ACME_CLASS_ADMIN },
    { "serverInternal",          500, ACME_CLASS_RETRY_SOON },
    { "tls",                     400, ACME_CLASS_RETRY_SOON },
    { "unauthorized",            403, ACME_CLASS_ADMIN },
    { "unauthorized",            401, ACME_CLASS_ADMIN },
    { "unsupportedContact",      400, ACME_CLASS_ADMIN },
    { "unsupportedIdentifier",   400, ACME_CLASS_ADMIN },
    { "userActionRequired",      403, ACME_CLASS_ADMIN },
    { "agreementRequired",       403, ACME_CLASS_ADMIN },
};

static void test_every_acme_type_has_its_class(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *type = apr_pstrcat(*state, NS, cases[i].name, NULL);

        if (acme_problem_class(type, cases[i].status) != cases[i].expected) {
            fail_msg("%s (HTTP %d): got %s, want %s", cases[i].name, cases[i].status,
                     acme_class_name(acme_problem_class(type, cases[i].status)),
                     acme_class_name(cases[i].expected));
        }
    }
}

static void test_classes_by_http_status(void **state)
{
    assert_int_equal(acme_problem_class(NULL, 429), ACME_CLASS_RETRY_AFTER);
    assert_int_equal(acme_problem_class(NULL, 500), ACME_CLASS_RETRY_SOON);
    assert_int_equal(acme_problem_class(NULL, 502), ACME_CLASS_RETRY_SOON);
    assert_int_equal(acme_problem_class(NULL, 503), ACME_CLASS_RETRY_SOON);
    assert_int_equal(acme_problem_class(NULL, 408), ACME_CLASS_RETRY_SOON);
    assert_int_equal(acme_problem_class(NULL, 404), ACME_CLASS_PERMANENT);
    assert_int_equal(acme_problem_class(NULL, 400), ACME_CLASS_PERMANENT);
    /* A type we do not know goes by status too. */
    assert_int_equal(acme_problem_class(NS "somethingNew", 503), ACME_CLASS_RETRY_SOON);
    assert_int_equal(acme_problem_class("about:blank", 403), ACME_CLASS_PERMANENT);
    /* ACMEv1 namespace */
    assert_int_equal(acme_problem_class("urn:acme:error:rateLimited", 429), ACME_CLASS_RETRY_AFTER);
}

static void test_short_name(void **state)
{
    assert_string_equal(acme_problem_short_name(NS "badNonce"), "badNonce");
    assert_string_equal(acme_problem_short_name("urn:acme:error:malformed"), "malformed");
    assert_null(acme_problem_short_name("about:blank"));
    assert_null(acme_problem_short_name(NULL));
}

static void test_problem_document_is_kept(void **state)
{
    static const char body[] =
        "{\"type\":\"" NS "rejectedIdentifier\",\"detail\":\"Error creating new order :: "
        "policy forbids issuing for \\\"blocked.example\\\"\",\"status\":400,"
        "\"instance\":\"https://ca.example/docs/x\"}";
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_problem_from_response(&res, *state, "newOrder for blocked.example", 400,
                                                "application/problem+json", body,
                                                strlen(body), 0), APR_EGENERAL);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_int_equal(res.http_status, 400);
    assert_string_equal(res.problem_type, NS "rejectedIdentifier");
    assert_string_equal(res.detail,
                        "Error creating new order :: policy forbids issuing for \"blocked.example\"");
    assert_string_equal(res.instance, "https://ca.example/docs/x");
    assert_string_equal(res.message, "newOrder for blocked.example: HTTP 400");
    assert_true(acme_problem_is(&res, "rejectedIdentifier"));
    assert_false(acme_problem_is(&res, "malformed"));
}

static void test_compound_takes_weightiest_subproblem(void **state)
{
    static const char body[] =
        "{\"type\":\"" NS "compound\",\"detail\":\"two problems\",\"subproblems\":["
        "{\"type\":\"" NS "dns\",\"detail\":\"SERVFAIL\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\"}},"
        "{\"type\":\"" NS "caa\",\"detail\":\"CAA forbids\",\"identifier\":{\"type\":\"dns\",\"value\":\"b.example\"}}]}";
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "finalize", 403, "application/problem+json", body,
                               strlen(body), 0);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(res.subproblems);
    assert_non_null(strstr(res.subproblems, "\"value\":\"b.example\""));
    /* Compact JSON: no blanks between members. */
    assert_null(strstr(res.subproblems, ", "));
    assert_int_equal(res.subproblems[0], '[');
}

static void test_rate_limit_keeps_retry_after(void **state)
{
    static const char body[] = "{\"type\":\"" NS "rateLimited\",\"detail\":\"too many\"}";
    apr_time_t when = apr_time_now() + apr_time_from_sec(3600);
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "newOrder", 429, "application/problem+json", body,
                               strlen(body), when);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_AFTER);
    assert_true(res.retry_after == when);
}

static void test_server_error_with_retry_after_is_retry_after(void **state)
{
    apr_time_t when = apr_time_now() + apr_time_from_sec(60);
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "GET directory", 503, "text/html", "<h1>busy</h1>",
                               13, when);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_AFTER);
    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "GET directory", 500, "text/html", "<h1>oops</h1>",
                               13, 0);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_null(res.problem_type);
    assert_string_equal(res.message, "GET directory: HTTP 500");
}

static void test_not_found_statuses(void **state)
{
    static const char body[] = "{\"type\":\"" NS "accountDoesNotExist\",\"detail\":\"no account\"}";
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_problem_from_response(&res, *state, "lookup", 400,
                                                "application/problem+json", body, strlen(body), 0),
                     APR_ENOENT);
    acme_result_reset(&res);
    assert_int_equal(acme_problem_from_response(&res, *state, "order", 404, NULL, "", 0, 0),
                     APR_ENOENT);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
}

static void test_broken_bodies(void **state)
{
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "x", 400, "application/problem+json", "{not json", 9, 0);
    assert_null(res.problem_type);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "x", 400, "application/problem+json", "[1,2]", 5, 0);
    assert_null(res.problem_type);
    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "x", 400, "application/problem+json",
                               "{\"type\":7,\"detail\":[]}", 22, 0);
    assert_null(res.problem_type);
    assert_null(res.detail);
}

static void test_detail_is_one_bounded_line(void **state)
{
    const char *big = apr_psprintf(*state, "{\"type\":\"" NS "malformed\",\"detail\":\"line1\\nline2\\r%0*d\"}",
                                   3000, 0);
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, *state, "x", 400, "application/problem+json", big,
                               strlen(big), 0);
    assert_non_null(res.detail);
    assert_null(strchr(res.detail, '\n'));
    assert_null(strchr(res.detail, '\r'));
    assert_int_equal(strncmp(res.detail, "line1 line2 ", 12), 0);
    assert_true(strlen(res.detail) <= 1024);
}

static void test_embedded_problem_forces_class(void **state)
{
    static const char err[] = "{\"type\":\"" NS "connection\",\"detail\":\"refused\",\"status\":400}";
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_json(&res, *state, "order invalid", err, strlen(err), ACME_CLASS_PERMANENT);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_string_equal(res.problem_type, NS "connection");
    assert_string_equal(res.detail, "refused");
    assert_string_equal(acme_result_describe(&res, *state),
                        "order invalid [" NS "connection]: refused");
}

static int lost_by(apr_pool_t *p, const char *type, const char *detail)
{
    const char *body = apr_psprintf(p, "{\"type\":\"" NS "%s\",\"detail\":\"%s\"}", type, detail);
    acme_result_t res;

    acme_result_reset(&res);
    acme_problem_from_response(&res, p, "newOrder", type[0] == 'a' ? 400 : 403,
                               "application/problem+json", body, strlen(body), 0);
    return acme_problem_account_lost(&res);
}

static void test_account_lost(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;

    assert_true(lost_by(p, "accountDoesNotExist", "Account https://ca/acct/1 not found."));
    assert_true(lost_by(p, "unauthorized", "Account is not valid, has status \\\"deactivated\\\""));
    assert_true(lost_by(p, "unauthorized", "No registration exists matching provided key"));
    assert_true(lost_by(p, "unauthorized", "account https://ca/acct/1 is unknown"));
    /* unauthorized about a name, or an account that is fine: not lost. */
    assert_false(lost_by(p, "unauthorized", "policy forbids issuing for \\\"a.example\\\""));
    assert_false(lost_by(p, "unauthorized", "Account does not own authorization"));
    assert_false(lost_by(p, "unauthorized", "deactivated authorization"));
    assert_false(lost_by(p, "malformed", "Account https://ca/acct/1 not found."));
    acme_result_reset(&res);
    assert_false(acme_problem_account_lost(&res));
    assert_false(acme_problem_account_lost(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_acme_type_has_its_class),
        cmocka_unit_test(test_classes_by_http_status),
        cmocka_unit_test(test_short_name),
        cmocka_unit_test(test_problem_document_is_kept),
        cmocka_unit_test(test_compound_takes_weightiest_subproblem),
        cmocka_unit_test(test_rate_limit_keeps_retry_after),
        cmocka_unit_test(test_server_error_with_retry_after_is_retry_after),
        cmocka_unit_test(test_not_found_statuses),
        cmocka_unit_test(test_broken_bodies),
        cmocka_unit_test(test_detail_is_one_bounded_line),
        cmocka_unit_test(test_embedded_problem_forces_class),
        cmocka_unit_test(test_account_lost),
    };
    return cmocka_run_group_tests_name("problem", tests, unit_setup_pool, unit_teardown_pool);
}
