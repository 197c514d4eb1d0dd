#ifndef ACME_HTTP_H
#define ACME_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_result.h"

/*
 * The HTTPS transport under the ACME client: one libcurl easy handle per
 * acme_http_t, so consecutive requests to the CA reuse one connection.
 * Not thread-safe: one acme_http_t per thread.
 *
 * An HTTP error status is not a transport failure: the request functions
 * return APR_SUCCESS with the status in the response and leave problem
 * documents to the caller (acme_problem). They fail only when no complete
 * response arrived (resolve, connect, TLS, timeout, size cap), with class
 * ACME_CLASS_RETRY_SOON and a message that names the URL.
 */

/* One target of a Link header (RFC 8288); one entry per relation type. */
typedef struct {
    const char *url;            /* absolute: resolved against the request URL */
    const char *rel;            /* lower case, e.g. "up", "alternate", "index", "next" */
} acme_http_link_t;

typedef struct {
    int status;                 /* HTTP status of the final response */
    const char *body;           /* NUL-terminated (the body itself may hold NULs) */
    apr_size_t body_len;
    const char *content_type;   /* media type, lower case, parameters dropped; NULL if none */
    const char *nonce;          /* Replay-Nonce, or NULL */
    const char *location;       /* Location, absolute, or NULL */
    apr_array_header_t *links;  /* of acme_http_link_t, every Link header in order */
    apr_time_t retry_after;     /* absolute time from Retry-After, 0 if none or unparsable */
} acme_http_response_t;

typedef struct {
    const char *ca_file;                /* PEM bundle to verify the CA's server with; NULL: the
                                         * system store */
    const char *proxy;                  /* e.g. "http://proxy:3128"; NULL: none (curl's env vars
                                         * ignored) */
    apr_interval_time_t connect_timeout;/* 0: 10 s */
    apr_interval_time_t timeout;        /* whole request; 0: 30 s */
    apr_size_t max_response_size;       /* body cap in bytes; 0: 1 MiB */
} acme_http_options_t;

typedef struct acme_http_t acme_http_t;

/*
 * curl_global_init() is not thread-safe on every libcurl build: the module
 * calls this once in the parent (post_config), the driver once in main().
 */
apr_status_t acme_http_global_init(void);

/* A handle living in pool p; the curl handle goes with the pool. */
apr_status_t acme_http_create(acme_http_t **http, apr_pool_t *p,
                              const acme_http_options_t *opts, acme_result_t *res);

/* "mod_acme/<version> libcurl/<version>" as sent. */
const char *acme_http_user_agent(const acme_http_t *http);

/* The response and everything in it live in p. */
apr_status_t acme_http_get(acme_http_t *http, apr_pool_t *p, const char *url,
                           acme_http_response_t **resp, acme_result_t *res);
apr_status_t acme_http_head(acme_http_t *http, apr_pool_t *p, const char *url,
                            acme_http_response_t **resp, acme_result_t *res);
/* POST with Content-Type: application/jose+json. */
apr_status_t acme_http_post_jose(acme_http_t *http, apr_pool_t *p, const char *url,
                                 const char *body, acme_http_response_t **resp,
                                 acme_result_t *res);

/* First link with this relation, or NULL. */
const char *acme_http_link(const acme_http_response_t *resp, const char *rel);
/* Every link with this relation, as const char * URLs (possibly empty). */
apr_array_header_t *acme_http_links(const acme_http_response_t *resp, const char *rel,
                                    apr_pool_t *p);
/* Whether the response's media type is `type` (e.g. "application/problem+json"). */
int acme_http_is_type(const acme_http_response_t *resp, const char *type);

/* ---- the pure parsing under the transport, public for the unit tests ---- */

/* An empty response whose links array lives in p. */
acme_http_response_t *acme_http_response_make(apr_pool_t *p);

/*
 * Feeds one raw header line (with or without CRLF). A status line starts a
 * new response (100 Continue, proxy CONNECT), clearing what came before.
 * Relative Location/Link URLs are resolved against base_url; Retry-After
 * seconds count from `now`.
 */
void acme_http_response_header(acme_http_response_t *resp, apr_pool_t *p,
                               const char *line, apr_size_t len,
                               const char *base_url, apr_time_t now);

/* Retry-After as delta-seconds or HTTP-date; 0 if it is neither. */
apr_time_t acme_http_parse_retry_after(const char *value, apr_time_t now);

/* Appends every link of one Link header value to links (acme_http_link_t). */
void acme_http_parse_links(apr_pool_t *p, const char *value, const char *base_url,
                           apr_array_header_t *links);

/*
 * The origin of an absolute http(s) URL as "scheme://host[:port]": scheme and host in lower
 * case, user info dropped, the scheme's default port left out. NULL for anything else.
 */
const char *acme_http_origin(apr_pool_t *p, const char *url);

/* Whether both are http(s) URLs of one origin (same scheme, host and port). */
int acme_http_same_origin(apr_pool_t *p, const char *a, const char *b);

/* A URL reference resolved against an absolute base (RFC 3986 §5, common cases). */
const char *acme_http_resolve_url(apr_pool_t *p, const char *base, const char *ref);

#endif
