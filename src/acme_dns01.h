#ifndef ACME_DNS01_H
#define ACME_DNS01_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_result.h"
#include "acme_store.h"

/*
 * dns-01 (RFC 8555 §8.4) through the admin's program (ACMEDns01Command), run by the worker as
 *
 *   program [args...] setup    _acme-challenge.<name> <value>
 *   program [args...] teardown _acme-challenge.<name> <value>
 *
 * (<name> without "*." for a wildcard; <value> = base64url(SHA-256(key authorization))) with
 * acme_command_run's clean environment plus
 *
 *   ACME_DOMAIN     the managed domain (its first name)
 *   ACME_NAMES      all names of the domain, space separated
 *   ACME_STORE_DIR  the store directory
 *   ACME_ACTION     setup or teardown
 *   ACME_FQDN, ACME_TXT_VALUE   the same as the last two arguments
 *
 * Before a setup the record is written to jobs/<domain>.dns01.json; it leaves that file only when
 * its teardown succeeded, so a teardown missed by a crash or a failing program is repeated at
 * the next run (acme_dns01_teardown_pending). A program whose teardowns keep failing does not
 * make that list grow without end: it holds the newest ACME_DNS01_PENDING_MAX records of a domain
 * (a TXT record left behind under _acme-challenge is stale but harmless).
 */

#define ACME_DNS01_TIMEOUT_DEFAULT apr_time_from_sec(60)
#define ACME_DNS01_CHECK_MAX_DEFAULT apr_time_from_sec(120)
#define ACME_DNS01_PREFIX "_acme-challenge."
#define ACME_DNS01_PENDING_MAX 32

/* ACMEDns01Propagation: none, a fixed delay, or resolve the TXT record until it appears. */
typedef struct {
    apr_interval_time_t delay;          /* "30s": wait this long; with a resolver: first poll */
    const char *resolver;               /* "check <ip>[:port] [max]": ask this server */
    apr_interval_time_t max_wait;       /* the bound of the check */
} acme_dns01_propagation_t;

typedef struct {
    const apr_array_header_t *command;  /* const char *: program and leading arguments */
    apr_interval_time_t timeout;
    acme_dns01_propagation_t propagation;
    const char *store_dir;
    const char *domain;
    const apr_array_header_t *names;    /* const char *: all names of the domain */
    volatile const int *stop;           /* optional: non-zero stops a running program */
} acme_dns01_t;

typedef struct {
    const char *fqdn;                   /* _acme-challenge.<name> */
    const char *value;
} acme_dns01_record_t;

/*
 * Parses an ACMEDns01Propagation value: "none", "<duration>", "check <ip>[:port] [<max>]".
 * On error returns APR_EINVAL with *reason.
 */
apr_status_t acme_dns01_propagation_parse(apr_pool_t *p, const char *text,
                                          acme_dns01_propagation_t *prop, const char **reason);

/* base64url(SHA-256(key_authz)), the TXT value. */
const char *acme_dns01_txt_value(apr_pool_t *p, const char *key_authz);

/* _acme-challenge.<name>, without the "*." of a wildcard. */
const char *acme_dns01_fqdn(apr_pool_t *p, const char *name);

/* Remembers the record as pending, then runs the setup. */
apr_status_t acme_dns01_setup(apr_pool_t *p, acme_store_t *store, const acme_dns01_t *d,
                              const acme_dns01_record_t *rec, const char **stderr_text,
                              acme_result_t *res);

/* Runs the teardown; on success forgets the pending record. */
apr_status_t acme_dns01_teardown(apr_pool_t *p, acme_store_t *store, const acme_dns01_t *d,
                                 const acme_dns01_record_t *rec, const char **stderr_text,
                                 acme_result_t *res);

/* Tears down what an earlier run left pending for d->domain; *count gets the number done. */
apr_status_t acme_dns01_teardown_pending(apr_pool_t *p, acme_store_t *store,
                                         const acme_dns01_t *d, int *count, acme_result_t *res);

/*
 * Waits as ACMEDns01Propagation says: the delay; with a resolver, asks it for the TXT records
 * of every fqdn until each holds its value or max_wait passed (then fails, RETRY_SOON).
 * `stop` (optional) is polled: a non-zero value ends the wait early with APR_EINTR.
 */
apr_status_t acme_dns01_wait(apr_pool_t *p, const acme_dns01_t *d,
                             const apr_array_header_t *records, volatile const int *stop,
                             acme_result_t *res);

/*
 * One TXT lookup over UDP at server ("ip" or "ip:port", default port 53): 1 in *found when
 * one of the answer's TXT strings equals value.
 */
apr_status_t acme_dns01_txt_present(apr_pool_t *p, const char *server, const char *fqdn,
                                    const char *value, int *found, acme_result_t *res);

/*
 * One TXT query over UDP at server ("ip" or "ip:port"): the raw answer into a (at most size
 * bytes, *alen), the query's id into *qid, for a parser of the caller's (dns-persist-01).
 */
apr_status_t acme_dns01_txt_exchange(apr_pool_t *p, const char *server, const char *fqdn,
                                     unsigned char *a, apr_size_t size, apr_size_t *alen,
                                     unsigned int *qid, acme_result_t *res);

/* Skips a (possibly compressed) name at off in a DNS message of len bytes: the offset after
 * it, 0 when it runs off the message. For the answer parsers (dns-01, dns-persist-01). */
apr_size_t acme_dns01_skip_name(const unsigned char *m, apr_size_t len, apr_size_t off);

#endif
