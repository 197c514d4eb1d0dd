#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme_b64.h"
#include "acme_crypto.h"
#include "unit_support.h"

/*
 * A small PKI built once: root -> intermediate -> leaf, all EC so that the
 * program stays fast; one RSA key for the RSA paths.
 */
typedef struct {
    apr_pool_t *pool;
    acme_key_t *root_key, *int_key, *leaf_key, *rsa;
    X509 *root, *inter, *leaf;
    const char *chain_pem;              /* leaf, intermediate, root */
} fixture_t;

static fixture_t fx;

#define LEAF_SANS "DNS:example.org,DNS:*.example.org,IP:192.0.2.1,IP:2001:db8::1"

/* A certificate for the tests, valid from an hour ago for 90 days; issuer NULL means
 * self-signed. Caller frees. */
static X509 *make_cert(const char *cn, const acme_key_t *key, X509 *issuer,
                       const acme_key_t *issuer_key, int ca, const char *sans, long serial)
{
    return unit_cert_make(&(unit_cert_spec_t){
        .cn = cn, .key = key, .issuer = issuer, .issuer_key = issuer_key, .is_ca = ca,
        .sans = sans, .serial = serial, .not_before = -3600, .not_after = 90L * 86400 });
}

static int setup_group(void **state)
{
    apr_initialize();
    apr_pool_create(&fx.pool, NULL);
    fx.root_key = unit_key_generate(fx.pool, ACME_KEY_EC, 384);
    fx.int_key = unit_key_generate(fx.pool, ACME_KEY_EC, 256);
    fx.leaf_key = unit_key_generate(fx.pool, ACME_KEY_EC, 256);
    fx.rsa = unit_key_generate(fx.pool, ACME_KEY_RSA, 2048);
    fx.root = make_cert("Test Root", fx.root_key, NULL, NULL, 1, NULL, 1);
    fx.inter = make_cert("Test Intermediate", fx.int_key, fx.root, fx.root_key, 1, NULL, 2);
    fx.leaf = make_cert("example.org", fx.leaf_key, fx.inter, fx.int_key, 0, LEAF_SANS,
                        0x12345678);
    if (!fx.root || !fx.inter || !fx.leaf) {
        return -1;
    }
    fx.chain_pem = apr_pstrcat(fx.pool, unit_x509_pem(fx.pool, fx.leaf),
                               unit_x509_pem(fx.pool, fx.inter), unit_x509_pem(fx.pool, fx.root),
                               NULL);
    return 0;
}

static int teardown_group(void **state)
{
    X509_free(fx.root);
    X509_free(fx.inter);
    X509_free(fx.leaf);
    apr_pool_destroy(fx.pool);
    apr_terminate();
    return 0;
}

static int teardown_test(void **state)
{
    unit_teardown_pool(state);
    /* Every failure path must leave OpenSSL's error queue empty (mod_ssl shares it). */
    assert_int_equal(ERR_peek_error(), 0);
    return 0;
}

static acme_cert_t *wrap(apr_pool_t *p, X509 *x)
{
    acme_result_t res;
    acme_cert_t *cert = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_cert_wrap(p, x, &cert, &res), APR_SUCCESS);
    return cert;
}

static apr_array_header_t *chain_of(apr_pool_t *p, int n, ...)
{
    apr_array_header_t *chain = apr_array_make(p, n, sizeof(acme_cert_t *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(chain, acme_cert_t *) = wrap(p, va_arg(ap, X509 *));
    }
    va_end(ap);
    return chain;
}

/* ------------------------------------------------------------------ key specs and keys */

static void test_keyspec_parse(void **state)
{
    static const struct { const char *text; acme_key_kind_t kind; int bits; const char *name; }
    ok[] = {
        { "secp256r1", ACME_KEY_EC, 256, "secp256r1" }, { "PRIME256V1", ACME_KEY_EC, 256, "secp256r1" },
        { "p-256", ACME_KEY_EC, 256, "secp256r1" }, { "SecP384R1", ACME_KEY_EC, 384, "secp384r1" },
        { "P-384", ACME_KEY_EC, 384, "secp384r1" }, { "RSA", ACME_KEY_RSA, 2048, "rsa2048" },
        { "rsa2048", ACME_KEY_RSA, 2048, "rsa2048" }, { "rsa3072", ACME_KEY_RSA, 3072, "rsa3072" },
        { "Rsa4096", ACME_KEY_RSA, 4096, "rsa4096" },
    };
    static const char *bad[] = { "", "rsa1024", "ed25519", "P-521", "secp256r1 ", "rsa-2048" };
    acme_keyspec_t spec;
    const char *reason;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); ++i) {
        assert_int_equal(acme_crypto_keyspec_parse(ok[i].text, &spec, &reason, *state),
                         APR_SUCCESS);
        assert_int_equal(spec.kind, ok[i].kind);
        assert_int_equal(spec.bits, ok[i].bits);
        assert_string_equal(acme_crypto_keyspec_name(&spec), ok[i].name);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        reason = NULL;
        assert_int_equal(acme_crypto_keyspec_parse(bad[i], &spec, &reason, *state), APR_EINVAL);
        assert_non_null(strstr(reason, "secp256r1"));
        assert_non_null(strstr(reason, "rsa4096"));
    }
}

static void check_pem_round_trip(apr_pool_t *p, const acme_key_t *key, const char *name)
{
    acme_result_t res;
    const char *pem = NULL;
    acme_key_t *back = NULL;
    acme_keyspec_t spec;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_to_pem(p, key, &pem, &res), APR_SUCCESS);
    assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    assert_int_equal(acme_crypto_key_from_pem(p, pem, strlen(pem), &back, &res), APR_SUCCESS);
    assert_true(acme_crypto_key_is_private(back));
    assert_int_equal(EVP_PKEY_eq(acme_crypto_key_evp(back), acme_crypto_key_evp(key)), 1);
    acme_crypto_key_spec(back, &spec);
    assert_string_equal(acme_crypto_keyspec_name(&spec), name);
}

static void test_key_pem_round_trip(void **state)
{
    check_pem_round_trip(*state, fx.leaf_key, "secp256r1");
    check_pem_round_trip(*state, fx.root_key, "secp384r1");
    check_pem_round_trip(*state, fx.rsa, "rsa2048");
}

static void test_key_from_pem_rejects(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *key = NULL;
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    const char *garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_from_pem(p, garbage, strlen(garbage), &key, &res),
                     APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(acme_crypto_key_from_pem(p, "", 0, &key, &res), APR_EINVAL);

    /* An unsupported curve. */
    assert_non_null(p521);
    PEM_write_bio_PrivateKey(bio, p521, NULL, NULL, 0, NULL, NULL);
    len = BIO_get_mem_data(bio, &data);
    assert_int_equal(acme_crypto_key_from_pem(p, data, (apr_size_t)len, &key, &res), APR_EINVAL);
    (void)BIO_reset(bio);

    /* An encrypted key: refused at once, no pass phrase prompt. */
    PEM_write_bio_PrivateKey(bio, acme_crypto_key_evp(fx.leaf_key), EVP_aes_128_cbc(),
                             (const unsigned char *)"pw", 2, NULL, NULL);
    len = BIO_get_mem_data(bio, &data);
    assert_non_null(strstr(data, "ENCRYPTED"));
    assert_int_equal(acme_crypto_key_from_pem(p, data, (apr_size_t)len, &key, &res), APR_EINVAL);
    assert_null(key);
    BIO_free(bio);
    EVP_PKEY_free(p521);
}

static void test_sha256(void **state)
{
    unsigned char out[32];

    acme_crypto_sha256("abc", 3, out);
    assert_string_equal(acme_b64_encode(*state, out, 32),
                        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

/* ------------------------------------------------------------------ CSR */

static X509_REQ *csr_parse(const unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &q, (long)len);

    assert_non_null(req);
    assert_ptr_equal(q, der + len);
    return req;
}

static GENERAL_NAMES *csr_sans(X509_REQ *req)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *gens = NULL;
    int i;

    for (i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name) {
            assert_null(gens);
            gens = X509V3_EXT_d2i(ext);
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    assert_non_null(gens);
    return gens;
}

static void assert_dns(const GENERAL_NAME *gn, const char *value)
{
    assert_int_equal(gn->type, GEN_DNS);
    assert_int_equal(ASN1_STRING_length(gn->d.dNSName), strlen(value));
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), value, strlen(value));
}

static void assert_ip(const GENERAL_NAME *gn, const unsigned char *bytes, int len)
{
    assert_int_equal(gn->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(gn->d.iPAddress), len);
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.iPAddress), bytes, len);
}

static char *req_cn(X509_REQ *req)
{
    static char buf[256];

    buf[0] = '\0';
    if (X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, buf,
                                  sizeof(buf)) < 0) {
        return NULL;
    }
    return buf;
}

static void test_csr_contents(void **state)
{
    static const unsigned char v4[] = { 192, 0, 2, 1 };
    static const unsigned char v6[] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 1 };
    const acme_ident_t ids[] = {
        { ACME_IDENT_IP, "192.0.2.1" }, { ACME_IDENT_DNS, "example.org" },
        { ACME_IDENT_DNS, "*.example.org" }, { ACME_IDENT_IP, "2001:db8::1" },
    };
    acme_result_t res;
    unsigned char *der = NULL;
    apr_size_t len = 0;
    X509_REQ *req;
    GENERAL_NAMES *gens;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, ids, 4, &der, &len, &res),
                     APR_SUCCESS);
    req = csr_parse(der, len);
    assert_int_equal(X509_REQ_verify(req, acme_crypto_key_evp(fx.leaf_key)), 1);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
    assert_string_equal(req_cn(req), "example.org");
    gens = csr_sans(req);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
    assert_ip(sk_GENERAL_NAME_value(gens, 0), v4, 4);
    assert_dns(sk_GENERAL_NAME_value(gens, 1), "example.org");
    assert_dns(sk_GENERAL_NAME_value(gens, 2), "*.example.org");
    assert_ip(sk_GENERAL_NAME_value(gens, 3), v6, 16);
    GENERAL_NAMES_free(gens);
    X509_REQ_free(req);
}

static void test_csr_rsa_and_cn_rules(void **state)
{
    const char *long_name = "a123456789b123456789c123456789d123456789e123456789f1234567890.test";
    const acme_ident_t long_first[] = { { ACME_IDENT_DNS, long_name },
                                        { ACME_IDENT_DNS, "short.test" } };
    const acme_ident_t ip_only[] = { { ACME_IDENT_IP, "198.51.100.7" } };
    acme_result_t res;
    unsigned char *der = NULL;
    apr_size_t len = 0;
    X509_REQ *req;
    GENERAL_NAMES *gens;

    acme_result_reset(&res);
    assert_true(strlen(long_name) > 64);
    assert_int_equal(acme_crypto_csr_create(*state, fx.rsa, long_first, 2, &der, &len, &res),
                     APR_SUCCESS);
    req = csr_parse(der, len);
    assert_int_equal(X509_REQ_verify(req, acme_crypto_key_evp(fx.rsa)), 1);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_sha256WithRSAEncryption);
    assert_null(req_cn(req));
    gens = csr_sans(req);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 2);
    assert_dns(sk_GENERAL_NAME_value(gens, 0), long_name);
    GENERAL_NAMES_free(gens);
    X509_REQ_free(req);

    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, ip_only, 1, &der, &len, &res),
                     APR_SUCCESS);
    req = csr_parse(der, len);
    assert_null(req_cn(req));
    X509_REQ_free(req);
}

static void test_csr_rejects_bad_identifiers(void **state)
{
    const acme_ident_t bad_ip[] = { { ACME_IDENT_IP, "192.0.2.300" } };
    const acme_ident_t bad_dns[] = { { ACME_IDENT_DNS, "a b.test" } };
    const acme_ident_t empty[] = { { ACME_IDENT_DNS, "" } };
    acme_result_t res;
    unsigned char *der = NULL;
    apr_size_t len = 0;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, bad_ip, 1, &der, &len, &res),
                     APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_non_null(strstr(res.message, "192.0.2.300"));
    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, bad_dns, 1, &der, &len, &res),
                     APR_EINVAL);
    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, empty, 1, &der, &len, &res),
                     APR_EINVAL);
    assert_int_equal(acme_crypto_csr_create(*state, fx.leaf_key, empty, 0, &der, &len, &res),
                     APR_EINVAL);
    assert_null(der);
}

/* ------------------------------------------------------------------ chains */

static void test_chain_parse_and_serialise(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    apr_array_header_t *chain = NULL;
    const char *pem = NULL;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_chain_parse(p, fx.chain_pem, strlen(fx.chain_pem), &chain,
                                             &res), APR_SUCCESS);
    assert_int_equal(chain->nelts, 3);
    assert_int_equal(X509_cmp(acme_crypto_cert_x509(APR_ARRAY_IDX(chain, 0, acme_cert_t *)),
                              fx.leaf), 0);
    assert_int_equal(X509_cmp(acme_crypto_cert_x509(APR_ARRAY_IDX(chain, 2, acme_cert_t *)),
                              fx.root), 0);
    assert_int_equal(acme_crypto_chain_to_pem(p, chain, &pem, &res), APR_SUCCESS);
    assert_string_equal(pem, fx.chain_pem);
    assert_int_equal(acme_crypto_chain_check(p, chain, &res), APR_SUCCESS);

    /* CRLF line ends and text between blocks are still a certificate chain. */
    pem = apr_pstrcat(p, "issued by a test CA\r\n", unit_x509_pem(p, fx.leaf), "\n",
                      unit_x509_pem(p, fx.inter), NULL);
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_SUCCESS);
    assert_int_equal(chain->nelts, 2);
}

static void test_chain_parse_rejects(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    apr_array_header_t *chain = NULL;
    const char *key_pem = NULL, *pem, *leaf = unit_x509_pem(p, fx.leaf);

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_to_pem(p, fx.leaf_key, &key_pem, &res), APR_SUCCESS);

    /* RFC 8555 §11.4: a key smuggled into the chain, first, last or between. */
    pem = apr_pstrcat(p, fx.chain_pem, key_pem, NULL);
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_non_null(strstr(res.message, "PRIVATE KEY"));
    assert_null(strstr(res.message, "MI"));
    pem = apr_pstrcat(p, key_pem, fx.chain_pem, NULL);
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);
    pem = apr_pstrcat(p, leaf, key_pem, unit_x509_pem(p, fx.inter), NULL);
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);

    /* A damaged key block that PEM parsing would skip over. */
    pem = apr_pstrcat(p, leaf, "-----BEGIN RSA PRIVATE KEY-----\nnot base64\n", NULL);
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);

    assert_int_equal(acme_crypto_chain_parse(p, "", 0, &chain, &res), APR_EINVAL);
    assert_int_equal(acme_crypto_chain_parse(p, "hello\n", 6, &chain, &res), APR_EINVAL);
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);
    pem = "-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n";
    assert_int_equal(acme_crypto_chain_parse(p, pem, strlen(pem), &chain, &res), APR_EINVAL);
    assert_null(chain);
}

static void test_chain_check(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 2, fx.leaf, fx.inter), &res),
                     APR_SUCCESS);
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 1, fx.leaf), &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 1, fx.root), &res), APR_SUCCESS);

    /* Wrong order. */
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 3, fx.inter, fx.leaf, fx.root), &res),
                     APR_EINVAL);
    assert_non_null(strstr(res.message, "certificate 0 (CN=Test Intermediate)"));
    assert_non_null(strstr(res.message, "certificate 1 (CN=example.org)"));
    /* A gap. */
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 2, fx.leaf, fx.root), &res),
                     APR_EINVAL);
    assert_non_null(strstr(res.message, "certificate 0"));
    /* Breaks at the second link. */
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 3, fx.leaf, fx.inter, fx.leaf),
                                             &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "certificate 1"));
    /* The last one points back into the chain. */
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 4, fx.leaf, fx.inter, fx.root,
                                                         fx.root), &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "certificate 3"));
    assert_int_equal(acme_crypto_chain_check(p, apr_array_make(p, 1, sizeof(acme_cert_t *)),
                                             &res), APR_EINVAL);
}

/* Same names and key ids as the intermediate, but signed by another key: names alone are not enough. */
static void test_chain_check_verifies_signatures(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_key_t *other = unit_key_generate(fx.pool, ACME_KEY_EC, 256);
    X509 *forged = make_cert("example.org", fx.leaf_key, fx.inter, other, 0, LEAF_SANS, 99);

    acme_result_reset(&res);
    assert_non_null(forged);
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 2, forged, fx.inter), &res),
                     APR_EINVAL);
    X509_free(forged);
}

/* ------------------------------------------------------------------ certificate checks */

static void test_key_matches_cert(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_matches_cert(fx.leaf_key, wrap(p, fx.leaf), &res),
                     APR_SUCCESS);
    assert_int_equal(acme_crypto_key_matches_cert(fx.int_key, wrap(p, fx.leaf), &res),
                     APR_EINVAL);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(acme_crypto_key_matches_cert(fx.rsa, wrap(p, fx.leaf), &res), APR_EINVAL);
}

static apr_status_t covers1(apr_pool_t *p, acme_ident_type_t type, const char *value,
                            acme_result_t *res)
{
    const acme_ident_t id = { .type = type, .value = value };
    return acme_crypto_cert_covers(p, wrap(p, fx.leaf), &id, 1, res);
}

static void test_cert_covers(void **state)
{
    apr_pool_t *p = *state;
    const acme_ident_t all[] = {
        { ACME_IDENT_DNS, "example.org" }, { ACME_IDENT_DNS, "*.example.org" },
        { ACME_IDENT_IP, "192.0.2.1" }, { ACME_IDENT_IP, "2001:db8::1" },
    };
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_cert_covers(p, wrap(p, fx.leaf), all, 4, &res), APR_SUCCESS);
    assert_int_equal(covers1(p, ACME_IDENT_DNS, "EXAMPLE.Org", &res), APR_SUCCESS);
    /* IPs compare as addresses, not text. */
    assert_int_equal(covers1(p, ACME_IDENT_IP, "2001:0db8:0:0::0:1", &res), APR_SUCCESS);
    /* A wildcard SAN covers only the wildcard identifier itself. */
    assert_int_equal(covers1(p, ACME_IDENT_DNS, "www.example.org", &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "dns:www.example.org"));
    assert_int_equal(covers1(p, ACME_IDENT_DNS, "*.www.example.org", &res), APR_EINVAL);
    assert_int_equal(covers1(p, ACME_IDENT_DNS, "example.org.evil", &res), APR_EINVAL);
    assert_int_equal(covers1(p, ACME_IDENT_IP, "192.0.2.2", &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "ip:192.0.2.2"));
    /* The IP SAN does not cover the same text as a DNS name. */
    assert_int_equal(covers1(p, ACME_IDENT_DNS, "192.0.2.1", &res), APR_EINVAL);
    assert_int_equal(covers1(p, ACME_IDENT_IP, "::ffff:192.0.2.1", &res), APR_EINVAL);
    assert_int_equal(covers1(p, ACME_IDENT_IP, "example.org", &res), APR_EINVAL);
}

static void test_cert_info(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_cert_info_t info;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(fx.inter);
    static const unsigned char serial[] = { 0x12, 0x34, 0x56, 0x78 };
    apr_time_t now = apr_time_now();

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_cert_info(p, wrap(p, fx.leaf), &info, &res), APR_SUCCESS);
    assert_string_equal(info.serial_hex, "12345678");
    assert_int_equal(info.serial_der_len, 4);
    assert_memory_equal(info.serial_der, serial, 4);
    assert_non_null(ski);
    assert_int_equal(info.aki_len, ASN1_STRING_length(ski));
    assert_memory_equal(info.aki, ASN1_STRING_get0_data(ski), info.aki_len);
    assert_string_equal(info.subject, "CN=example.org");
    assert_string_equal(info.issuer, "CN=Test Intermediate");
    assert_string_equal(info.issuer_cn, "Test Intermediate");
    /* Built one hour back and 90 days ahead when the program started. */
    assert_true(info.not_before <= now - apr_time_from_sec(3500));
    assert_true(info.not_before >= now - apr_time_from_sec(3700));
    assert_true(info.not_after - info.not_before >= apr_time_from_sec(90L * 86400 + 3600 - 2));
    assert_true(info.not_after - info.not_before <= apr_time_from_sec(90L * 86400 + 3600 + 2));
    assert_int_equal(info.sans->nelts, 4);
    assert_string_equal(APR_ARRAY_IDX(info.sans, 0, acme_ident_t).value, "example.org");
    assert_int_equal(APR_ARRAY_IDX(info.sans, 1, acme_ident_t).type, ACME_IDENT_DNS);
    assert_string_equal(APR_ARRAY_IDX(info.sans, 1, acme_ident_t).value, "*.example.org");
    assert_int_equal(APR_ARRAY_IDX(info.sans, 2, acme_ident_t).type, ACME_IDENT_IP);
    assert_string_equal(APR_ARRAY_IDX(info.sans, 2, acme_ident_t).value, "192.0.2.1");
    assert_string_equal(APR_ARRAY_IDX(info.sans, 3, acme_ident_t).value, "2001:db8::1");

    assert_int_equal(acme_crypto_cert_info(p, wrap(p, fx.root), &info, &res), APR_SUCCESS);
    assert_int_equal(info.sans->nelts, 0);
    assert_string_equal(info.issuer_cn, "Test Root");
}

static void test_cert_check_time(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    acme_cert_info_t info;
    acme_cert_t *cert = wrap(p, fx.leaf);

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_cert_info(p, cert, &info, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_check_time(p, cert, apr_time_now(), &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_check_time(p, cert, info.not_before, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_check_time(p, cert, info.not_after, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_check_time(p, cert, info.not_before - 1000000, &res),
                     APR_EINVAL);
    assert_non_null(strstr(res.message, "not valid before"));
    assert_int_equal(acme_crypto_cert_check_time(p, cert, info.not_after + 1000000, &res),
                     APR_EINVAL);
    assert_non_null(strstr(res.message, "expired"));
}

/* ------------------------------------------------------------------ ARI */

/* RFC 9773's example: AKI 69:88:5B:...:C8:D4, serial 0x0087654321. */
static X509 *make_ari_example(void)
{
    static const unsigned char keyid[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1,
                                           0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01,
                                           0xC8, 0xD4 };
    X509 *x = make_cert("ari.test", fx.leaf_key, NULL, NULL, 0, NULL, 0);
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    BIGNUM *bn = NULL;
    int loc;

    assert_non_null(x);
    /* Replace the AKI make_cert put in. */
    loc = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);
    X509_EXTENSION_free(X509_delete_ext(x, loc));
    akid->keyid = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(akid->keyid, keyid, sizeof(keyid));
    assert_int_equal(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
                                       X509V3_ADD_DEFAULT), 1);
    AUTHORITY_KEYID_free(akid);
    assert_true(BN_hex2bn(&bn, "87654321"));
    assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
    BN_free(bn);
    assert_true(X509_sign(x, acme_crypto_key_evp(fx.leaf_key), EVP_sha256()) > 0);
    return x;
}

static void test_ari_cert_id_rfc9773_example(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *id = NULL;
    acme_cert_info_t info;
    X509 *x = make_ari_example();
    acme_cert_t *cert = wrap(p, x);

    X509_free(x);
    acme_result_reset(&res);
    assert_int_equal(acme_crypto_ari_cert_id(p, cert, &id, &res), APR_SUCCESS);
    assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_int_equal(acme_crypto_cert_info(p, cert, &info, &res), APR_SUCCESS);
    assert_string_equal(info.serial_hex, "87654321");
    assert_int_equal(info.serial_der_len, 5);
    assert_int_equal(info.serial_der[0], 0x00);
}

static void test_ari_cert_id_needs_aki(void **state)
{
    apr_pool_t *p = *state;
    acme_result_t res;
    const char *id = NULL;
    X509 *x = make_cert("no-aki.test", fx.leaf_key, NULL, NULL, 0, NULL, 5);
    acme_cert_t *cert;

    X509_EXTENSION_free(X509_delete_ext(x, X509_get_ext_by_NID(x, NID_authority_key_identifier,
                                                                -1)));
    cert = wrap(p, x);
    X509_free(x);
    acme_result_reset(&res);
    assert_int_equal(acme_crypto_ari_cert_id(p, cert, &id, &res), APR_EINVAL);
    assert_null(id);
    /* The leaf's own id: serial 0x12345678 needs no sign octet. */
    assert_int_equal(acme_crypto_ari_cert_id(p, wrap(p, fx.leaf), &id, &res), APR_SUCCESS);
    assert_non_null(strstr(id, ".EjRWeA"));
}

/* ------------------------------------------------------------------ self-signed */

static X509 *pem_x509(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

    BIO_free(bio);
    assert_non_null(x);
    return x;
}

static const X509_EXTENSION *find_ext(X509 *x, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int loc = X509_get_ext_by_OBJ(x, obj, -1);

    /* Exactly one. */
    assert_true(loc < 0 || X509_get_ext_by_OBJ(x, obj, loc) < 0);
    ASN1_OBJECT_free(obj);
    return loc >= 0 ? X509_get_ext(x, loc) : NULL;
}

static void test_selfsigned_tls_alpn(void **state)
{
    apr_pool_t *p = *state;
    const acme_ident_t id = { ACME_IDENT_DNS, "alpn.example.org" };
    unsigned char digest[32];
    acme_result_t res;
    const char *pem = NULL;
    const X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *value;
    GENERAL_NAMES *gens;
    X509 *x;
    acme_cert_t *cert;
    acme_cert_info_t info;
    apr_time_t now = apr_time_now();

    acme_crypto_sha256("token.thumbprint", 16, digest);
    acme_result_reset(&res);
    assert_int_equal(acme_crypto_selfsigned_create(p, fx.leaf_key, &id,
                                                   apr_time_from_sec(7 * 86400), digest, &pem,
                                                   &res), APR_SUCCESS);
    x = pem_x509(pem);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    assert_int_equal(X509_verify(x, acme_crypto_key_evp(fx.leaf_key)), 1);

    ext = find_ext(x, "1.3.6.1.5.5.7.1.31");
    assert_non_null(ext);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
    value = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    assert_int_equal(ASN1_STRING_length(value), 34);
    assert_int_equal(ASN1_STRING_get0_data(value)[0], 0x04);
    assert_int_equal(ASN1_STRING_get0_data(value)[1], 0x20);
    assert_memory_equal(ASN1_STRING_get0_data(value) + 2, digest, 32);

    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    assert_dns(sk_GENERAL_NAME_value(gens, 0), "alpn.example.org");
    GENERAL_NAMES_free(gens);

    cert = wrap(p, x);
    X509_free(x);
    assert_int_equal(acme_crypto_chain_check(p, chain_of(p, 1, acme_crypto_cert_x509(cert)),
                                             &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_key_matches_cert(fx.leaf_key, cert, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_info(p, cert, &info, &res), APR_SUCCESS);
    assert_true(info.serial_der_len >= 8 && info.serial_der_len <= 20);
    assert_true((info.serial_der[0] & 0x80) == 0);
    assert_true(info.not_before <= now + apr_time_from_sec(1));
    assert_true(info.not_before >= now - apr_time_from_sec(60));
    assert_true(info.not_after - info.not_before == apr_time_from_sec(7 * 86400));
}

static void test_selfsigned_ip_and_plain(void **state)
{
    apr_pool_t *p = *state;
    static const unsigned char v6[] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 0x42 };
    const acme_ident_t ip = { ACME_IDENT_IP, "2001:db8::42" };
    const acme_ident_t dns = { ACME_IDENT_DNS, "fallback.example.org" };
    acme_result_t res;
    const char *pem = NULL, *pem2 = NULL;
    GENERAL_NAMES *gens;
    X509 *x, *x2;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_selfsigned_create(p, fx.rsa, &ip, apr_time_from_sec(3600),
                                                   NULL, &pem, &res), APR_SUCCESS);
    x = pem_x509(pem);
    assert_null(find_ext(x, "1.3.6.1.5.5.7.1.31"));
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    assert_ip(sk_GENERAL_NAME_value(gens, 0), v6, 16);
    GENERAL_NAMES_free(gens);
    assert_int_equal(X509_verify(x, acme_crypto_key_evp(fx.rsa)), 1);

    /* Serials are random. */
    assert_int_equal(acme_crypto_selfsigned_create(p, fx.leaf_key, &dns, apr_time_from_sec(3600),
                                                   NULL, &pem2, &res), APR_SUCCESS);
    x2 = pem_x509(pem2);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
                                          X509_get0_serialNumber(x2)), 0);
    X509_free(x);
    X509_free(x2);

    assert_int_equal(acme_crypto_selfsigned_create(p, fx.leaf_key, &dns, 0, NULL, &pem, &res),
                     APR_EINVAL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, unit_setup_pool, teardown_test)
    const struct CMUnitTest tests[] = {
        T(test_keyspec_parse),
        T(test_key_pem_round_trip),
        T(test_key_from_pem_rejects),
        T(test_sha256),
        T(test_csr_contents),
        T(test_csr_rsa_and_cn_rules),
        T(test_csr_rejects_bad_identifiers),
        T(test_chain_parse_and_serialise),
        T(test_chain_parse_rejects),
        T(test_chain_check),
        T(test_chain_check_verifies_signatures),
        T(test_key_matches_cert),
        T(test_cert_covers),
        T(test_cert_info),
        T(test_cert_check_time),
        T(test_ari_cert_id_rfc9773_example),
        T(test_ari_cert_id_needs_aki),
        T(test_selfsigned_tls_alpn),
        T(test_selfsigned_ip_and_plain),
    };
#undef T
    return cmocka_run_group_tests_name("crypto", tests, setup_group, teardown_group);
}
