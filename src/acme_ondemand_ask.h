#ifndef ACME_ONDEMAND_ASK_H
#define ACME_ONDEMAND_ASK_H

#include <apr_pools.h>
#include <apr_time.h>

/*
 * The question the worker puts to ACMEOnDemandAsk before ordering a certificate for a name
 * first seen in SNI: GET <url>?domain=<name> (or &domain= when the URL has a query already).
 * 200 is yes; any other status is no. No redirect is followed, no proxy is used, the body is
 * not read beyond a few bytes, and the whole exchange has a timeout: a slow or dead endpoint
 * is a refusal (the safe default), reported as UNREACHABLE so it is logged as such.
 */
typedef enum {
    ACME_ONDEMAND_ASK_NO = 0,
    ACME_ONDEMAND_ASK_YES,
    ACME_ONDEMAND_ASK_UNREACHABLE,
} acme_ondemand_ask_t;

/* The URL that is asked for name (the name percent-encoded). */
const char *acme_ondemand_ask_url(apr_pool_t *p, const char *url, const char *name);

/* *detail: "HTTP 403", "timed out after 2 s", ... (for the log line). */
acme_ondemand_ask_t acme_ondemand_ask(apr_pool_t *p, const char *url, const char *name,
                                      apr_interval_time_t timeout, const char **detail);

#endif
