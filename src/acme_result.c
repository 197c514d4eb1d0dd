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

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or
 * values above U+10FFFF), 0 when it is not one. */
static apr_size_t acme_result_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    apr_size_t n, i;

    if (c < 0x80) {
        return 1;
    }
    n = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
        : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    for (i = 1; i < n; ++i) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)
        || (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) {
        return 0;
    }
    return n;
}

const char *acme_result_utf8(apr_pool_t *p, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    apr_size_t i = 0, n;
    char *out;

    if (!text) {
        return NULL;
    }
    while (s[i] && (n = acme_result_utf8_len(s + i)) > 0) {
        i += n;
    }
    if (!s[i]) {
        return text;            /* the common case: nothing to copy */
    }
    out = apr_pstrdup(p, text);
    while (out[i]) {
        n = acme_result_utf8_len((const unsigned char *)out + i);
        if (n == 0) {
            out[i] = '?';
            n = 1;
        }
        i += n;
    }
    return out;
}
