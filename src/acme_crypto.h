#ifndef ACME_CRYPTO_H
#define ACME_CRYPTO_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_errno.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "acme_ident.h"
#include "acme_result.h"

/*
 * Keys, CSRs and certificates on top of OpenSSL 3, without httpd. Every
 * object lives in a pool: OpenSSL resources are freed by a pool cleanup.
 */

/* ------------------------------------------------------------------ key specs */

typedef enum { ACME_KEY_EC, ACME_KEY_RSA } acme_key_kind_t;

typedef struct {
    acme_key_kind_t kind;
    int bits;                   /* RSA: 2048/3072/4096; EC: 256 or 384 */
} acme_keyspec_t;

/*
 * Parses a configured key type, case-insensitively: secp256r1, prime256v1,
 * P-256, secp384r1, P-384, rsa2048, rsa3072, rsa4096, rsa (= rsa2048).
 * APR_EINVAL with *reason (naming the accepted values) for anything else.
 */
apr_status_t acme_crypto_keyspec_parse(const char *text, acme_keyspec_t *spec,
                                       const char **reason, apr_pool_t *p);

/* Canonical name for files and status: secp256r1, secp384r1, rsa2048, rsa3072, rsa4096. */
const char *acme_crypto_keyspec_name(const acme_keyspec_t *spec);

/* ------------------------------------------------------------------ keys */

typedef struct acme_key_t acme_key_t;

/* A fresh private key. */
apr_status_t acme_crypto_key_generate(apr_pool_t *p, const acme_keyspec_t *spec,
                                      acme_key_t **key, acme_result_t *res);

/*
 * Unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"). The text is wiped when p is
 * cleared. Fails for a key without its private part.
 */
apr_status_t acme_crypto_key_to_pem(apr_pool_t *p, const acme_key_t *key,
                                    const char **pem, acme_result_t *res);

/*
 * Loads an unencrypted private key (PKCS#8 or traditional PEM). Only the
 * supported key specs are accepted; an encrypted key is refused rather than
 * prompting for a pass phrase.
 */
apr_status_t acme_crypto_key_from_pem(apr_pool_t *p, const char *pem, apr_size_t len,
                                      acme_key_t **key, acme_result_t *res);

/*
 * Wraps an EVP_PKEY, taking ownership of it (also on failure, when it is
 * freed). Public-only keys are accepted; RSA keys must have >= 2048 bits and
 * EC keys must be on P-256 or P-384.
 */
apr_status_t acme_crypto_key_wrap(apr_pool_t *p, EVP_PKEY *pkey, acme_key_t **key,
                                  acme_result_t *res);

/* Borrowed: valid while the key's pool lives. */
EVP_PKEY *acme_crypto_key_evp(const acme_key_t *key);
void acme_crypto_key_spec(const acme_key_t *key, acme_keyspec_t *out);
/* 1 when the key holds its private part (it can sign). */
int acme_crypto_key_is_private(const acme_key_t *key);

/* ------------------------------------------------------------------ digests */

void acme_crypto_sha256(const void *data, apr_size_t len, unsigned char out[32]);

/* ------------------------------------------------------------------ CSR */

/*
 * A DER CSR for the identifiers: the subjectAltName extension holds exactly
 * them (dNSName / iPAddress), CN = the first dns identifier when it has at
 * most 64 characters (else no CN), signed with SHA-256.
 */
apr_status_t acme_crypto_csr_create(apr_pool_t *p, const acme_key_t *key,
                                    const acme_ident_t *idents, int n_idents,
                                    unsigned char **der, apr_size_t *der_len,
                                    acme_result_t *res);

/* ------------------------------------------------------------------ certificates */

typedef struct acme_cert_t acme_cert_t;

/*
 * Parses application/pem-certificate-chain (leaf first). Rejects empty input,
 * any PEM block other than CERTIFICATE (RFC 8555 §11.4), PEM headers,
 * undecodable blocks and trailing bytes inside a block.
 */
apr_status_t acme_crypto_chain_parse(apr_pool_t *p, const char *pem, apr_size_t len,
                                     apr_array_header_t **chain /* of acme_cert_t* */,
                                     acme_result_t *res);

/* Concatenated PEM of the chain, in order. */
apr_status_t acme_crypto_chain_to_pem(apr_pool_t *p, const apr_array_header_t *chain,
                                      const char **pem, acme_result_t *res);

/* Wraps a copy of x509 (the caller keeps its own reference). */
apr_status_t acme_crypto_cert_wrap(apr_pool_t *p, X509 *x509, acme_cert_t **cert,
                                   acme_result_t *res);

/* Borrowed: valid while the cert's pool lives. */
X509 *acme_crypto_cert_x509(const acme_cert_t *cert);

/* DER of the certificate (e.g. for revokeCert). */
apr_status_t acme_crypto_cert_der(apr_pool_t *p, const acme_cert_t *cert,
                                  unsigned char **der, apr_size_t *der_len,
                                  acme_result_t *res);

typedef struct {
    const char *serial_hex;             /* upper-case hex, no colons, no leading zeros */
    const unsigned char *serial_der;    /* DER INTEGER content bytes, incl. a leading
                                         * 0x00 if the top bit is set */
    apr_size_t serial_der_len;
    const unsigned char *aki;           /* authorityKeyIdentifier keyIdentifier, or NULL */
    apr_size_t aki_len;
    apr_time_t not_before, not_after;
    const char *issuer;                 /* RFC 2253 one line */
    const char *subject;
    const char *issuer_cn;              /* NULL when the issuer has no CN */
    apr_array_header_t *sans;           /* of acme_ident_t: dns lower-cased, ip as text;
                                         * other SAN types are left out */
} acme_cert_info_t;

apr_status_t acme_crypto_cert_info(apr_pool_t *p, const acme_cert_t *cert,
                                   acme_cert_info_t *info, acme_result_t *res);

/* ------------------------------------------------------------------ checks */

/* The certificate carries key's public key. */
apr_status_t acme_crypto_key_matches_cert(const acme_key_t *key, const acme_cert_t *cert,
                                          acme_result_t *res);

/*
 * Every identifier is in the certificate's SANs: dns case-insensitively and
 * literally (a wildcard SAN covers only the identical wildcard identifier),
 * ip compared as binary addresses. Reports the first one missing.
 */
apr_status_t acme_crypto_cert_covers(apr_pool_t *p, const acme_cert_t *cert,
                                     const acme_ident_t *idents, int n_idents,
                                     acme_result_t *res);

/*
 * The chain is non-empty, each certificate is issued (names, key ids and
 * signature) by the next one, and the last is self-signed or issued by a
 * certificate not in the chain. Reports the position that breaks.
 */
apr_status_t acme_crypto_chain_check(apr_pool_t *p, const apr_array_header_t *chain,
                                     acme_result_t *res);

/*
 * acme_crypto_chain_check, and the chain is what a CA hands out: the leaf is neither
 * self-signed nor a CA certificate, and at least one issuer certificate follows it.
 */
apr_status_t acme_crypto_chain_check_issued(apr_pool_t *p, const apr_array_header_t *chain,
                                            acme_result_t *res);

/* notBefore <= now <= notAfter. */
apr_status_t acme_crypto_cert_check_time(apr_pool_t *p, const acme_cert_t *cert,
                                         apr_time_t now, acme_result_t *res);

/* ------------------------------------------------------------------ ARI (RFC 9773) */

/* base64url(AKI keyIdentifier) "." base64url(serial DER content bytes). */
apr_status_t acme_crypto_ari_cert_id(apr_pool_t *p, const acme_cert_t *cert,
                                     const char **cert_id, acme_result_t *res);

/* ------------------------------------------------------------------ self-signed */

/*
 * A self-signed certificate for one identifier (exactly one SAN: dNSName or
 * iPAddress), random 127-bit serial, valid from now for `validity`. With
 * acme_identifier_sha256 (32 bytes) it also carries the critical RFC 8737
 * id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) whose value is the DER
 * OCTET STRING 04 20 || digest, as a tls-alpn-01 answer needs.
 */
apr_status_t acme_crypto_selfsigned_create(apr_pool_t *p, const acme_key_t *key,
                                           const acme_ident_t *ident,
                                           apr_interval_time_t validity,
                                           const unsigned char *acme_identifier_sha256,
                                           const char **cert_pem, acme_result_t *res);

/* The same for several names (SANs in order; the subject CN is the first). */
apr_status_t acme_crypto_selfsigned_create_names(apr_pool_t *p, const acme_key_t *key,
                                                 const acme_ident_t *idents, int n_idents,
                                                 apr_interval_time_t validity,
                                                 const unsigned char *acme_identifier_sha256,
                                                 const char **cert_pem, acme_result_t *res);

#endif
