#ifndef ACME_API_STORE_H
#define ACME_API_STORE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_api.h"
#include "acme_api_csr.h"
#include "acme_result.h"
#include "acme_store.h"

/*
 * The certificate API's files in the store (layout: acme_api.h). Children and the worker run
 * as the httpd User and own these directories; every read goes through acme_safefs (no
 * symlink followed, no FIFO waited on, size-capped), every write is atomic. The parent (root)
 * only counts api-queue/'s entries to know when to start the worker.
 */

/* States of a request (api/<id>.json "state"). */
#define ACME_API_STATE_QUEUED "queued"
#define ACME_API_STATE_PROCESSING "processing"
#define ACME_API_STATE_VALID "valid"
#define ACME_API_STATE_INVALID "invalid"
/* The order failed for a reason that may pass (the CA is down, rate limits): sending the CSR
 * again later orders again. */
#define ACME_API_STATE_PENDING "pending"

/* Queues a checked CSR for the worker and records it as queued. */
apr_status_t acme_api_store_queue(apr_pool_t *p, const acme_store_t *st,
                                  const acme_api_csr_t *csr, const char *client,
                                  acme_result_t *res);

/* api/<id>.json, or APR_ENOENT. */
apr_status_t acme_api_store_state(apr_pool_t *p, const acme_store_t *st, const char *id,
                                  json_t **state, acme_result_t *res);

/* Writes api/<id>.json: {id, client, names, state, error (or null), updated, not_after}. */
apr_status_t acme_api_store_state_put(apr_pool_t *p, const acme_store_t *st, const char *id,
                                      const char *client, const apr_array_header_t *names,
                                      const char *state, const char *error,
                                      apr_time_t not_before, apr_time_t not_after,
                                      acme_result_t *res);

/* api/<id>.pem: the chain, PEM. */
apr_status_t acme_api_store_chain(apr_pool_t *p, const acme_store_t *st, const char *id,
                                  char **pem, apr_size_t *len, acme_result_t *res);
apr_status_t acme_api_store_chain_put(apr_pool_t *p, const acme_store_t *st, const char *id,
                                      const char *pem, apr_size_t len, acme_result_t *res);

/*
 * Records an HMAC signature as used: APR_SUCCESS the first time, APR_EEXIST for a replay.
 * Entries older than the time window are removed now and then.
 */
apr_status_t acme_api_store_seen(apr_pool_t *p, const acme_store_t *st, const char *signature,
                                 apr_time_t now, acme_result_t *res);

/*
 * One request of client against its rate (across all children: a locked file). 1 when it
 * fits, 0 with *retry_after seconds when not. A store problem lets the request through
 * (logged by the caller through res): the API must not stop because of a counter.
 */
int acme_api_store_rate(apr_pool_t *p, const acme_store_t *st, const char *client,
                        const acme_api_rate_t *rate, apr_time_t now, long *retry_after,
                        acme_result_t *res);

/*
 * Removes the results nobody can use any more from api/: a certificate expired over
 * ACME_API_KEEP ago, or a failed request (invalid, pending) last updated that long ago. Queued
 * and processing requests stay. At most max results are looked at per call; returns how many
 * went. Results the worker cannot read are left alone.
 */
#define ACME_API_KEEP apr_time_from_sec(7 * 86400)
int acme_api_store_prune(apr_pool_t *p, const acme_store_t *st, apr_time_t now, int max);

/* The ids waiting in api-queue/ (at most max, valid names only). */
apr_array_header_t *acme_api_store_queued(apr_pool_t *p, const acme_store_t *st, int max);

/*
 * Takes one queued request out of api-queue/ (read, then removed): its client, names and
 * CSR, checked again. APR_EINVAL with res when the file is damaged (it is removed too).
 */
apr_status_t acme_api_store_take(apr_pool_t *p, const acme_store_t *st, const char *id,
                                 const char **client, acme_api_csr_t **csr, acme_result_t *res);

/*
 * For the parent: a number that changes when requests are added to api-queue/, 0 when it is
 * empty. Only directory entries are looked at (no file opened, nothing followed), at most a
 * bounded number of them.
 */
unsigned long acme_api_store_queue_stamp(apr_pool_t *p, const char *store_dir);

/*
 * POST <base>/domains/<name>/renew: a child leaves api-queue/<name>.renew (empty). The parent
 * takes these names (entries removed with unlinkat, nothing opened or followed, names checked
 * with acme_names_parse) and writes requests/<name>.force as a2acme renew does.
 */
#define ACME_API_RENEW_SUFFIX ".renew"
apr_status_t acme_api_store_renew_put(apr_pool_t *p, const acme_store_t *st, const char *name,
                                      acme_result_t *res);
apr_array_header_t *acme_api_store_renew_take(apr_pool_t *p, const char *store_dir, int max);

#endif
