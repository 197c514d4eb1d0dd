#include <string.h>

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "acme_b64.h"
#include "acme_jose.h"

#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

/* ------------------------------------------------------------------ errors */

static apr_status_t lib_fail(apr_pool_t *p, acme_result_t *res, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                            apr_psprintf(p, "%s: %s", what, why ? why : "no detail"));
}

static apr_status_t input_fail(acme_result_t *res, const char *message)
{
    ERR_clear_error();
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, message);
}

static apr_status_t config_fail(acme_result_t *res, const char *message)
{
    ERR_clear_error();
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, message);
}

/* ------------------------------------------------------------------ small helpers */

/* Field width of an EC key's coordinates; 0 for RSA. */
static int ec_width(const acme_key_t *key)
{
    acme_keyspec_t spec;

    acme_crypto_key_spec(key, &spec);
    if (spec.kind != ACME_KEY_EC) {
        return 0;
    }
    return spec.bits == 384 ? 48 : 32;
}

static const EVP_MD *key_md(const acme_key_t *key)
{
    return ec_width(key) == 48 ? EVP_sha384() : EVP_sha256();
}

/* Compact JSON text in the pool; NULL if jansson fails. */
static const char *json_text(apr_pool_t *p, const json_t *json)
{
    char *s = json ? json_dumps(json, JSON_OUT_FLAGS) : NULL;
    const char *copy = s ? apr_pstrdup(p, s) : NULL;

    free(s);
    return copy;
}

static const char *bn_b64(apr_pool_t *p, const BIGNUM *bn, int width)
{
    int len = width > 0 ? width : BN_num_bytes(bn);
    unsigned char *buf = apr_palloc(p, len > 0 ? (apr_size_t)len : 1);

    if (BN_bn2binpad(bn, buf, len) != len) {
        return NULL;
    }
    return acme_b64_encode(p, buf, (apr_size_t)len);
}

/* A public-key parameter as base64url: fixed width for EC coordinates, minimal for RSA. */
static const char *pkey_param_b64(apr_pool_t *p, const acme_key_t *key, const char *name,
                                  int width)
{
    BIGNUM *bn = NULL;
    const char *b64 = NULL;

    if (EVP_PKEY_get_bn_param(acme_crypto_key_evp(key), name, &bn) == 1 && bn) {
        b64 = bn_b64(p, bn, width);
    }
    BN_free(bn);
    return b64;
}

/* ------------------------------------------------------------------ JWK */

const char *acme_jose_alg(const acme_key_t *key)
{
    switch (ec_width(key)) {
    case 32: return "ES256";
    case 48: return "ES384";
    }
    return "RS256";
}

apr_status_t acme_jose_jwk(apr_pool_t *p, const acme_key_t *key, json_t **jwk,
                           acme_result_t *res)
{
    int width = ec_width(key);
    const char *a, *b;
    json_t *j;

    if (width) {
        a = pkey_param_b64(p, key, OSSL_PKEY_PARAM_EC_PUB_X, width);
        b = pkey_param_b64(p, key, OSSL_PKEY_PARAM_EC_PUB_Y, width);
        j = (a && b) ? json_pack("{s:s, s:s, s:s, s:s}", "crv", width == 48 ? "P-384" : "P-256",
                                 "kty", "EC", "x", a, "y", b) : NULL;
    }
    else {
        a = pkey_param_b64(p, key, OSSL_PKEY_PARAM_RSA_E, 0);
        b = pkey_param_b64(p, key, OSSL_PKEY_PARAM_RSA_N, 0);
        j = (a && b) ? json_pack("{s:s, s:s, s:s}", "e", a, "kty", "RSA", "n", b) : NULL;
    }
    if (!j) {
        return lib_fail(p, res, "reading the public key for its JWK failed");
    }
    *jwk = j;
    return APR_SUCCESS;
}

apr_status_t acme_jose_jwk_canonical(apr_pool_t *p, const acme_key_t *key,
                                     const char **json, acme_result_t *res)
{
    json_t *jwk = NULL;
    apr_status_t rv = acme_jose_jwk(p, key, &jwk, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* The JWK has only the required members and ASCII values: sorted compact output is
     * canonical. */
    *json = json_text(p, jwk);
    json_decref(jwk);
    if (!*json) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "serialising a JWK failed");
    }
    return APR_SUCCESS;
}

static apr_status_t jwk_member(apr_pool_t *p, json_t *jwk, const char *name,
                               unsigned char **out, apr_size_t *len, acme_result_t *res)
{
    const char *v = json_string_value(json_object_get(jwk, name));

    if (!v || acme_b64_decode(p, v, out, len) != APR_SUCCESS || *len == 0) {
        return input_fail(res, apr_psprintf(p, "JWK member '%s' is missing or not base64url",
                                            name));
    }
    return APR_SUCCESS;
}

static apr_status_t pkey_from_params(apr_pool_t *p, const char *type, OSSL_PARAM_BLD *bld,
                                     EVP_PKEY **pkey, acme_result_t *res)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *check = NULL;
    int ok;

    *pkey = NULL;
    ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1
         && EVP_PKEY_fromdata(ctx, pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
    /* fromdata takes any bytes; only a key that passes the public check may verify anything. */
    ok = ok && (check = EVP_PKEY_CTX_new_from_pkey(NULL, *pkey, NULL)) != NULL
         && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!ok) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
        return input_fail(res, apr_psprintf(p, "JWK does not hold a valid %s public key", type));
    }
    return APR_SUCCESS;
}

static apr_status_t ec_pkey_from_jwk(apr_pool_t *p, json_t *jwk, EVP_PKEY **pkey,
                                     acme_result_t *res)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    int width = !crv ? 0 : !strcmp(crv, "P-256") ? 32 : !strcmp(crv, "P-384") ? 48 : 0;
    unsigned char *x, *y, *point;
    apr_size_t xlen, ylen;
    OSSL_PARAM_BLD *bld;
    apr_status_t rv;

    if (!width) {
        return input_fail(res, "JWK curve is not P-256 or P-384");
    }
    if ((rv = jwk_member(p, jwk, "x", &x, &xlen, res)) != APR_SUCCESS
        || (rv = jwk_member(p, jwk, "y", &y, &ylen, res)) != APR_SUCCESS) {
        return rv;
    }
    if (xlen != (apr_size_t)width || ylen != (apr_size_t)width) {
        return input_fail(res, "JWK EC coordinates do not have the curve's width");
    }
    point = apr_palloc(p, 1 + 2 * (apr_size_t)width);
    point[0] = POINT_CONVERSION_UNCOMPRESSED;
    memcpy(point + 1, x, xlen);
    memcpy(point + 1 + width, y, ylen);
    if (!(bld = OSSL_PARAM_BLD_new())) {
        return lib_fail(p, res, "allocating key parameters failed");
    }
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         width == 48 ? SN_secp384r1 : SN_X9_62_prime256v1, 0)
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                             1 + 2 * (apr_size_t)width)) {
        OSSL_PARAM_BLD_free(bld);
        return lib_fail(p, res, "building key parameters failed");
    }
    rv = pkey_from_params(p, "EC", bld, pkey, res);
    OSSL_PARAM_BLD_free(bld);
    return rv;
}

static apr_status_t rsa_pkey_from_jwk(apr_pool_t *p, json_t *jwk, EVP_PKEY **pkey,
                                      acme_result_t *res)
{
    unsigned char *n, *e;
    apr_size_t nlen, elen;
    BIGNUM *bn_n, *bn_e;
    OSSL_PARAM_BLD *bld;
    apr_status_t rv;
    int ok;

    if ((rv = jwk_member(p, jwk, "n", &n, &nlen, res)) != APR_SUCCESS
        || (rv = jwk_member(p, jwk, "e", &e, &elen, res)) != APR_SUCCESS) {
        return rv;
    }
    if (nlen > 2048 || elen > 8) {
        return input_fail(res, "JWK RSA parameters are too large");
    }
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    ok = bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n)
         && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
    rv = ok ? pkey_from_params(p, "RSA", bld, pkey, res)
            : lib_fail(p, res, "building key parameters failed");
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return rv;
}

apr_status_t acme_jose_key_from_jwk(apr_pool_t *p, json_t *jwk, acme_key_t **key,
                                    acme_result_t *res)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    EVP_PKEY *pkey = NULL;
    apr_status_t rv;

    if (!json_is_object(jwk) || !kty) {
        return input_fail(res, "JWK is not an object with a 'kty'");
    }
    if (!strcmp(kty, "EC")) {
        rv = ec_pkey_from_jwk(p, jwk, &pkey, res);
    }
    else if (!strcmp(kty, "RSA")) {
        rv = rsa_pkey_from_jwk(p, jwk, &pkey, res);
    }
    else {
        return input_fail(res, apr_psprintf(p, "JWK key type '%.20s' is not supported", kty));
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_crypto_key_wrap(p, pkey, key, res);
}

apr_status_t acme_jose_thumbprint(apr_pool_t *p, const acme_key_t *key,
                                  const char **thumb_b64, acme_result_t *res)
{
    unsigned char digest[32];
    const char *canonical;
    apr_status_t rv = acme_jose_jwk_canonical(p, key, &canonical, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_crypto_sha256(canonical, strlen(canonical), digest);
    *thumb_b64 = acme_b64_encode(p, digest, sizeof(digest));
    return APR_SUCCESS;
}

const char *acme_jose_key_authorization(apr_pool_t *p, const char *token,
                                        const char *thumb_b64)
{
    return apr_pstrcat(p, token, ".", thumb_b64, NULL);
}

/* ------------------------------------------------------------------ signatures */

/* DER ECDSA-Sig-Value -> JWS R||S, each left-padded to the field width (RFC 7518 §3.4). */
static int ecdsa_der_to_raw(const unsigned char *der, apr_size_t der_len,
                            unsigned char *raw, int width)
{
    const unsigned char *q = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)der_len);
    const BIGNUM *r = NULL, *s = NULL;
    int ok;

    if (!sig) {
        return 0;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, width) == width && BN_bn2binpad(s, raw + width, width) == width;
    ECDSA_SIG_free(sig);
    return ok;
}

static unsigned char *ecdsa_raw_to_der(apr_pool_t *p, const unsigned char *raw, int width,
                                       apr_size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, width, NULL);
    BIGNUM *s = BN_bin2bn(raw + width, width, NULL);
    unsigned char *der = NULL, *out = NULL;
    int len;

    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return NULL;
    }
    len = i2d_ECDSA_SIG(sig, &der);
    if (len > 0) {
        out = apr_pmemdup(p, der, (apr_size_t)len);
        *der_len = (apr_size_t)len;
    }
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return out;
}

static apr_status_t sign_bytes(apr_pool_t *p, const acme_key_t *key, const char *input,
                               const unsigned char **sig, apr_size_t *sig_len,
                               acme_result_t *res)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 0;
    unsigned char *buf = NULL;
    int width = ec_width(key);
    int ok = ctx
             && EVP_DigestSignInit(ctx, NULL, key_md(key), NULL, acme_crypto_key_evp(key)) == 1
             && EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)input,
                               strlen(input)) == 1
             && (buf = apr_palloc(p, len)) != NULL
             && EVP_DigestSign(ctx, buf, &len, (const unsigned char *)input,
                               strlen(input)) == 1;

    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return lib_fail(p, res, apr_psprintf(p, "signing with %s failed", acme_jose_alg(key)));
    }
    if (width) {
        unsigned char *raw = apr_palloc(p, 2 * (apr_size_t)width);
        if (!ecdsa_der_to_raw(buf, len, raw, width)) {
            return lib_fail(p, res, "converting an ECDSA signature failed");
        }
        buf = raw;
        len = 2 * (apr_size_t)width;
    }
    *sig = buf;
    *sig_len = len;
    return APR_SUCCESS;
}

static apr_status_t protected_header(apr_pool_t *p, const acme_key_t *key, const char *url,
                                     const char *nonce, const char *kid, const char **b64,
                                     acme_result_t *res)
{
    json_t *hdr = json_object(), *jwk = NULL;
    const char *text = NULL;
    apr_status_t rv = APR_SUCCESS;
    int ok = hdr && !json_object_set_new(hdr, "alg", json_string(acme_jose_alg(key)))
             && !json_object_set_new(hdr, "url", json_string(url))
             && (!nonce || !json_object_set_new(hdr, "nonce", json_string(nonce)))
             && (!kid || !json_object_set_new(hdr, "kid", json_string(kid)));

    if (ok && !kid) {
        rv = acme_jose_jwk(p, key, &jwk, res);
        ok = rv == APR_SUCCESS && !json_object_set_new(hdr, "jwk", jwk);
    }
    text = ok ? json_text(p, hdr) : NULL;
    json_decref(hdr);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!text) {
        /* json_string() refuses invalid UTF-8: the url, nonce or kid was garbage. */
        return input_fail(res, "JWS header values (url, nonce, kid) are not valid UTF-8");
    }
    *b64 = acme_b64_encode_str(p, text);
    return APR_SUCCESS;
}

static const char *flattened_jws(apr_pool_t *p, const char *prot, const char *payload,
                                 const char *sig)
{
    json_t *jws = json_pack("{s:s, s:s, s:s}", "protected", prot, "payload", payload,
                            "signature", sig);
    char *s = jws ? json_dumps(jws, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    const char *copy = s ? apr_pstrdup(p, s) : NULL;

    free(s);
    json_decref(jws);
    return copy;
}

apr_status_t acme_jose_sign(apr_pool_t *p, const acme_key_t *key, const char *payload,
                            const char *url, const char *nonce, const char *kid,
                            const char **jws, acme_result_t *res)
{
    const char *prot = NULL, *body, *text;
    const unsigned char *sig = NULL;
    apr_size_t sig_len = 0;
    apr_status_t rv;

    if (!acme_crypto_key_is_private(key)) {
        return input_fail(res, "JWS key has no private part");
    }
    if (!url || !*url) {
        return input_fail(res, "JWS needs a url");
    }
    if ((rv = protected_header(p, key, url, nonce, kid, &prot, res)) != APR_SUCCESS) {
        return rv;
    }
    body = (payload && *payload) ? acme_b64_encode_str(p, payload) : "";
    rv = sign_bytes(p, key, apr_pstrcat(p, prot, ".", body, NULL), &sig, &sig_len, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    text = flattened_jws(p, prot, body, acme_b64_encode(p, sig, sig_len));
    if (!text) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "serialising a JWS failed");
    }
    *jws = text;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ HMAC / EAB */

static const char *hmac_digest_name(const char *alg)
{
    if (!alg || !strcmp(alg, "HS256")) return "SHA256";
    if (!strcmp(alg, "HS384")) return "SHA384";
    if (!strcmp(alg, "HS512")) return "SHA512";
    return NULL;
}

apr_status_t acme_jose_hmac(apr_pool_t *p, const char *alg,
                            const unsigned char *key, apr_size_t key_len,
                            const void *data, apr_size_t len,
                            unsigned char **mac, apr_size_t *mac_len, acme_result_t *res)
{
    const char *md = hmac_digest_name(alg);
    EVP_MAC *hmac;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t out_len = 0;
    int ok;

    if (!md) {
        return config_fail(res, apr_psprintf(p, "MAC algorithm '%.20s' is not one of "
                                             "HS256, HS384, HS512", alg));
    }
    if (!key || key_len == 0) {
        return config_fail(res, "HMAC key is empty");
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
    params[1] = OSSL_PARAM_construct_end();
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ok = hmac && (ctx = EVP_MAC_CTX_new(hmac)) != NULL
         && EVP_MAC_init(ctx, key, key_len, params) == 1
         && EVP_MAC_update(ctx, data, len) == 1
         && EVP_MAC_final(ctx, out, &out_len, sizeof(out)) == 1;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    if (!ok) {
        return lib_fail(p, res, apr_psprintf(p, "computing %s failed", alg ? alg : "HS256"));
    }
    *mac = apr_pmemdup(p, out, out_len);
    *mac_len = out_len;
    return APR_SUCCESS;
}

static apr_status_t eab_mac(apr_pool_t *p, const char *alg, const char *hmac_key_b64url,
                            const char *input, const char **sig_b64, acme_result_t *res)
{
    unsigned char *key = NULL, *mac;
    apr_size_t key_len = 0, mac_len;
    apr_status_t rv;

    if (!hmac_key_b64url || acme_b64_decode(p, hmac_key_b64url, &key, &key_len) != APR_SUCCESS
        || key_len == 0) {
        return config_fail(res, "EAB HMAC key is missing or not base64url (without padding)");
    }
    rv = acme_jose_hmac(p, alg, key, key_len, input, strlen(input), &mac, &mac_len, res);
    OPENSSL_cleanse(key, key_len);
    if (rv == APR_SUCCESS) {
        *sig_b64 = acme_b64_encode(p, mac, mac_len);
    }
    return rv;
}

apr_status_t acme_jose_sign_eab(apr_pool_t *p, const acme_key_t *account_key,
                                const char *eab_kid, const char *hmac_key_b64url,
                                const char *alg, const char *url, json_t **eab,
                                acme_result_t *res)
{
    const char *jwk = NULL, *prot_text, *prot, *body, *sig = NULL;
    json_t *hdr, *out;
    apr_status_t rv;

    alg = alg ? alg : "HS256";
    if (!hmac_digest_name(alg)) {
        return config_fail(res, apr_psprintf(p, "EAB algorithm '%.20s' is not one of HS256, "
                                             "HS384, HS512", alg));
    }
    if (!eab_kid || !*eab_kid || !url || !*url) {
        return config_fail(res, "EAB needs a key id and the newAccount url");
    }
    if ((rv = acme_jose_jwk_canonical(p, account_key, &jwk, res)) != APR_SUCCESS) {
        return rv;
    }
    hdr = json_pack("{s:s, s:s, s:s}", "alg", alg, "kid", eab_kid, "url", url);
    prot_text = json_text(p, hdr);
    json_decref(hdr);
    if (!prot_text) {
        return config_fail(res, "EAB key id or url is not valid UTF-8");
    }
    prot = acme_b64_encode_str(p, prot_text);
    body = acme_b64_encode_str(p, jwk);
    rv = eab_mac(p, alg, hmac_key_b64url, apr_pstrcat(p, prot, ".", body, NULL), &sig, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    out = json_pack("{s:s, s:s, s:s}", "protected", prot, "payload", body, "signature", sig);
    if (!out) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "building the EAB object failed");
    }
    *eab = out;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ verification */

static apr_status_t verify_bytes(apr_pool_t *p, const acme_key_t *key, const char *input,
                                 const unsigned char *sig, apr_size_t sig_len,
                                 acme_result_t *res)
{
    int width = ec_width(key);
    apr_size_t expect = width ? 2 * (apr_size_t)width
                              : (apr_size_t)EVP_PKEY_get_size(acme_crypto_key_evp(key));
    EVP_MD_CTX *ctx;
    int ok;

    if (sig_len != expect) {
        return input_fail(res, apr_psprintf(p, "%s signature has %" APR_SIZE_T_FMT " bytes, "
                                            "not %" APR_SIZE_T_FMT, acme_jose_alg(key),
                                            sig_len, expect));
    }
    if (width && !(sig = ecdsa_raw_to_der(p, sig, width, &sig_len))) {
        return lib_fail(p, res, "converting an ECDSA signature failed");
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx
         && EVP_DigestVerifyInit(ctx, NULL, key_md(key), NULL, acme_crypto_key_evp(key)) == 1
         && EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input,
                             strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return input_fail(res, "JWS signature does not verify");
    }
    return APR_SUCCESS;
}

typedef struct {
    const char *prot, *payload, *sig;
    json_t *header;
} jws_parts_t;

static apr_status_t jws_split(apr_pool_t *p, const char *jws, jws_parts_t *parts,
                              acme_result_t *res)
{
    json_t *j = jws ? json_loads(jws, 0, NULL) : NULL;
    unsigned char *hdr_text;
    apr_size_t hdr_len;

    *parts = (jws_parts_t){ .prot = NULL };
    if (j) {
        const char *prot = json_string_value(json_object_get(j, "protected"));
        const char *payload = json_string_value(json_object_get(j, "payload"));
        const char *sig = json_string_value(json_object_get(j, "signature"));
        parts->prot = prot ? apr_pstrdup(p, prot) : NULL;
        parts->payload = payload ? apr_pstrdup(p, payload) : NULL;
        parts->sig = sig ? apr_pstrdup(p, sig) : NULL;
        json_decref(j);
    }
    if (!parts->prot || !parts->payload || !parts->sig) {
        return input_fail(res, "JWS is not a flattened JSON serialization");
    }
    if (acme_b64_decode(p, parts->prot, &hdr_text, &hdr_len) != APR_SUCCESS
        || !(parts->header = json_loadb((const char *)hdr_text, hdr_len, 0, NULL))) {
        return input_fail(res, "JWS protected header is not base64url JSON");
    }
    if (!json_is_object(parts->header)) {
        json_decref(parts->header);
        parts->header = NULL;
        return input_fail(res, "JWS protected header is not a JSON object");
    }
    return APR_SUCCESS;
}

static apr_status_t jws_check(apr_pool_t *p, const jws_parts_t *parts, const acme_key_t *key,
                              acme_result_t *res)
{
    const char *alg = json_string_value(json_object_get(parts->header, "alg"));
    acme_key_t *embedded;
    unsigned char *sig;
    apr_size_t sig_len;
    apr_status_t rv;

    if (!key) {
        rv = acme_jose_key_from_jwk(p, json_object_get(parts->header, "jwk"), &embedded, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        key = embedded;
    }
    if (!alg || strcmp(alg, acme_jose_alg(key)) != 0) {
        return input_fail(res, apr_psprintf(p, "JWS alg '%.20s' does not fit the key (%s)",
                                            alg ? alg : "", acme_jose_alg(key)));
    }
    if (acme_b64_decode(p, parts->sig, &sig, &sig_len) != APR_SUCCESS) {
        return input_fail(res, "JWS signature is not base64url");
    }
    return verify_bytes(p, key, apr_pstrcat(p, parts->prot, ".", parts->payload, NULL),
                        sig, sig_len, res);
}

apr_status_t acme_jose_verify(apr_pool_t *p, const char *jws, const acme_key_t *key,
                              const char **payload, apr_size_t *payload_len,
                              json_t **header, acme_result_t *res)
{
    jws_parts_t parts;
    unsigned char *body;
    apr_size_t body_len;
    apr_status_t rv = jws_split(p, jws, &parts, res);

    if (rv == APR_SUCCESS) {
        rv = jws_check(p, &parts, key, res);
    }
    if (rv == APR_SUCCESS && acme_b64_decode(p, parts.payload, &body, &body_len) != APR_SUCCESS) {
        rv = input_fail(res, "JWS payload is not base64url");
    }
    if (rv != APR_SUCCESS) {
        json_decref(parts.header);
        return rv;
    }
    if (payload) {
        *payload = (const char *)body;
    }
    if (payload_len) {
        *payload_len = body_len;
    }
    if (header) {
        *header = parts.header;
    }
    else {
        json_decref(parts.header);
    }
    return APR_SUCCESS;
}
