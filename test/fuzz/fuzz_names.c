/*
 * Names and directive values (src/acme_names.c, acme_plan.c, acme_renewal.c, acme_domain.c,
 * acme_dns01.c, acme_crypto.c): what an admin writes in ACMEDomain, ACMERenewWindow,
 * ACMEWarnWindow, ACMECheckInterval, ACMEDns01Timeout, ACMEDns01Propagation, ACMECA and
 * ACMEPrivateKeys, and the Host/SNI names the name index is asked about. The parsers themselves
 * live in the httpd-free core; httpd/acme_config.c only hands them the arguments. First byte:
 *   0  a name (ACMEDomain / Host / SNI): parse, wildcard and reverse-DNS forms
 *   1  names, one per line, into the index, then each line looked up as a Host
 *   2  a duration           3  a renew window       4  a warn window
 *   5  an ACMECA URL, and the same text as an ACMEProxy URL
 *   6  an ACMEDns01Propagation value
 *   7  names added to one domain, one per line (duplicates, wildcards, IPs)
 */
#include "fuzz_common.h"
#include "acme_dns01.h"
#include "acme_domain.h"
#include "acme_names.h"
#include "acme_plan.h"
#include "acme_proxy.h"
#include "acme_renewal.h"

static void fuzz_name(apr_pool_t *p, const char *text)
{
    acme_ident_t id, again;
    const char *reason = NULL;

    if (acme_names_parse(p, text, &id, &reason) != APR_SUCCESS) {
        FUZZ_ASSERT(reason != NULL);
        return;
    }
    FUZZ_ASSERT(id.value && *id.value);
    /* What the parser accepted is canonical: parsing it again changes nothing. */
    FUZZ_ASSERT(acme_names_parse(p, id.value, &again, &reason) == APR_SUCCESS);
    FUZZ_ASSERT(again.type == id.type && strcmp(again.value, id.value) == 0);
    if (id.type == ACME_IDENT_IP) {
        FUZZ_ASSERT(acme_names_reverse_dns(p, &id) != NULL);
    }
    else if (acme_names_is_wildcard(id.value)) {
        (void)acme_names_wildcard_matches(id.value, "www.example.org");
        FUZZ_ASSERT(!acme_names_wildcard_matches(id.value, id.value + 2));
    }
}

static void fuzz_index(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_names_index_t *idx = acme_names_index_make(p);
    acme_ident_t id;
    size_t off = 1;
    char *line;
    void *existing = NULL;
    unsigned int n = 0;

    while ((line = fuzz_line(p, data, size, &off)) != NULL) {
        if (acme_names_parse(p, line, &id, NULL) == APR_SUCCESS
            && acme_names_index_add(idx, id.value, line, &existing) == APR_SUCCESS) {
            ++n;
            FUZZ_ASSERT(acme_names_index_get(idx, id.value) != NULL);
        }
    }
    FUZZ_ASSERT(acme_names_index_count(idx) == n);
    off = 1;
    while ((line = fuzz_line(p, data, size, &off)) != NULL) {
        (void)acme_names_index_get(idx, line);
    }
}

static void fuzz_duration(apr_pool_t *p, const char *text)
{
    apr_interval_time_t t = 0;
    const char *reason = NULL;

    if (acme_plan_duration_parse(text, &t, &reason, p) == APR_SUCCESS) {
        FUZZ_ASSERT(t >= 0);
    }
    else {
        FUZZ_ASSERT(reason != NULL);
    }
}

static void fuzz_window(apr_pool_t *p, const char *text, int warn)
{
    acme_plan_window_t w;
    const char *reason = NULL;
    apr_time_t nb = apr_time_from_sec(1700000000), na = nb + apr_time_from_sec(90 * 86400);

    if (warn) {
        if (acme_renewal_warn_parse(text, &w, &reason, p) == APR_SUCCESS) {
            (void)acme_renewal_warn_at(&w, nb, na);
        }
    }
    else if (acme_plan_window_parse(text, &w, &reason, p) == APR_SUCCESS) {
        apr_time_t at = acme_plan_renew_at(&w, nb, na);
        (void)at;
    }
}

/* ACMEProxy: a normalized URL parses to itself, and redaction leaves no user info behind. */
static void fuzz_proxy(apr_pool_t *p, const char *text)
{
    const char *url = NULL, *again = NULL, *reason = NULL, *shown, *plain;

    if (acme_proxy_parse(p, text, &url, &reason) != 0) {
        FUZZ_ASSERT(reason != NULL);
        return;
    }
    if (!url) {
        return;
    }
    FUZZ_ASSERT(acme_proxy_parse(p, url, &again, &reason) == 0 && again && !strcmp(again, url));
    shown = acme_proxy_redact(p, url);
    plain = acme_proxy_strip(p, url);
    FUZZ_ASSERT(!acme_proxy_has_credentials(plain));
    if (acme_proxy_has_credentials(url)) {
        FUZZ_ASSERT(strstr(shown, "://***@") != NULL);
    }
    else {
        FUZZ_ASSERT(strcmp(shown, url) == 0 && strcmp(plain, url) == 0);
    }
}

static void fuzz_ca(apr_pool_t *p, const char *text)
{
    const char *reason = NULL;
    const char *url = acme_domain_ca_url(p, text, &reason);

    if (url) {
        FUZZ_ASSERT(acme_domain_ca_id(p, url) != NULL);
    }
    fuzz_proxy(p, text);
}

static void fuzz_propagation(apr_pool_t *p, const char *text)
{
    acme_dns01_propagation_t prop;
    const char *reason = NULL;

    if (acme_dns01_propagation_parse(p, text, &prop, &reason) == APR_SUCCESS) {
        FUZZ_ASSERT(prop.delay >= 0 && prop.max_wait >= 0);
    }
}

static void fuzz_domain(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_domain_t *dom = acme_domain_make(p, "fuzz.conf", 1);
    acme_result_t res;
    acme_domain_t *back = NULL;
    size_t off = 1;
    char *line;
    json_t *json;

    acme_result_reset(&res);
    while ((line = fuzz_line(p, data, size, &off)) != NULL) {
        const char *reason = NULL;
        (void)acme_domain_add_name(p, dom, line, &reason);
    }
    if (!dom->name) {
        return;
    }
    acme_policy_defaults(&dom->policy, p);     /* a CA: domains.json never lacks one */
    json = acme_domain_to_json(dom);
    FUZZ_ASSERT(json != NULL);
    FUZZ_ASSERT(acme_domain_from_json(p, json, &back, &res) == APR_SUCCESS);
    FUZZ_ASSERT(strcmp(back->name, dom->name) == 0);
    json_decref(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *text;

    if (size < 1) {
        return 0;
    }
    text = fuzz_str(p, data + 1, size - 1);
    switch (data[0] % 8) {
    case 0: fuzz_name(p, text); break;
    case 1: fuzz_index(p, data, size); break;
    case 2: fuzz_duration(p, text); break;
    case 3: fuzz_window(p, text, 0); break;
    case 4: fuzz_window(p, text, 1); break;
    case 5: fuzz_ca(p, text); break;
    case 6: fuzz_propagation(p, text); break;
    default: fuzz_domain(p, data, size); break;
    }
    return 0;
}
