#include <apr_strings.h>

#include "acme_result.h"

void acme_result_reset(acme_result_t *res)
{
    *res = (acme_result_t){ .status = APR_SUCCESS, .err_class = ACME_CLASS_NONE };
}

apr_status_t acme_result_fail(acme_result_t *res, apr_status_t status,
                              acme_class_t err_class, const char *message)
{
    res->status = (status == APR_SUCCESS) ? APR_EGENERAL : status;
    res->err_class = err_class;
    res->message = message;
    return res->status;
}

const char *acme_class_name(acme_class_t err_class)
{
    switch (err_class) {
    case ACME_CLASS_NONE:        return "none";
    case ACME_CLASS_RETRY_SOON:  return "retry-soon";
    case ACME_CLASS_RETRY_AFTER: return "retry-after";
    case ACME_CLASS_ADMIN:       return "admin-action";
    case ACME_CLASS_PERMANENT:   return "permanent";
    }
    return "unknown";
}

const char *acme_result_describe(const acme_result_t *res, apr_pool_t *p)
{
    const char *line = res->message ? res->message : "failed";

    if (res->problem_type) {
        line = apr_pstrcat(p, line, " [", res->problem_type, "]", NULL);
    }
    if (res->detail) {
        line = apr_pstrcat(p, line, ": ", res->detail, NULL);
    }
    return line;
}
