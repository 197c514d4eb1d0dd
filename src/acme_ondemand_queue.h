#ifndef ACME_ONDEMAND_QUEUE_H
#define ACME_ONDEMAND_QUEUE_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "acme_result.h"

/*
 * How a name first seen in SNI reaches the worker: the child that saw it leaves an empty entry
 * "<name>.ondemand" in api-queue/ (the httpd User's queue, whose changes already wake the
 * worker, see acme_api_store_queue_stamp). The worker takes the entries and decides; an entry
 * is a request, never a verdict, so a forged one costs at most one question to the ask
 * endpoint within the rate.
 */
#define ACME_ONDEMAND_QUEUE_SUFFIX ".ondemand"

/* Leaves the request for name (canonical, already checked); an existing one is success. */
apr_status_t acme_ondemand_queue_put(apr_pool_t *p, const char *store_dir, const char *name,
                                     acme_result_t *res);

/*
 * Takes up to max requests (their entries are removed), in directory order, with names that are
 * valid on-demand names (allow_ip: IP literals too); other ".ondemand" entries are removed and
 * counted in *dropped (may be NULL).
 */
apr_array_header_t *acme_ondemand_queue_take(apr_pool_t *p, const char *store_dir, int max,
                                             int allow_ip, int *dropped);

#endif
