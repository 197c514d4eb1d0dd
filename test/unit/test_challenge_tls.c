/*
 * TLS challenge answers (src/acme_challenge.c): the tls-sni-01 name, the reverse-DNS SNI of IP
 * identifiers, and the answer files the worker writes for tls-alpn-01 and tls-sni-01. Digests
 * were computed independently with `printf '%s' KEYAUTHZ | openssl dgst -sha256`.
 */
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

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme_challenge.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "unit_support.h"

/* RFC 8555 section 8.3 example key authorization and its SHA-256 (openssl dgst). */
#define KEYAUTHZ_A "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
#define DIGEST_A "94233b719c905dc5472b69e75b78e3021353dc5be6d7c50dfa45996649caa183"
#define KEYAUTHZ_B "token-1.thumb"
#define DIGEST_B "de937594a4a540238e8a125c22709101104fcbf76e3198a070b2ed1a500ba23f"

/* The answer files go below fx->store. */
typedef unit_store_fixture_t fixture_t;

static int setup(void **state)
{
    *state = unit_store_fixture_make("challenge-tls");
    return 0;
}

static int teardown(void **state)
{
    unit_store_fixture_free(*state);
    return 0;
}

static void hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
    size_t i;

    for (i = 0; i < n; ++i) {
        unsigned int v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

/* ------------------------------------------------------------------ names */

static void test_sha256_hex_and_tlssni01_name(void **state)
{
    fixture_t *fx = *state;
    const char *name;

    assert_string_equal(acme_challenge_sha256_hex(fx->pool, KEYAUTHZ_A), DIGEST_A);
    assert_string_equal(acme_challenge_sha256_hex(fx->pool, KEYAUTHZ_B), DIGEST_B);
    name = acme_challenge_tlssni01_name(fx->pool, KEYAUTHZ_A);
    assert_string_equal(name, "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183"
                              ".acme.invalid");
    assert_int_equal(strlen(name), ACME_CHALLENGE_TLSSNI01_NAME_LEN);
    assert_string_equal(acme_challenge_tlssni01_name(fx->pool, KEYAUTHZ_B),
                        "de937594a4a540238e8a125c22709101.104fcbf76e3198a070b2ed1a500ba23f"
                        ".acme.invalid");
    assert_true(acme_challenge_tlssni01_name_valid(name));
}

static void test_tlssni01_name_shape(void **state)
{
    static const char *const bad[] = {
        "",
        "example.org",
        "acme.invalid",
        /* 31 + 33 hex digits: the dot in the wrong place */
        "94233b719c905dc5472b69e75b78e30.21353dc5be6d7c50dfa45996649caa183.acme.invalid",
        "94233b719c905dc5472b69e75b78e302x1353dc5be6d7c50dfa45996649caa183.acme.invalid",
        "g4233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183.acme.invalid",
        "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183.acme.invalid.",
        "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183.acme.invalix",
        "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa18.acme.invalid",
        "x94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183.acme.invalid",
        "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183.token.acme.invalid",
    };
    size_t i;

    (void)state;
    assert_false(acme_challenge_tlssni01_name_valid(NULL));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_false(acme_challenge_tlssni01_name_valid(bad[i]));
    }
    /* SNI is case-insensitive. */
    assert_true(acme_challenge_tlssni01_name_valid(
        "94233B719C905DC5472B69E75B78E302.1353DC5BE6D7C50DFA45996649CAA183.ACME.INVALID"));
}

static void test_ip_from_reverse(void **state)
{
    fixture_t *fx = *state;
    static const char *const bad[] = {
        "example.org", "in-addr.arpa", "0.127.in-addr.arpa", "1.0.0.0.127.in-addr.arpa",
        "01.0.0.127.in-addr.arpa", "256.0.0.127.in-addr.arpa", "1.0.0.127.in-addr.arpa.x",
        "a.0.0.127.in-addr.arpa", "1..0.127.in-addr.arpa", "0.0.0.0.in-addr.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.ip6.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.2.ip6.arpa",
        "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    };
    acme_ident_t ip;
    size_t i;

    assert_int_equal(acme_challenge_ip_from_reverse(fx->pool, "1.0.0.127.in-addr.arpa", &ip),
                     APR_SUCCESS);
    assert_int_equal(ip.type, ACME_IDENT_IP);
    assert_string_equal(ip.value, "127.0.0.1");
    assert_int_equal(acme_challenge_ip_from_reverse(fx->pool, "4.3.2.192.IN-ADDR.ARPA.", &ip),
                     APR_SUCCESS);
    assert_string_equal(ip.value, "192.2.3.4");
    assert_int_equal(acme_challenge_ip_from_reverse(fx->pool,
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6.arpa", &ip),
        APR_SUCCESS);
    assert_int_equal(ip.type, ACME_IDENT_IP);
    assert_string_equal(ip.value, "2001:db8::1");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_int_equal(acme_challenge_ip_from_reverse(fx->pool, bad[i], &ip), APR_EINVAL);
    }
    assert_int_equal(acme_challenge_ip_from_reverse(fx->pool, NULL, &ip), APR_EINVAL);
}

/* ------------------------------------------------------------------ certificates */

typedef struct {
    X509 *x509;
    EVP_PKEY *key;
} answer_t;

static void answer_free(answer_t *a)
{
    X509_free(a->x509);
    EVP_PKEY_free(a->key);
}

static answer_t answer_parse(apr_pool_t *p, const char *pem)
{
    const char *cert_pem = NULL, *key_pem = NULL;
    answer_t a = { .x509 = NULL, .key = NULL };
    BIO *bio;

    assert_int_equal(acme_challenge_tls_answer_split(p, pem, &cert_pem, &key_pem), APR_SUCCESS);
    assert_null(strstr(cert_pem, "PRIVATE KEY"));
    assert_null(strstr(key_pem, "CERTIFICATE"));
    bio = BIO_new_mem_buf(cert_pem, -1);
    a.x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    bio = BIO_new_mem_buf(key_pem, -1);
    a.key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(a.x509);
    assert_non_null(a.key);
    /* Self-signed with the key next to it; a cheap P-256 key. */
    assert_int_equal(X509_check_private_key(a.x509, a.key), 1);
    assert_int_equal(X509_verify(a.x509, a.key), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(a.x509), X509_get_issuer_name(a.x509)),
                     0);
    assert_int_equal(EVP_PKEY_get_base_id(a.key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(a.key), 256);
    return a;
}

/* The only SAN: its type (GEN_DNS / GEN_IPADD) and raw bytes. */
static void assert_single_san(X509 *x, int type, const void *value, size_t len)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    const GENERAL_NAME *gn;
    const ASN1_STRING *s;

    assert_non_null(sans);
    assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
    gn = sk_GENERAL_NAME_value(sans, 0);
    assert_int_equal(gn->type, type);
    s = type == GEN_DNS ? (const ASN1_STRING *)gn->d.dNSName : gn->d.iPAddress;
    assert_int_equal(ASN1_STRING_length(s), (int)len);
    assert_memory_equal(ASN1_STRING_get0_data(s), value, len);
    GENERAL_NAMES_free(sans);
}

/* The RFC 8737 extension: critical, extnValue = DER OCTET STRING 04 20 || SHA-256(keyAuthz). */
static void assert_acme_identifier(X509 *x, const char *digest_hex)
{
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int pos = X509_get_ext_by_OBJ(x, oid, -1);
    unsigned char want[34] = { 0x04, 0x20 };
    const ASN1_OCTET_STRING *value;
    X509_EXTENSION *ext;

    assert_true(pos >= 0);
    assert_int_equal(X509_get_ext_by_OBJ(x, oid, pos), -1);     /* exactly once */
    ext = X509_get_ext(x, pos);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
    value = X509_EXTENSION_get_data(ext);
    hex_to_bytes(digest_hex, want + 2, 32);
    assert_int_equal(ASN1_STRING_length(value), 34);
    assert_memory_equal(ASN1_STRING_get0_data(value), want, 34);
    ASN1_OBJECT_free(oid);
}

static void assert_no_acme_identifier(X509 *x)
{
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);

    assert_int_equal(X509_get_ext_by_OBJ(x, oid, -1), -1);
    ASN1_OBJECT_free(oid);
}

static void test_tlsalpn01_answer_file(void **state)
{
    fixture_t *fx = *state;
    const acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = "www.example.org" };
    const char *path = acme_challenge_tlsalpn01_path(fx->pool, fx->store, ident.value);
    const char *pem = NULL;
    acme_result_t res;
    answer_t a;

    assert_non_null(path);
    assert_non_null(strstr(path, "/challenges/tls-alpn-01/www.example.org/answer.pem"));
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlsalpn01_get(fx->pool, fx->store,
                                                                  ident.value, &pem)));
    acme_result_reset(&res);
    assert_int_equal(acme_challenge_tlsalpn01_put(fx->pool, fx->store, &ident, KEYAUTHZ_A, &res),
                     APR_SUCCESS);
    /* The file holds a key: owner only (the User the children run as). */
    assert_int_equal(unit_mode_of(path), 0600);
    assert_int_equal(unit_mode_of(apr_pstrndup(fx->pool, path,
                                               strlen(path) - strlen("/answer.pem"))), 0755);
    assert_int_equal(acme_challenge_tlsalpn01_get(fx->pool, fx->store, ident.value, &pem),
                     APR_SUCCESS);
    a = answer_parse(fx->pool, pem);
    assert_single_san(a.x509, GEN_DNS, "www.example.org", strlen("www.example.org"));
    assert_acme_identifier(a.x509, DIGEST_A);
    answer_free(&a);

    /* A new challenge for the name replaces the answer: certificate and key together. */
    assert_int_equal(acme_challenge_tlsalpn01_put(fx->pool, fx->store, &ident, KEYAUTHZ_B, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_challenge_tlsalpn01_get(fx->pool, fx->store, ident.value, &pem),
                     APR_SUCCESS);
    a = answer_parse(fx->pool, pem);
    assert_acme_identifier(a.x509, DIGEST_B);
    answer_free(&a);

    acme_challenge_tlsalpn01_remove(fx->pool, fx->store, ident.value);
    assert_int_equal(unit_mode_of(path), -1);
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlsalpn01_get(fx->pool, fx->store,
                                                                  ident.value, &pem)));
    acme_challenge_tlsalpn01_remove(fx->pool, fx->store, ident.value);
}

static void test_tlsalpn01_answer_ip(void **state)
{
    fixture_t *fx = *state;
    const acme_ident_t v4 = { .type = ACME_IDENT_IP, .value = "127.0.0.1" };
    const acme_ident_t v6 = { .type = ACME_IDENT_IP, .value = "2001:db8::1" };
    static const unsigned char v4_bytes[4] = { 127, 0, 0, 1 };
    static const unsigned char v6_bytes[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0, 0, 0, 1 };
    const char *pem = NULL;
    acme_result_t res;
    answer_t a;

    acme_result_reset(&res);
    assert_int_equal(acme_challenge_tlsalpn01_put(fx->pool, fx->store, &v4, KEYAUTHZ_B, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_challenge_tlsalpn01_get(fx->pool, fx->store, "127.0.0.1", &pem),
                     APR_SUCCESS);
    a = answer_parse(fx->pool, pem);
    assert_single_san(a.x509, GEN_IPADD, v4_bytes, sizeof(v4_bytes));
    assert_acme_identifier(a.x509, DIGEST_B);
    answer_free(&a);
    assert_int_equal(acme_challenge_tlsalpn01_put(fx->pool, fx->store, &v6, KEYAUTHZ_A, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_challenge_tlsalpn01_get(fx->pool, fx->store, "2001:db8::1", &pem),
                     APR_SUCCESS);
    a = answer_parse(fx->pool, pem);
    assert_single_san(a.x509, GEN_IPADD, v6_bytes, sizeof(v6_bytes));
    assert_acme_identifier(a.x509, DIGEST_A);
    answer_free(&a);
}

static void test_tlsalpn01_unusable_identifiers(void **state)
{
    fixture_t *fx = *state;
    const acme_ident_t up = { .type = ACME_IDENT_DNS, .value = "../etc" };
    const char *pem = NULL;
    acme_result_t res;

    assert_null(acme_challenge_tlsalpn01_path(fx->pool, fx->store, "../etc"));
    assert_null(acme_challenge_tlsalpn01_path(fx->pool, fx->store, "a/b"));
    assert_null(acme_challenge_tlsalpn01_path(fx->pool, fx->store, ""));
    assert_null(acme_challenge_tlsalpn01_path(fx->pool, fx->store, NULL));
    acme_result_reset(&res);
    assert_int_equal(acme_challenge_tlsalpn01_put(fx->pool, fx->store, &up, KEYAUTHZ_A, &res),
                     APR_EINVAL);
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlsalpn01_get(fx->pool, fx->store, "a/b",
                                                                  &pem)));
}

static void test_tlssni01_answer_file(void **state)
{
    fixture_t *fx = *state;
    const char *want = "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa183"
                       ".acme.invalid";
    const char *other = "94233b719c905dc5472b69e75b78e302.1353dc5be6d7c50dfa45996649caa184"
                        ".acme.invalid";
    const char *name = NULL, *pem = NULL;
    acme_result_t res;
    answer_t a;

    acme_result_reset(&res);
    assert_int_equal(acme_challenge_tlssni01_put(fx->pool, fx->store, KEYAUTHZ_A, &name, &res),
                     APR_SUCCESS);
    assert_string_equal(name, want);
    assert_int_equal(unit_mode_of(acme_challenge_tlssni01_path(fx->pool, fx->store, want)), 0600);
    assert_non_null(strstr(acme_challenge_tlssni01_path(fx->pool, fx->store, want),
                           "/challenges/tls-sni-01/" "94233b719c905dc5472b69e75b78e302."));
    /* Looked up by the SNI, in any case. */
    assert_int_equal(acme_challenge_tlssni01_get(fx->pool, fx->store,
        "94233B719C905DC5472B69E75B78E302.1353DC5BE6D7C50DFA45996649CAA183.acme.invalid", &pem),
        APR_SUCCESS);
    a = answer_parse(fx->pool, pem);
    /* The single SAN is the name, and there is no other *.acme.invalid name (no other SAN). */
    assert_single_san(a.x509, GEN_DNS, want, strlen(want));
    assert_no_acme_identifier(a.x509);
    answer_free(&a);
    /* A name of the right shape without an answer, and names of the wrong shape: nothing. */
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlssni01_get(fx->pool, fx->store, other,
                                                                 &pem)));
    assert_null(acme_challenge_tlssni01_path(fx->pool, fx->store, "www.example.org"));
    assert_null(acme_challenge_tlssni01_path(fx->pool, fx->store, "../../x.acme.invalid"));
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlssni01_get(fx->pool, fx->store,
                                                                 "www.example.org", &pem)));
    acme_challenge_tlssni01_remove(fx->pool, fx->store, want);
    assert_int_equal(unit_mode_of(acme_challenge_tlssni01_path(fx->pool, fx->store, want)), -1);
    assert_true(APR_STATUS_IS_ENOENT(acme_challenge_tlssni01_get(fx->pool, fx->store, want,
                                                                 &pem)));
}

static void test_answer_split(void **state)
{
    fixture_t *fx = *state;
    const char *cert = NULL, *key = NULL;

    assert_int_equal(acme_challenge_tls_answer_split(fx->pool, NULL, &cert, &key), APR_EINVAL);
    assert_int_equal(acme_challenge_tls_answer_split(fx->pool, "", &cert, &key), APR_EINVAL);
    assert_int_equal(acme_challenge_tls_answer_split(fx->pool,
        "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n", &cert, &key), APR_EINVAL);
    assert_int_equal(acme_challenge_tls_answer_split(fx->pool,
        "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", &cert, &key),
        APR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sha256_hex_and_tlssni01_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlssni01_name_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ip_from_reverse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlsalpn01_answer_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlsalpn01_answer_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlsalpn01_unusable_identifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlssni01_answer_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_split, setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
