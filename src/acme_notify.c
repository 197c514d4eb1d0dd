#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "acme_command.h"
#include "acme_notify.h"

int acme_notify_due(const char *event, apr_time_t last_same_at, apr_time_t now)
{
    /* A new certificate is news every time; a failure repeating every check is not. */
    if (!strcmp(event, "renewed") || !strcmp(event, "installed") || !strcmp(event, "revoked")) {
        return 1;
    }
    return last_same_at <= 0 || now - last_same_at >= ACME_NOTIFY_REPEAT;
}

json_t *acme_notify_document(const char *event, const char *domain,
                             const apr_array_header_t *names, const char *serial,
                             apr_time_t not_after, const char *error, apr_time_t now)
{
    json_t *list = json_array();
    int i;

    for (i = 0; names && i < names->nelts; ++i) {
        json_array_append_new(list, json_string(APR_ARRAY_IDX(names, i, const char *)));
    }
    return json_pack("{s:s, s:s, s:o, s:s?, s:o, s:s?, s:I}",
                     "event", event, "domain", domain, "names", list, "serial", serial,
                     "not_after", not_after ? json_integer(apr_time_sec(not_after)) : json_null(),
                     "error", error, "time", (json_int_t)apr_time_sec(now));
}

apr_status_t acme_notify_run(apr_pool_t *p, const apr_array_header_t *argv, const char *event,
                             const char *domain, json_t *doc, acme_result_t *res)
{
    apr_array_header_t *args = apr_array_copy(p, argv);
    apr_array_header_t *env = apr_array_make(p, 3, sizeof(const char *));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    acme_command_t cmd = {
        .argv = args, .env = env, .timeout = ACME_NOTIFY_TIMEOUT,
        .what = apr_pstrcat(p, "ACMENotifyCommand (", event, " ", domain, ")", NULL),
    };

    APR_ARRAY_PUSH(args, const char *) = event;
    APR_ARRAY_PUSH(args, const char *) = domain;
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NOTIFY_JSON=", text ? text : "{}",
                                                   NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NOTIFY_EVENT=", event, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NOTIFY_DOMAIN=", domain, NULL);
    free(text);
    return acme_command_run(p, &cmd, NULL, res);
}
