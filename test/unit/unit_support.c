#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "unit_support.h"

/* ------------------------------------------------------------------ fixtures */

int unit_setup_apr(void **state)
{
    apr_initialize();
    return 0;
}

int unit_teardown_apr(void **state)
{
    apr_terminate();
    return 0;
}

int unit_setup_pool(void **state)
{
    apr_pool_t *p = NULL;

    apr_initialize();
    apr_pool_create(&p, NULL);
    *state = p;
    return 0;
}

int unit_teardown_pool(void **state)
{
    apr_pool_destroy(*state);
    apr_terminate();
    return 0;
}

/* ------------------------------------------------------------------ scratch files */

const char *unit_tmpdir(apr_pool_t *p, const char *tag)
{
    char *tmpl = apr_pstrcat(p, "/tmp/acme-test-", tag, "-XXXXXX", NULL);

    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

void unit_tmpdir_remove(apr_pool_t *p, const char *dir)
{
    acme_result_t res;

    acme_result_reset(&res);
    acme_store_remove_tree(p, dir, &res);
}

acme_store_t *unit_store_open(apr_pool_t *p, const char *path)
{
    acme_store_t *st = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_store_open(p, path, &st, &res), APR_SUCCESS);
    return st;
}

unit_store_fixture_t *unit_store_fixture_make(const char *tag)
{
    apr_pool_t *pool = NULL;
    unit_store_fixture_t *fx;

    apr_pool_create(&pool, NULL);
    fx = apr_pcalloc(pool, sizeof(*fx));
    fx->pool = pool;
    fx->dir = unit_tmpdir(pool, tag);
    fx->store = apr_pstrcat(pool, fx->dir, "/store", NULL);
    fx->st = unit_store_open(pool, fx->store);
    return fx;
}

void unit_store_fixture_free(unit_store_fixture_t *fx)
{
    apr_pool_t *pool = fx->pool;   /* fx itself goes with the pool */

    unit_tmpdir_remove(pool, fx->dir);
    apr_pool_destroy(pool);
}

int unit_mode_of(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

void unit_write_file(apr_pool_t *p, const char *path, const char *text, apr_fileperms_t perms)
{
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_store_write_file(p, path, text, strlen(text), perms, &res),
                     APR_SUCCESS);
}

char *unit_read_text(apr_pool_t *p, const char *path)
{
    char *data = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    return acme_store_read_file(p, path, &data, NULL, 0, &res) == APR_SUCCESS ? data : NULL;
}

/* ------------------------------------------------------------------ keys and certificates */

acme_key_t *unit_key_generate(apr_pool_t *p, acme_key_kind_t kind, int bits)
{
    acme_keyspec_t spec = { .kind = kind, .bits = bits };
    acme_key_t *key = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_generate(p, &spec, &key, &res), APR_SUCCESS);
    return key;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

X509 *unit_cert_make(const unit_cert_spec_t *spec)
{
    X509 *x = X509_new();
    X509 *iss = spec->issuer ? spec->issuer : x;
    const acme_key_t *signer = spec->issuer_key ? spec->issuer_key : spec->key;
    X509_NAME *name = X509_get_subject_name(x);
    int ok = x && X509_set_version(x, X509_VERSION_3)
             && ASN1_INTEGER_set(X509_get_serialNumber(x), spec->serial)
             && X509_gmtime_adj(X509_getm_notBefore(x), spec->not_before)
             && X509_gmtime_adj(X509_getm_notAfter(x), spec->not_after)
             && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                           (const unsigned char *)spec->cn, -1, -1, 0)
             && X509_set_issuer_name(x, X509_get_subject_name(iss))
             && X509_set_pubkey(x, acme_crypto_key_evp(spec->key))
             && add_ext(x, iss, NID_subject_key_identifier, "hash")
             && add_ext(x, iss, NID_authority_key_identifier, "keyid:always")
             && add_ext(x, iss, NID_basic_constraints,
                        spec->is_ca ? "critical,CA:TRUE" : "CA:FALSE")
             && (!spec->sans || add_ext(x, iss, NID_subject_alt_name, spec->sans))
             && X509_sign(x, acme_crypto_key_evp(signer), EVP_sha256());

    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

const char *unit_x509_pem(apr_pool_t *p, X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    const char *pem;

    PEM_write_bio_X509(bio, x);
    len = BIO_get_mem_data(bio, &data);
    pem = apr_pstrmemdup(p, data, (apr_size_t)len);
    BIO_free(bio);
    return pem;
}
