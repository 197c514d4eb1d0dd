/*
 * PEM and certificates (src/acme_crypto.c): the chain a CA sends (and the store keeps), the
 * details read from each certificate, private keys read from the store, and the key specs of
 * ACMEPrivateKeys. First byte:
 *   0  a PEM chain: parse, per certificate info/ARI id/coverage/time, chain checks, round trip
 *   1  a PEM private key: parse, spec, JWS alg, match against the chain's leaf if any
 *   2  a key spec ("secp256r1", "rsa3072", ...): parse and name round trip
 */
#include "fuzz_common.h"
#include "acme_crypto.h"
#include "acme_jose.h"

static void fuzz_cert(apr_pool_t *p, const acme_cert_t *cert)
{
    acme_ident_t ids[2] = { { ACME_IDENT_DNS, "example.org" }, { ACME_IDENT_IP, "192.0.2.1" } };
    acme_cert_info_t info;
    const char *id = NULL;
    unsigned char *der = NULL;
    apr_size_t der_len = 0;
    acme_result_t res;
    int i;

    acme_result_reset(&res);
    if (acme_crypto_cert_info(p, cert, &info, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(info.serial_hex && info.sans);
        for (i = 0; i < info.sans->nelts; ++i) {
            FUZZ_ASSERT(APR_ARRAY_IDX(info.sans, i, acme_ident_t).value != NULL);
        }
    }
    acme_result_reset(&res);
    (void)acme_crypto_ari_cert_id(p, cert, &id, &res);
    acme_result_reset(&res);
    if (acme_crypto_cert_der(p, cert, &der, &der_len, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(der && der_len > 0);
    }
    acme_result_reset(&res);
    (void)acme_crypto_cert_covers(p, cert, ids, 1, &res);
    acme_result_reset(&res);
    (void)acme_crypto_cert_covers(p, cert, ids, 2, &res);
    acme_result_reset(&res);
    (void)acme_crypto_cert_check_time(p, cert, apr_time_from_sec(1700000000), &res);
}

static void fuzz_chain(apr_pool_t *p, const char *pem, size_t len)
{
    apr_array_header_t *chain = NULL, *again = NULL;
    const char *out = NULL;
    acme_result_t res;
    int i;

    acme_result_reset(&res);
    if (acme_crypto_chain_parse(p, pem, len, &chain, &res) != APR_SUCCESS) {
        return;
    }
    FUZZ_ASSERT(chain && chain->nelts > 0);
    for (i = 0; i < chain->nelts; ++i) {
        fuzz_cert(p, APR_ARRAY_IDX(chain, i, const acme_cert_t *));
    }
    acme_result_reset(&res);
    (void)acme_crypto_chain_check(p, chain, &res);
    acme_result_reset(&res);
    (void)acme_crypto_chain_check_issued(p, chain, &res);
    acme_result_reset(&res);
    FUZZ_ASSERT(acme_crypto_chain_to_pem(p, chain, &out, &res) == APR_SUCCESS);
    FUZZ_ASSERT(acme_crypto_chain_parse(p, out, strlen(out), &again, &res) == APR_SUCCESS);
    FUZZ_ASSERT(again->nelts == chain->nelts);
}

static void fuzz_key(apr_pool_t *p, const char *pem, size_t len)
{
    acme_key_t *key = NULL;
    acme_keyspec_t spec;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_crypto_key_from_pem(p, pem, len, &key, &res) == APR_SUCCESS) {
        acme_crypto_key_spec(key, &spec);
        (void)acme_crypto_keyspec_name(&spec);
        (void)acme_crypto_key_is_private(key);
        FUZZ_ASSERT(acme_jose_alg(key) != NULL);
    }
}

static void fuzz_keyspec(apr_pool_t *p, const char *text)
{
    acme_keyspec_t spec, spec2;
    const char *reason = NULL, *name;

    if (acme_crypto_keyspec_parse(text, &spec, &reason, p) == APR_SUCCESS) {
        name = acme_crypto_keyspec_name(&spec);
        FUZZ_ASSERT(name != NULL);
        FUZZ_ASSERT(acme_crypto_keyspec_parse(name, &spec2, &reason, p) == APR_SUCCESS);
        FUZZ_ASSERT(spec2.kind == spec.kind && spec2.bits == spec.bits);
    }
    else {
        FUZZ_ASSERT(reason != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *text;

    if (size < 1) {
        return 0;
    }
    text = fuzz_str(p, data + 1, size - 1);
    switch (data[0] % 3) {
    case 0:
        fuzz_chain(p, (const char *)data + 1, size - 1);
        break;
    case 1:
        fuzz_key(p, (const char *)data + 1, size - 1);
        break;
    default:
        fuzz_keyspec(p, text);
        break;
    }
    return 0;
}
