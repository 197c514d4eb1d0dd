#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "acme_command.h"
#include "acme_notify.h"

int acme_notify_due(const char *event, apr_time_t last_same_at, apr_time_t now)
{
    /* A new certificate is news every time; a failure repeating every check is not. */
    if (!strcmp(event, "renewed") || !strcmp(event, "installed") || !strcmp(event, "revoked")
        || !strcmp(event, "exported")) {
        return 1;
    }
    return last_same_at <= 0 || now - last_same_at >= ACME_NOTIFY_REPEAT;
}

static json_t *acme_notify_time(apr_time_t t)
{
    return t ? json_integer(apr_time_sec(t)) : json_null();
}

json_t *acme_notify_document(const acme_notify_event_t *ev)
{
    const acme_notify_cert_t *first = ev->certs && ev->certs->nelts > 0
                                      ? &APR_ARRAY_IDX(ev->certs, 0, acme_notify_cert_t) : NULL;
    json_t *names = json_array(), *certs = json_array();
    int i;

    for (i = 0; ev->idents && i < ev->idents->nelts; ++i) {
        json_array_append_new(names, json_string(APR_ARRAY_IDX(ev->idents, i,
                                                               acme_ident_t).value));
    }
    for (i = 0; ev->certs && i < ev->certs->nelts; ++i) {
        const acme_notify_cert_t *c = &APR_ARRAY_IDX(ev->certs, i, acme_notify_cert_t);
        json_array_append_new(certs, json_pack("{s:s?, s:s?, s:o}", "key_type", c->key_type,
                                               "serial", c->serial,
                                               "not_after", acme_notify_time(c->not_after)));
    }
    return json_pack("{s:s, s:s, s:o, s:s?, s:o, s:o, s:s?, s:I}",
                     "event", ev->event, "domain", ev->domain, "names", names,
                     "serial", first ? first->serial : NULL,
                     "not_after", acme_notify_time(first ? first->not_after : 0),
                     "certificates", certs, "error", ev->error,
                     "time", (json_int_t)apr_time_sec(ev->now));
}

apr_status_t acme_notify_run(apr_pool_t *p, const apr_array_header_t *argv, const char *event,
                             const char *domain, json_t *doc, acme_result_t *res)
{
    apr_array_header_t *args = apr_array_copy(p, argv);
    apr_array_header_t *env = apr_array_make(p, 3, sizeof(const char *));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    const char *input = apr_pstrcat(p, text ? text : "{}", "\n", NULL);
    acme_command_t cmd = {
        .argv = args, .env = env, .timeout = ACME_NOTIFY_TIMEOUT,
        .what = apr_pstrcat(p, "ACMENotifyCommand (", event, " ", domain, ")", NULL),
        .input = input, .input_len = strlen(input),
    };

    free(text);
    APR_ARRAY_PUSH(args, const char *) = event;
    APR_ARRAY_PUSH(args, const char *) = domain;
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NOTIFY_EVENT=", event, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "ACME_NOTIFY_DOMAIN=", domain, NULL);
    return acme_command_run(p, &cmd, NULL, res);
}
