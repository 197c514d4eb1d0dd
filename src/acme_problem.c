#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <jansson.h>

#include "acme_problem.h"

#define PROBLEM_NS      "urn:ietf:params:acme:error:"
#define PROBLEM_NS_V1   "urn:acme:error:"
/* CA text lands in logs and the status page: keep it one bounded line. */
#define PROBLEM_TEXT_MAX 1024

typedef struct {
    const char *name;
    acme_class_t err_class;
} problem_class_t;

static const problem_class_t problem_classes[] = {
    { "rateLimited",             ACME_CLASS_RETRY_AFTER },
    { "userActionRequired",      ACME_CLASS_ADMIN },
    { "agreementRequired",       ACME_CLASS_ADMIN },
    { "externalAccountRequired", ACME_CLASS_ADMIN },
    { "caa",                     ACME_CLASS_ADMIN },
    { "unauthorized",            ACME_CLASS_ADMIN },
    { "badCSR",                  ACME_CLASS_ADMIN },
    { "rejectedIdentifier",      ACME_CLASS_ADMIN },
    { "invalidContact",          ACME_CLASS_ADMIN },
    { "unsupportedContact",      ACME_CLASS_ADMIN },
    { "badSignatureAlgorithm",   ACME_CLASS_ADMIN },
    { "badPublicKey",            ACME_CLASS_ADMIN },
    { "unsupportedIdentifier",   ACME_CLASS_ADMIN },
    { "badRevocationReason",     ACME_CLASS_ADMIN },
    { "invalidProfile",          ACME_CLASS_ADMIN },
    { "accountDoesNotExist",     ACME_CLASS_ADMIN },
    { "serverInternal",          ACME_CLASS_RETRY_SOON },
    { "connection",              ACME_CLASS_RETRY_SOON },
    { "dns",                     ACME_CLASS_RETRY_SOON },
    { "tls",                     ACME_CLASS_RETRY_SOON },
    /* Only seen here once the bounded badNonce retries ran out. */
    { "badNonce",                ACME_CLASS_RETRY_SOON },
    { "malformed",               ACME_CLASS_PERMANENT },
    { "orderNotReady",           ACME_CLASS_PERMANENT },
    { "incorrectResponse",       ACME_CLASS_PERMANENT },
    { "alreadyRevoked",          ACME_CLASS_PERMANENT },
    { "alreadyReplaced",         ACME_CLASS_PERMANENT },
};

const char *acme_problem_short_name(const char *type)
{
    if (!type) {
        return NULL;
    }
    if (strncmp(type, PROBLEM_NS, sizeof(PROBLEM_NS) - 1) == 0) {
        return type + sizeof(PROBLEM_NS) - 1;
    }
    if (strncmp(type, PROBLEM_NS_V1, sizeof(PROBLEM_NS_V1) - 1) == 0) {
        return type + sizeof(PROBLEM_NS_V1) - 1;
    }
    return NULL;
}

static acme_class_t class_by_status(int http_status)
{
    if (http_status == 429) {
        return ACME_CLASS_RETRY_AFTER;
    }
    if (http_status == 408 || http_status >= 500 || http_status == 0) {
        return ACME_CLASS_RETRY_SOON;
    }
    return ACME_CLASS_PERMANENT;
}

acme_class_t acme_problem_class(const char *type, int http_status)
{
    const char *name = acme_problem_short_name(type);

    for (apr_size_t i = 0; name && i < sizeof(problem_classes) / sizeof(problem_classes[0]); ++i) {
        if (strcmp(name, problem_classes[i].name) == 0) {
            return problem_classes[i].err_class;
        }
    }
    return class_by_status(http_status);
}

int acme_problem_is(const acme_result_t *res, const char *short_name)
{
    const char *name = res ? acme_problem_short_name(res->problem_type) : NULL;

    return name && strcmp(name, short_name) == 0;
}

static int text_has(const char *text, const char *word)
{
    apr_size_t n = strlen(word);

    for (; text && *text; ++text) {
        if (strncasecmp(text, word, n) == 0) {
            return 1;
        }
    }
    return 0;
}

int acme_problem_account_lost(const acme_result_t *res)
{
    static const char *const gone[] = { "deactivated", "not found", "does not exist",
                                        "unknown", "no such", "no registration" };
    const char *detail = res ? res->detail : NULL;
    size_t i;

    if (acme_problem_is(res, "accountDoesNotExist")) {
        return 1;
    }
    /* unauthorized is also a name the CA will not issue for: only the account's own state. */
    if (!acme_problem_is(res, "unauthorized")
        || !(text_has(detail, "account") || text_has(detail, "registration"))) {
        return 0;
    }
    for (i = 0; i < sizeof(gone) / sizeof(gone[0]); ++i) {
        if (text_has(detail, gone[i])) {
            return 1;
        }
    }
    return 0;
}

/* How much a class weighs when subproblems disagree: a human first, then giving up. */
static int class_weight(acme_class_t c)
{
    switch (c) {
    case ACME_CLASS_ADMIN:       return 4;
    case ACME_CLASS_PERMANENT:   return 3;
    case ACME_CLASS_RETRY_AFTER: return 2;
    case ACME_CLASS_RETRY_SOON:  return 1;
    case ACME_CLASS_NONE:        return 0;
    }
    return 0;
}

static acme_class_t compound_class(json_t *subproblems, int http_status)
{
    acme_class_t best = ACME_CLASS_NONE;
    size_t i;
    json_t *sub;

    json_array_foreach(subproblems, i, sub) {
        acme_class_t c = acme_problem_class(json_string_value(json_object_get(sub, "type")),
                                            http_status);

        if (class_weight(c) > class_weight(best)) {
            best = c;
        }
    }
    return best == ACME_CLASS_NONE ? ACME_CLASS_PERMANENT : best;
}

static const char *clean_text(apr_pool_t *p, const char *s)
{
    apr_size_t n;
    char *out;

    if (!s) {
        return NULL;
    }
    n = strlen(s);
    if (n > PROBLEM_TEXT_MAX) {
        n = PROBLEM_TEXT_MAX;
        /* Never cut a UTF-8 sequence in half. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            --n;
        }
    }
    out = apr_pstrndup(p, s, n);
    for (char *c = out; *c; ++c) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = ' ';
        }
    }
    return out;
}

/* Copies the RFC 7807 members we keep; returns the subproblems array or NULL. */
static json_t *take_problem(acme_result_t *res, apr_pool_t *p, json_t *doc)
{
    json_t *subs = json_object_get(doc, "subproblems");

    res->problem_type = clean_text(p, json_string_value(json_object_get(doc, "type")));
    res->detail = clean_text(p, json_string_value(json_object_get(doc, "detail")));
    res->instance = clean_text(p, json_string_value(json_object_get(doc, "instance")));
    res->subproblems = NULL;
    if (json_is_array(subs) && json_array_size(subs) > 0) {
        char *text = json_dumps(subs, JSON_COMPACT);

        if (text) {
            res->subproblems = apr_pstrdup(p, text);
            free(text);
        }
        return subs;
    }
    return NULL;
}

static int looks_like_problem(const char *content_type)
{
    return content_type && (strcmp(content_type, "application/problem+json") == 0
                            || strcmp(content_type, "application/json") == 0);
}

apr_status_t acme_problem_from_response(acme_result_t *res, apr_pool_t *p, const char *what,
                                        int http_status, const char *content_type,
                                        const char *body, apr_size_t len,
                                        apr_time_t retry_after)
{
    json_t *doc = NULL, *subs = NULL;
    acme_class_t cls;
    const char *name;
    apr_status_t status = APR_EGENERAL;

    res->problem_type = res->detail = res->instance = res->subproblems = NULL;
    if (body && len && looks_like_problem(content_type)) {
        doc = json_loadb(body, len, 0, NULL);
    }
    if (json_is_object(doc)) {
        subs = take_problem(res, p, doc);
    }
    name = acme_problem_short_name(res->problem_type);
    if (name && strcmp(name, "compound") == 0 && subs) {
        cls = compound_class(subs, http_status);
    }
    else if (name && strcmp(name, "compound") == 0) {
        cls = ACME_CLASS_PERMANENT;
    }
    else {
        cls = acme_problem_class(res->problem_type, http_status);
    }
    json_decref(doc);
    if (retry_after && cls == ACME_CLASS_RETRY_SOON) {
        cls = ACME_CLASS_RETRY_AFTER;
    }
    if (http_status == 404 || (name && strcmp(name, "accountDoesNotExist") == 0)) {
        status = APR_ENOENT;
    }
    acme_result_fail(res, status, cls,
                     apr_psprintf(p, "%s: HTTP %d", what ? what : "request", http_status));
    res->http_status = http_status;
    res->retry_after = retry_after;
    return res->status;
}

apr_status_t acme_problem_from_json(acme_result_t *res, apr_pool_t *p, const char *what,
                                    const char *json, apr_size_t len, acme_class_t err_class)
{
    json_t *doc = json ? json_loadb(json, len, 0, NULL) : NULL;

    res->problem_type = res->detail = res->instance = res->subproblems = NULL;
    if (json_is_object(doc)) {
        take_problem(res, p, doc);
    }
    json_decref(doc);
    return acme_result_fail(res, APR_EGENERAL, err_class, what ? what : "failed");
}
