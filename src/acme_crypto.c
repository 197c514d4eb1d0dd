#include <limits.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "acme_b64.h"
#include "acme_crypto.h"

struct acme_key_t {
    EVP_PKEY *pkey;
    acme_keyspec_t spec;
    int is_private;
};

struct acme_cert_t {
    X509 *x509;
};

/* ------------------------------------------------------------------ errors */

/*
 * OpenSSL keeps errors in a per-thread queue that mod_ssl reads too: take
 * the newest reason for our message and leave the queue empty.
 */
static const char *take_openssl_error(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return reason ? reason : "no detail";
}

static apr_status_t lib_fail(apr_pool_t *p, acme_result_t *res, const char *what)
{
    const char *why = take_openssl_error();
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                            apr_psprintf(p, "%s: %s", what, why));
}

static apr_status_t input_fail(acme_result_t *res, const char *message)
{
    ERR_clear_error();
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, message);
}

/* ------------------------------------------------------------------ pool ownership */

static apr_status_t pkey_cleanup(void *d) { EVP_PKEY_free(d); return APR_SUCCESS; }
static apr_status_t x509_cleanup(void *d) { X509_free(d); return APR_SUCCESS; }
static apr_status_t req_cleanup(void *d) { X509_REQ_free(d); return APR_SUCCESS; }
static apr_status_t bio_cleanup(void *d) { BIO_free(d); return APR_SUCCESS; }
static apr_status_t gens_cleanup(void *d) { GENERAL_NAMES_free(d); return APR_SUCCESS; }
static apr_status_t bn_cleanup(void *d) { BN_free(d); return APR_SUCCESS; }

typedef struct {
    void *data;
    apr_size_t len;
} wipe_t;

static apr_status_t wipe_cleanup(void *d)
{
    wipe_t *w = d;
    OPENSSL_cleanse(w->data, w->len);
    return APR_SUCCESS;
}

/* Pool copies of secrets are overwritten before the pool reuses the memory. */
static void wipe_on_cleanup(apr_pool_t *p, void *data, apr_size_t len)
{
    wipe_t *w = apr_palloc(p, sizeof(*w));

    *w = (wipe_t){ .data = data, .len = len };
    apr_pool_cleanup_register(p, w, wipe_cleanup, apr_pool_cleanup_null);
}

static BIO *pool_mem_bio(apr_pool_t *p)
{
    BIO *bio = BIO_new(BIO_s_mem());

    if (bio) {
        apr_pool_cleanup_register(p, bio, bio_cleanup, apr_pool_cleanup_null);
    }
    return bio;
}

/* The BIO's contents as a pool string. */
static const char *bio_pstr(apr_pool_t *p, BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);

    return apr_pstrmemdup(p, data ? data : "", len > 0 ? (apr_size_t)len : 0);
}

/* ------------------------------------------------------------------ key specs */

typedef struct {
    const char *name;
    acme_key_kind_t kind;
    int bits;
} keyspec_alias_t;

static const keyspec_alias_t keyspec_aliases[] = {
    { "secp256r1", ACME_KEY_EC, 256 },
    { "prime256v1", ACME_KEY_EC, 256 },
    { "P-256", ACME_KEY_EC, 256 },
    { "secp384r1", ACME_KEY_EC, 384 },
    { "P-384", ACME_KEY_EC, 384 },
    { "rsa2048", ACME_KEY_RSA, 2048 },
    { "rsa3072", ACME_KEY_RSA, 3072 },
    { "rsa4096", ACME_KEY_RSA, 4096 },
    { "rsa", ACME_KEY_RSA, 2048 },
};

apr_status_t acme_crypto_keyspec_parse(const char *text, acme_keyspec_t *spec,
                                       const char **reason, apr_pool_t *p)
{
    apr_size_t i;

    for (i = 0; text && i < sizeof(keyspec_aliases) / sizeof(keyspec_aliases[0]); ++i) {
        if (strcasecmp(text, keyspec_aliases[i].name) == 0) {
            *spec = (acme_keyspec_t){ .kind = keyspec_aliases[i].kind,
                                      .bits = keyspec_aliases[i].bits };
            return APR_SUCCESS;
        }
    }
    if (reason) {
        *reason = apr_psprintf(p, "unsupported key type '%s': use one of secp256r1 "
                               "(prime256v1, P-256), secp384r1 (P-384), rsa2048 (rsa), "
                               "rsa3072, rsa4096", text ? text : "");
    }
    return APR_EINVAL;
}

static int keyspec_supported(const acme_keyspec_t *spec)
{
    if (spec->kind == ACME_KEY_EC) {
        return spec->bits == 256 || spec->bits == 384;
    }
    return spec->kind == ACME_KEY_RSA
           && (spec->bits == 2048 || spec->bits == 3072 || spec->bits == 4096);
}

const char *acme_crypto_keyspec_name(const acme_keyspec_t *spec)
{
    if (spec->kind == ACME_KEY_EC) {
        return spec->bits == 384 ? "secp384r1" : spec->bits == 256 ? "secp256r1" : "ec";
    }
    switch (spec->bits) {
    case 2048: return "rsa2048";
    case 3072: return "rsa3072";
    case 4096: return "rsa4096";
    }
    return "rsa";
}

/* ------------------------------------------------------------------ keys */

static int pkey_has_private(EVP_PKEY *pkey, const char *param)
{
    BIGNUM *bn = NULL;
    int has = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && bn != NULL;

    BN_clear_free(bn);
    ERR_clear_error();
    return has;
}

static int ec_curve_bits(EVP_PKEY *pkey)
{
    char group[64];
    int nid;

    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                        group, sizeof(group), NULL)) {
        return 0;
    }
    nid = OBJ_txt2nid(group);
    if (nid == NID_undef) {
        nid = EC_curve_nist2nid(group);
    }
    return nid == NID_X9_62_prime256v1 ? 256 : nid == NID_secp384r1 ? 384 : 0;
}

apr_status_t acme_crypto_key_wrap(apr_pool_t *p, EVP_PKEY *pkey, acme_key_t **key,
                                  acme_result_t *res)
{
    acme_key_t *k;

    if (!pkey) {
        return input_fail(res, "no key given");
    }
    k = apr_pcalloc(p, sizeof(*k));
    k->pkey = pkey;
    apr_pool_cleanup_register(p, pkey, pkey_cleanup, apr_pool_cleanup_null);

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        k->spec = (acme_keyspec_t){ .kind = ACME_KEY_RSA, .bits = EVP_PKEY_get_bits(pkey) };
        if (k->spec.bits < 2048) {
            return input_fail(res, apr_psprintf(p, "RSA key of %d bits is too small "
                                                "(2048 at least)", k->spec.bits));
        }
        k->is_private = pkey_has_private(pkey, OSSL_PKEY_PARAM_RSA_D);
    }
    else if (EVP_PKEY_is_a(pkey, "EC")) {
        k->spec = (acme_keyspec_t){ .kind = ACME_KEY_EC, .bits = ec_curve_bits(pkey) };
        if (!k->spec.bits) {
            return input_fail(res, "EC key is not on curve P-256 or P-384");
        }
        k->is_private = pkey_has_private(pkey, OSSL_PKEY_PARAM_PRIV_KEY);
    }
    else {
        return input_fail(res, apr_psprintf(p, "unsupported key algorithm %s",
                                            EVP_PKEY_get0_type_name(pkey)));
    }
    *key = k;
    return APR_SUCCESS;
}

apr_status_t acme_crypto_key_generate(apr_pool_t *p, const acme_keyspec_t *spec,
                                      acme_key_t **key, acme_result_t *res)
{
    EVP_PKEY *pkey;

    if (!keyspec_supported(spec)) {
        return input_fail(res, apr_psprintf(p, "cannot generate a key of type %s/%d",
                                            spec->kind == ACME_KEY_EC ? "EC" : "RSA",
                                            spec->bits));
    }
    if (spec->kind == ACME_KEY_EC) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec->bits == 256 ? "P-256" : "P-384");
    }
    else {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec->bits);
    }
    if (!pkey) {
        return lib_fail(p, res, apr_psprintf(p, "generating a %s key failed",
                                             acme_crypto_keyspec_name(spec)));
    }
    return acme_crypto_key_wrap(p, pkey, key, res);
}

apr_status_t acme_crypto_key_to_pem(apr_pool_t *p, const acme_key_t *key,
                                    const char **pem, acme_result_t *res)
{
    BIO *bio;
    BUF_MEM *mem = NULL;
    char *out;

    if (!key->is_private) {
        return input_fail(res, "key has no private part to write");
    }
    /* secmem: OpenSSL wipes the buffer when it grows and when it is freed. */
    bio = BIO_new(BIO_s_secmem());
    if (!bio) {
        return lib_fail(p, res, "allocating a BIO failed");
    }
    if (!PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL)
        || BIO_get_mem_ptr(bio, &mem) <= 0 || !mem) {
        BIO_free(bio);
        return lib_fail(p, res, "writing the private key as PEM failed");
    }
    out = apr_pstrmemdup(p, mem->data, mem->length);
    wipe_on_cleanup(p, out, mem->length);
    BIO_free(bio);
    *pem = out;
    return APR_SUCCESS;
}

/* Never prompt on a terminal for a pass phrase: encrypted keys are an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

apr_status_t acme_crypto_key_from_pem(apr_pool_t *p, const char *pem, apr_size_t len,
                                      acme_key_t **key, acme_result_t *res)
{
    BIO *bio;
    EVP_PKEY *pkey;
    acme_key_t *k;
    apr_status_t rv;

    if (!pem || len == 0 || len > INT_MAX) {
        return input_fail(res, "no private key PEM given");
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        return lib_fail(p, res, "allocating a BIO failed");
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey) {
        ERR_clear_error();
        return input_fail(res, "no readable unencrypted private key in PEM");
    }
    rv = acme_crypto_key_wrap(p, pkey, &k, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!k->is_private || !keyspec_supported(&k->spec)) {
        return input_fail(res, apr_psprintf(p, "private key type %s/%d is not supported",
                                            k->spec.kind == ACME_KEY_EC ? "EC" : "RSA",
                                            k->spec.bits));
    }
    *key = k;
    return APR_SUCCESS;
}

EVP_PKEY *acme_crypto_key_evp(const acme_key_t *key)
{
    return key->pkey;
}

void acme_crypto_key_spec(const acme_key_t *key, acme_keyspec_t *out)
{
    *out = key->spec;
}

int acme_crypto_key_is_private(const acme_key_t *key)
{
    return key->is_private;
}

/* ------------------------------------------------------------------ digests */

void acme_crypto_sha256(const void *data, apr_size_t len, unsigned char out[32])
{
    memset(out, 0, 32);
    if (!EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL)) {
        ERR_clear_error();
    }
}

/* ------------------------------------------------------------------ names */

static int dns_value_ok(const char *v)
{
    const char *c;

    if (!v || !*v || strlen(v) > 253) {
        return 0;
    }
    for (c = v; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.' && *c != '*' && *c != '_') {
            return 0;
        }
    }
    return 1;
}

static const char *ident_text(apr_pool_t *p, const acme_ident_t *id)
{
    return apr_psprintf(p, "%s:%s", id->type == ACME_IDENT_IP ? "ip" : "dns",
                        id->value ? id->value : "");
}

static apr_status_t general_name_make(apr_pool_t *p, const acme_ident_t *id,
                                      GENERAL_NAME **out, acme_result_t *res)
{
    GENERAL_NAME *gn;

    if (id->type == ACME_IDENT_IP) {
        ASN1_OCTET_STRING *ip = id->value ? a2i_IPADDRESS(id->value) : NULL;
        if (!ip) {
            return input_fail(res, apr_psprintf(p, "identifier %s is not an IP address",
                                                ident_text(p, id)));
        }
        if (!(gn = GENERAL_NAME_new())) {
            ASN1_OCTET_STRING_free(ip);
            return lib_fail(p, res, "allocating a subjectAltName failed");
        }
        GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
    }
    else {
        ASN1_IA5STRING *dns;
        if (!dns_value_ok(id->value)) {
            return input_fail(res, apr_psprintf(p, "identifier %s is not a DNS name",
                                                ident_text(p, id)));
        }
        dns = ASN1_IA5STRING_new();
        if (!dns || !ASN1_STRING_set(dns, id->value, -1) || !(gn = GENERAL_NAME_new())) {
            ASN1_IA5STRING_free(dns);
            return lib_fail(p, res, "allocating a subjectAltName failed");
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
    }
    *out = gn;
    return APR_SUCCESS;
}

/* subjectAltName entries, owned by p. */
static apr_status_t general_names_make(apr_pool_t *p, const acme_ident_t *idents, int n,
                                       GENERAL_NAMES **out, acme_result_t *res)
{
    GENERAL_NAMES *gens = NULL;
    int i;

    if (!idents || n <= 0) {
        return input_fail(res, "no identifiers given");
    }
    gens = sk_GENERAL_NAME_new_null();
    if (!gens) {
        return lib_fail(p, res, "allocating subjectAltNames failed");
    }
    apr_pool_cleanup_register(p, gens, gens_cleanup, apr_pool_cleanup_null);
    for (i = 0; i < n; ++i) {
        GENERAL_NAME *gn = NULL;
        apr_status_t rv = general_name_make(p, &idents[i], &gn, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!sk_GENERAL_NAME_push(gens, gn)) {
            GENERAL_NAME_free(gn);
            return lib_fail(p, res, "allocating subjectAltNames failed");
        }
    }
    *out = gens;
    return APR_SUCCESS;
}

static int name_set_cn(X509_NAME *name, const char *cn)
{
    return X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                      (const unsigned char *)cn, -1, -1, 0);
}

static const char *first_dns_cn(const acme_ident_t *idents, int n)
{
    int i;

    for (i = 0; i < n; ++i) {
        if (idents[i].type == ACME_IDENT_DNS) {
            return strlen(idents[i].value) <= 64 ? idents[i].value : NULL;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ CSR */

static apr_status_t csr_add_sans(apr_pool_t *p, X509_REQ *req, GENERAL_NAMES *gens,
                                 acme_result_t *res)
{
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
    int ok = exts && ext && sk_X509_EXTENSION_push(exts, ext);

    if (!ok) {
        X509_EXTENSION_free(ext);
    }
    ok = ok && X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return ok ? APR_SUCCESS : lib_fail(p, res, "adding subjectAltName to the CSR failed");
}

apr_status_t acme_crypto_csr_create(apr_pool_t *p, const acme_key_t *key,
                                    const acme_ident_t *idents, int n_idents,
                                    unsigned char **der, apr_size_t *der_len,
                                    acme_result_t *res)
{
    GENERAL_NAMES *gens = NULL;
    X509_REQ *req;
    const char *cn;
    unsigned char *buf, *q;
    int len;
    apr_status_t rv;

    if (!key->is_private) {
        return input_fail(res, "CSR key has no private part");
    }
    rv = general_names_make(p, idents, n_idents, &gens, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!(req = X509_REQ_new())) {
        return lib_fail(p, res, "allocating a CSR failed");
    }
    apr_pool_cleanup_register(p, req, req_cleanup, apr_pool_cleanup_null);
    cn = first_dns_cn(idents, n_idents);
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1)
        || (cn && !name_set_cn(X509_REQ_get_subject_name(req), cn))
        || !X509_REQ_set_pubkey(req, key->pkey)) {
        return lib_fail(p, res, "filling in the CSR failed");
    }
    if ((rv = csr_add_sans(p, req, gens, res)) != APR_SUCCESS) {
        return rv;
    }
    if (X509_REQ_sign(req, key->pkey, EVP_sha256()) <= 0) {
        return lib_fail(p, res, "signing the CSR failed");
    }
    len = i2d_X509_REQ(req, NULL);
    if (len <= 0) {
        return lib_fail(p, res, "encoding the CSR failed");
    }
    q = buf = apr_palloc(p, (apr_size_t)len);
    i2d_X509_REQ(req, &q);
    *der = buf;
    *der_len = (apr_size_t)len;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ certificates */

apr_status_t acme_crypto_cert_wrap(apr_pool_t *p, X509 *x509, acme_cert_t **cert,
                                   acme_result_t *res)
{
    acme_cert_t *c;

    if (!x509 || !X509_up_ref(x509)) {
        return input_fail(res, "no certificate given");
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->x509 = x509;
    apr_pool_cleanup_register(p, x509, x509_cleanup, apr_pool_cleanup_null);
    *cert = c;
    return APR_SUCCESS;
}

X509 *acme_crypto_cert_x509(const acme_cert_t *cert)
{
    return cert->x509;
}

static apr_size_t count_pem_begins(const char *pem, apr_size_t len)
{
    static const char marker[] = "-----BEGIN";
    apr_size_t n = 0, i;

    for (i = 0; i + sizeof(marker) - 1 <= len; ++i) {
        if (memcmp(pem + i, marker, sizeof(marker) - 1) == 0) {
            ++n;
            i += sizeof(marker) - 2;
        }
    }
    return n;
}

/* One PEM block already read: must be a bare CERTIFICATE whose DER is exactly one X509. */
static apr_status_t chain_add_block(apr_pool_t *p, apr_array_header_t *chain,
                                    const char *name, const char *header,
                                    const unsigned char *data, long dlen,
                                    acme_result_t *res)
{
    const unsigned char *q = data;
    acme_cert_t *cert;
    X509 *x;

    if (strcmp(name, "CERTIFICATE") != 0) {
        return input_fail(res, apr_psprintf(p, "certificate chain: PEM block %d is "
                                            "'%.40s', only CERTIFICATE is allowed",
                                            chain->nelts + 1, name));
    }
    if (header && *header) {
        return input_fail(res, apr_psprintf(p, "certificate chain: PEM block %d has "
                                            "headers", chain->nelts + 1));
    }
    x = d2i_X509(NULL, &q, dlen);
    if (!x || q != data + dlen) {
        X509_free(x);
        return input_fail(res, apr_psprintf(p, "certificate chain: PEM block %d is not "
                                            "a valid certificate", chain->nelts + 1));
    }
    cert = apr_pcalloc(p, sizeof(*cert));
    cert->x509 = x;
    apr_pool_cleanup_register(p, x, x509_cleanup, apr_pool_cleanup_null);
    APR_ARRAY_PUSH(chain, acme_cert_t *) = cert;
    return APR_SUCCESS;
}

static int pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    int at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;

    ERR_clear_error();
    return at_end;
}

apr_status_t acme_crypto_chain_parse(apr_pool_t *p, const char *pem, apr_size_t len,
                                     apr_array_header_t **chain, acme_result_t *res)
{
    apr_array_header_t *certs;
    BIO *bio;
    apr_status_t rv = APR_SUCCESS;

    if (!pem || len == 0 || len > INT_MAX) {
        return input_fail(res, "certificate chain is empty");
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        return lib_fail(p, res, "allocating a BIO failed");
    }
    apr_pool_cleanup_register(p, bio, bio_cleanup, apr_pool_cleanup_null);
    certs = apr_array_make(p, 3, sizeof(acme_cert_t *));
    while (rv == APR_SUCCESS) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;

        if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
            if (pem_at_end()) {
                break;
            }
            return input_fail(res, apr_psprintf(p, "certificate chain: PEM block %d is "
                                                "malformed", certs->nelts + 1));
        }
        rv = chain_add_block(p, certs, name, header, data, dlen, res);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (certs->nelts == 0) {
        return input_fail(res, "certificate chain holds no certificate");
    }
    /* A BEGIN line that PEM_read_bio skipped hides something that is not a certificate. */
    if (count_pem_begins(pem, len) != (apr_size_t)certs->nelts) {
        return input_fail(res, "certificate chain has PEM content besides its certificates");
    }
    *chain = certs;
    return APR_SUCCESS;
}

apr_status_t acme_crypto_chain_to_pem(apr_pool_t *p, const apr_array_header_t *chain,
                                      const char **pem, acme_result_t *res)
{
    BIO *bio = pool_mem_bio(p);
    int i;

    if (!bio) {
        return lib_fail(p, res, "allocating a BIO failed");
    }
    if (!chain || chain->nelts == 0) {
        return input_fail(res, "certificate chain is empty");
    }
    for (i = 0; i < chain->nelts; ++i) {
        if (!PEM_write_bio_X509(bio, APR_ARRAY_IDX(chain, i, acme_cert_t *)->x509)) {
            return lib_fail(p, res, "writing a certificate as PEM failed");
        }
    }
    *pem = bio_pstr(p, bio);
    return APR_SUCCESS;
}

apr_status_t acme_crypto_cert_der(apr_pool_t *p, const acme_cert_t *cert,
                                  unsigned char **der, apr_size_t *der_len,
                                  acme_result_t *res)
{
    int len = i2d_X509(cert->x509, NULL);
    unsigned char *buf, *q;

    if (len <= 0) {
        return lib_fail(p, res, "encoding the certificate failed");
    }
    q = buf = apr_palloc(p, (apr_size_t)len);
    i2d_X509(cert->x509, &q);
    *der = buf;
    *der_len = (apr_size_t)len;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ certificate info */

/* The content octets of the serial's DER INTEGER (keeps the 0x00 sign octet). */
static apr_status_t serial_der_content(apr_pool_t *p, X509 *x, const unsigned char **out,
                                       apr_size_t *out_len, acme_result_t *res)
{
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    int len = sn ? i2d_ASN1_INTEGER(sn, NULL) : 0;
    unsigned char *buf, *q;
    apr_size_t hdr = 2, clen;

    if (len < 3) {
        return lib_fail(p, res, "encoding the certificate serial failed");
    }
    q = buf = apr_palloc(p, (apr_size_t)len);
    i2d_ASN1_INTEGER(sn, &q);
    clen = buf[1];
    if (buf[1] & 0x80) {
        apr_size_t i, nlen = buf[1] & 0x7f;
        if (nlen == 0 || nlen > 4 || (apr_size_t)len < 2 + nlen) {
            return input_fail(res, "certificate serial has an invalid length");
        }
        for (clen = 0, i = 0; i < nlen; ++i) {
            clen = (clen << 8) | buf[2 + i];
        }
        hdr += nlen;
    }
    if (buf[0] != V_ASN1_INTEGER || hdr + clen != (apr_size_t)len) {
        return input_fail(res, "certificate serial is not a DER INTEGER");
    }
    *out = buf + hdr;
    *out_len = clen;
    return APR_SUCCESS;
}

static const char *serial_hex(apr_pool_t *p, X509 *x)
{
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    const unsigned char *d = ASN1_STRING_get0_data(sn);
    int len = ASN1_STRING_length(sn), i;
    int neg = ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER;
    char *hex = apr_palloc(p, (apr_size_t)len * 2 + 4), *o = hex;

    if (neg) {
        *o++ = '-';
    }
    if (len <= 0) {
        *o++ = '0';
        *o++ = '0';
    }
    for (i = 0; i < len; ++i) {
        static const char digits[] = "0123456789ABCDEF";
        *o++ = digits[d[i] >> 4];
        *o++ = digits[d[i] & 0x0f];
    }
    *o = '\0';
    return hex;
}

static apr_status_t asn1_time_to_apr(const ASN1_TIME *t, apr_time_t *out)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    int ok = epoch && t && ASN1_TIME_diff(&days, &secs, epoch, t);

    ASN1_TIME_free(epoch);
    if (!ok) {
        ERR_clear_error();
        return APR_EINVAL;
    }
    *out = apr_time_from_sec((apr_time_t)days * 86400 + secs);
    return APR_SUCCESS;
}

static const char *name_line(apr_pool_t *p, const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *line;

    if (!bio) {
        ERR_clear_error();
        return "";
    }
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    line = bio_pstr(p, bio);
    BIO_free(bio);
    return line;
}

static const char *name_cn(apr_pool_t *p, const X509_NAME *name)
{
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    X509_NAME_ENTRY *entry = idx >= 0 ? X509_NAME_get_entry(name, idx) : NULL;
    unsigned char *utf8 = NULL;
    int len = entry ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry)) : -1;
    const char *cn = NULL;

    if (len >= 0) {
        cn = apr_pstrmemdup(p, (const char *)utf8, (apr_size_t)len);
    }
    OPENSSL_free(utf8);
    ERR_clear_error();
    return cn;
}

static GENERAL_NAMES *cert_sans(apr_pool_t *p, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

    if (gens) {
        apr_pool_cleanup_register(p, gens, gens_cleanup, apr_pool_cleanup_null);
    }
    ERR_clear_error();
    return gens;
}

static const char *ip_text(apr_pool_t *p, const ASN1_OCTET_STRING *ip)
{
    char buf[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(ip);
    int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

    if (!family || !inet_ntop(family, ASN1_STRING_get0_data(ip), buf, sizeof(buf))) {
        return NULL;
    }
    return apr_pstrdup(p, buf);
}

static apr_array_header_t *sans_list(apr_pool_t *p, X509 *x)
{
    GENERAL_NAMES *gens = cert_sans(p, x);
    apr_array_header_t *sans = apr_array_make(p, 4, sizeof(acme_ident_t));
    int i;

    for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); ++i) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        acme_ident_t id = { .type = ACME_IDENT_DNS };

        if (gn->type == GEN_DNS) {
            char *v = apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                                     (apr_size_t)ASN1_STRING_length(gn->d.dNSName));
            char *c;
            for (c = v; *c; ++c) {
                *c = (char)apr_tolower(*c);
            }
            id.value = v;
        }
        else if (gn->type == GEN_IPADD) {
            id = (acme_ident_t){ .type = ACME_IDENT_IP, .value = ip_text(p, gn->d.iPAddress) };
        }
        if (id.value) {
            APR_ARRAY_PUSH(sans, acme_ident_t) = id;
        }
    }
    return sans;
}

apr_status_t acme_crypto_cert_info(apr_pool_t *p, const acme_cert_t *cert,
                                   acme_cert_info_t *info, acme_result_t *res)
{
    X509 *x = cert->x509;
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    apr_status_t rv;

    *info = (acme_cert_info_t){ .serial_hex = serial_hex(p, x) };
    ERR_clear_error();
    rv = serial_der_content(p, x, &info->serial_der, &info->serial_der_len, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (aki) {
        info->aki_len = (apr_size_t)ASN1_STRING_length(aki);
        info->aki = apr_pmemdup(p, ASN1_STRING_get0_data(aki), info->aki_len);
    }
    if (asn1_time_to_apr(X509_get0_notBefore(x), &info->not_before) != APR_SUCCESS
        || asn1_time_to_apr(X509_get0_notAfter(x), &info->not_after) != APR_SUCCESS) {
        return input_fail(res, "certificate validity times cannot be read");
    }
    info->issuer = name_line(p, X509_get_issuer_name(x));
    info->subject = name_line(p, X509_get_subject_name(x));
    info->issuer_cn = name_cn(p, X509_get_issuer_name(x));
    info->sans = sans_list(p, x);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ checks */

apr_status_t acme_crypto_key_matches_cert(const acme_key_t *key, const acme_cert_t *cert,
                                          acme_result_t *res)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert->x509);

    if (!pub || EVP_PKEY_eq(pub, key->pkey) != 1) {
        return input_fail(res, "certificate does not carry the public key of the private key");
    }
    ERR_clear_error();
    return APR_SUCCESS;
}

static int sans_cover(const GENERAL_NAMES *gens, const acme_ident_t *id,
                      const ASN1_OCTET_STRING *ip)
{
    apr_size_t vlen = strlen(id->value);
    int i;

    for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); ++i) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);

        if (id->type == ACME_IDENT_DNS && gn->type == GEN_DNS
            && (apr_size_t)ASN1_STRING_length(gn->d.dNSName) == vlen
            && strncasecmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                           id->value, vlen) == 0) {
            return 1;
        }
        if (id->type == ACME_IDENT_IP && gn->type == GEN_IPADD
            && ASN1_STRING_cmp(gn->d.iPAddress, ip) == 0) {
            return 1;
        }
    }
    return 0;
}

apr_status_t acme_crypto_cert_covers(apr_pool_t *p, const acme_cert_t *cert,
                                     const acme_ident_t *idents, int n_idents,
                                     acme_result_t *res)
{
    GENERAL_NAMES *gens = cert_sans(p, cert->x509);
    int i;

    for (i = 0; i < n_idents; ++i) {
        const acme_ident_t *id = &idents[i];
        ASN1_OCTET_STRING *ip = NULL;
        int covered;

        if (!id->value) {
            return input_fail(res, "identifier without a value");
        }
        if (id->type == ACME_IDENT_IP && !(ip = a2i_IPADDRESS(id->value))) {
            return input_fail(res, apr_psprintf(p, "identifier %s is not an IP address",
                                                ident_text(p, id)));
        }
        covered = sans_cover(gens, id, ip);
        ASN1_OCTET_STRING_free(ip);
        if (!covered) {
            return input_fail(res, apr_psprintf(p, "certificate does not cover %s",
                                                ident_text(p, id)));
        }
    }
    return APR_SUCCESS;
}

static int cert_issued_by(X509 *subject, X509 *issuer)
{
    EVP_PKEY *pub;
    int ok = X509_check_issued(issuer, subject) == X509_V_OK
             && (pub = X509_get0_pubkey(issuer)) != NULL
             && X509_verify(subject, pub) > 0;

    ERR_clear_error();
    return ok;
}

static const char *chain_pos(apr_pool_t *p, const apr_array_header_t *chain, int i)
{
    X509 *x = APR_ARRAY_IDX(chain, i, acme_cert_t *)->x509;
    return apr_psprintf(p, "certificate %d (%s)", i, name_line(p, X509_get_subject_name(x)));
}

apr_status_t acme_crypto_chain_check(apr_pool_t *p, const apr_array_header_t *chain,
                                     acme_result_t *res)
{
    int i, last;

    if (!chain || chain->nelts == 0) {
        return input_fail(res, "certificate chain is empty");
    }
    last = chain->nelts - 1;
    for (i = 0; i < last; ++i) {
        if (!cert_issued_by(APR_ARRAY_IDX(chain, i, acme_cert_t *)->x509,
                            APR_ARRAY_IDX(chain, i + 1, acme_cert_t *)->x509)) {
            return input_fail(res, apr_psprintf(p, "certificate chain: %s is not issued "
                                                "by %s", chain_pos(p, chain, i),
                                                chain_pos(p, chain, i + 1)));
        }
    }
    /* The last one must be a root or point outside the chain, never back into it. */
    for (i = 0; i < last; ++i) {
        if (cert_issued_by(APR_ARRAY_IDX(chain, last, acme_cert_t *)->x509,
                           APR_ARRAY_IDX(chain, i, acme_cert_t *)->x509)) {
            return input_fail(res, apr_psprintf(p, "certificate chain: %s is issued by "
                                                "%s, which comes before it",
                                                chain_pos(p, chain, last),
                                                chain_pos(p, chain, i)));
        }
    }
    return APR_SUCCESS;
}

apr_status_t acme_crypto_chain_check_issued(apr_pool_t *p, const apr_array_header_t *chain,
                                            acme_result_t *res)
{
    X509 *leaf;
    apr_status_t rv = acme_crypto_chain_check(p, chain, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *)->x509;
    if (X509_check_issued(leaf, leaf) == X509_V_OK) {
        ERR_clear_error();
        return input_fail(res, "the certificate is self-signed, not issued by a CA");
    }
    ERR_clear_error();
    if (X509_check_ca(leaf) != 0) {
        return input_fail(res, "the certificate is itself a CA certificate");
    }
    if (chain->nelts < 2) {
        return input_fail(res, "the chain has no issuer certificate (a CA sends at least one)");
    }
    return APR_SUCCESS;
}

apr_status_t acme_crypto_cert_check_time(apr_pool_t *p, const acme_cert_t *cert,
                                         apr_time_t now, acme_result_t *res)
{
    apr_time_t nb, na;
    char date[APR_RFC822_DATE_LEN];

    if (asn1_time_to_apr(X509_get0_notBefore(cert->x509), &nb) != APR_SUCCESS
        || asn1_time_to_apr(X509_get0_notAfter(cert->x509), &na) != APR_SUCCESS) {
        return input_fail(res, "certificate validity times cannot be read");
    }
    if (now < nb) {
        apr_rfc822_date(date, nb);
        return input_fail(res, apr_psprintf(p, "certificate is not valid before %s", date));
    }
    if (now > na) {
        apr_rfc822_date(date, na);
        return input_fail(res, apr_psprintf(p, "certificate expired on %s", date));
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ ARI */

apr_status_t acme_crypto_ari_cert_id(apr_pool_t *p, const acme_cert_t *cert,
                                     const char **cert_id, acme_result_t *res)
{
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(cert->x509);
    const unsigned char *serial;
    apr_size_t serial_len;
    apr_status_t rv;

    if (!aki || ASN1_STRING_length(aki) <= 0) {
        return input_fail(res, "certificate has no authority key identifier (needed for ARI)");
    }
    rv = serial_der_content(p, cert->x509, &serial, &serial_len, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *cert_id = apr_pstrcat(p, acme_b64_encode(p, ASN1_STRING_get0_data(aki),
                                              (apr_size_t)ASN1_STRING_length(aki)),
                           ".", acme_b64_encode(p, serial, serial_len), NULL);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ self-signed */

static int x509_add_conf_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int x509_add_acme_identifier(X509 *x, const unsigned char digest[32])
{
    unsigned char value[34] = { 0x04, 0x20 };
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    int ok;

    memcpy(value + 2, digest, 32);
    ok = oid && os && ASN1_OCTET_STRING_set(os, value, sizeof(value))
         && (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, os)) != NULL
         && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(oid);
    return ok;
}

static int x509_set_random_serial(apr_pool_t *p, X509 *x)
{
    BIGNUM *bn = BN_new();

    if (!bn) {
        return 0;
    }
    apr_pool_cleanup_register(p, bn, bn_cleanup, apr_pool_cleanup_null);
    /* Positive, odd (so never zero), at most 127 bits: fits the 20-octet limit. */
    return BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD)
           && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
}

static int x509_set_validity(X509 *x, apr_interval_time_t validity)
{
    apr_int64_t secs = apr_time_sec(validity);
    time_t now = time(NULL);

    /* One clock reading for both ends, so the lifetime is exactly `validity`. */
    return X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &now) != NULL
           && X509_time_adj_ex(X509_getm_notAfter(x), (int)(secs / 86400), (long)(secs % 86400),
                               &now) != NULL;
}

static apr_status_t selfsigned_fill(apr_pool_t *p, X509 *x, const acme_key_t *key,
                                    const acme_ident_t *ident, int n_idents,
                                    apr_interval_time_t validity,
                                    const unsigned char *acme_id, acme_result_t *res)
{
    GENERAL_NAMES *gens = NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int has_cn = strlen(ident->value) <= 64;
    const char *ku = key->spec.kind == ACME_KEY_RSA ? "critical,digitalSignature,keyEncipherment"
                                                    : "critical,digitalSignature";
    apr_status_t rv = general_names_make(p, ident, n_idents, &gens, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !x509_set_random_serial(p, x)
        || !x509_set_validity(x, validity)
        || (has_cn && !name_set_cn(name, ident->value))
        || !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key->pkey)) {
        return lib_fail(p, res, "filling in a self-signed certificate failed");
    }
    /* Without a subject name the SAN must be critical (RFC 5280 §4.2.1.6). */
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, has_cn ? 0 : 1, X509V3_ADD_DEFAULT)
        || !x509_add_conf_ext(x, NID_basic_constraints, "critical,CA:FALSE")
        || !x509_add_conf_ext(x, NID_key_usage, ku)
        || !x509_add_conf_ext(x, NID_ext_key_usage, "serverAuth")
        || (acme_id && !x509_add_acme_identifier(x, acme_id))) {
        return lib_fail(p, res, "adding extensions to a self-signed certificate failed");
    }
    return APR_SUCCESS;
}

apr_status_t acme_crypto_selfsigned_create(apr_pool_t *p, const acme_key_t *key,
                                           const acme_ident_t *ident,
                                           apr_interval_time_t validity,
                                           const unsigned char *acme_identifier_sha256,
                                           const char **cert_pem, acme_result_t *res)
{
    return acme_crypto_selfsigned_create_names(p, key, ident, ident ? 1 : 0, validity,
                                               acme_identifier_sha256, cert_pem, res);
}

apr_status_t acme_crypto_selfsigned_create_names(apr_pool_t *p, const acme_key_t *key,
                                                 const acme_ident_t *idents, int n_idents,
                                                 apr_interval_time_t validity,
                                                 const unsigned char *acme_identifier_sha256,
                                                 const char **cert_pem, acme_result_t *res)
{
    X509 *x;
    BIO *bio;
    apr_status_t rv;

    if (!key->is_private) {
        return input_fail(res, "self-signed certificate key has no private part");
    }
    if (!idents || n_idents < 1 || !idents[0].value) {
        return input_fail(res, "self-signed certificate needs an identifier");
    }
    if (validity < apr_time_from_sec(1) || validity > apr_time_from_sec(100 * 366 * 86400LL)) {
        return input_fail(res, "self-signed certificate validity must be between 1 second "
                          "and 100 years");
    }
    if (!(x = X509_new())) {
        return lib_fail(p, res, "allocating a certificate failed");
    }
    apr_pool_cleanup_register(p, x, x509_cleanup, apr_pool_cleanup_null);
    rv = selfsigned_fill(p, x, key, idents, n_idents, validity, acme_identifier_sha256, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (X509_sign(x, key->pkey, EVP_sha256()) <= 0) {
        return lib_fail(p, res, "signing a self-signed certificate failed");
    }
    if (!(bio = pool_mem_bio(p)) || !PEM_write_bio_X509(bio, x)) {
        return lib_fail(p, res, "writing a self-signed certificate as PEM failed");
    }
    *cert_pem = bio_pstr(p, bio);
    return APR_SUCCESS;
}
