#ifndef ACME_NAMES_H
#define ACME_NAMES_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "acme_ident.h"

/*
 * Names as a certificate carries them: validation with reasons an admin can act on (configtest
 * must refuse what a CA will refuse, not discover it at the first renewal), canonical forms, and
 * an index for per-request lookup by Host/SNI.
 */

/*
 * Parses one configured name into an identifier.
 *
 * DNS names: lower-cased, one trailing dot dropped, at most 253 characters, at least two labels,
 * labels of 1-63 characters from [a-z0-9-] without a leading or trailing '-', no reserved
 * "??--" label prefix other than the punycode "xn--", a top-level label that is not all digits.
 * A wildcard is "*." followed by such a name. Internationalised names must be given as A-labels.
 *
 * IP literals (RFC 8738): an IPv4 dotted quad without leading zeros, or IPv6 text with or without
 * [brackets], stored in RFC 5952 canonical form ("2001:db8::1"). Unspecified addresses, zone ids
 * and IPv4-mapped IPv6 addresses are refused (the reason names the IPv4 address to use instead).
 *
 * On failure returns APR_EINVAL and sets *reason to one sentence naming the offending part.
 * reason may be NULL when the caller does not need it.
 */
apr_status_t acme_names_parse(apr_pool_t *p, const char *text, acme_ident_t *ident,
                              const char **reason);

/* True for "*.<name>" (the only wildcard form acme_names_parse accepts). */
int acme_names_is_wildcard(const char *name);

/*
 * True when `host` is covered by `wildcard`: exactly one more, non-empty label in front of the
 * wildcard's base, compared case-insensitively ("*.example.org" covers "a.example.org" but neither
 * "example.org" nor "a.b.example.org"). A trailing dot on host is ignored.
 */
int acme_names_wildcard_matches(const char *wildcard, const char *host);

/*
 * The reverse-DNS name of an IP identifier, the SNI value of tls-alpn-01 for IPs (RFC 8738 §6):
 * "1.0.0.127.in-addr.arpa", or 32 nibbles + ".ip6.arpa". NULL for a DNS identifier or bad value.
 */
const char *acme_names_reverse_dns(apr_pool_t *p, const acme_ident_t *ip);

/*
 * Map from host name to a caller's value, for O(1) lookup per request. Names are stored lower
 * case without trailing dot; IPv6 literals in canonical form. Lives in the pool given to make.
 */
typedef struct acme_names_index_t acme_names_index_t;

acme_names_index_t *acme_names_index_make(apr_pool_t *p);

/*
 * Adds `name` (already validated, a wildcard or not). When the name is taken, returns APR_EEXIST,
 * leaves the index unchanged and sets *existing (if given) to the value already there - used to
 * report the same name in two managed domains.
 */
apr_status_t acme_names_index_add(acme_names_index_t *idx, const char *name, void *value,
                                  void **existing);

/*
 * Looks up a request's host (Host header or SNI): case-insensitive, a ":port" suffix, [brackets]
 * and a trailing dot ignored. An exact entry wins over the wildcard of the parent domain
 * ("a.example.org" falls back to "*.example.org"). NULL when neither exists.
 */
void *acme_names_index_get(const acme_names_index_t *idx, const char *host);

/* Number of names in the index. */
unsigned int acme_names_index_count(const acme_names_index_t *idx);

#endif
