#ifndef ACME_B64_H
#define ACME_B64_H

#include <apr_pools.h>
#include <apr_errno.h>

/*
 * base64url (RFC 4648 §5) without padding, the only encoding JOSE and ACME
 * accept (RFC 7515 §2, RFC 8555 §6.1).
 */

/* Encodes len bytes; never NULL (empty input gives ""). */
const char *acme_b64_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* Encodes the bytes of a NUL-terminated string (without the NUL). */
const char *acme_b64_encode_str(apr_pool_t *p, const char *s);

/*
 * Strict decoder: only the url alphabet, no '=' padding, no whitespace, no
 * length that cannot come from an encoder (len % 4 == 1) and no non-zero
 * unused bits in the last character, so that each byte string has exactly one
 * accepted encoding. Returns APR_EINVAL otherwise. *out is NUL-terminated
 * for convenience; *out_len excludes the NUL.
 */
apr_status_t acme_b64_decode(apr_pool_t *p, const char *s,
                             unsigned char **out, apr_size_t *out_len);

#endif
