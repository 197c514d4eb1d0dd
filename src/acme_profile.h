#ifndef ACME_PROFILE_H
#define ACME_PROFILE_H

#include <apr_pools.h>
#include <jansson.h>

#include "acme_client.h"
#include "acme_ident.h"
#include "acme_result.h"

/*
 * Certificate profiles (draft-ietf-acme-profiles): which `profile` a newOrder carries, from
 * ACMEProfile and what the CA's directory offers (meta.profiles), checked before any order:
 *   - ACMEProfile name, offered                  -> name
 *   - ACMEProfile name, CA offers others only    -> ADMIN error (names the profiles offered)
 *   - ACMEProfile name mandatory, CA offers none -> ADMIN error
 *   - ACMEProfile name, CA offers none           -> no profile (the CA's default), with a note
 *   - no ACMEProfile, an IP identifier, the CA offers "shortlived" -> "shortlived" (Let's
 *     Encrypt issues IP certificates only in that profile), with a note
 *   - no ACMEProfile otherwise                   -> no profile (the CA's default)
 * and the limits a CA publishes in the profile object (acme_client_profile_t: maxNames,
 * identifierTypes) are checked against the domain's identifiers (ADMIN error naming them).
 * Pure: no I/O.
 */

#define ACME_PROFILE_AUTO_IP "shortlived"

typedef struct {
    const char *ca_url;             /* for messages */
    const char *wanted;             /* ACMEProfile name, NULL: not set */
    int mandatory;
    const acme_ident_t *idents;
    int n_idents;
} acme_profile_request_t;

/*
 * *chosen: the profile for newOrder, or NULL. *note (may be NULL): what an admin should read
 * once, when the choice was not simply ACMEProfile's name (dropped, or chosen automatically).
 */
apr_status_t acme_profile_choose(apr_pool_t *p, const acme_profile_request_t *req,
                                 const acme_client_meta_t *meta, const char **chosen,
                                 const char **note, acme_result_t *res);

/* "classic, shortlived" (or "none"): the profiles a CA offers, for messages. */
const char *acme_profile_offered_text(apr_pool_t *p, const acme_client_meta_t *meta);

/*
 * The cached directory: what configtest needs from the CA's directory, kept by the worker in
 * jobs/directory.<ca-id>.json (the httpd User's directory) with a MAC by the proof key (see
 * acme_seal.h), so the User cannot make configtest fail by writing one.
 * acme_profile_cache_make: the file's JSON, NULL on failure.
 * acme_profile_cache_read: the meta when the file is the worker's for this CA URL.
 */
json_t *acme_profile_cache_make(apr_pool_t *p, const unsigned char *proof_key, const char *ca_url,
                                const acme_client_meta_t *meta, apr_time_t fetched);
apr_status_t acme_profile_cache_read(apr_pool_t *p, const unsigned char *proof_key,
                                     const char *ca_url, json_t *json, acme_client_meta_t *meta,
                                     apr_time_t *fetched, acme_result_t *res);

/* The file name in jobs/ of a CA's cached directory. */
const char *acme_profile_cache_file(apr_pool_t *p, const char *ca_url);

#endif
