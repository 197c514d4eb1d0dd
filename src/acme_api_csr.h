#ifndef ACME_API_CSR_H
#define ACME_API_CSR_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>

#include "acme_crypto.h"

/*
 * A certificate request a client of the certificate API sent (issue 17), checked before
 * anything is queued: signed by its own key, a key the CAs accept (RSA 2048-8192 bits, EC
 * P-256 or P-384), DNS names only and all in subjectAltName (a CN must be one of them), no
 * attribute but the extension request, and no extension but subjectAltName and the basic
 * ones (basicConstraints without CA, keyUsage, extendedKeyUsage). The worker finalizes the
 * order with this very CSR: it never sees the client's private key.
 */
typedef struct {
    const unsigned char *der;           /* the CSR, DER */
    apr_size_t der_len;
    const char *id;                     /* ACME_API_ID_LEN hex digits of SHA-256(der) */
    apr_array_header_t *names;          /* const char *, lower case, sorted, unique */
    acme_key_t *key;                    /* its public key */
} acme_api_csr_t;

/*
 * Parses (PEM "CERTIFICATE REQUEST" / "NEW CERTIFICATE REQUEST", or DER) and checks a CSR.
 * APR_SUCCESS with *csr, else APR_EINVAL and *reason (one sentence for the client).
 */
apr_status_t acme_api_csr_check(apr_pool_t *p, const char *data, apr_size_t len,
                                acme_api_csr_t **csr, const char **reason);

#endif
