#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_client.h"
#include "unit_support.h"

static void test_rfc3339(void **state)
{
    apr_time_t t;
    const apr_time_t base = apr_time_from_sec(1795773600);    /* 2026-11-27T10:00:00Z */

    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00Z", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27t10:00:00.25z", &t), APR_SUCCESS);
    assert_true(t == base + apr_time_from_msec(250));
    assert_int_equal(acme_client_parse_time("2026-11-27T12:30:00+02:30", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27T09:00:00-01:00", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00.123456789Z", &t), APR_SUCCESS);
    assert_true(t == base + 123456);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27 10:00:00Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-13-27T10:00:00Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00Zjunk", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00.Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time(NULL, &t), APR_EINVAL);
}

static void test_renewal_info(void **state)
{
    static const char body[] =
        "{\"suggestedWindow\":{\"start\":\"2026-11-27T10:00:00Z\",\"end\":\"2026-11-28T10:00:00Z\"},"
        "\"explanationURL\":\"https://ca.example/incident/1\"}";
    acme_client_renewal_info_t info;
    acme_result_t res;
    apr_time_t ra = apr_time_from_sec(1795777200);

    assert_int_equal(acme_client_renewal_info_parse(*state, body, strlen(body), ra, &info, &res),
                     APR_SUCCESS);
    assert_true(info.start == apr_time_from_sec(1795773600));
    assert_true(info.end == apr_time_from_sec(1795773600 + 86400));
    assert_string_equal(info.explanation_url, "https://ca.example/incident/1");
    assert_true(info.retry_after == ra);
}

static void test_renewal_info_rejects_bad_windows(void **state)
{
    static const char *const bad[] = {
        "{\"suggestedWindow\":{\"start\":\"2026-11-28T10:00:00Z\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":\"2026-11-27T10:00:00Z\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":\"yesterday\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"explanationURL\":\"https://x\"}",
        "not json",
    };
    acme_client_renewal_info_t info;
    acme_result_t res;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        acme_result_reset(&res);
        if (acme_client_renewal_info_parse(*state, bad[i], strlen(bad[i]), 0, &info, &res)
            == APR_SUCCESS) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    }
}

static void test_authz_parse(void **state)
{
    static const char body[] =
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"example.test\"},"
        "\"wildcard\":true,\"expires\":\"2026-11-27T11:00:00Z\",\"challenges\":["
        "{\"type\":\"dns-01\",\"url\":\"https://ca.example/chalZ/1\",\"token\":\"tok1\",\"status\":\"pending\"},"
        "{\"type\":\"http-01\",\"url\":\"https://ca.example/chalZ/2\",\"token\":\"tok2\",\"status\":\"invalid\","
        "\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\",\"detail\":\"refused\"}}]}";
    acme_client_authz_t *authz;
    const acme_client_challenge_t *chal;
    acme_result_t res;

    assert_int_equal(acme_client_authz_parse(*state, "https://ca.example/authZ/1", body,
                                             strlen(body), &authz, &res), APR_SUCCESS);
    assert_int_equal(authz->identifier.type, ACME_IDENT_DNS);
    assert_string_equal(authz->identifier.value, "example.test");
    assert_string_equal(authz->status, "pending");
    assert_true(authz->wildcard);
    assert_int_equal(authz->challenges->nelts, 2);
    chal = acme_client_authz_challenge(authz, "dns-01");
    assert_non_null(chal);
    assert_string_equal(chal->token, "tok1");
    assert_null(chal->error);
    chal = acme_client_authz_challenge(authz, "http-01");
    assert_non_null(strstr(chal->error, "\"detail\":\"refused\""));
    assert_null(acme_client_authz_challenge(authz, "tls-alpn-01"));
}

static void test_authz_parse_rejects_garbage(void **state)
{
    static const char *const bad[] = {
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"email\",\"value\":\"a@b\"},\"challenges\":[]}",
        "{\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":[]}",
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":[{\"type\":\"x\"}]}",
        "[]",
    };
    acme_client_authz_t *authz;
    acme_result_t res;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (acme_client_authz_parse(*state, "u", bad[i], strlen(bad[i]), &authz, &res) == APR_SUCCESS) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

static void test_directory_meta(void **state)
{
    static const char dir[] =
        "{\"newNonce\":\"https://ca.example/nonce-plz\",\"newAccount\":\"https://ca.example/sign-me-up\","
        "\"newOrder\":\"https://ca.example/order-plz\",\"renewalInfo\":\"https://ca.example/ari/\","
        "\"meta\":{\"termsOfService\":\"data:text/plain,Do%20what%20thou%20wilt\","
        "\"externalAccountRequired\":true,\"caaIdentities\":[\"ca.example\",\"ca2.example\"],"
        "\"profiles\":{\"classic\":\"The default\",\"shortlived\":{\"description\":\"6 days\"}}}}";
    acme_client_meta_t meta;
    acme_result_t res;

    assert_int_equal(acme_client_meta_parse(*state, dir, strlen(dir), &meta, &res), APR_SUCCESS);
    assert_string_equal(meta.terms_of_service, "data:text/plain,Do%20what%20thou%20wilt");
    assert_true(meta.external_account_required);
    assert_int_equal(meta.caa_identities->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(meta.caa_identities, 1, const char *), "ca2.example");
    assert_int_equal(meta.profiles->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 0, acme_client_profile_t).name, "classic");
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 0, acme_client_profile_t).description, "The default");
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 1, acme_client_profile_t).description, "6 days");
    assert_string_equal(meta.renewal_info, "https://ca.example/ari/");
}

static void test_directory_without_meta(void **state)
{
    static const char dir[] = "{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":\"o\"}";
    acme_client_meta_t meta;
    acme_result_t res;

    assert_int_equal(acme_client_meta_parse(*state, dir, strlen(dir), &meta, &res), APR_SUCCESS);
    assert_null(meta.terms_of_service);
    assert_false(meta.external_account_required);
    assert_int_equal(meta.profiles->nelts, 0);
    assert_null(meta.renewal_info);
    assert_int_not_equal(acme_client_meta_parse(*state, "<html>", 6, &meta, &res), APR_SUCCESS);
}

static void test_create_needs_a_directory(void **state)
{
    acme_client_t *c;
    acme_result_t res;

    assert_int_not_equal(acme_client_create(&c, *state, "", NULL, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_int_equal(acme_client_create(&c, *state, "https://ca.example/dir", NULL, &res), APR_SUCCESS);
    assert_int_equal(acme_client_request_count(c), 0);
    assert_non_null(strstr(acme_client_user_agent(c), "mod_acme/"));
}

static void test_dns01_value(void **state)
{
    /* base64url(SHA-256("abc")), RFC 4634 test vector. */
    assert_string_equal(acme_client_dns01_value(*state, "abc"),
                        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_renewal_info),
        cmocka_unit_test(test_renewal_info_rejects_bad_windows),
        cmocka_unit_test(test_authz_parse),
        cmocka_unit_test(test_authz_parse_rejects_garbage),
        cmocka_unit_test(test_directory_meta),
        cmocka_unit_test(test_directory_without_meta),
        cmocka_unit_test(test_create_needs_a_directory),
        cmocka_unit_test(test_dns01_value),
    };
    return cmocka_run_group_tests_name("client", tests, unit_setup_pool, unit_teardown_pool);
}
