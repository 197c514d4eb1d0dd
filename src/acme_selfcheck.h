#ifndef ACME_SELFCHECK_H
#define ACME_SELFCHECK_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_result.h"

/*
 * After a self-restart the server must really serve what was activated: a TLS
 * handshake over loopback with the name as SNI shows which certificate it
 * hands out. The parent lists what it activated in jobs/selfcheck.json; the
 * next renewal worker (not the parent: no network I/O there) checks it.
 */
#define ACME_SELFCHECK_FILE "selfcheck.json"

/* The serial (upper-case hex) of the leaf a TLS server presents for `sni`. */
apr_status_t acme_selfcheck_serial(apr_pool_t *p, const char *host, int port, const char *sni,
                                   apr_interval_time_t timeout, const char **serial_hex,
                                   acme_result_t *res);

#endif
