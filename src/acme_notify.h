#ifndef ACME_NOTIFY_H
#define ACME_NOTIFY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_ident.h"
#include "acme_result.h"

/*
 * ACMENotifyCommand: the admin's program runs as `program [args] <event> <domain>` for the events
 * renewed (a new certificate is staged), installed (the server serves it), expiring (inside
 * ACMEWarnWindow with renewal failing), errored (an order failed), revoked and exported (the
 * parent wrote or removed a domain's ACMEExport files: httpd/acme_supervise_export.c). The details
 * (names, serial, notAfter, error) are one line of JSON on the program's stdin; the environment
 * has ACME_NOTIFY_EVENT and ACME_NOTIFY_DOMAIN. Bounded by ACME_NOTIFY_TIMEOUT; a failure is
 * returned for the caller to log.
 */

#define ACME_NOTIFY_TIMEOUT apr_time_from_sec(30)
/* The same event for the same domain at most this often (errored, expiring repeat per check). */
#define ACME_NOTIFY_REPEAT apr_time_from_sec(3600)

/*
 * 1 when the event may run now (pure): renewed, installed, revoked, exported always; errored and
 * expiring when the same event was last notified for the domain at least ACME_NOTIFY_REPEAT ago
 * (last_same_at; 0: never).
 */
int acme_notify_due(const char *event, apr_time_t last_same_at, apr_time_t now);

/* One certificate the event is about (a domain has one per key type). */
typedef struct {
    const char *key_type;               /* e.g. "secp256r1" */
    const char *serial;                 /* upper-case hex */
    apr_time_t not_after;
} acme_notify_cert_t;

typedef struct {
    const char *event;
    const char *domain;
    const apr_array_header_t *idents;   /* acme_ident_t: the domain's names, in order */
    const apr_array_header_t *certs;    /* acme_notify_cert_t, may be NULL or empty */
    const char *error;                  /* may be NULL */
    apr_time_t now;
} acme_notify_event_t;

/*
 * The JSON document: {"event", "domain", "names", "serial", "not_after", "certificates",
 * "error", "time"}; serial and not_after are the first certificate's (null without one), and
 * "certificates" lists every key type's {"key_type", "serial", "not_after"}.
 */
json_t *acme_notify_document(const acme_notify_event_t *ev);

/* Runs the command (argv: const char *) for one event. */
apr_status_t acme_notify_run(apr_pool_t *p, const apr_array_header_t *argv, const char *event,
                             const char *domain, json_t *doc, acme_result_t *res);

#endif
