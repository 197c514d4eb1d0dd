/*
 * PEM and certificates (src/acme_crypto.c): the chain a CA sends (and the store keeps), the
 * details read from each certificate, private keys read from the store, and the key specs of
 * ACMEPrivateKeys. First byte:
 *   0  a PEM chain: parse, per certificate info/ARI id/coverage/time, chain checks, round trip
 *   1  a PEM private key: parse, spec, JWS alg, match against the chain's leaf if any
 *   2  a key spec ("secp256r1", "rsa3072", ...): parse and name round trip
 *   3  a sealed key (CMS PEM the worker writes, the parent opens) with a fixed test seal key
 *   4  the public key PEM of a pending order (acme_seal_public_from_pem)
 */
#include "fuzz_common.h"
#include "acme_crypto.h"
#include "acme_jose.h"
#include "acme_seal.h"

/* A test-only seal key pair (test/fuzz/corpus/fuzz_crypto/sealed-* are sealed to it). */
static const char seal_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfCOiExUcq6GKY/y/\n"
    "8eYt4Hf8dzSFKkWSc5idJ6Tx9RGhRANCAATxUgbfRU9NBfUs13W+r7vvYrSgfvPa\n"
    "XQwC/YIPL3/vTxbR50qgi2mc368LYPJawF7aNtf7JpIXbg5UL9tGQ4CW\n"
    "-----END PRIVATE KEY-----\n";
static const char seal_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdTCCARugAwIBAgIUf0Mz+W8vJRe9boDyOFcRX1KDkSUwCgYIKoZIzj0EAwIw\n"
    "DzENMAsGA1UEAwwEc2VhbDAgFw0yNjEyMDIwODU0MjRaGA8yMTI2MTEwODA4NTQy\n"
    "NFowDzENMAsGA1UEAwwEc2VhbDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPFS\n"
    "Bt9FT00F9SzXdb6vu+9itKB+89pdDAL9gg8vf+9PFtHnSqCLaZzfrwtg8lrAXto2\n"
    "1/smkhduDlQv20ZDgJajUzBRMB0GA1UdDgQWBBTYaQBrRPMiwNegeyA+ibu63rKT\n"
    "UzAfBgNVHSMEGDAWgBTYaQBrRPMiwNegeyA+ibu63rKTUzAPBgNVHRMBAf8EBTAD\n"
    "AQH/MAoGCCqGSM49BAMCA0gAMEUCIAS1Y4SG7T4ci0hPriIqEyh5+OSzbVaLxaPl\n"
    "rZqjIKPPAiEAzHy26ygT17UynUtObs/Df/Km4kLQ5CvCaTq4fZ8CIpI=\n"
    "-----END CERTIFICATE-----\n";

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

static void fuzz_sealed(apr_pool_t *p, const char *sealed, size_t len)
{
    acme_key_t *key = NULL;
    apr_array_header_t *chain = NULL;
    char *plain = NULL;
    apr_size_t plain_len = 0;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_crypto_key_from_pem(p, seal_key_pem, strlen(seal_key_pem), &key, &res)
        != APR_SUCCESS
        || acme_crypto_chain_parse(p, seal_cert_pem, strlen(seal_cert_pem), &chain, &res)
           != APR_SUCCESS) {
        abort();
    }
    if (acme_seal_decrypt(p, key, APR_ARRAY_IDX(chain, 0, const acme_cert_t *), sealed, len,
                          &plain, &plain_len, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(plain != NULL);
        fuzz_key(p, plain, plain_len);
    }
}

static void fuzz_seal_public(apr_pool_t *p, const char *pem, size_t len)
{
    acme_key_t *key = NULL;
    const char *again = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_seal_public_from_pem(p, pem, len, &key, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(!acme_crypto_key_is_private(key));
        FUZZ_ASSERT(acme_seal_public_pem(p, key, &again, &res) == APR_SUCCESS);
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
    switch (data[0] % 5) {
    case 0:
        fuzz_chain(p, (const char *)data + 1, size - 1);
        break;
    case 1:
        fuzz_key(p, (const char *)data + 1, size - 1);
        break;
    case 2:
        fuzz_keyspec(p, text);
        break;
    case 3:
        fuzz_sealed(p, (const char *)data + 1, size - 1);
        break;
    default:
        fuzz_seal_public(p, (const char *)data + 1, size - 1);
        break;
    }
    return 0;
}
