#ifndef ACME_SERVE_METRICS_H
#define ACME_SERVE_METRICS_H

/*
 * The acme-metrics handler and the parent's activation counter (httpd glue). The text itself
 * comes from src/acme_metrics.c; this file only gathers what the status handler reads.
 */
#include <httpd.h>

#include "acme_store.h"

/* post_config: the per-process cache of what scrapes read from the job files. */
void acme_serve_metrics_prepare(apr_pool_t *pconf);

/* handler "acme-metrics": Prometheus text exposition format 0.0.4. */
int acme_serve_metrics(request_rec *r);

/* Parent: counts n activations ("success", "failure", "rejected"; none for n = 0); a failure
 * to count is logged. */
void acme_serve_metrics_activation(apr_pool_t *p, server_rec *s, const acme_store_t *st,
                                   const char *result, int n);

#endif
