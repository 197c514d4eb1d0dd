#ifndef ACME_CHALLENGE_H
#define ACME_CHALLENGE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "acme_ident.h"
#include "acme_result.h"

/*
 * Challenge answers, written by the renewal worker and read by the children
 * that answer the CA: challenges/http-01/<identifier>/<token>. The directory
 * is the only part of the store the children may read.
 */
#define ACME_CHALLENGE_HTTP01_DIR "http-01"
#define ACME_CHALLENGE_TOKEN_MAX 256

/* 1 when the token has only base64url characters and a sane length. */
int acme_challenge_token_valid(const char *token);

/* <store>/challenges/http-01/<ident>/<token>, or NULL for an unusable ident or token. */
const char *acme_challenge_http01_path(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token);

/* Publishes a key authorization (0644, atomically). */
apr_status_t acme_challenge_http01_put(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token, const char *key_authz,
                                       acme_result_t *res);

/* Withdraws it; a missing answer is not an error. */
void acme_challenge_http01_remove(apr_pool_t *p, const char *store_dir, const char *ident,
                                  const char *token);

/* Reads the answer for ident/token; APR_ENOENT when there is none. */
apr_status_t acme_challenge_http01_get(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token, const char **key_authz,
                                       apr_size_t *len);

/*
 * TLS challenges are answered during the handshake with a self-signed certificate. The worker
 * writes one file per answer, certificate and key together (one rename: a child never reads a
 * certificate with another answer's key), 0600 and owned by the User the children run as:
 *
 *   challenges/tls-alpn-01/<identifier>/answer.pem   RFC 8737; <identifier> is the DNS name or
 *                                                    the IP address (not its reverse-DNS SNI)
 *   challenges/tls-sni-01/<Z[0:32]>.<Z[32:64]>.acme.invalid/answer.pem
 *
 * so a child finds the answer for an SNI name with one open(), and only after it has checked
 * that the name can have one. The keys are throw-away P-256 keys that sign nothing but the
 * challenge certificate.
 */
#define ACME_CHALLENGE_TLSALPN01_DIR "tls-alpn-01"
#define ACME_CHALLENGE_TLSSNI01_DIR "tls-sni-01"
#define ACME_CHALLENGE_ANSWER_FILE "answer.pem"
#define ACME_CHALLENGE_TLSSNI01_SUFFIX ".acme.invalid"
#define ACME_CHALLENGE_TLSSNI01_NAME_LEN (32 + 1 + 32 + sizeof(ACME_CHALLENGE_TLSSNI01_SUFFIX) - 1)
#define ACME_CHALLENGE_TLS_VALIDITY apr_time_from_sec(7 * 86400)

/* Lowercase hex of SHA-256(key authorization): 64 characters ("Z" of tls-sni-01). */
const char *acme_challenge_sha256_hex(apr_pool_t *p, const char *key_authz);

/* The tls-sni-01 SNI name of a key authorization: Z[0:32] "." Z[32:64] ".acme.invalid". */
const char *acme_challenge_tlssni01_name(apr_pool_t *p, const char *key_authz);

/*
 * 1 when name has the exact shape of a tls-sni-01 name (32 hex "." 32 hex ".acme.invalid",
 * case-insensitive): the one check a handshake pays before any lookup.
 */
int acme_challenge_tlssni01_name_valid(const char *name);

/*
 * The IP identifier an RFC 8738 reverse-DNS SNI names ("1.0.0.127.in-addr.arpa" -> 127.0.0.1,
 * 32 nibbles ".ip6.arpa" -> canonical IPv6 text). APR_EINVAL for anything else.
 */
apr_status_t acme_challenge_ip_from_reverse(apr_pool_t *p, const char *sni, acme_ident_t *ip);

/*
 * The PEM an answer file holds: a fresh P-256 key and a self-signed certificate (7 days) whose
 * only SAN is `ident`; with acme_identifier_sha256 (32 bytes) it carries the critical
 * id-pe-acmeIdentifier extension of tls-alpn-01. Certificate first, then the key.
 */
apr_status_t acme_challenge_tls_answer_pem(apr_pool_t *p, const acme_ident_t *ident,
                                           const unsigned char *acme_identifier_sha256,
                                           const char **pem, acme_result_t *res);

/* Splits answer PEM into the certificate and the key part; APR_EINVAL when one is missing. */
apr_status_t acme_challenge_tls_answer_split(apr_pool_t *p, const char *pem,
                                             const char **cert_pem, const char **key_pem);

/* <store>/challenges/tls-alpn-01/<ident>/answer.pem, or NULL for an unusable ident. */
const char *acme_challenge_tlsalpn01_path(apr_pool_t *p, const char *store_dir,
                                          const char *ident);

/* Publishes the tls-alpn-01 answer for ident (certificate with SHA-256(key_authz)). */
apr_status_t acme_challenge_tlsalpn01_put(apr_pool_t *p, const char *store_dir,
                                          const acme_ident_t *ident, const char *key_authz,
                                          acme_result_t *res);

void acme_challenge_tlsalpn01_remove(apr_pool_t *p, const char *store_dir, const char *ident);

/* The answer PEM for ident; APR_ENOENT when there is none. */
apr_status_t acme_challenge_tlsalpn01_get(apr_pool_t *p, const char *store_dir,
                                          const char *ident, const char **pem);

/* <store>/challenges/tls-sni-01/<name>/answer.pem, or NULL when name is not a tls-sni-01 name. */
const char *acme_challenge_tlssni01_path(apr_pool_t *p, const char *store_dir, const char *name);

/* Publishes the tls-sni-01 answer for key_authz; *name is the SNI name it answers. */
apr_status_t acme_challenge_tlssni01_put(apr_pool_t *p, const char *store_dir,
                                         const char *key_authz, const char **name,
                                         acme_result_t *res);

void acme_challenge_tlssni01_remove(apr_pool_t *p, const char *store_dir, const char *name);

/* The answer PEM for an SNI name; APR_ENOENT when there is none or the name has the wrong shape. */
apr_status_t acme_challenge_tlssni01_get(apr_pool_t *p, const char *store_dir, const char *name,
                                         const char **pem);

#endif
