#ifndef ACME_ONDEMAND_H
#define ACME_ONDEMAND_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <jansson.h>

#include "acme_result.h"

/*
 * On-demand certificates (issue 19): a name first seen in SNI on a catch-all vhost may get a
 * certificate of its own, when the admin's ask endpoint says yes. This file holds the decisions
 * and the bookkeeping; serving and ordering are the worker's and the parent's as for any domain.
 *
 * The rules, in the order acme_ondemand_decide applies them:
 *   - the name must be one a CA would certify (acme_names_parse): no wildcard, IP literals only
 *     when allowed;
 *   - a name the endpoint refused is not asked again for ACME_ONDEMAND_NO_TTL; a yes holds for
 *     the certificate's life (the registry keeps it);
 *   - a name whose orders failed waits out its backoff (doubling, capped);
 *   - new names: at most ACMEOnDemandMax in the registry, and at most ACMEOnDemandRate orders
 *     per period (a token bucket), so a flood of random SNI names costs a bounded number of asks
 *     and orders.
 *
 * jobs/ondemand.json, the registry, is written by the worker (the httpd User) and carries a MAC
 * by the proof key (see acme_seal.h): a registry the User forged is ignored as a whole, so the
 * User cannot add a name the endpoint never approved.
 */

#define ACME_ONDEMAND_NO_TTL apr_time_from_sec(600)
#define ACME_ONDEMAND_FILE "ondemand.json"

typedef struct {
    int count;                          /* orders per period */
    apr_interval_time_t period;
} acme_ondemand_rate_t;

typedef struct {
    double tokens;
    apr_time_t at;                      /* last refill; 0: full */
} acme_ondemand_bucket_t;

typedef enum {
    ACME_ONDEMAND_UNKNOWN = 0,          /* never asked */
    ACME_ONDEMAND_REFUSED,              /* the endpoint said no (or was down) until `until` */
    ACME_ONDEMAND_APPROVED,             /* yes: a managed domain from now on */
} acme_ondemand_state_t;

typedef struct {
    const char *name;
    acme_ondemand_state_t state;
    apr_time_t asked;                   /* when the endpoint answered */
    apr_time_t until;                   /* REFUSED: ask again after; APPROVED: 0 */
    int failures;                       /* consecutive failed orders */
    apr_time_t next_try;                /* no order before (backoff); 0: none */
} acme_ondemand_entry_t;

typedef struct {
    apr_hash_t *entries;                /* name -> acme_ondemand_entry_t * */
    acme_ondemand_bucket_t bucket;
} acme_ondemand_registry_t;

typedef enum {
    ACME_ONDEMAND_SERVE = 0,            /* approved: order or renew it like any domain */
    ACME_ONDEMAND_ASK,                  /* ask the endpoint now (a token was taken) */
    ACME_ONDEMAND_LATER,                /* not now (refusal cached, backoff, rate); *why says */
    ACME_ONDEMAND_NEVER,                /* not a name we would ever order; *why says */
} acme_ondemand_verdict_t;

typedef struct {
    int allow_ip;                       /* IP literals in SNI (RFC 6066 forbids them; off) */
    int max_domains;                    /* ACMEOnDemandMax; 0: no cap */
    acme_ondemand_rate_t rate;          /* ACMEOnDemandRate */
} acme_ondemand_policy_t;

/* "10/1m", "100/1h": count / duration. APR_EINVAL and *why otherwise. */
apr_status_t acme_ondemand_rate_parse(const char *text, acme_ondemand_rate_t *rate,
                                      const char **why, apr_pool_t *p);

/* 1 and one token less when the bucket (refilled up to now) has one; 0 otherwise. */
int acme_ondemand_bucket_take(acme_ondemand_bucket_t *bucket, const acme_ondemand_rate_t *rate,
                              apr_time_t now);

/* The canonical name for an SNI value, or NULL with *why when it can never be on-demand. */
const char *acme_ondemand_name(apr_pool_t *p, const char *sni, int allow_ip, const char **why);

acme_ondemand_registry_t *acme_ondemand_registry_make(apr_pool_t *p);

/* What to do about name (canonical) now; a verdict of ASK has taken a rate token. */
acme_ondemand_verdict_t acme_ondemand_decide(acme_ondemand_registry_t *reg, apr_pool_t *p,
                                             const char *name,
                                             const acme_ondemand_policy_t *pol, apr_time_t now,
                                             const char **why);

/* The endpoint's answer for name: approved (yes) or refused until now + ACME_ONDEMAND_NO_TTL. */
void acme_ondemand_answered(acme_ondemand_registry_t *reg, const char *name, int yes,
                            apr_time_t now);

/* An order for an approved name failed or succeeded: backoff from 1 min doubling up to 1 day. */
void acme_ondemand_order_done(acme_ondemand_registry_t *reg, const char *name, int ok,
                              apr_time_t now);

/* Removes name (a2acme forget); 1 when it was there. */
int acme_ondemand_forget(acme_ondemand_registry_t *reg, const char *name);

/* Every approved name, sorted (const char *). */
apr_array_header_t *acme_ondemand_approved(const acme_ondemand_registry_t *reg, apr_pool_t *p);

/* The registry as JSON with its MAC (proof_key: ACME_SEAL_PROOF_KEY_LEN bytes), and back.
 * Reading refuses (APR_EINVAL, class ADMIN) a document without a valid MAC: nothing of it is
 * used. Refused entries that have expired are dropped when written. */
json_t *acme_ondemand_registry_json(const acme_ondemand_registry_t *reg, apr_pool_t *p,
                                    const unsigned char *proof_key, apr_time_t now);
apr_status_t acme_ondemand_registry_read(apr_pool_t *p, json_t *doc,
                                         const unsigned char *proof_key,
                                         acme_ondemand_registry_t **reg, acme_result_t *res);

#endif
