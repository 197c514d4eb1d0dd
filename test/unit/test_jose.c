#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_b64.h"
#include "acme_crypto.h"
#include "acme_jose.h"
#include "unit_support.h"

typedef struct {
    apr_pool_t *pool;
    acme_key_t *ec256, *ec384, *rsa;    /* one RSA key for the whole program: it is slow */
} fixture_t;

static fixture_t fx;

static int setup_group(void **state)
{
    apr_initialize();
    apr_pool_create(&fx.pool, NULL);
    fx.ec256 = unit_key_generate(fx.pool, ACME_KEY_EC, 256);
    fx.ec384 = unit_key_generate(fx.pool, ACME_KEY_EC, 384);
    fx.rsa = unit_key_generate(fx.pool, ACME_KEY_RSA, 2048);
    return 0;
}

static int teardown_group(void **state)
{
    apr_pool_destroy(fx.pool);
    apr_terminate();
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static apr_size_t b64_len(apr_pool_t *p, const char *s)
{
    unsigned char *out;
    apr_size_t len = 0;

    assert_int_equal(acme_b64_decode(p, s, &out, &len), APR_SUCCESS);
    return len;
}

static json_t *b64_json(apr_pool_t *p, const char *s)
{
    unsigned char *out;
    apr_size_t len;
    json_t *j;

    assert_int_equal(acme_b64_decode(p, s, &out, &len), APR_SUCCESS);
    j = json_loadb((const char *)out, len, 0, NULL);
    assert_non_null(j);
    return j;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *jstr(json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

static json_t *rfc7638_jwk(void)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "alg", "RS256", "n",
                     "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFF"
                     "xuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt"
                     "7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6q"
                     "MQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHa"
                     "Q-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
}

/* ------------------------------------------------------------------ JWK and thumbprints */

static void test_alg_names(void **state)
{
    assert_string_equal(acme_jose_alg(fx.ec256), "ES256");
    assert_string_equal(acme_jose_alg(fx.ec384), "ES384");
    assert_string_equal(acme_jose_alg(fx.rsa), "RS256");
}

static void check_ec_jwk(apr_pool_t *p, const acme_key_t *key, const char *crv, apr_size_t w)
{
    acme_result_t res;
    json_t *jwk = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_jwk(p, key, &jwk, &res), APR_SUCCESS);
    assert_int_equal(json_object_size(jwk), 4);
    assert_string_equal(jstr(jwk, "kty"), "EC");
    assert_string_equal(jstr(jwk, "crv"), crv);
    assert_int_equal(b64_len(p, jstr(jwk, "x")), w);
    assert_int_equal(b64_len(p, jstr(jwk, "y")), w);
    json_decref(jwk);
}

/* x/y keep their leading zero octets: over many keys some coordinate starts with 0x00. */
static void test_ec_jwk_fixed_width(void **state)
{
    apr_pool_t *p = *state;
    int i;

    check_ec_jwk(p, fx.ec256, "P-256", 32);
    check_ec_jwk(p, fx.ec384, "P-384", 48);
    for (i = 0; i < 300; ++i) {
        acme_key_t *key = unit_key_generate(fx.pool, ACME_KEY_EC, 256);
        assert_non_null(key);
        check_ec_jwk(p, key, "P-256", 32);
    }
}

static void test_rsa_jwk_shape(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    json_t *jwk = NULL;
    unsigned char *n;
    apr_size_t n_len;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_jwk(p, fx.rsa, &jwk, &res), APR_SUCCESS);
    assert_int_equal(json_object_size(jwk), 3);
    assert_string_equal(jstr(jwk, "kty"), "RSA");
    assert_string_equal(jstr(jwk, "e"), "AQAB");
    assert_int_equal(acme_b64_decode(p, jstr(jwk, "n"), &n, &n_len), APR_SUCCESS);
    assert_int_equal(n_len, 256);
    assert_int_not_equal(n[0], 0);
    json_decref(jwk);
}

static void test_rfc7638_thumbprint(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *key = NULL;
    const char *thumb = NULL, *canonical = NULL;
    json_t *jwk = rfc7638_jwk();

    acme_result_reset(&res);
    assert_int_equal(acme_jose_key_from_jwk(p, jwk, &key, &res), APR_SUCCESS);
    json_decref(jwk);
    assert_false(acme_crypto_key_is_private(key));
    assert_int_equal(acme_jose_thumbprint(p, key, &thumb, &res), APR_SUCCESS);
    assert_string_equal(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_int_equal(acme_jose_jwk_canonical(p, key, &canonical, &res), APR_SUCCESS);
    assert_true(starts_with(canonical, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7ag"));
}

static void test_ec_canonical_jwk_and_round_trip(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *canonical = NULL, *t1 = NULL, *t2 = NULL;
    json_t *jwk = NULL;
    acme_key_t *pub = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_jwk_canonical(p, fx.ec256, &canonical, &res), APR_SUCCESS);
    assert_true(starts_with(canonical, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""));
    assert_non_null(strstr(canonical, "\",\"y\":\""));
    assert_null(strchr(canonical, ' '));

    assert_int_equal(acme_jose_jwk(p, fx.ec384, &jwk, &res), APR_SUCCESS);
    assert_int_equal(acme_jose_key_from_jwk(p, jwk, &pub, &res), APR_SUCCESS);
    json_decref(jwk);
    assert_int_equal(EVP_PKEY_eq(acme_crypto_key_evp(pub), acme_crypto_key_evp(fx.ec384)), 1);
    assert_int_equal(acme_jose_thumbprint(p, pub, &t1, &res), APR_SUCCESS);
    assert_int_equal(acme_jose_thumbprint(p, fx.ec384, &t2, &res), APR_SUCCESS);
    assert_string_equal(t1, t2);
    assert_int_equal(strlen(t1), 43);
}

static void test_key_from_jwk_rejects_bad_keys(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *key = NULL;
    /* RFC 7515 A.3's point with y changed in its last character: not on the curve. */
    json_t *off_curve = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
                                  "x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                  "y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4");
    json_t *short_x = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
                                "x", "AQAB", "y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
    json_t *okp = json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", "AQAB");
    json_t *p521 = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-521",
                             "x", "AQAB", "y", "AQAB");

    acme_result_reset(&res);
    assert_int_equal(acme_jose_key_from_jwk(p, off_curve, &key, &res), APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(acme_jose_key_from_jwk(p, short_x, &key, &res), APR_EINVAL);
    assert_int_equal(acme_jose_key_from_jwk(p, okp, &key, &res), APR_EINVAL);
    assert_int_equal(acme_jose_key_from_jwk(p, p521, &key, &res), APR_EINVAL);
    json_decref(off_curve);
    json_decref(short_x);
    json_decref(okp);
    json_decref(p521);
}

static void test_key_authorization(void **state)
{
    assert_string_equal(acme_jose_key_authorization(*state, "tok-EN_1", "thumb"),
                        "tok-EN_1.thumb");
}

/* ------------------------------------------------------------------ JWS */

/* RFC 7515 A.3: a published ES256 JWS must verify, so our R||S layout is the standard one. */
static void test_rfc7515_es256_example_verifies(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *key = NULL;
    const char *payload = NULL;
    apr_size_t len = 0;
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
                            "x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                            "y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
    const char *jws = "{\"protected\":\"eyJhbGciOiJFUzI1NiJ9\",\"payload\":"
                      "\"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
                      "LmNvbS9pc19yb290Ijp0cnVlfQ\",\"signature\":\"DtEhU3ljbEg8L38VWAfUAqOyKA"
                      "M6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q\"}";

    acme_result_reset(&res);
    assert_int_equal(acme_jose_key_from_jwk(p, jwk, &key, &res), APR_SUCCESS);
    json_decref(jwk);
    assert_int_equal(acme_jose_verify(p, jws, key, &payload, &len, NULL, &res), APR_SUCCESS);
    assert_non_null(strstr(payload, "\"iss\":\"joe\""));
    /* One flipped bit in the signature must fail. */
    jws = apr_pstrcat(p, apr_pstrndup(p, jws, strlen(jws) - 3), "A\"}", NULL);
    assert_int_equal(acme_jose_verify(p, jws, key, NULL, NULL, NULL, &res), APR_EINVAL);
}

/*
 * Signs n times and verifies each result, with the given key and through the
 * embedded jwk. A DER signature or a missing left-pad shows up as a wrong
 * length long before 200 rounds (about 1 in 128 ES256 signatures needs it).
 */
static void sign_verify_rounds(apr_pool_t *parent, const acme_key_t *key, int n,
                               apr_size_t sig_len)
{
    int i;

    for (i = 0; i < n; ++i) {
        apr_pool_t *p;
        acme_result_t res;
        const char *jws = NULL, *payload = NULL;
        const char *body = i % 2 ? "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}"
                                 : "{}";
        json_t *outer, *hdr = NULL;
        apr_size_t len = 0;

        apr_pool_create(&p, parent);
        acme_result_reset(&res);
        assert_int_equal(acme_jose_sign(p, key, body, "https://ca.test/new-order",
                                        apr_psprintf(p, "nonce%d", i), NULL, &jws, &res),
                         APR_SUCCESS);
        outer = json_loads(jws, 0, NULL);
        assert_non_null(outer);
        assert_int_equal(json_object_size(outer), 3);
        assert_int_equal(b64_len(p, jstr(outer, "signature")), sig_len);
        json_decref(outer);
        assert_int_equal(acme_jose_verify(p, jws, key, &payload, &len, NULL, &res), APR_SUCCESS);
        assert_string_equal(payload, body);
        assert_int_equal(acme_jose_verify(p, jws, NULL, NULL, NULL, &hdr, &res), APR_SUCCESS);
        assert_string_equal(jstr(hdr, "nonce"), apr_psprintf(p, "nonce%d", i));
        json_decref(hdr);
        apr_pool_destroy(p);
    }
}

static void test_es256_sign_verify(void **state)
{
    sign_verify_rounds(*state, fx.ec256, 200, 64);
}

static void test_es384_sign_verify(void **state)
{
    sign_verify_rounds(*state, fx.ec384, 200, 96);
}

static void test_rs256_sign_verify(void **state)
{
    sign_verify_rounds(*state, fx.rsa, 10, 256);
}

static void test_header_with_kid(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *jws = NULL, *payload = NULL;
    json_t *hdr = NULL;
    apr_size_t len = 9;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_sign(p, fx.ec256, NULL, "https://ca.test/order/1", "n0nce",
                                    "https://ca.test/acct/7", &jws, &res), APR_SUCCESS);
    assert_non_null(strstr(jws, "\"payload\":\"\""));
    assert_int_equal(acme_jose_verify(p, jws, fx.ec256, &payload, &len, &hdr, &res),
                     APR_SUCCESS);
    assert_int_equal(len, 0);
    assert_int_equal(json_object_size(hdr), 4);
    assert_string_equal(jstr(hdr, "alg"), "ES256");
    assert_string_equal(jstr(hdr, "kid"), "https://ca.test/acct/7");
    assert_string_equal(jstr(hdr, "nonce"), "n0nce");
    assert_string_equal(jstr(hdr, "url"), "https://ca.test/order/1");
    assert_null(json_object_get(hdr, "jwk"));
    json_decref(hdr);
    /* "" is POST-as-GET too, never "e30". */
    assert_int_equal(acme_jose_sign(p, fx.ec256, "", "https://ca.test/order/1", "n0nce",
                                    "https://ca.test/acct/7", &jws, &res), APR_SUCCESS);
    assert_non_null(strstr(jws, "\"payload\":\"\""));
}

/* keyChange's inner JWS: jwk, no nonce, no kid. */
static void test_header_inner_jws(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *jws = NULL, *thumb = NULL, *t2 = NULL;
    json_t *hdr = NULL;
    acme_key_t *embedded = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_sign(p, fx.rsa, "{\"account\":\"x\"}", "https://ca.test/kc",
                                    NULL, NULL, &jws, &res), APR_SUCCESS);
    assert_int_equal(acme_jose_verify(p, jws, NULL, NULL, NULL, &hdr, &res), APR_SUCCESS);
    assert_int_equal(json_object_size(hdr), 3);
    assert_string_equal(jstr(hdr, "alg"), "RS256");
    assert_null(json_object_get(hdr, "nonce"));
    assert_null(json_object_get(hdr, "kid"));
    assert_int_equal(acme_jose_key_from_jwk(p, json_object_get(hdr, "jwk"), &embedded, &res),
                     APR_SUCCESS);
    json_decref(hdr);
    assert_int_equal(acme_jose_thumbprint(p, embedded, &thumb, &res), APR_SUCCESS);
    assert_int_equal(acme_jose_thumbprint(p, fx.rsa, &t2, &res), APR_SUCCESS);
    assert_string_equal(thumb, t2);
}

static void test_verify_rejects_tampering(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *jws = NULL, *other = NULL;
    json_t *j, *o;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_sign(p, fx.ec256, "{\"a\":1}", "https://ca.test/x", "n", NULL,
                                    &jws, &res), APR_SUCCESS);
    assert_int_equal(acme_jose_sign(p, fx.ec256, "{\"a\":2}", "https://ca.test/x", "n", NULL,
                                    &other, &res), APR_SUCCESS);
    /* Payload of one, signature of the other. */
    j = json_loads(jws, 0, NULL);
    o = json_loads(other, 0, NULL);
    json_object_set(j, "payload", json_object_get(o, "payload"));
    {
        char *text = json_dumps(j, JSON_COMPACT);
        assert_int_equal(acme_jose_verify(p, text, fx.ec256, NULL, NULL, NULL, &res),
                         APR_EINVAL);
        free(text);
    }
    json_decref(j);
    json_decref(o);
    /* Right signature, wrong key; and a key whose alg differs from the header's. */
    assert_int_equal(acme_jose_verify(p, jws, unit_key_generate(fx.pool, ACME_KEY_EC, 256), NULL,
                                      NULL, NULL, &res), APR_EINVAL);
    assert_int_equal(acme_jose_verify(p, jws, fx.ec384, NULL, NULL, NULL, &res), APR_EINVAL);
    assert_int_equal(acme_jose_verify(p, "{\"protected\":\"e30\"}", fx.ec256, NULL, NULL, NULL,
                                      &res), APR_EINVAL);
    assert_int_equal(acme_jose_verify(p, "not json", fx.ec256, NULL, NULL, NULL, &res),
                     APR_EINVAL);
}

static void test_sign_refuses_public_key_and_missing_url(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *pub = NULL;
    const char *jws = NULL;
    json_t *jwk = rfc7638_jwk();

    acme_result_reset(&res);
    assert_int_equal(acme_jose_key_from_jwk(p, jwk, &pub, &res), APR_SUCCESS);
    json_decref(jwk);
    assert_int_equal(acme_jose_sign(p, pub, "{}", "https://ca.test/x", "n", NULL, &jws, &res),
                     APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(acme_jose_sign(p, fx.ec256, "{}", NULL, "n", NULL, &jws, &res),
                     APR_EINVAL);
}

/* ------------------------------------------------------------------ HMAC and EAB */

static const char *rfc7515_hmac_key =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

static void test_rfc7515_hs256_example(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
                        "LmNvbS9pc19yb290Ijp0cnVlfQ";
    unsigned char *key, *mac = NULL;
    apr_size_t key_len, mac_len = 0;

    acme_result_reset(&res);
    assert_int_equal(acme_b64_decode(p, rfc7515_hmac_key, &key, &key_len), APR_SUCCESS);
    assert_int_equal(acme_jose_hmac(p, "HS256", key, key_len, input, strlen(input), &mac,
                                    &mac_len, &res), APR_SUCCESS);
    assert_string_equal(acme_b64_encode(p, mac, mac_len),
                        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

static void check_eab(apr_pool_t *p, const char *alg, apr_size_t mac_len)
{
    acme_result_t res;
    json_t *eab = NULL, *hdr, *payload;
    const char *canonical = NULL, *input;
    unsigned char *key, *mac = NULL;
    apr_size_t key_len, len = 0;

    acme_result_reset(&res);
    assert_int_equal(acme_jose_sign_eab(p, fx.ec256, "kid-1", rfc7515_hmac_key, alg,
                                        "https://ca.test/new-account", &eab, &res),
                     APR_SUCCESS);
    assert_int_equal(json_object_size(eab), 3);
    hdr = b64_json(p, jstr(eab, "protected"));
    assert_int_equal(json_object_size(hdr), 3);
    assert_string_equal(jstr(hdr, "alg"), alg ? alg : "HS256");
    assert_string_equal(jstr(hdr, "kid"), "kid-1");
    assert_string_equal(jstr(hdr, "url"), "https://ca.test/new-account");
    json_decref(hdr);

    /* The payload is the account's public JWK, nothing more. */
    payload = b64_json(p, jstr(eab, "payload"));
    assert_int_equal(acme_jose_jwk_canonical(p, fx.ec256, &canonical, &res), APR_SUCCESS);
    {
        char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(text, canonical);
        free(text);
    }
    assert_null(json_object_get(payload, "d"));
    json_decref(payload);

    /* The MAC uses the decoded key bytes. */
    assert_int_equal(acme_b64_decode(p, rfc7515_hmac_key, &key, &key_len), APR_SUCCESS);
    input = apr_pstrcat(p, jstr(eab, "protected"), ".", jstr(eab, "payload"), NULL);
    assert_int_equal(acme_jose_hmac(p, alg, key, key_len, input, strlen(input), &mac, &len,
                                    &res), APR_SUCCESS);
    assert_int_equal(len, mac_len);
    assert_string_equal(jstr(eab, "signature"), acme_b64_encode(p, mac, len));
    json_decref(eab);
}

static void test_eab_binding(void **state)
{
    check_eab(*state, NULL, 32);
    check_eab(*state, "HS256", 32);
    check_eab(*state, "HS384", 48);
    check_eab(*state, "HS512", 64);
}

static void test_eab_rejects_bad_config_without_leaking_key(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    json_t *eab = NULL;
    const char *padded = "c2VjcmV0LWtleS12YWx1ZQ==";

    acme_result_reset(&res);
    assert_int_equal(acme_jose_sign_eab(p, fx.ec256, "kid", padded, NULL, "https://ca.test/na",
                                        &eab, &res), APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_null(strstr(res.message, "c2VjcmV0"));
    assert_int_equal(acme_jose_sign_eab(p, fx.ec256, "kid", rfc7515_hmac_key, "HS1",
                                        "https://ca.test/na", &eab, &res), APR_EINVAL);
    assert_null(strstr(res.message, "AyM1"));
    assert_int_equal(acme_jose_sign_eab(p, fx.ec256, "", rfc7515_hmac_key, NULL,
                                        "https://ca.test/na", &eab, &res), APR_EINVAL);
    assert_int_equal(acme_jose_sign_eab(p, fx.ec256, "kid", "", NULL, "https://ca.test/na",
                                        &eab, &res), APR_EINVAL);
    assert_null(eab);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, unit_setup_pool, unit_teardown_pool)
    const struct CMUnitTest tests[] = {
        T(test_alg_names),
        T(test_ec_jwk_fixed_width),
        T(test_rsa_jwk_shape),
        T(test_rfc7638_thumbprint),
        T(test_ec_canonical_jwk_and_round_trip),
        T(test_key_from_jwk_rejects_bad_keys),
        T(test_key_authorization),
        T(test_rfc7515_es256_example_verifies),
        T(test_es256_sign_verify),
        T(test_es384_sign_verify),
        T(test_rs256_sign_verify),
        T(test_header_with_kid),
        T(test_header_inner_jws),
        T(test_verify_rejects_tampering),
        T(test_sign_refuses_public_key_and_missing_url),
        T(test_rfc7515_hs256_example),
        T(test_eab_binding),
        T(test_eab_rejects_bad_config_without_leaking_key),
    };
#undef T
    return cmocka_run_group_tests_name("jose", tests, setup_group, teardown_group);
}
