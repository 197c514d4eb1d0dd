#ifndef ACME_BATCH_H
#define ACME_BATCH_H

#include <apr_pools.h>

#include "acme_result.h"

/*
 * What the parent keeps of one activation attempt (the names of the batch a configuration test
 * runs for) beyond the attempt's temporary pool. The parent lives for months and activation can
 * wait for days, retrying: everything an attempt keeps goes into one pool that the next attempt
 * clears, so memory stays bounded however often it retries.
 */
typedef struct {
    apr_pool_t *pool;           /* made under the given parent on first use; cleared per attempt */
    const char *names;          /* comma-separated, in pool; NULL before the first attempt */
} acme_batch_t;

/*
 * Starts a new attempt: clears what the previous one kept and keeps a copy of names. The pool is
 * created under parent on first use (parent must outlive the batch, e.g. the process pool).
 */
apr_status_t acme_batch_begin(acme_batch_t *batch, apr_pool_t *parent, const char *names,
                              acme_result_t *res);

#endif
