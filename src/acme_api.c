#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "acme_api.h"
#include "acme_names.h"

/* ------------------------------------------------------------------ name patterns */

const char *acme_api_pattern_check(apr_pool_t *p, const char *pattern)
{
    const char *base = pattern;
    const char *reason = NULL;
    acme_ident_t ident;

    if (!strncmp(pattern, "**.", 3)) {
        base = pattern + 3;
    }
    else if (!strncmp(pattern, "*.", 2)) {
        base = pattern + 2;
    }
    if (strchr(base, '*')) {
        return apr_psprintf(p, "'%s': a wildcard is allowed only as the whole first label, "
                            "'*.' (one label) or '**.' (any depth)", pattern);
    }
    if (acme_names_parse(p, base, &ident, &reason) != APR_SUCCESS) {
        return apr_psprintf(p, "'%s': %s", pattern, reason ? reason : "not a host name");
    }
    if (ident.type != ACME_IDENT_DNS) {
        return apr_psprintf(p, "'%s': IP addresses cannot be allowed (the API orders DNS names "
                            "only)", pattern);
    }
    return NULL;
}

/* name ends in "." + base (case-insensitively) with a non-empty part in front: its length. */
static apr_size_t acme_api_prefix_len(const char *name, const char *base)
{
    apr_size_t n = strlen(name), b = strlen(base);

    if (n < b + 2 || name[n - b - 1] != '.' || strcasecmp(name + n - b, base) != 0) {
        return 0;
    }
    return n - b - 1;
}

int acme_api_pattern_match(const char *pattern, const char *name)
{
    apr_size_t plen;

    if (!pattern || !name || !*name) {
        return 0;
    }
    if (!strncmp(pattern, "**.", 3)) {
        return acme_api_prefix_len(name, pattern + 3) > 0;
    }
    if (!strncmp(pattern, "*.", 2)) {
        if (!strcasecmp(pattern, name)) {
            return 1;       /* the wildcard certificate itself */
        }
        plen = acme_api_prefix_len(name, pattern + 2);
        return plen > 0 && !memchr(name, '.', plen) && !memchr(name, '*', plen);
    }
    return !strcasecmp(pattern, name);
}

int acme_api_patterns_allow(const apr_array_header_t *patterns, const char *const *names,
                            int n)
{
    int i, j;

    if (!patterns || n <= 0) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        int ok = 0;
        for (j = 0; j < patterns->nelts && !ok; ++j) {
            ok = acme_api_pattern_match(APR_ARRAY_IDX(patterns, j, const char *), names[i]);
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ HMAC */

const char *acme_api_hmac_make(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                               const char *method, const char *path, const char *timestamp,
                               const char *body, apr_size_t body_len)
{
    const char *head = apr_pstrcat(p, method, "\n", path, "\n", timestamp, "\n", NULL);
    apr_size_t head_len = strlen(head);
    unsigned char *msg = apr_palloc(p, head_len + body_len + 1);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *hex;
    unsigned int i;

    memcpy(msg, head, head_len);
    if (body_len) {
        memcpy(msg + head_len, body, body_len);
    }
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, head_len + body_len, mac, &mac_len)) {
        return NULL;
    }
    hex = apr_palloc(p, mac_len * 2 + 1);
    for (i = 0; i < mac_len; ++i) {
        apr_snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return hex;
}

static int acme_api_timestamp(const char *text, apr_time_t *t)
{
    char *end = NULL;
    long long v;

    if (!text || !*text || strlen(text) > 12) {
        return 0;
    }
    for (const char *s = text; *s; ++s) {
        if (!isdigit((unsigned char)*s)) {
            return 0;
        }
    }
    v = strtoll(text, &end, 10);
    if (*end || v <= 0) {
        return 0;
    }
    *t = apr_time_from_sec((apr_time_t)v);
    return 1;
}

apr_status_t acme_api_hmac_check(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                                 const char *method, const char *path, const char *timestamp,
                                 const char *signature, const char *body, apr_size_t body_len,
                                 apr_time_t now, const char **reason)
{
    const char *want;
    apr_time_t t = 0;

    if (!signature || !*signature) {
        *reason = "no X-ACME-Signature header";
        return APR_EACCES;
    }
    if (!acme_api_timestamp(timestamp, &t)) {
        *reason = "no valid X-ACME-Timestamp header (decimal Unix time)";
        return APR_EACCES;
    }
    if (t < now - ACME_API_HMAC_WINDOW || t > now + ACME_API_HMAC_WINDOW) {
        *reason = "the X-ACME-Timestamp is more than 5 minutes away from the server's clock";
        return APR_EACCES;
    }
    want = acme_api_hmac_make(p, key, key_len, method, path, timestamp, body, body_len);
    if (!want || strlen(signature) != strlen(want)
        || CRYPTO_memcmp(want, signature, strlen(want)) != 0) {
        *reason = "the X-ACME-Signature does not match (wrong key, or the method, path, "
                  "timestamp or body was changed)";
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

const char *acme_api_hmac_key(apr_pool_t *p, const char *content, apr_size_t len,
                              apr_size_t *key_len, const char **reason)
{
    while (len > 0 && isspace((unsigned char)*content)) {
        ++content;
        --len;
    }
    while (len > 0 && isspace((unsigned char)content[len - 1])) {
        --len;
    }
    if (len < ACME_API_HMAC_KEY_MIN) {
        *reason = apr_psprintf(p, "the key is %lu bytes long; at least %d are needed (e.g. "
                               "openssl rand -hex 32 > FILE)", (unsigned long)len,
                               ACME_API_HMAC_KEY_MIN);
        return NULL;
    }
    *key_len = len;
    return apr_pstrmemdup(p, content, len);
}

/* ------------------------------------------------------------------ rate */

apr_status_t acme_api_rate_parse(const char *text, acme_api_rate_t *rate, const char **reason,
                                 apr_pool_t *p)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    char *end = NULL;
    long n, amount;
    apr_interval_time_t unit;

    *reason = apr_psprintf(p, "'%s' is not a rate: write requests/period, e.g. 10/1h or 5/30s",
                           text ? text : "");
    if (!slash || slash == text) {
        return APR_EINVAL;
    }
    n = strtol(text, &end, 10);
    if (end != slash || n < 1 || n > 1000000) {
        return APR_EINVAL;
    }
    amount = isdigit((unsigned char)slash[1]) ? strtol(slash + 1, &end, 10) : 1;
    if (!isdigit((unsigned char)slash[1])) {
        end = (char *)slash + 1;
    }
    switch (*end) {
    case 's': unit = apr_time_from_sec(1); break;
    case 'm': unit = apr_time_from_sec(60); break;
    case 'h': unit = apr_time_from_sec(3600); break;
    case 'd': unit = apr_time_from_sec(86400); break;
    default: return APR_EINVAL;
    }
    if (end[1] || amount < 1 || amount > 366 * 86400) {
        return APR_EINVAL;
    }
    rate->n = (int)n;
    rate->period = unit * amount;
    *reason = NULL;
    return APR_SUCCESS;
}

int acme_api_rate_take(const acme_api_rate_t *rate, apr_time_t now, apr_time_t *start,
                       int *count, long *retry_after)
{
    if (rate->n <= 0 || rate->period <= 0) {
        return 1;       /* no limit configured */
    }
    if (*start > now || now - *start >= rate->period) {
        *start = now;   /* a window from the future is a broken clock or file: start afresh */
        *count = 0;
    }
    if (*count < rate->n) {
        ++*count;
        return 1;
    }
    *retry_after = (long)apr_time_sec(*start + rate->period - now) + 1;
    return 0;
}

/* ------------------------------------------------------------------ ids and names */

int acme_api_id_valid(const char *id)
{
    int i;

    for (i = 0; id && i < ACME_API_ID_LEN; ++i) {
        if (!isdigit((unsigned char)id[i]) && !(id[i] >= 'a' && id[i] <= 'f')) {
            return 0;
        }
    }
    return id && id[ACME_API_ID_LEN] == '\0';
}

const char *acme_api_client_name_check(apr_pool_t *p, const char *name)
{
    apr_size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > 64 || name[0] == '.') {
        return apr_psprintf(p, "'%s' is not a client name: 1-64 letters, digits, '.', '_' or "
                            "'-', not starting with '.'", name ? name : "");
    }
    for (apr_size_t i = 0; i < n; ++i) {
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i])) {
            return apr_psprintf(p, "'%s' is not a client name: 1-64 letters, digits, '.', "
                                "'_' or '-'", name);
        }
    }
    return NULL;
}
