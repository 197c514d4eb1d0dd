#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_challenge.h"
#include "acme_store.h"
#include "unit_support.h"

/* The challenge files go below fx->store. */
typedef unit_store_fixture_t fixture_t;

static int setup(void **state)
{
    *state = unit_store_fixture_make("challenge");
    return 0;
}

static int teardown(void **state)
{
    unit_store_fixture_free(*state);
    return 0;
}

static char *repeat(apr_pool_t *p, char c, apr_size_t n)
{
    char *s = apr_palloc(p, n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_token_validation(void **state)
{
    fixture_t *fx = *state;
    static const char *bad[] = {
        "", "../x", "..", ".", "a/b", "a%2Fb", "%2e%2e", "a.b", "a b", "a+b", "a=", "tok\n",
        "tök", "a\\b", "a?b", "a#b", "a:b",
    };
    size_t i;

    assert_true(acme_challenge_token_valid("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
    assert_true(acme_challenge_token_valid("A_z-09"));
    assert_true(acme_challenge_token_valid("x"));
    assert_true(acme_challenge_token_valid(repeat(fx->pool, 'a', ACME_CHALLENGE_TOKEN_MAX)));
    assert_false(acme_challenge_token_valid(repeat(fx->pool, 'a', ACME_CHALLENGE_TOKEN_MAX + 1)));
    assert_false(acme_challenge_token_valid(NULL));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (acme_challenge_token_valid(bad[i])) {
            fail_msg("token '%s' was accepted", bad[i]);
        }
    }
}

static void test_path_refuses_unusable_idents_and_tokens(void **state)
{
    fixture_t *fx = *state;
    static const char *bad_idents[] = { "../x", "..", ".", "a/b", "", "/etc", ".hidden" };
    size_t i;
    const char *path;

    path = acme_challenge_http01_path(fx->pool, "/s", "example.org", "tok_1-A");
    assert_string_equal(path, "/s/" ACME_STORE_CHALLENGES "/" ACME_CHALLENGE_HTTP01_DIR
                              "/example.org/tok_1-A");
    /* IPv6 identifiers are stored under their canonical text. */
    assert_non_null(acme_challenge_http01_path(fx->pool, "/s", "2001:db8::1", "t"));
    for (i = 0; i < sizeof(bad_idents) / sizeof(bad_idents[0]); ++i) {
        if (acme_challenge_http01_path(fx->pool, "/s", bad_idents[i], "tok")) {
            fail_msg("ident '%s' gave a path", bad_idents[i]);
        }
    }
    assert_null(acme_challenge_http01_path(fx->pool, "/s", NULL, "tok"));
    assert_null(acme_challenge_http01_path(fx->pool, "/s", "example.org", "../x"));
    assert_null(acme_challenge_http01_path(fx->pool, "/s", "example.org", ""));
    assert_null(acme_challenge_http01_path(fx->pool, "/s", repeat(fx->pool, 'a', 254), "tok"));
}

static void test_put_get_remove(void **state)
{
    fixture_t *fx = *state;
    const char *authz = "tok123.thumbprint_of_the_account_key";
    const char *path = acme_challenge_http01_path(fx->pool, fx->store, "www.example.org",
                                                  "tok123");
    const char *dir = apr_pstrcat(fx->pool, fx->store, "/" ACME_STORE_CHALLENGES "/"
                                  ACME_CHALLENGE_HTTP01_DIR "/www.example.org", NULL);
    const char *got = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store,
                                                              "www.example.org", "tok123",
                                                              &got, &len)));
    acme_result_reset(&res);
    assert_int_equal(acme_challenge_http01_put(fx->pool, fx->store, "www.example.org", "tok123",
                                               authz, &res), APR_SUCCESS);
    /* The children (httpd User) must read it. */
    assert_int_equal(unit_mode_of(path), 0644);
    assert_int_equal(unit_mode_of(dir), 0755);
    assert_int_equal(acme_challenge_http01_get(fx->pool, fx->store, "www.example.org", "tok123",
                                               &got, &len), APR_SUCCESS);
    assert_string_equal(got, authz);
    assert_int_equal(len, strlen(authz));

    /* Answers are per identifier and per token. */
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store,
                                                              "example.org", "tok123",
                                                              &got, &len)));
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store,
                                                              "www.example.org", "tok124",
                                                              &got, &len)));
    /* A second token for the same identifier keeps the directory alive. */
    assert_int_equal(acme_challenge_http01_put(fx->pool, fx->store, "www.example.org", "other",
                                               "other.x", &res), APR_SUCCESS);
    /* Replacing an answer overwrites it. */
    assert_int_equal(acme_challenge_http01_put(fx->pool, fx->store, "www.example.org", "tok123",
                                               "tok123.y", &res), APR_SUCCESS);
    assert_int_equal(acme_challenge_http01_get(fx->pool, fx->store, "www.example.org", "tok123",
                                               &got, &len), APR_SUCCESS);
    assert_string_equal(got, "tok123.y");

    acme_challenge_http01_remove(fx->pool, fx->store, "www.example.org", "tok123");
    assert_int_equal(unit_mode_of(path), -1);
    assert_int_equal(unit_mode_of(dir), 0755);
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store,
                                                              "www.example.org", "tok123",
                                                              &got, &len)));
    assert_int_equal(acme_challenge_http01_get(fx->pool, fx->store, "www.example.org", "other",
                                               &got, &len), APR_SUCCESS);
    acme_challenge_http01_remove(fx->pool, fx->store, "www.example.org", "other");
    /* The last answer gone, the directory goes too. */
    assert_int_equal(unit_mode_of(dir), -1);
    /* Removing what is not there is harmless. */
    acme_challenge_http01_remove(fx->pool, fx->store, "www.example.org", "other");
    acme_challenge_http01_remove(fx->pool, fx->store, "../x", "other");
}

/* httpd may run with a strict umask; the children must still reach the answers. */
static void test_put_under_strict_umask(void **state)
{
    fixture_t *fx = *state;
    const char *base = apr_pstrcat(fx->pool, fx->store, "/" ACME_STORE_CHALLENGES, NULL);
    acme_result_t res;
    mode_t old = umask(077);
    apr_status_t rv;

    acme_result_reset(&res);
    rv = acme_challenge_http01_put(fx->pool, fx->store, "strict.example", "tok", "tok.x", &res);
    umask(old);
    assert_int_equal(rv, APR_SUCCESS);
    assert_int_equal(unit_mode_of(base) & 0555, 0555);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/" ACME_CHALLENGE_HTTP01_DIR,
                                              NULL)) & 0555, 0555);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/" ACME_CHALLENGE_HTTP01_DIR
                                              "/strict.example", NULL)), 0755);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/" ACME_CHALLENGE_HTTP01_DIR
                                              "/strict.example/tok", NULL)), 0644);
}

static void test_put_refuses_bad_input(void **state)
{
    fixture_t *fx = *state;
    const char *got = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_challenge_http01_put(fx->pool, fx->store, "example.org", "../x",
                                                   "evil", &res), APR_SUCCESS);
    assert_non_null(res.message);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    acme_result_reset(&res);
    assert_int_not_equal(acme_challenge_http01_put(fx->pool, fx->store, "../x", "tok", "evil",
                                                   &res), APR_SUCCESS);
    assert_non_null(res.message);
    acme_result_reset(&res);
    assert_int_not_equal(acme_challenge_http01_put(fx->pool, fx->store, "example.org",
                                                   "a%2Fb", "evil", &res), APR_SUCCESS);
    /* Nothing escaped the challenge directory. */
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, fx->store,
                                              "/" ACME_STORE_CHALLENGES "/x", NULL)), -1);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, fx->store, "/" ACME_STORE_CHALLENGES "/"
                                              ACME_CHALLENGE_HTTP01_DIR "/x", NULL)), -1);
    /* A get with an unusable token is simply "not found". */
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store,
                                                              "example.org", "..", &got,
                                                              &len)));
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_http01_get(fx->pool, fx->store, "..",
                                                              "tok", &got, &len)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_refuses_unusable_idents_and_tokens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_get_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_under_strict_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_refuses_bad_input, setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
