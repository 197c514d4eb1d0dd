/* The certificate API's pure decisions (issue 17): name patterns, HMAC signatures, rates,
 * CSR checks, and its request files in a scratch store. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_api.h"
#include "acme_api_csr.h"
#include "acme_api_store.h"
#include "unit_support.h"

/* ------------------------------------------------------------------ patterns */

static void test_pattern_match(void **state)
{
    (void)state;
    assert_true(acme_api_pattern_match("mail.example.org", "mail.example.org"));
    assert_true(acme_api_pattern_match("mail.example.org", "MAIL.Example.org"));
    assert_false(acme_api_pattern_match("mail.example.org", "www.mail.example.org"));
    assert_true(acme_api_pattern_match("*.example.org", "a.example.org"));
    assert_false(acme_api_pattern_match("*.example.org", "example.org"));
    assert_false(acme_api_pattern_match("*.example.org", "a.b.example.org"));
    assert_false(acme_api_pattern_match("*.example.org", "aexample.org"));
    assert_true(acme_api_pattern_match("*.example.org", "*.example.org"));
    assert_false(acme_api_pattern_match("*.example.org", "*.a.example.org"));
    assert_true(acme_api_pattern_match("**.example.org", "a.example.org"));
    assert_true(acme_api_pattern_match("**.example.org", "a.b.c.example.org"));
    assert_true(acme_api_pattern_match("**.example.org", "*.b.example.org"));
    assert_false(acme_api_pattern_match("**.example.org", "example.org"));
    assert_false(acme_api_pattern_match("**.example.org", "badexample.org"));
    assert_false(acme_api_pattern_match("**.example.org", "example.org.evil.test"));
    assert_false(acme_api_pattern_match("*.example.org", ""));
}

static void test_pattern_check(void **state)
{
    apr_pool_t *p = *state;

    assert_null(acme_api_pattern_check(p, "mail.example.org"));
    assert_null(acme_api_pattern_check(p, "*.example.org"));
    assert_null(acme_api_pattern_check(p, "**.example.org"));
    assert_non_null(strstr(acme_api_pattern_check(p, "a*.example.org"), "first label"));
    assert_non_null(strstr(acme_api_pattern_check(p, "*.*.example.org"), "first label"));
    assert_non_null(strstr(acme_api_pattern_check(p, "***.example.org"), "first label"));
    assert_non_null(acme_api_pattern_check(p, "a..example.org"));
    assert_non_null(strstr(acme_api_pattern_check(p, "192.0.2.1"), "IP"));
}

static void test_patterns_allow_every_name(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *pats = apr_array_make(p, 2, sizeof(const char *));
    const char *ok[] = { "mail.example.org", "a.b.hosted.test" };
    const char *bad[] = { "mail.example.org", "www.example.org" };

    APR_ARRAY_PUSH(pats, const char *) = "mail.example.org";
    APR_ARRAY_PUSH(pats, const char *) = "**.hosted.test";
    assert_true(acme_api_patterns_allow(pats, ok, 2));
    assert_false(acme_api_patterns_allow(pats, bad, 2));
    assert_false(acme_api_patterns_allow(pats, ok, 0));
}

/* ------------------------------------------------------------------ HMAC */

#define KEY "0123456789abcdef0123456789abcdef"

static void test_hmac_good_bad_stale(void **state)
{
    apr_pool_t *p = *state;
    const unsigned char *key = (const unsigned char *)KEY;
    apr_time_t now = apr_time_from_sec(1700000000);
    const char *sig = acme_api_hmac_make(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         "body", 4);
    const char *reason = NULL;

    assert_int_equal(strlen(sig), 64);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         sig, "body", 4, now, &reason), APR_SUCCESS);
    /* another body, path, method or key */
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         sig, "bodY", 4, now, &reason), APR_EACCES);
    assert_non_null(strstr(reason, "does not match"));
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/domains", "1700000000",
                                         sig, "body", 4, now, &reason), APR_EACCES);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "GET", "/api/certificates", "1700000000",
                                         sig, "body", 4, now, &reason), APR_EACCES);
    assert_int_equal(acme_api_hmac_check(p, (const unsigned char *)"x" KEY, 32, "POST",
                                         "/api/certificates", "1700000000", sig, "body", 4, now,
                                         &reason), APR_EACCES);
    /* 5 minutes either way; one second more is stale */
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         sig, "body", 4, now + apr_time_from_sec(300), &reason),
                     APR_SUCCESS);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         sig, "body", 4, now + apr_time_from_sec(301), &reason),
                     APR_EACCES);
    assert_non_null(strstr(reason, "5 minutes"));
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         sig, "body", 4, now - apr_time_from_sec(301), &reason),
                     APR_EACCES);
    /* no or malformed headers */
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/x", "17e8", sig, "", 0, now,
                                         &reason), APR_EACCES);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/x", NULL, sig, "", 0, now,
                                         &reason), APR_EACCES);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/x", "1700000000", NULL, "", 0,
                                         now, &reason), APR_EACCES);
    assert_int_equal(acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", "1700000000",
                                         apr_pstrndup(p, sig, 63), "body", 4, now, &reason),
                     APR_EACCES);
}

static void test_hmac_key_file(void **state)
{
    apr_pool_t *p = *state;
    const char *reason = NULL;
    apr_size_t len = 0;

    assert_string_equal(acme_api_hmac_key(p, "  " KEY "\n", 35, &len, &reason), KEY);
    assert_int_equal(len, 32);
    assert_null(acme_api_hmac_key(p, "short\n", 6, &len, &reason));
    assert_non_null(strstr(reason, "at least 32"));
    assert_null(strstr(reason, "short"));       /* the key is never repeated */
}

/* ------------------------------------------------------------------ rate */

static void test_rate_parse(void **state)
{
    apr_pool_t *p = *state;
    acme_api_rate_t r;
    const char *reason = NULL;

    assert_int_equal(acme_api_rate_parse("10/1h", &r, &reason, p), APR_SUCCESS);
    assert_int_equal(r.n, 10);
    assert_true(r.period == apr_time_from_sec(3600));
    assert_int_equal(acme_api_rate_parse("5/30s", &r, &reason, p), APR_SUCCESS);
    assert_true(r.period == apr_time_from_sec(30));
    assert_int_equal(acme_api_rate_parse("100/d", &r, &reason, p), APR_SUCCESS);
    assert_true(r.period == apr_time_from_sec(86400));
    assert_int_equal(acme_api_rate_parse("10", &r, &reason, p), APR_EINVAL);
    assert_non_null(strstr(reason, "10/1h"));
    assert_int_equal(acme_api_rate_parse("0/1h", &r, &reason, p), APR_EINVAL);
    assert_int_equal(acme_api_rate_parse("10/1w", &r, &reason, p), APR_EINVAL);
    assert_int_equal(acme_api_rate_parse("10/1hx", &r, &reason, p), APR_EINVAL);
    assert_int_equal(acme_api_rate_parse("/1h", &r, &reason, p), APR_EINVAL);
    assert_int_equal(acme_api_rate_parse("-1/1h", &r, &reason, p), APR_EINVAL);
}

static void test_rate_window(void **state)
{
    acme_api_rate_t r = { .n = 2, .period = apr_time_from_sec(60) };
    apr_time_t t0 = apr_time_from_sec(1000), start = 0;
    int count = 0;
    long retry = 0;

    (void)state;
    assert_true(acme_api_rate_take(&r, t0, &start, &count, &retry));
    assert_true(acme_api_rate_take(&r, t0 + apr_time_from_sec(10), &start, &count, &retry));
    assert_false(acme_api_rate_take(&r, t0 + apr_time_from_sec(20), &start, &count, &retry));
    assert_int_equal(retry, 41);
    assert_true(acme_api_rate_take(&r, t0 + apr_time_from_sec(60), &start, &count, &retry));
    /* a window start in the future (a broken file) starts afresh */
    start = t0 + apr_time_from_sec(100000);
    count = 2;
    assert_true(acme_api_rate_take(&r, t0, &start, &count, &retry));
    assert_int_equal(count, 1);
}

/* ------------------------------------------------------------------ CSRs */

typedef struct {
    const char *cn;
    const char *sans;           /* openssl syntax, or NULL */
    const char *extra_ext;      /* "name:value", or NULL */
    int challenge_password;
    int break_signature;
} csr_spec_t;

static const char *csr_make(apr_pool_t *p, const acme_key_t *key, const csr_spec_t *s,
                            apr_size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX ctx;
    unsigned char *der = NULL;
    const char *out;
    int n;

    X509_REQ_set_version(req, 0);
    if (s->cn) {
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                                   (const unsigned char *)s->cn, -1, -1, 0);
    }
    X509_REQ_set_pubkey(req, acme_crypto_key_evp(key));
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    if (s->sans) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
                                                         s->sans));
    }
    if (s->extra_ext) {
        char *name = apr_pstrdup(p, s->extra_ext), *value = strchr(name, ':');
        *value++ = '\0';
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf(NULL, &ctx, name, value));
    }
    if (sk_X509_EXTENSION_num(exts) > 0) {
        X509_REQ_add_extensions(req, exts);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (s->challenge_password) {
        X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                  (const unsigned char *)"secret", -1);
    }
    X509_REQ_sign(req, acme_crypto_key_evp(key), EVP_sha256());
    n = i2d_X509_REQ(req, &der);
    if (s->break_signature) {
        der[n - 5] ^= 0x55;
    }
    out = apr_pmemdup(p, der, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(der);
    X509_REQ_free(req);
    return out;
}

static const char *csr_check(apr_pool_t *p, const acme_key_t *key, const csr_spec_t *s,
                             acme_api_csr_t **csr)
{
    apr_size_t len = 0;
    const char *der = csr_make(p, key, s, &len);
    const char *reason = NULL;

    return acme_api_csr_check(p, der, len, csr, &reason) == APR_SUCCESS ? NULL : reason;
}

static void test_csr_good(void **state)
{
    apr_pool_t *p = *state;
    acme_key_t *ec = unit_key_generate(p, ACME_KEY_EC, 256);
    acme_api_csr_t *csr = NULL, *again = NULL;
    csr_spec_t s = { .cn = "MAIL.example.org",
                     .sans = "DNS:mail.example.org,DNS:imap.example.org,DNS:MAIL.example.org",
                     .extra_ext = "keyUsage:digitalSignature" };
    const char *reason = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    const unsigned char *in;
    X509_REQ *req;
    char *pem;
    long pem_len;

    assert_null(csr_check(p, ec, &s, &csr));
    assert_int_equal(csr->names->nelts, 2);     /* sorted, lower case, unique */
    assert_string_equal(APR_ARRAY_IDX(csr->names, 0, const char *), "imap.example.org");
    assert_string_equal(APR_ARRAY_IDX(csr->names, 1, const char *), "mail.example.org");
    assert_true(acme_api_id_valid(csr->id));
    /* the same CSR as PEM: the same id */
    in = csr->der;
    req = d2i_X509_REQ(NULL, &in, (long)csr->der_len);
    PEM_write_bio_X509_REQ(bio, req);
    pem_len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(acme_api_csr_check(p, pem, (apr_size_t)pem_len, &again, &reason),
                     APR_SUCCESS);
    assert_string_equal(again->id, csr->id);
    X509_REQ_free(req);
    BIO_free(bio);
}

static void test_csr_refused(void **state)
{
    apr_pool_t *p = *state;
    acme_key_t *ec = unit_key_generate(p, ACME_KEY_EC, 256);
    acme_api_csr_t *csr = NULL;
    const char *reason = NULL;
    apr_size_t len = 0;
    const char *der;
    csr_spec_t cn_only = { .cn = "a.example.org" };
    csr_spec_t cn_other = { .cn = "b.example.org", .sans = "DNS:a.example.org" };
    csr_spec_t ip = { .sans = "DNS:a.example.org,IP:192.0.2.1" };
    csr_spec_t bad_name = { .sans = "DNS:a..example.org" };
    csr_spec_t ca = { .sans = "DNS:a.example.org", .extra_ext = "basicConstraints:CA:TRUE" };
    csr_spec_t must_staple = { .sans = "DNS:a.example.org",
                               .extra_ext = "nsComment:hello" };
    csr_spec_t password = { .sans = "DNS:a.example.org", .challenge_password = 1 };
    csr_spec_t broken = { .sans = "DNS:a.example.org", .break_signature = 1 };

    assert_non_null(strstr(csr_check(p, ec, &cn_only, &csr), "subjectAltName"));
    assert_non_null(strstr(csr_check(p, ec, &cn_other, &csr), "CN"));
    assert_non_null(strstr(csr_check(p, ec, &ip, &csr), "DNS names"));
    assert_non_null(strstr(csr_check(p, ec, &bad_name, &csr), "not a valid DNS name"));
    assert_non_null(strstr(csr_check(p, ec, &ca, &csr), "CA"));
    assert_non_null(strstr(csr_check(p, ec, &must_staple, &csr), "extension"));
    assert_non_null(strstr(csr_check(p, ec, &password, &csr), "attributes"));
    assert_non_null(strstr(csr_check(p, ec, &broken, &csr), "signature"));
    /* not a CSR at all, trailing garbage, too big */
    assert_int_equal(acme_api_csr_check(p, "hello", 5, &csr, &reason), APR_EINVAL);
    der = csr_make(p, ec, &ip, &len);
    assert_int_equal(acme_api_csr_check(p, apr_pstrcat(p, apr_pstrmemdup(p, der, len), "x",
                                                       NULL), len + 1, &csr, &reason),
                     APR_EINVAL);
    assert_int_equal(acme_api_csr_check(p, der, ACME_API_CSR_MAX + 1, &csr, &reason),
                     APR_EINVAL);
}

static void test_csr_small_rsa_refused(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *pkey = EVP_RSA_gen(1024);
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX ctx;
    unsigned char *der = NULL;
    acme_api_csr_t *csr = NULL;
    const char *reason = NULL;
    int n;

    X509_REQ_set_pubkey(req, pkey);
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
                                                     "DNS:a.example.org"));
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_sign(req, pkey, EVP_sha256());
    n = i2d_X509_REQ(req, &der);
    assert_int_equal(acme_api_csr_check(p, (const char *)der, (apr_size_t)n, &csr, &reason),
                     APR_EINVAL);
    assert_non_null(strstr(reason, "2048"));
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(pkey);
}

/* ------------------------------------------------------------------ store */

static void test_store_queue_take_state(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("api");
    apr_pool_t *p = fx->pool;
    acme_key_t *ec = unit_key_generate(p, ACME_KEY_EC, 256);
    csr_spec_t s = { .sans = "DNS:a.example.org" };
    acme_api_csr_t *csr = NULL, *taken = NULL;
    apr_array_header_t *ids;
    const char *client = NULL;
    json_t *st = NULL;
    acme_result_t res;
    char *pem = NULL;
    apr_size_t len = 0;

    (void)state;
    acme_result_reset(&res);
    assert_int_equal(acme_api_store_queue_stamp(p, fx->store), 0);
    assert_null(csr_check(p, ec, &s, &csr));
    assert_int_equal(acme_api_store_queue(p, fx->st, csr, "panel", &res), APR_SUCCESS);
    assert_int_not_equal(acme_api_store_queue_stamp(p, fx->store), 0);
    assert_int_equal(acme_api_store_state(p, fx->st, csr->id, &st, &res), APR_SUCCESS);
    assert_string_equal(json_string_value(json_object_get(st, "state")), "queued");
    ids = acme_api_store_queued(p, fx->st, 10);
    assert_int_equal(ids->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(ids, 0, const char *), csr->id);
    assert_int_equal(acme_api_store_take(p, fx->st, csr->id, &client, &taken, &res),
                     APR_SUCCESS);
    assert_string_equal(client, "panel");
    assert_string_equal(taken->id, csr->id);
    assert_int_equal(acme_api_store_queued(p, fx->st, 10)->nelts, 0);
    assert_int_equal(acme_api_store_queue_stamp(p, fx->store), 0);
    assert_int_equal(acme_api_store_chain_put(p, fx->st, csr->id, "PEM", 3, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_chain(p, fx->st, csr->id, &pem, &len, &res), APR_SUCCESS);
    assert_string_equal(pem, "PEM");
    /* ids that are not ours are never looked up */
    assert_int_not_equal(acme_api_store_state(p, fx->st, "../../etc/passwd", &st, &res),
                         APR_SUCCESS);
    unit_store_fixture_free(fx);
}

static void test_store_damaged_queue_entry_removed(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("api");
    apr_pool_t *p = fx->pool;
    const char *id = "0123456789abcdef0123456789abcdef";
    acme_api_csr_t *csr = NULL;
    const char *client = NULL;
    acme_result_t res;

    (void)state;
    acme_result_reset(&res);
    unit_write_file(p, apr_pstrcat(p, fx->store, "/api-queue/", id, ".json", NULL),
                    "{\"client\":\"x\",\"csr\":\"AAAA\"}", 0600);
    assert_int_equal(acme_api_store_take(p, fx->st, id, &client, &csr, &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "damaged"));
    assert_int_equal(acme_api_store_queued(p, fx->st, 10)->nelts, 0);
    unit_store_fixture_free(fx);
}

static void test_store_replay_and_rate(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("api");
    apr_pool_t *p = fx->pool;
    acme_api_rate_t r = { .n = 2, .period = apr_time_from_sec(3600) };
    apr_time_t now = apr_time_now();
    acme_result_t res;
    long retry = 0;

    (void)state;
    acme_result_reset(&res);
    assert_int_equal(acme_api_store_seen(p, fx->st, "abcdef", now, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_seen(p, fx->st, "abcdef", now, &res), APR_EEXIST);
    assert_int_equal(acme_api_store_seen(p, fx->st, "abcdee", now, &res), APR_SUCCESS);
    assert_true(acme_api_store_rate(p, fx->st, "panel", &r, now, &retry, &res));
    assert_true(acme_api_store_rate(p, fx->st, "panel", &r, now, &retry, &res));
    assert_false(acme_api_store_rate(p, fx->st, "panel", &r, now, &retry, &res));
    assert_true(retry > 3500);
    assert_true(acme_api_store_rate(p, fx->st, "other", &r, now, &retry, &res));
    unit_store_fixture_free(fx);
}

static void test_store_renew_requests(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("api");
    apr_pool_t *p = fx->pool;
    apr_array_header_t *names;
    acme_result_t res;

    (void)state;
    acme_result_reset(&res);
    assert_int_equal(acme_api_store_renew_put(p, fx->st, "www.example.org", &res), APR_SUCCESS);
    /* what the User could plant: a bad name, a directory, a symlink (removed, never followed) */
    unit_write_file(p, apr_pstrcat(p, fx->store, "/api-queue/a..b.renew", NULL), "", 0600);
    assert_int_equal(symlink("/etc/passwd", apr_pstrcat(p, fx->store,
                                                        "/api-queue/link.example.renew", NULL)),
                     0);
    assert_int_not_equal(acme_api_store_queue_stamp(p, fx->store), 0);
    names = acme_api_store_renew_take(p, fx->store, 16);
    assert_int_equal(names->nelts, 2);
    assert_int_equal(acme_api_store_renew_take(p, fx->store, 16)->nelts, 0);
    assert_true(access("/etc/passwd", F_OK) == 0);
    unit_store_fixture_free(fx);
}

static void test_store_prune_old_results(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("api");
    apr_pool_t *p = fx->pool;
    apr_array_header_t *names = apr_array_make(p, 1, sizeof(const char *));
    apr_time_t now = apr_time_now(), day = apr_time_from_sec(86400);
    static const char *ids[] = { "0123456789abcdef0123456789abcde1",   /* expired 1 day ago */
                                 "0123456789abcdef0123456789abcde2",   /* valid for 30 days */
                                 "0123456789abcdef0123456789abcde3",   /* refused */
                                 "0123456789abcdef0123456789abcde4" }; /* still queued */
    json_t *st = NULL;
    char *pem = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    (void)state;
    acme_result_reset(&res);
    APR_ARRAY_PUSH(names, const char *) = "mail.example.org";
    assert_int_equal(acme_api_store_state_put(p, fx->st, ids[0], "mx", names, "valid", NULL,
                                              now - 90 * day, now - day, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_chain_put(p, fx->st, ids[0], "PEM", 3, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_state_put(p, fx->st, ids[1], "mx", names, "valid", NULL,
                                              now, now + 30 * day, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_state_put(p, fx->st, ids[2], "mx", names, "invalid", "no",
                                              0, 0, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_state_put(p, fx->st, ids[3], "mx", names, "queued", NULL,
                                              0, 0, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_prune(p, fx->st, now, 100), 0);    /* all still of use */
    assert_int_equal(acme_api_store_prune(p, fx->st, now + 8 * day, 100), 2);
    assert_int_equal(acme_api_store_state(p, fx->st, ids[0], &st, &res), APR_ENOENT);
    assert_int_not_equal(acme_api_store_chain(p, fx->st, ids[0], &pem, &len, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_state(p, fx->st, ids[1], &st, &res), APR_SUCCESS);
    assert_int_equal(acme_api_store_state(p, fx->st, ids[2], &st, &res), APR_ENOENT);
    assert_int_equal(acme_api_store_state(p, fx->st, ids[3], &st, &res), APR_SUCCESS);
    unit_store_fixture_free(fx);
}

static void test_ids_and_client_names(void **state)
{
    apr_pool_t *p = *state;

    assert_true(acme_api_id_valid("0123456789abcdef0123456789abcdef"));
    assert_false(acme_api_id_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(acme_api_id_valid("0123456789abcdef0123456789abcde"));
    assert_false(acme_api_id_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(acme_api_id_valid(NULL));
    assert_null(acme_api_client_name_check(p, "mail-1.panel_x"));
    assert_non_null(acme_api_client_name_check(p, ".hidden"));
    assert_non_null(acme_api_client_name_check(p, "a/b"));
    assert_non_null(acme_api_client_name_check(p, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_pattern_check),
        cmocka_unit_test(test_patterns_allow_every_name),
        cmocka_unit_test(test_hmac_good_bad_stale),
        cmocka_unit_test(test_hmac_key_file),
        cmocka_unit_test(test_rate_parse),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_csr_good),
        cmocka_unit_test(test_csr_refused),
        cmocka_unit_test(test_csr_small_rsa_refused),
        cmocka_unit_test(test_store_queue_take_state),
        cmocka_unit_test(test_store_damaged_queue_entry_removed),
        cmocka_unit_test(test_store_replay_and_rate),
        cmocka_unit_test(test_store_renew_requests),
        cmocka_unit_test(test_store_prune_old_results),
        cmocka_unit_test(test_ids_and_client_names),
    };
    return cmocka_run_group_tests_name("api", tests, unit_setup_pool, unit_teardown_pool);
}
