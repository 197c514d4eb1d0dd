#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_api.h"
#include "acme_api_csr.h"
#include "acme_names.h"
#include "acme_result.h"

#define ACME_API_RSA_MAX_BITS 8192

static apr_status_t csr_free(void *data)
{
    X509_REQ_free(data);
    return APR_SUCCESS;
}

static X509_REQ *acme_api_csr_parse(apr_pool_t *p, const char *data, apr_size_t len)
{
    X509_REQ *req = NULL;

    if (len > 10 && !memcmp(data, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    }
    else {
        const unsigned char *in = (const unsigned char *)data;
        req = d2i_X509_REQ(NULL, &in, (long)len);
        if (req && in != (const unsigned char *)data + len) {
            X509_REQ_free(req);     /* trailing bytes: not one DER CSR */
            req = NULL;
        }
    }
    if (req) {
        apr_pool_cleanup_register(p, req, csr_free, apr_pool_cleanup_null);
    }
    return req;
}

/* The signature and the key's type and size. */
static const char *acme_api_csr_key(apr_pool_t *p, X509_REQ *req, acme_key_t **key)
{
    EVP_PKEY *pkey = X509_REQ_get_pubkey(req);
    acme_result_t res;

    if (!pkey) {
        return "the CSR has no usable public key";
    }
    if (X509_REQ_verify(req, pkey) != 1) {
        EVP_PKEY_free(pkey);
        return "the CSR's signature does not verify with its own public key";
    }
    if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) > ACME_API_RSA_MAX_BITS) {
        EVP_PKEY_free(pkey);
        return "the CSR's RSA key is larger than 8192 bits";
    }
    acme_result_reset(&res);
    if (acme_crypto_key_wrap(p, pkey, key, &res) != APR_SUCCESS) {
        return apr_psprintf(p, "the CSR's key is not accepted (RSA of 2048 to 8192 bits, or EC "
                            "on P-256 or P-384): %s", res.message ? res.message : "unknown");
    }
    return NULL;
}

static const char *acme_api_csr_add_name(apr_pool_t *p, apr_array_header_t *names,
                                         const ASN1_IA5STRING *v)
{
    const char *text = apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(v),
                                      (apr_size_t)ASN1_STRING_length(v));
    const char *reason = NULL;
    acme_ident_t ident;

    if (strlen(text) != (apr_size_t)ASN1_STRING_length(v)
        || acme_names_parse(p, text, &ident, &reason) != APR_SUCCESS
        || ident.type != ACME_IDENT_DNS) {
        return apr_psprintf(p, "the CSR names '%s', which is not a valid DNS name%s%s",
                            acme_result_utf8(p, apr_pstrndup(p, text, 100)),
                            reason ? ": " : "", reason ? reason : "");
    }
    if (names->nelts >= ACME_API_NAMES_MAX) {
        return "the CSR has more than 100 names";
    }
    APR_ARRAY_PUSH(names, const char *) = ident.value;
    return NULL;
}

static const char *acme_api_csr_sans(apr_pool_t *p, X509_EXTENSION *ext,
                                     apr_array_header_t *names)
{
    GENERAL_NAMES *gens = X509V3_EXT_d2i(ext);
    const char *err = NULL;
    int i;

    if (!gens) {
        return "the CSR's subjectAltName cannot be read";
    }
    for (i = 0; i < sk_GENERAL_NAME_num(gens) && !err; ++i) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        err = g->type == GEN_DNS ? acme_api_csr_add_name(p, names, g->d.dNSName)
                                 : "the CSR's subjectAltName holds something other than DNS "
                                   "names (only DNS names can be ordered)";
    }
    GENERAL_NAMES_free(gens);
    return err;
}

static const char *acme_api_csr_basic(X509_EXTENSION *ext)
{
    BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
    int ca = bc ? bc->ca : 1;

    BASIC_CONSTRAINTS_free(bc);
    return ca ? "the CSR asks for a CA certificate (basicConstraints CA:TRUE)" : NULL;
}

/* Only subjectAltName and the basic extensions; the names are collected. */
static const char *acme_api_csr_extensions(apr_pool_t *p, X509_REQ *req,
                                           apr_array_header_t *names)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    const char *err = NULL;
    int i, sans = 0;

    for (i = 0; i < sk_X509_EXTENSION_num(exts) && !err; ++i) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
        if (nid == NID_subject_alt_name) {
            err = sans++ ? "the CSR has two subjectAltName extensions"
                         : acme_api_csr_sans(p, ext, names);
        }
        else if (nid == NID_basic_constraints) {
            err = acme_api_csr_basic(ext);
        }
        else if (nid != NID_key_usage && nid != NID_ext_key_usage) {
            char oid[80];
            OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 0);
            err = apr_psprintf(p, "the CSR asks for the extension %s; only subjectAltName, "
                               "basicConstraints, keyUsage and extendedKeyUsage are accepted",
                               oid);
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return err;
}

static const char *acme_api_csr_attributes(X509_REQ *req)
{
    int i;

    for (i = 0; i < X509_REQ_get_attr_count(req); ++i) {
        int nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(X509_REQ_get_attr(req, i)));
        if (nid != NID_ext_req && nid != NID_ms_ext_req) {
            return "the CSR carries attributes other than its extension request "
                   "(e.g. a challenge password); none are passed on to the CA";
        }
    }
    return NULL;
}

static int acme_api_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted and unique; a subject CN must be one of them. */
static const char *acme_api_csr_names(apr_pool_t *p, X509_REQ *req, apr_array_header_t *names)
{
    X509_NAME *subj = X509_REQ_get_subject_name(req);
    int i, out = 0, cn = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);

    if (names->nelts == 0) {
        return "the CSR has no DNS names in a subjectAltName extension (the names must be "
               "there; a CN alone is not enough)";
    }
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), acme_api_name_cmp);
    for (i = 0; i < names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        if (out == 0 || strcmp(APR_ARRAY_IDX(names, out - 1, const char *), n)) {
            APR_ARRAY_IDX(names, out++, const char *) = n;
        }
    }
    names->nelts = out;
    for (; cn >= 0; cn = X509_NAME_get_index_by_NID(subj, NID_commonName, cn)) {
        ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, cn));
        const char *text = apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(v),
                                          (apr_size_t)ASN1_STRING_length(v));
        int found = 0;
        for (i = 0; i < names->nelts && !found; ++i) {
            found = !strcasecmp(text, APR_ARRAY_IDX(names, i, const char *));
        }
        if (!found) {
            return "the CSR's subject CN is not one of its subjectAltName names";
        }
    }
    return NULL;
}

static const char *acme_api_csr_id(apr_pool_t *p, const unsigned char *der, apr_size_t len)
{
    unsigned char md[32];
    char *hex = apr_palloc(p, ACME_API_ID_LEN + 1);
    int i;

    acme_crypto_sha256(der, len, md);
    for (i = 0; i < ACME_API_ID_LEN / 2; ++i) {
        apr_snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    return hex;
}

apr_status_t acme_api_csr_check(apr_pool_t *p, const char *data, apr_size_t len,
                                acme_api_csr_t **csr, const char **reason)
{
    acme_api_csr_t *c = apr_pcalloc(p, sizeof(*c));
    X509_REQ *req;
    unsigned char *der = NULL;
    int der_len;

    *reason = NULL;
    if (!data || len == 0 || len > ACME_API_CSR_MAX) {
        *reason = "the request body is not a CSR (empty or too big)";
        return APR_EINVAL;
    }
    if (!(req = acme_api_csr_parse(p, data, len))) {
        *reason = "the request body is not a CSR (PEM \"CERTIFICATE REQUEST\" or DER expected)";
        return APR_EINVAL;
    }
    c->names = apr_array_make(p, 4, sizeof(const char *));
    if ((*reason = acme_api_csr_key(p, req, &c->key))
        || (*reason = acme_api_csr_attributes(req))
        || (*reason = acme_api_csr_extensions(p, req, c->names))
        || (*reason = acme_api_csr_names(p, req, c->names))) {
        return APR_EINVAL;
    }
    if ((der_len = i2d_X509_REQ(req, &der)) <= 0) {
        *reason = "the CSR cannot be encoded again";
        return APR_EINVAL;
    }
    c->der = apr_pmemdup(p, der, (apr_size_t)der_len);
    c->der_len = (apr_size_t)der_len;
    OPENSSL_free(der);
    c->id = acme_api_csr_id(p, c->der, c->der_len);
    *csr = c;
    return APR_SUCCESS;
}
