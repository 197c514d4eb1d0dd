#include <apr_strings.h>

#include "acme_batch.h"

apr_status_t acme_batch_begin(acme_batch_t *batch, apr_pool_t *parent, const char *names,
                              acme_result_t *res)
{
    apr_status_t rv;

    if (!batch->pool) {
        rv = apr_pool_create(&batch->pool, parent);
        if (rv != APR_SUCCESS) {
            batch->pool = NULL;
            return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                    "cannot create the activation attempt's memory pool");
        }
    }
    apr_pool_clear(batch->pool);
    batch->names = apr_pstrdup(batch->pool, names ? names : "");
    return APR_SUCCESS;
}
