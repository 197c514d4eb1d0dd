#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_vault.h"
#include "unit_support.h"

/* What `openssl rand -base64 32` prints, newline included. */
#define SECRET "q0mXv7cY4l2f9J0o0b6Zq8n3h1x5r7t9w2e4u6i8o0p=\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n" \
                "-----END PRIVATE KEY-----\n"

static acme_vault_t *vault_of(apr_pool_t *p, const char *secret)
{
    acme_vault_t *v = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_vault_create(&v, p, secret, strlen(secret), &res), APR_SUCCESS);
    return v;
}

static void test_round_trip(void **state)
{
    acme_vault_t *v = vault_of(*state, SECRET);
    const char *sealed = NULL;
    char *data = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_vault_seal(v, *state, "keys/a.example/ec", KEY_PEM, strlen(KEY_PEM),
                                     &sealed, &res), APR_SUCCESS);
    assert_true(!strncmp(sealed, "acme-vault-v1:", 14));
    assert_null(strstr(sealed, "PRIVATE KEY"));     /* nothing of the plaintext shows */
    assert_int_equal(acme_vault_open(v, *state, "keys/a.example/ec", sealed, &data, &len, &res),
                     APR_SUCCESS);
    assert_int_equal(len, strlen(KEY_PEM));
    assert_string_equal(data, KEY_PEM);
}

static void test_each_seal_is_different(void **state)
{
    acme_vault_t *v = vault_of(*state, SECRET);
    const char *a = NULL, *b = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_vault_seal(v, *state, "k", "same", 4, &a, &res), APR_SUCCESS);
    assert_int_equal(acme_vault_seal(v, *state, "k", "same", 4, &b, &res), APR_SUCCESS);
    assert_string_not_equal(a, b);                  /* a fresh nonce every time */
}

static void test_refuses_other_secret_key_or_change(void **state)
{
    acme_vault_t *v = vault_of(*state, SECRET);
    acme_vault_t *other = vault_of(*state, "another secret of at least thirty-two bytes!!");
    const char *sealed = NULL;
    char *data = NULL, *bent;
    apr_size_t len = 0, i;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_vault_seal(v, *state, "keys/a", "secret key", 10, &sealed, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_vault_open(other, *state, "keys/a", sealed, &data, &len, &res),
                     APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "another cluster secret"));
    assert_int_equal(acme_vault_open(v, *state, "keys/b", sealed, &data, &len, &res), APR_EINVAL);
    for (i = 14; sealed[i] && sealed[i + 1] != '='; i += 7) {   /* a changed character */
        bent = apr_pstrdup(*state, sealed);
        bent[i] = bent[i] == 'A' ? 'B' : 'A';
        assert_int_equal(acme_vault_open(v, *state, "keys/a", bent, &data, &len, &res),
                         APR_EINVAL);
    }
    assert_int_equal(acme_vault_open(v, *state, "keys/a", "plain", &data, &len, &res),
                     APR_EINVAL);
    assert_int_equal(acme_vault_open(v, *state, "keys/a", "acme-vault-v1:AAAA", &data, &len,
                                     &res), APR_EINVAL);
    assert_int_equal(acme_vault_open(v, *state, "keys/a", "acme-vault-v1:!!", &data, &len, &res),
                     APR_EINVAL);
}

static void test_secret_length_and_fingerprint(void **state)
{
    acme_vault_t *v = NULL;
    acme_result_t res;
    const char *id;

    acme_result_reset(&res);
    assert_int_equal(acme_vault_create(&v, *state, "short\n", 6, &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "openssl rand -base64 32"));
    /* 31 bytes and newlines: still too short, newlines are not part of the secret */
    assert_int_equal(acme_vault_create(&v, *state, "0123456789012345678901234567890\n\n", 33,
                                       &res), APR_EINVAL);
    id = acme_vault_id(vault_of(*state, SECRET));
    assert_int_equal(strlen(id), 16);
    /* the same secret with or without its newline is the same key; another is not */
    assert_string_equal(id, acme_vault_id(vault_of(*state, apr_pstrndup(*state, SECRET,
                                                                       strlen(SECRET) - 1))));
    assert_string_not_equal(id, acme_vault_id(vault_of(*state,
                                              "another secret of at least thirty-two bytes!!")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_each_seal_is_different),
        cmocka_unit_test(test_refuses_other_secret_key_or_change),
        cmocka_unit_test(test_secret_length_and_fingerprint),
    };
    return cmocka_run_group_tests_name("vault", tests, unit_setup_pool, unit_teardown_pool);
}
