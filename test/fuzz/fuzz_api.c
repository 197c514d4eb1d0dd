/*
 * The certificate API's parsers of client input (src/acme_api.c, src/acme_api_csr.c): what a
 * child reads from a request before anything is queued. First byte:
 *   0  a request body as a CSR (PEM or DER): checked, and the result's invariants
 *   1  "pattern\nname": an ACMEApiAllow pattern checked and matched
 *   2  an ACMEApiRate value
 *   3  "timestamp\nsignature\nbody": an HMAC-signed request checked with a fixed key
 */
#include <strings.h>

#include "fuzz_common.h"
#include "acme_api.h"
#include "acme_api_csr.h"

static void fuzz_csr(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_api_csr_t *csr = NULL, *again = NULL;
    const char *reason = NULL;
    int i;

    if (acme_api_csr_check(p, (const char *)data, size, &csr, &reason) != APR_SUCCESS) {
        FUZZ_ASSERT(reason != NULL);
        return;
    }
    FUZZ_ASSERT(acme_api_id_valid(csr->id));
    FUZZ_ASSERT(csr->names->nelts >= 1 && csr->names->nelts <= ACME_API_NAMES_MAX);
    for (i = 0; i < csr->names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(csr->names, i, const char *);
        FUZZ_ASSERT(n && *n && !strchr(n, '/') && strlen(n) <= 253);
        FUZZ_ASSERT(i == 0 || strcmp(APR_ARRAY_IDX(csr->names, i - 1, const char *), n) < 0);
    }
    /* What the worker finalizes with is accepted again, as the same request. */
    FUZZ_ASSERT(acme_api_csr_check(p, (const char *)csr->der, csr->der_len, &again, &reason)
                == APR_SUCCESS);
    FUZZ_ASSERT(!strcmp(again->id, csr->id) && again->names->nelts == csr->names->nelts);
}

static void fuzz_pattern(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *text = fuzz_str(p, data, size), *nl = strchr(text, '\n');
    const char *pattern = text, *name = nl ? nl + 1 : "";
    apr_size_t pl, nl_len;

    if (nl) {
        *nl = '\0';
    }
    if (acme_api_pattern_check(p, pattern) != NULL || !acme_api_pattern_match(pattern, name)) {
        return;
    }
    /* A match is the name itself or a name below the pattern's base. */
    pl = strlen(pattern);
    nl_len = strlen(name);
    if (!strncmp(pattern, "**.", 3) || !strncmp(pattern, "*.", 2)) {
        const char *base = pattern + (pattern[1] == '*' ? 3 : 2);
        apr_size_t bl = strlen(base);
        FUZZ_ASSERT(!strcasecmp(pattern, name)
                    || (nl_len > bl + 1 && !strcasecmp(name + nl_len - bl, base)
                        && name[nl_len - bl - 1] == '.'));
    }
    else {
        FUZZ_ASSERT(pl == nl_len && !strcasecmp(pattern, name));
    }
}

static void fuzz_rate(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_api_rate_t rate = { 0, 0 };
    const char *reason = NULL;
    apr_time_t start = 0;
    int count = 0;
    long retry = 0;

    if (acme_api_rate_parse(fuzz_str(p, data, size), &rate, &reason, p) != APR_SUCCESS) {
        FUZZ_ASSERT(reason != NULL);
        return;
    }
    FUZZ_ASSERT(rate.n >= 1 && rate.period > 0);
    FUZZ_ASSERT(acme_api_rate_take(&rate, apr_time_from_sec(1000), &start, &count, &retry));
}

static void fuzz_hmac(apr_pool_t *p, const uint8_t *data, size_t size)
{
    static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
    char *text = fuzz_str(p, data, size), *last = NULL;
    const char *ts = apr_strtok(text, "\n", &last);
    const char *sig = ts ? apr_strtok(NULL, "\n", &last) : NULL;
    const char *body = last ? last : "";
    const char *reason = NULL;
    apr_status_t rv = acme_api_hmac_check(p, key, 32, "POST", "/api/certificates", ts, sig, body,
                                          strlen(body), apr_time_from_sec(1800000000), &reason);

    /* Success only with the signature the key gives. */
    FUZZ_ASSERT(rv != APR_SUCCESS
                || !strcmp(sig, acme_api_hmac_make(p, key, 32, "POST", "/api/certificates", ts,
                                                   body, strlen(body))));
    FUZZ_ASSERT(rv == APR_SUCCESS || reason != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    if (size < 1) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_csr(p, data + 1, size - 1);
        break;
    case 1:
        fuzz_pattern(p, data + 1, size - 1);
        break;
    case 2:
        fuzz_rate(p, data + 1, size - 1);
        break;
    default:
        fuzz_hmac(p, data + 1, size - 1);
        break;
    }
    return 0;
}
