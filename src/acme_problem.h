#ifndef ACME_PROBLEM_H
#define ACME_PROBLEM_H

#include <apr_pools.h>
#include <apr_time.h>

#include "acme_result.h"

/*
 * Problem documents (RFC 7807 / RFC 8555 §6.7) turned into what the
 * scheduler acts on. The class table follows the error table in
 * docs and acme-protocol.md §1.10:
 *   rateLimited                                   → RETRY_AFTER
 *   userActionRequired, agreementRequired, externalAccountRequired, caa,
 *   unauthorized, badCSR, rejectedIdentifier, invalidContact,
 *   unsupportedContact, badSignatureAlgorithm, badPublicKey,
 *   unsupportedIdentifier, badRevocationReason, invalidProfile,
 *   accountDoesNotExist                           → ADMIN
 *   serverInternal, connection, dns, tls, badNonce → RETRY_SOON
 *   malformed, orderNotReady, incorrectResponse, alreadyRevoked,
 *   alreadyReplaced                               → PERMANENT
 *   compound                                      → the weightiest subproblem
 * Unknown types and bodies without a problem go by HTTP status: 429 →
 * RETRY_AFTER, 408/5xx → RETRY_SOON, other 4xx → PERMANENT. A RETRY_SOON
 * answer that carries Retry-After becomes RETRY_AFTER.
 */

/* "badNonce" for "urn:ietf:params:acme:error:badNonce" (or the ACMEv1 prefix); NULL otherwise. */
const char *acme_problem_short_name(const char *type);

/* The class for a problem type (full URN; NULL = no problem document). */
acme_class_t acme_problem_class(const char *type, int http_status);

/* Whether res holds the ACME problem `short_name` (e.g. "badNonce"). */
int acme_problem_is(const acme_result_t *res, const char *short_name);

/*
 * 1 when res says the CA no longer has the account that signed: accountDoesNotExist, or
 * unauthorized whose detail reports the account (or registration) deactivated or unknown.
 * The worker then looks the account up by key and registers it again if need be.
 */
int acme_problem_account_lost(const acme_result_t *res);

/*
 * Fills res from a failed response: `what` says what we tried (no secrets),
 * the body is parsed when it is a problem document. Returns res->status:
 * APR_ENOENT for 404 and accountDoesNotExist, APR_EGENERAL otherwise.
 */
apr_status_t acme_problem_from_response(acme_result_t *res, apr_pool_t *p, const char *what,
                                        int http_status, const char *content_type,
                                        const char *body, apr_size_t len,
                                        apr_time_t retry_after);

/*
 * Fills res from a problem object embedded in another resource (an order's
 * or challenge's "error"), given as JSON text, with the class forced to
 * `err_class` (an invalid order is PERMANENT whatever its cause).
 */
apr_status_t acme_problem_from_json(acme_result_t *res, apr_pool_t *p, const char *what,
                                    const char *json, apr_size_t len, acme_class_t err_class);

#endif
