/*
 * JOSE (src/acme_jose.c, acme_b64.c): JWKs, flattened JWS objects, base64url, and the EAB
 * HMAC key an admin configures. First byte:
 *   0  a JWK: parsed into a key, thumbprint, and the canonical JWK's round trip
 *   1  a JWS verified with the key embedded in its header (newAccount, keyChange inner JWS)
 *   2  a JWS verified with a fixed account key (kid requests)
 *   3  base64url text: decode, and encode/decode round trip
 *   4  EAB: "kid\nhmac key (base64url)\nalg"
 */
#include <jansson.h>
#include <sanitizer/lsan_interface.h>

#include "fuzz_common.h"
#include "acme_b64.h"
#include "acme_crypto.h"
#include "acme_jose.h"

static const acme_key_t *fixed_key(void)
{
    static apr_pool_t *p;
    static acme_key_t *key;
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    acme_result_t res;

    if (!key) {
        acme_result_reset(&res);
        fuzz_pool();    /* initializes APR */
        /* Lives for the process; APR may keep pools in mmap()ed memory LeakSanitizer does not
         * scan, so the key would look leaked. */
        __lsan_disable();
        if (apr_pool_create(&p, NULL) != APR_SUCCESS
            || acme_crypto_key_generate(p, &spec, &key, &res) != APR_SUCCESS) {
            abort();
        }
        __lsan_enable();
    }
    return key;
}

static void fuzz_jwk(apr_pool_t *p, const char *text, size_t len)
{
    json_t *jwk = json_loadb(text, len, 0, NULL), *again = NULL;
    acme_key_t *key = NULL, *key2 = NULL;
    const char *thumb = NULL, *thumb2 = NULL, *canon = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_jose_key_from_jwk(p, jwk, &key, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(acme_jose_alg(key) != NULL);
        if (acme_jose_thumbprint(p, key, &thumb, &res) == APR_SUCCESS
            && acme_jose_jwk_canonical(p, key, &canon, &res) == APR_SUCCESS) {
            /*
             * The canonical form must name the same key. OpenSSL's RSA public check is
             * probabilistic (Miller-Rabin with random bases may find a factor of a weak n), so
             * a second parse of a mutated modulus may refuse what the first accepted.
             */
            again = json_loads(canon, 0, NULL);
            FUZZ_ASSERT(again != NULL);
            if (acme_jose_key_from_jwk(p, again, &key2, &res) == APR_SUCCESS) {
                FUZZ_ASSERT(acme_jose_thumbprint(p, key2, &thumb2, &res) == APR_SUCCESS);
                FUZZ_ASSERT(strcmp(thumb, thumb2) == 0);
            }
            (void)acme_jose_key_authorization(p, "token", thumb);
        }
    }
    json_decref(again);
    json_decref(jwk);
}

static void fuzz_jws(apr_pool_t *p, const char *text, const acme_key_t *key)
{
    const char *payload = NULL;
    apr_size_t payload_len = 0;
    json_t *header = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_jose_verify(p, text, key, &payload, &payload_len, &header, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(json_is_object(header));
        FUZZ_ASSERT(payload != NULL || payload_len == 0);
    }
    json_decref(header);
}

static void fuzz_b64(apr_pool_t *p, const char *text)
{
    unsigned char *out = NULL, *out2 = NULL;
    apr_size_t len = 0, len2 = 0;

    if (acme_b64_decode(p, text, &out, &len) == APR_SUCCESS) {
        const char *enc = acme_b64_encode(p, out, len);
        FUZZ_ASSERT(acme_b64_decode(p, enc, &out2, &len2) == APR_SUCCESS);
        FUZZ_ASSERT(len2 == len && (len == 0 || memcmp(out, out2, len) == 0));
    }
}

static void fuzz_eab(apr_pool_t *p, const uint8_t *data, size_t size)
{
    size_t off = 1;
    char *kid = fuzz_line(p, data, size, &off);
    char *hmac = fuzz_line(p, data, size, &off);
    char *alg = fuzz_line(p, data, size, &off);
    json_t *eab = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_jose_sign_eab(p, fixed_key(), kid, hmac ? hmac : "", alg && *alg ? alg : NULL,
                           "https://ca.example/new-account", &eab, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(json_is_object(eab));
    }
    json_decref(eab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const acme_key_t *key = fixed_key();
    apr_pool_t *p = fuzz_pool();
    char *text;

    if (size < 1) {
        return 0;
    }
    text = fuzz_str(p, data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        fuzz_jwk(p, (const char *)data + 1, size - 1);
        break;
    case 1:
        fuzz_jws(p, text, NULL);
        break;
    case 2:
        fuzz_jws(p, text, key);
        break;
    case 3:
        fuzz_b64(p, text);
        break;
    default:
        fuzz_eab(p, data, size);
        break;
    }
    return 0;
}
