#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
/* pem.h first: cms.h declares its PEM functions only when the PEM macros exist. */
#include <openssl/pem.h>
#include <openssl/cms.h>

#include "acme_perms.h"
#include "acme_seal.h"
#include "acme_store.h"

#define ACME_SEAL_VALIDITY apr_time_from_sec((apr_time_t)100 * 365 * 24 * 3600)

static const char *acme_seal_path(apr_pool_t *p, const char *store_dir, const char *file)
{
    return apr_pstrcat(p, store_dir, "/" ACME_SEAL_DIR "/", file, NULL);
}

static apr_status_t acme_seal_fail(acme_result_t *res, apr_pool_t *p, const char *what)
{
    ERR_clear_error();
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                            apr_pstrcat(p, "sealing: ", what, NULL));
}

/* Names the file in a parse failure: "certificate chain holds no certificate" says nothing. */
static apr_status_t acme_seal_damaged(apr_pool_t *p, acme_result_t *res, const char *path)
{
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                            apr_psprintf(p, "%s is damaged (%s)", path,
                                         res->message ? res->message : "does not parse"));
}

/* Sets path aside when it exists in any form; appends what was done to *note. */
static apr_status_t acme_seal_set_aside(apr_pool_t *p, const char *path, const char *why,
                                        const char **note, acme_result_t *res)
{
    apr_finfo_t fi;
    const char *aside = NULL;
    apr_status_t rv;

    if (apr_stat(&fi, path, APR_FINFO_LINK | APR_FINFO_TYPE, p) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if ((rv = acme_store_set_aside(p, path, &aside, res)) != APR_SUCCESS) {
        return rv;
    }
    *note = apr_psprintf(p, "%s%s%s could not be used (%s); set aside as %s and made anew",
                         *note ? *note : "", *note ? "; " : "", path, why, aside);
    return APR_SUCCESS;
}

apr_status_t acme_seal_repair(apr_pool_t *p, const char *store_dir, const char **note,
                              acme_result_t *res)
{
    const char *proof_path = acme_seal_path(p, store_dir, "proof.key");
    const unsigned char *proof = NULL;
    acme_key_t *key = NULL;
    acme_cert_t *cert = NULL;
    acme_result_t why;
    apr_status_t rv = APR_SUCCESS;
    apr_pool_t *sp;

    *note = NULL;
    apr_pool_create(&sp, p);
    acme_result_reset(&why);
    if (acme_seal_proof_key_load(sp, store_dir, &proof, &why) != APR_SUCCESS
        && !APR_STATUS_IS_ENOENT(why.status)) {
        rv = acme_seal_set_aside(p, proof_path, acme_result_describe(&why, p), note, res);
    }
    acme_result_reset(&why);
    if (rv == APR_SUCCESS
        && (acme_seal_key_load(sp, store_dir, &key, &cert, &why) != APR_SUCCESS
            || acme_crypto_key_matches_cert(key, cert, &why) != APR_SUCCESS)
        && !APR_STATUS_IS_ENOENT(why.status)) {
        const char *text = acme_result_describe(&why, p);
        rv = acme_seal_set_aside(p, acme_seal_path(p, store_dir, "seal.key"), text, note, res);
        if (rv == APR_SUCCESS) {
            rv = acme_seal_set_aside(p, acme_seal_path(p, store_dir, "seal.pem"), text, note,
                                     res);
        }
    }
    apr_pool_destroy(sp);
    return rv;
}

static const char *acme_seal_bio_text(apr_pool_t *p, BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);

    return len > 0 ? apr_pstrmemdup(p, data, (apr_size_t)len) : NULL;
}

apr_status_t acme_seal_keypair_ensure(apr_pool_t *p, const char *store_dir,
                                      const char **cert_pem, acme_result_t *res)
{
    const char *cert_path = acme_seal_path(p, store_dir, "seal.pem");
    const char *key_path = acme_seal_path(p, store_dir, "seal.key");
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = "seal.mod-acme.invalid" };
    apr_finfo_t finfo;
    apr_size_t len = 0;
    acme_key_t *key = NULL;
    const char *key_pem = NULL;
    char *text = NULL;
    apr_status_t rv;

    if ((rv = acme_seal_proof_key_ensure(p, store_dir, res)) != APR_SUCCESS) {
        return rv;
    }
    if (apr_stat(&finfo, key_path, APR_FINFO_TYPE, p) == APR_SUCCESS
        && acme_store_read_file(p, cert_path, &text, &len, 0, res) == APR_SUCCESS) {
        *cert_pem = text;
        return APR_SUCCESS;
    }
    acme_result_reset(res);
    if ((rv = acme_crypto_key_generate(p, &spec, &key, res)) != APR_SUCCESS
        || (rv = acme_crypto_selfsigned_create(p, key, &ident, ACME_SEAL_VALIDITY, NULL,
                                               cert_pem, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(p, key, &key_pem, res)) != APR_SUCCESS
        || (rv = acme_store_write_file(p, key_path, key_pem, strlen(key_pem), ACME_PERMS_0600, res))
           != APR_SUCCESS) {
        return rv;
    }
    return acme_store_write_file(p, cert_path, *cert_pem, strlen(*cert_pem), ACME_PERMS_0644, res);
}

apr_status_t acme_seal_key_load(apr_pool_t *p, const char *store_dir, acme_key_t **key,
                                acme_cert_t **cert, acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    const char *cert_path = acme_seal_path(p, store_dir, "seal.pem");
    const char *key_path = acme_seal_path(p, store_dir, "seal.key");

    rv = acme_store_read_file(p, cert_path, &text, &len, 0, res);
    if (rv == APR_SUCCESS && acme_crypto_chain_parse(p, text, len, &chain, res) != APR_SUCCESS) {
        return acme_seal_damaged(p, res, cert_path);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *cert = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    rv = acme_store_read_file(p, key_path, &text, &len, 0, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_crypto_key_from_pem(p, text, len, key, res);
    OPENSSL_cleanse(text, len);
    return rv == APR_SUCCESS ? rv : acme_seal_damaged(p, res, key_path);
}

apr_status_t acme_seal_encrypt(apr_pool_t *p, const char *seal_cert_pem, const void *data,
                               apr_size_t len, const char **sealed, acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    apr_status_t rv = acme_crypto_chain_parse(p, seal_cert_pem, strlen(seal_cert_pem), &chain,
                                              res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_seal_encrypt_to(p, APR_ARRAY_IDX(chain, 0, acme_cert_t *), data, len, sealed,
                                res);
}

apr_status_t acme_seal_encrypt_to(apr_pool_t *p, const acme_cert_t *seal_cert, const void *data,
                                  apr_size_t len, const char **sealed, acme_result_t *res)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    CMS_ContentInfo *cms = NULL;
    BIO *in = BIO_new_mem_buf(data, (int)len), *out = BIO_new(BIO_s_mem());
    apr_status_t rv;

    if (recipients && in && out && sk_X509_push(recipients, acme_crypto_cert_x509(seal_cert))) {
        cms = CMS_encrypt(recipients, in, EVP_aes_256_cbc(), CMS_BINARY);
    }
    rv = (cms && PEM_write_bio_CMS(out, cms) && (*sealed = acme_seal_bio_text(p, out)))
         ? APR_SUCCESS : acme_seal_fail(res, p, "cannot encrypt to the seal certificate");
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    sk_X509_free(recipients);
    return rv;
}

static apr_status_t acme_seal_wipe(void *data)
{
    char *text = data;

    OPENSSL_cleanse(text, strlen(text));
    return APR_SUCCESS;
}

apr_status_t acme_seal_decrypt(apr_pool_t *p, const acme_key_t *key, const acme_cert_t *cert,
                               const char *sealed, apr_size_t len, char **data,
                               apr_size_t *data_len, acme_result_t *res)
{
    BIO *in = BIO_new_mem_buf(sealed, (int)len), *out = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = in ? PEM_read_bio_CMS(in, NULL, NULL, NULL) : NULL;
    apr_status_t rv = APR_SUCCESS;
    char *plain = NULL;
    long plain_len;

    if (!cms || !out || !CMS_decrypt(cms, acme_crypto_key_evp(key), acme_crypto_cert_x509(cert),
                                     NULL, out, CMS_BINARY)) {
        ERR_clear_error();
        rv = acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                              "sealing: a staged key cannot be opened with this store's seal key");
    }
    else {
        plain_len = BIO_get_mem_data(out, &plain);
        *data = apr_pstrmemdup(p, plain, (apr_size_t)plain_len);
        *data_len = (apr_size_t)plain_len;
        OPENSSL_cleanse(plain, (size_t)plain_len);
        apr_pool_cleanup_register(p, *data, acme_seal_wipe, apr_pool_cleanup_null);
    }
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    return rv;
}

apr_status_t acme_seal_public_pem(apr_pool_t *p, const acme_key_t *key, const char **pem,
                                  acme_result_t *res)
{
    BIO *out = BIO_new(BIO_s_mem());
    apr_status_t rv = (out && PEM_write_bio_PUBKEY(out, acme_crypto_key_evp(key))
                       && (*pem = acme_seal_bio_text(p, out)))
                      ? APR_SUCCESS : acme_seal_fail(res, p, "cannot write a public key");

    BIO_free(out);
    return rv;
}

apr_status_t acme_seal_public_from_pem(apr_pool_t *p, const char *pem, apr_size_t len,
                                       acme_key_t **key, acme_result_t *res)
{
    BIO *in = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = in ? PEM_read_bio_PUBKEY(in, NULL, NULL, NULL) : NULL;

    BIO_free(in);
    if (!pkey) {
        ERR_clear_error();
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "sealing: unreadable public key of a pending order");
    }
    return acme_crypto_key_wrap(p, pkey, key, res);
}

/* ------------------------------------------------------------------ proof of origin */

static apr_status_t acme_seal_wipe_key(void *data)
{
    OPENSSL_cleanse(data, ACME_SEAL_PROOF_KEY_LEN);
    return APR_SUCCESS;
}

apr_status_t acme_seal_proof_key_ensure(apr_pool_t *p, const char *store_dir,
                                        acme_result_t *res)
{
    const char *path = acme_seal_path(p, store_dir, "proof.key");
    unsigned char key[ACME_SEAL_PROOF_KEY_LEN];
    const unsigned char *loaded = NULL;
    apr_pool_t *sp;
    apr_status_t rv;

    apr_pool_create(&sp, p);
    rv = acme_seal_proof_key_load(sp, store_dir, &loaded, res);
    apr_pool_destroy(sp);
    if (rv == APR_SUCCESS || !APR_STATUS_IS_ENOENT(rv)) {
        return rv;      /* there but broken: acme_seal_repair sets it aside first, logged */
    }
    acme_result_reset(res);
    if (RAND_bytes(key, sizeof(key)) != 1) {
        return acme_seal_fail(res, p, "no random bytes for the proof key");
    }
    rv = acme_store_write_file(p, path, key, sizeof(key), ACME_PERMS_0600, res);
    OPENSSL_cleanse(key, sizeof(key));
    return rv;
}

apr_status_t acme_seal_proof_key_load(apr_pool_t *p, const char *store_dir,
                                      const unsigned char **key, acme_result_t *res)
{
    const char *path = acme_seal_path(p, store_dir, "proof.key");
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv = acme_store_read_file(p, path, &data, &len, 4096, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (len != ACME_SEAL_PROOF_KEY_LEN) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_pstrcat(p, path, " is damaged (wrong length); httpd sets it "
                                            "aside and makes a new one at its next (graceful) "
                                            "restart: staged certificates are then ordered "
                                            "again", NULL));
    }
    apr_pool_cleanup_register(p, data, acme_seal_wipe_key, apr_pool_cleanup_null);
    *key = (const unsigned char *)data;
    return APR_SUCCESS;
}

static void acme_seal_put_len(unsigned char *out, apr_size_t len)
{
    for (int i = 0; i < 8; ++i) {
        out[i] = (unsigned char)((apr_uint64_t)len >> (8 * (7 - i)));
    }
}

const char *acme_seal_proof(apr_pool_t *p, const unsigned char *key, const char *context,
                            const acme_seal_part_t *parts, int n_parts)
{
    apr_size_t total = 8 + strlen(context), at = 0;
    unsigned char mac[EVP_MAX_MD_SIZE], *buf;
    unsigned int mac_len = 0, i;
    char *hex;
    int j;

    for (j = 0; j < n_parts; ++j) {
        total += 8 + parts[j].len;
    }
    buf = apr_palloc(p, total);
    acme_seal_put_len(buf, strlen(context));
    memcpy(buf + 8, context, strlen(context));
    at = 8 + strlen(context);
    for (j = 0; j < n_parts; ++j) {
        acme_seal_put_len(buf + at, parts[j].len);
        memcpy(buf + at + 8, parts[j].data, parts[j].len);
        at += 8 + parts[j].len;
    }
    if (!HMAC(EVP_sha256(), key, ACME_SEAL_PROOF_KEY_LEN, buf, total, mac, &mac_len)) {
        ERR_clear_error();
        return NULL;
    }
    hex = apr_palloc(p, 2 * mac_len + 1);
    for (i = 0; i < mac_len; ++i) {
        apr_snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    return hex;
}

int acme_seal_proof_equal(const char *a, const char *b)
{
    return a && b && strlen(a) == strlen(b) && strlen(a) > 0
           && CRYPTO_memcmp(a, b, strlen(a)) == 0;
}
