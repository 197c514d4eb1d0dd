#ifndef ACME_CHALLENGE_H
#define ACME_CHALLENGE_H

#include <apr_pools.h>

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

#endif
