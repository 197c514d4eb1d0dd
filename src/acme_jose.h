#ifndef ACME_JOSE_H
#define ACME_JOSE_H

#include <apr_pools.h>
#include <apr_errno.h>

#include <jansson.h>

#include "acme_crypto.h"
#include "acme_result.h"

/*
 * JWS (RFC 7515) in flattened JSON serialization, JWK (RFC 7517/7518) and
 * thumbprints (RFC 7638) as RFC 8555 uses them. Only ES256 (P-256), ES384
 * (P-384) and RS256 (RSA) for signatures, HS256/384/512 for EAB.
 */

/* "ES256", "ES384" or "RS256". */
const char *acme_jose_alg(const acme_key_t *key);

/*
 * The public JWK: EC {crv,kty,x,y} with x/y at full field width, RSA
 * {e,kty,n} without leading zero octets. Returns a NEW reference that the
 * caller owns: json_decref it, or hand it over with json_object_set_new().
 */
apr_status_t acme_jose_jwk(apr_pool_t *p, const acme_key_t *key, json_t **jwk,
                           acme_result_t *res);

/* The RFC 7638 canonical JWK text (required members, sorted, no whitespace). */
apr_status_t acme_jose_jwk_canonical(apr_pool_t *p, const acme_key_t *key,
                                     const char **json, acme_result_t *res);

/* A public key from a JWK (EC P-256/P-384 or RSA >= 2048 bit); private members are ignored. */
apr_status_t acme_jose_key_from_jwk(apr_pool_t *p, json_t *jwk, acme_key_t **key,
                                    acme_result_t *res);

/* base64url(SHA-256(canonical JWK)), RFC 7638. */
apr_status_t acme_jose_thumbprint(apr_pool_t *p, const acme_key_t *key,
                                  const char **thumb_b64, acme_result_t *res);

/* token "." thumbprint (RFC 8555 §8.1). A secret until the challenge is done. */
const char *acme_jose_key_authorization(apr_pool_t *p, const char *token,
                                        const char *thumb_b64);

/*
 * Signs a request: returns {"protected","payload","signature"} as compact
 * JSON text. payload NULL or "" gives POST-as-GET (payload field ""). nonce
 * NULL omits it (inner JWS of keyChange); kid NULL embeds the jwk instead.
 * ES256/ES384 signatures are raw R||S of 64/96 bytes, RS256 is PKCS#1 v1.5.
 */
apr_status_t acme_jose_sign(apr_pool_t *p, const acme_key_t *key, const char *payload,
                            const char *url, const char *nonce, const char *kid,
                            const char **jws, acme_result_t *res);

/*
 * The externalAccountBinding object (RFC 8555 §7.3.4): protected
 * {"alg","kid","url"}, payload = base64url of the account's public JWK, MAC
 * with the base64url-decoded HMAC key. alg: "HS256" (also for NULL), "HS384",
 * "HS512". Returns a NEW reference the caller owns. Bad kid/key/alg fail with
 * class ACME_CLASS_ADMIN (configuration), never showing the key.
 */
apr_status_t acme_jose_sign_eab(apr_pool_t *p, const acme_key_t *account_key,
                                const char *eab_kid, const char *hmac_key_b64url,
                                const char *alg, const char *url, json_t **eab,
                                acme_result_t *res);

/* Raw HMAC for "HS256"/"HS384"/"HS512" (NULL = HS256). */
apr_status_t acme_jose_hmac(apr_pool_t *p, const char *alg,
                            const unsigned char *key, apr_size_t key_len,
                            const void *data, apr_size_t len,
                            unsigned char **mac, apr_size_t *mac_len, acme_result_t *res);

/*
 * Verifies a flattened JWS signed with ES256/ES384/RS256. key NULL: use the
 * "jwk" of the protected header. The header's alg must match the key, and an
 * EC signature must be exactly 64/96 bytes. On success *payload (NUL-
 * terminated, may be NULL) holds the decoded payload and *header (may be
 * NULL) a NEW reference to the decoded protected header.
 */
apr_status_t acme_jose_verify(apr_pool_t *p, const char *jws, const acme_key_t *key,
                              const char **payload, apr_size_t *payload_len,
                              json_t **header, acme_result_t *res);

#endif
