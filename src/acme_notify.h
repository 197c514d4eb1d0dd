#ifndef ACME_NOTIFY_H
#define ACME_NOTIFY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_result.h"

/*
 * ACMENotifyCommand: the admin's program runs as `program [args] <event> <domain>` for the events
 * renewed (a new certificate is staged), installed (the server serves it), expiring (inside
 * ACMEWarnWindow with renewal failing), errored (an order failed) and revoked. The details
 * (names, serial, notAfter, error) are a JSON document in the environment variable
 * ACME_NOTIFY_JSON (the command runner gives programs /dev/null as stdin). Bounded by
 * ACME_NOTIFY_TIMEOUT; a failure is returned for the caller to log.
 */

#define ACME_NOTIFY_TIMEOUT apr_time_from_sec(30)
/* The same event for the same domain at most this often (errored, expiring repeat per check). */
#define ACME_NOTIFY_REPEAT apr_time_from_sec(3600)

/*
 * 1 when the event may run now (pure): renewed, installed and revoked always; errored and
 * expiring when the same event was last notified for the domain at least ACME_NOTIFY_REPEAT ago
 * (last_same_at; 0: never).
 */
int acme_notify_due(const char *event, apr_time_t last_same_at, apr_time_t now);

/* The JSON document: {"event", "domain", "names", "serial", "not_after", "error", "time"}. */
json_t *acme_notify_document(const char *event, const char *domain,
                             const apr_array_header_t *names, const char *serial,
                             apr_time_t not_after, const char *error, apr_time_t now);

/* Runs the command (argv: const char *) for one event. */
apr_status_t acme_notify_run(apr_pool_t *p, const apr_array_header_t *argv, const char *event,
                             const char *domain, json_t *doc, acme_result_t *res);

#endif
