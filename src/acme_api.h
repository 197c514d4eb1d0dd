#ifndef ACME_API_H
#define ACME_API_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <apr_time.h>

/*
 * The certificate API's decisions, without httpd (issue 17): which names a client block
 * allows, the HMAC request signature, the per-client rate and the request files the children
 * queue for the worker. httpd/acme_api_serve.c applies them to requests; the worker
 * (acme_worker_api.c) orders what is queued.
 *
 * Store layout (both directories belong to the httpd User; children write, the worker
 * orders; the parent only looks at api-queue/'s entries, never opens them):
 *   api-queue/<id>.json   a CSR waiting for the worker: {id, client, names, csr (base64 DER)}
 *   api/<id>.json         its state: {id, client, names, state, error, updated}
 *   api/<id>.pem          the chain once issued
 *   api/seen/<mac>        HMAC signatures seen within the time window (replay refusal)
 *   api/rate/<client>     the client's rate window: "<start> <count>"
 * <id> is the first 32 hex digits of SHA-256 over the CSR's DER: the same CSR is the same
 * request, so resubmitting it finds the certificate already issued for it.
 */

#define ACME_API_QUEUE_DIR "api-queue"
#define ACME_API_DIR "api"
#define ACME_API_CSR_MAX (64 * 1024)            /* a bigger body is refused (413) */
#define ACME_API_REQUEST_MAX (256 * 1024)       /* a queue or state file the readers accept */
#define ACME_API_CHAIN_MAX (256 * 1024)
#define ACME_API_HMAC_WINDOW apr_time_from_sec(300)
#define ACME_API_HMAC_KEY_MIN 32                /* bytes of secret in the key file */
#define ACME_API_NAMES_MAX 100
#define ACME_API_ID_LEN 32

/* ------------------------------------------------------------------ name patterns */

/*
 * An ACMEApiAllow pattern: a host name ("mail.example.org"), "*.<name>" (exactly one more
 * label) or "**.<name>" (one or more labels). NULL when valid, else why not.
 */
const char *acme_api_pattern_check(apr_pool_t *p, const char *pattern);

/* Does pattern allow name? Case-insensitive; a wildcard name ("*.x.org") needs a pattern that
 * allows it literally, "**.<base>" for any depth or "*.<base>" / "**.<base>" for "*.x.org"'s
 * parent: a client allowed "*.example.org" may ask for "*.example.org" itself. */
int acme_api_pattern_match(const char *pattern, const char *name);

/* Every name is allowed by one of the patterns (const char *). */
int acme_api_patterns_allow(const apr_array_header_t *patterns, const char *const *names,
                            int n);

/* ------------------------------------------------------------------ HMAC */

/*
 * The signature a client sends in X-ACME-Signature: lower-case hex HMAC-SHA256 with the key
 * over "<METHOD>\n<path>\n<timestamp>\n" followed by the body. timestamp is the decimal Unix
 * time from X-ACME-Timestamp, as sent.
 */
const char *acme_api_hmac_make(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                               const char *method, const char *path, const char *timestamp,
                               const char *body, apr_size_t body_len);

/*
 * Checks a request's signature: the timestamp is within ACME_API_HMAC_WINDOW of now (either
 * way) and the signature matches (compared in constant time). APR_SUCCESS, else APR_EACCES
 * and *reason (never naming the key or the expected signature).
 */
apr_status_t acme_api_hmac_check(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                                 const char *method, const char *path, const char *timestamp,
                                 const char *signature, const char *body, apr_size_t body_len,
                                 apr_time_t now, const char **reason);

/* The key of a key file's content: surrounding white space dropped. NULL and *reason when it
 * is shorter than ACME_API_HMAC_KEY_MIN bytes. */
const char *acme_api_hmac_key(apr_pool_t *p, const char *content, apr_size_t len,
                              apr_size_t *key_len, const char **reason);

/* ------------------------------------------------------------------ rate */

typedef struct {
    int n;                              /* requests allowed ... */
    apr_interval_time_t period;         /* ... per period */
} acme_api_rate_t;

/* "10/1h", "5/30s", "100/1d" (period: a duration with unit s, m, h or d). */
apr_status_t acme_api_rate_parse(const char *text, acme_api_rate_t *rate, const char **reason,
                                 apr_pool_t *p);

/*
 * Fixed window: *start and *count are the client's window. 1 when one more request fits now
 * (the window is moved or counted), else 0 with *retry_after, the seconds until it does.
 */
int acme_api_rate_take(const acme_api_rate_t *rate, apr_time_t now, apr_time_t *start,
                       int *count, long *retry_after);

/* ------------------------------------------------------------------ ids and files */

/* A request id as a child or the worker accepts it: ACME_API_ID_LEN lower-case hex digits. */
int acme_api_id_valid(const char *id);

/* A client name: 1-64 of [A-Za-z0-9._-], not starting with '.'; NULL when valid, else why. */
const char *acme_api_client_name_check(apr_pool_t *p, const char *name);

#endif
