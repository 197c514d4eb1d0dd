#ifndef ACME_RESULT_H
#define ACME_RESULT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_errno.h>

/*
 * What a caller needs to decide what to do next after something failed.
 * The scheduler acts on the class; logs and the status handler show the rest.
 */
typedef enum {
    ACME_CLASS_NONE = 0,        /* success */
    ACME_CLASS_RETRY_SOON,      /* transient: network, 5xx, CA hiccup */
    ACME_CLASS_RETRY_AFTER,     /* the CA told us when (rate limit, Retry-After) */
    ACME_CLASS_ADMIN,           /* a human must change something (ToS, EAB, CAA, config) */
    ACME_CLASS_PERMANENT        /* this order cannot succeed; start over later */
} acme_class_t;

/*
 * Detail of one operation's outcome. Lives in the caller's pool. Never holds
 * secrets: no private keys, HMAC keys or key authorizations.
 */
typedef struct {
    apr_status_t status;        /* APR_SUCCESS or the failure */
    acme_class_t err_class;
    int http_status;            /* last HTTP status seen, 0 if none */
    const char *message;        /* our own one-line account: what failed */
    const char *problem_type;   /* full ACME/RFC 7807 type URN, or NULL */
    const char *detail;         /* the CA's detail text, or NULL */
    const char *instance;       /* the CA's instance URL (for a human), or NULL */
    const char *subproblems;    /* subproblems as compact JSON text, or NULL */
    apr_time_t retry_after;     /* absolute time the CA asked us to wait for, 0 if none */
} acme_result_t;

/* Clears everything back to "success". */
void acme_result_reset(acme_result_t *res);

/*
 * Records a failure of our own making (no CA problem document). `message`
 * must already be formatted (apr_psprintf) and live at least as long as res.
 * Returns `status` so callers can `return acme_result_fail(...)`.
 */
apr_status_t acme_result_fail(acme_result_t *res, apr_status_t status,
                              acme_class_t err_class, const char *message);

/* Human-readable name of a class, for logs and status JSON. */
const char *acme_class_name(acme_class_t err_class);

/* One line for a log: message, then the CA's type and detail when present. */
const char *acme_result_describe(const acme_result_t *res, apr_pool_t *p);

/*
 * text as valid UTF-8: every byte that does not belong to a well-formed sequence becomes '?'.
 * JSON (jobs, the status page, notifications) cannot hold anything else, and a hook's stderr
 * or a truncated message can. text itself when it is valid; NULL for NULL.
 */
const char *acme_result_utf8(apr_pool_t *p, const char *text);

#endif
