#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/err.h>

#include "acme_seal.h"
#include "acme_store.h"
#include "unit_support.h"

typedef struct {
    apr_pool_t *pool;
    const char *dir;        /* scratch directory */
    const char *store;      /* dir/store */
    const char *other;      /* dir/other: a second store with its own seal */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    apr_pool_create(&fx->pool, NULL);
    fx->dir = unit_tmpdir(fx->pool, "seal");
    fx->store = apr_pstrcat(fx->pool, fx->dir, "/store", NULL);
    fx->other = apr_pstrcat(fx->pool, fx->dir, "/other", NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    unit_tmpdir_remove(fx->pool, fx->dir);
    apr_pool_destroy(fx->pool);
    free(fx);
    /* Failures must not leave errors behind in OpenSSL's queue (mod_ssl shares it). */
    assert_int_equal(ERR_peek_error(), 0);
    return 0;
}

/* Failures must not leave errors behind in OpenSSL's queue: mod_ssl in the same process
 * would report them as its own. */
#define assert_openssl_queue_empty() assert_int_equal(ERR_peek_error(), 0)

static void test_keypair_created_once_with_modes(void **state)
{
    fixture_t *fx = *state;
    const char *pem = NULL, *again = NULL;
    const char *key_path = apr_pstrcat(fx->pool, fx->store, "/" ACME_SEAL_DIR "/seal.key", NULL);
    const char *cert_path = apr_pstrcat(fx->pool, fx->store, "/" ACME_SEAL_DIR "/seal.pem", NULL);
    acme_key_t *key = NULL;
    acme_cert_t *cert = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &pem, &res), APR_SUCCESS);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    assert_int_equal(unit_mode_of(key_path), 0600);
    assert_int_equal(unit_mode_of(cert_path), 0644);
    /* The second call keeps the pair: sealed keys in staging stay openable. */
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &again, &res), APR_SUCCESS);
    assert_string_equal(pem, again);

    assert_int_equal(acme_seal_key_load(fx->pool, fx->store, &key, &cert, &res), APR_SUCCESS);
    assert_true(acme_crypto_key_is_private(key));
    assert_int_equal(acme_crypto_key_matches_cert(key, cert, &res), APR_SUCCESS);
}

static void test_key_load_without_keypair_fails(void **state)
{
    fixture_t *fx = *state;
    acme_key_t *key = NULL;
    acme_cert_t *cert = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_seal_key_load(fx->pool, fx->store, &key, &cert, &res),
                         APR_SUCCESS);
    assert_non_null(res.message);
}

static void test_seal_round_trip(void **state)
{
    fixture_t *fx = *state;
    acme_key_t *cert_key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);
    acme_key_t *seal_key = NULL, *back = NULL;
    acme_cert_t *seal_cert = NULL;
    const char *seal_pem = NULL, *key_pem = NULL, *sealed = NULL;
    char *plain = NULL;
    apr_size_t plain_len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &seal_pem, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_key_to_pem(fx->pool, cert_key, &key_pem, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_encrypt(fx->pool, seal_pem, key_pem, strlen(key_pem), &sealed,
                                       &res), APR_SUCCESS);
    /* What lands on disk shows nothing of the key. */
    assert_non_null(strstr(sealed, "-----BEGIN CMS-----"));
    assert_null(strstr(sealed, "PRIVATE KEY"));
    assert_null(strstr(sealed, key_pem + 28));

    assert_int_equal(acme_seal_key_load(fx->pool, fx->store, &seal_key, &seal_cert, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_seal_decrypt(fx->pool, seal_key, seal_cert, sealed, strlen(sealed),
                                       &plain, &plain_len, &res), APR_SUCCESS);
    assert_int_equal(plain_len, strlen(key_pem));
    assert_memory_equal(plain, key_pem, plain_len);
    assert_int_equal(acme_crypto_key_from_pem(fx->pool, plain, plain_len, &back, &res),
                     APR_SUCCESS);
    assert_int_equal(EVP_PKEY_eq(acme_crypto_key_evp(back), acme_crypto_key_evp(cert_key)), 1);
}

static void test_binary_data_round_trip(void **state)
{
    fixture_t *fx = *state;
    unsigned char data[300];
    const char *seal_pem = NULL, *sealed = NULL;
    acme_key_t *seal_key = NULL;
    acme_cert_t *seal_cert = NULL;
    char *plain = NULL;
    apr_size_t plain_len = 0, i;
    acme_result_t res;

    for (i = 0; i < sizeof(data); ++i) {
        data[i] = (unsigned char)(i * 7);
    }
    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &seal_pem, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_encrypt(fx->pool, seal_pem, data, sizeof(data), &sealed, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_seal_key_load(fx->pool, fx->store, &seal_key, &seal_cert, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_seal_decrypt(fx->pool, seal_key, seal_cert, sealed, strlen(sealed),
                                       &plain, &plain_len, &res), APR_SUCCESS);
    assert_int_equal(plain_len, sizeof(data));
    assert_memory_equal(plain, data, sizeof(data));
}

static void test_wrong_seal_key_fails(void **state)
{
    fixture_t *fx = *state;
    const char *seal_pem = NULL, *other_pem = NULL, *sealed = NULL;
    acme_key_t *other_key = NULL;
    acme_cert_t *other_cert = NULL;
    char *plain = NULL;
    apr_size_t plain_len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &seal_pem, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->other, &other_pem, &res),
                     APR_SUCCESS);
    assert_string_not_equal(seal_pem, other_pem);
    assert_int_equal(acme_seal_encrypt(fx->pool, seal_pem, "secret", 6, &sealed, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_seal_key_load(fx->pool, fx->other, &other_key, &other_cert, &res),
                     APR_SUCCESS);
    assert_int_not_equal(acme_seal_decrypt(fx->pool, other_key, other_cert, sealed,
                                           strlen(sealed), &plain, &plain_len, &res),
                         APR_SUCCESS);
    assert_non_null(strstr(res.message, "cannot be opened"));
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_openssl_queue_empty();
}

static void test_garbage_fails(void **state)
{
    fixture_t *fx = *state;
    const char *seal_pem = NULL, *sealed = NULL, *garbage = "-----BEGIN CMS-----\nAAAA\n"
                                                             "-----END CMS-----\n";
    acme_key_t *seal_key = NULL;
    acme_cert_t *seal_cert = NULL;
    char *plain = NULL, *tampered;
    apr_size_t plain_len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, fx->store, &seal_pem, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_key_load(fx->pool, fx->store, &seal_key, &seal_cert, &res),
                     APR_SUCCESS);
    assert_int_not_equal(acme_seal_decrypt(fx->pool, seal_key, seal_cert, garbage,
                                           strlen(garbage), &plain, &plain_len, &res),
                         APR_SUCCESS);
    assert_non_null(res.message);
    assert_openssl_queue_empty();
    acme_result_reset(&res);
    assert_int_not_equal(acme_seal_decrypt(fx->pool, seal_key, seal_cert, "", 0, &plain,
                                           &plain_len, &res), APR_SUCCESS);
    assert_openssl_queue_empty();

    /* A flipped byte in the ciphertext is noticed, not decrypted into something else. */
    acme_result_reset(&res);
    assert_int_equal(acme_seal_encrypt(fx->pool, seal_pem, "0123456789abcdef0123456789abcdef",
                                       32, &sealed, &res), APR_SUCCESS);
    tampered = apr_pstrdup(fx->pool, sealed);
    {
        char *body = strstr(tampered, "-----END CMS-----") - 10;
        *body = *body == 'A' ? 'B' : 'A';
    }
    plain = NULL;
    if (acme_seal_decrypt(fx->pool, seal_key, seal_cert, tampered, strlen(tampered), &plain,
                          &plain_len, &res) == APR_SUCCESS) {
        assert_false(plain_len == 32 && !memcmp(plain, "0123456789abcdef0123456789abcdef", 32));
    }
    assert_openssl_queue_empty();
    /* Not a certificate to seal to. */
    acme_result_reset(&res);
    assert_int_not_equal(acme_seal_encrypt(fx->pool, "not a certificate", "x", 1, &sealed, &res),
                         APR_SUCCESS);
    assert_non_null(res.message);
    assert_openssl_queue_empty();
}

static void test_public_pem_round_trip(void **state)
{
    fixture_t *fx = *state;
    acme_key_t *keys[] = { unit_key_generate(fx->pool, ACME_KEY_EC, 256),
                           unit_key_generate(fx->pool, ACME_KEY_EC, 384) };
    acme_result_t res;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i) {
        const char *pem = NULL;
        acme_key_t *pub = NULL;
        acme_keyspec_t spec;
        acme_result_reset(&res);
        assert_int_equal(acme_seal_public_pem(fx->pool, keys[i], &pem, &res), APR_SUCCESS);
        assert_true(strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
        assert_null(strstr(pem, "PRIVATE"));
        assert_int_equal(acme_seal_public_from_pem(fx->pool, pem, strlen(pem), &pub, &res),
                         APR_SUCCESS);
        assert_false(acme_crypto_key_is_private(pub));
        assert_int_equal(EVP_PKEY_eq(acme_crypto_key_evp(pub), acme_crypto_key_evp(keys[i])), 1);
        acme_crypto_key_spec(pub, &spec);
        assert_int_equal(spec.bits, i == 0 ? 256 : 384);
    }
}

static void test_public_from_garbage_fails(void **state)
{
    fixture_t *fx = *state;
    const char *garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    acme_key_t *pub = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_seal_public_from_pem(fx->pool, garbage, strlen(garbage), &pub,
                                                   &res), APR_SUCCESS);
    assert_non_null(res.message);
    assert_openssl_queue_empty();
    acme_result_reset(&res);
    assert_int_not_equal(acme_seal_public_from_pem(fx->pool, "", 0, &pub, &res), APR_SUCCESS);
    assert_openssl_queue_empty();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keypair_created_once_with_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_load_without_keypair_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_data_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_seal_key_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_pem_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_from_garbage_fails, setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
