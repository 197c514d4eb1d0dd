/*
 * Sealing private keys with the cluster secret before they enter etcd: see acme_vault.h.
 */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "acme_vault.h"

#define ACME_VAULT_PREFIX "acme-vault-v1:"
#define ACME_VAULT_NONCE 12
#define ACME_VAULT_TAG 16
#define ACME_VAULT_MAX_DATA (1024 * 1024)

struct acme_vault_t {
    unsigned char key[32];
    char id[17];
};

static apr_status_t acme_vault_wipe(void *data)
{
    OPENSSL_cleanse(data, sizeof(acme_vault_t));
    return APR_SUCCESS;
}

/* HKDF-SHA-256 of the secret; info tells the uses apart (the cipher key, the fingerprint). */
static int acme_vault_derive(const unsigned char *secret, apr_size_t len, const char *info,
                             unsigned char *out, apr_size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    static char salt[] = "mod_acme cluster secret";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof(salt) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, out_len, params) == 1;

    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok;
}

apr_status_t acme_vault_create(acme_vault_t **out, apr_pool_t *p, const void *secret,
                               apr_size_t len, acme_result_t *res)
{
    acme_vault_t *vault = apr_pcalloc(p, sizeof(*vault));
    unsigned char fp[8];
    int i;

    while (len > 0 && (((const char *)secret)[len - 1] == '\n'
                       || ((const char *)secret)[len - 1] == '\r')) {
        --len;
    }
    if (len < ACME_VAULT_MIN_SECRET || len > ACME_VAULT_MAX_SECRET) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the cluster secret has %lu bytes; it needs %d "
                                             "to %d (e.g. the output of openssl rand -base64 32)",
                                             (unsigned long)len, ACME_VAULT_MIN_SECRET,
                                             ACME_VAULT_MAX_SECRET));
    }
    apr_pool_cleanup_register(p, vault, acme_vault_wipe, apr_pool_cleanup_null);
    if (!acme_vault_derive(secret, len, "acme-vault-v1 aes-256-gcm", vault->key,
                           sizeof(vault->key))
        || !acme_vault_derive(secret, len, "acme-vault-v1 fingerprint", fp, sizeof(fp))) {
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_ADMIN,
                                "OpenSSL cannot derive the cluster key (HKDF-SHA-256)");
    }
    for (i = 0; i < 8; ++i) {
        apr_snprintf(vault->id + 2 * i, 3, "%02x", fp[i]);
    }
    *out = vault;
    return APR_SUCCESS;
}

const char *acme_vault_id(const acme_vault_t *vault)
{
    return vault->id;
}

/* One AES-256-GCM pass: enc 1 seals in into out and writes tag; enc 0 opens and checks it. */
static int acme_vault_gcm(const acme_vault_t *vault, int enc, const unsigned char *nonce,
                          const char *aad, const unsigned char *in, int len, unsigned char *out,
                          unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, ok;

    ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, vault->key, nonce, enc) == 1
         && EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1
         && (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, len) == 1)
         && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ACME_VAULT_TAG, tag) == 1)
         && EVP_CipherFinal_ex(ctx, out + (len ? n : 0), &fin) == 1
         && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ACME_VAULT_TAG, tag) == 1);
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

apr_status_t acme_vault_seal(const acme_vault_t *vault, apr_pool_t *p, const char *where,
                             const void *data, apr_size_t len, const char **sealed,
                             acme_result_t *res)
{
    apr_size_t total = ACME_VAULT_NONCE + len + ACME_VAULT_TAG;
    unsigned char *buf;
    char *text;

    if (len > ACME_VAULT_MAX_DATA) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "a value to seal for the cluster is larger than 1 MiB");
    }
    buf = apr_palloc(p, total);
    if (RAND_bytes(buf, ACME_VAULT_NONCE) != 1
        || !acme_vault_gcm(vault, 1, buf, where, data, (int)len, buf + ACME_VAULT_NONCE,
                           buf + ACME_VAULT_NONCE + len)) {
        return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                                "OpenSSL cannot seal a value for the cluster (AES-256-GCM)");
    }
    text = apr_palloc(p, sizeof(ACME_VAULT_PREFIX) + (apr_size_t)apr_base64_encode_len((int)total));
    memcpy(text, ACME_VAULT_PREFIX, sizeof(ACME_VAULT_PREFIX) - 1);
    apr_base64_encode(text + sizeof(ACME_VAULT_PREFIX) - 1, (const char *)buf, (int)total);
    *sealed = text;
    return APR_SUCCESS;
}

static apr_status_t acme_vault_refuse(acme_result_t *res, apr_pool_t *p, const char *where,
                                      const char *why)
{
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                            apr_psprintf(p, "the cluster's value %s cannot be opened: %s", where,
                                         why));
}

apr_status_t acme_vault_open(const acme_vault_t *vault, apr_pool_t *p, const char *where,
                             const char *sealed, char **data, apr_size_t *len,
                             acme_result_t *res)
{
    apr_size_t plen = sizeof(ACME_VAULT_PREFIX) - 1, n, i;
    const char *b64;
    unsigned char *buf;

    if (!sealed || strncmp(sealed, ACME_VAULT_PREFIX, plen) != 0) {
        return acme_vault_refuse(res, p, where, "it is not sealed (no acme-vault-v1: prefix)");
    }
    b64 = sealed + plen;
    for (i = 0; b64[i]; ++i) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", b64[i])) {
            return acme_vault_refuse(res, p, where, "it is not base64");
        }
    }
    if (i > 2 * ACME_VAULT_MAX_DATA) {
        return acme_vault_refuse(res, p, where, "it is too large");
    }
    buf = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 1);
    n = (apr_size_t)apr_base64_decode_binary(buf, b64);
    if (n < ACME_VAULT_NONCE + ACME_VAULT_TAG) {
        return acme_vault_refuse(res, p, where, "it is too short");
    }
    *len = n - ACME_VAULT_NONCE - ACME_VAULT_TAG;
    *data = apr_palloc(p, *len + 1);
    if (!acme_vault_gcm(vault, 0, buf, where, buf + ACME_VAULT_NONCE, (int)*len,
                        (unsigned char *)*data, buf + ACME_VAULT_NONCE + *len)) {
        OPENSSL_cleanse(*data, *len);
        return acme_vault_refuse(res, p, where, "it was sealed with another cluster secret, "
                                 "for another key, or changed since");
    }
    (*data)[*len] = '\0';
    return APR_SUCCESS;
}
