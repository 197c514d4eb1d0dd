#include <string.h>

#include <apr_strings.h>
#include <apr_sha1.h>
#include <apr_lib.h>

#include "acme_domain.h"
#include "acme_names.h"

#define ACME_DEFAULT_KEY_BITS 256

void acme_policy_init(acme_policy_t *policy, apr_pool_t *p)
{
    *policy = (acme_policy_t){
        .ca_urls = NULL,
        .ca_file = NULL,
        .agreement = -1,
        .contact = NULL,
        .challenges = NULL,
        .key_specs = NULL,
        .renew_window = NULL,
        .members_auto = -1,
        .dns01_command = NULL,
        .dns01_timeout = -1,
        .dns01_propagation = NULL,
        .eab_kid = NULL,
        .eab_file = NULL,
        .preferred_chain = NULL,
        .profile = NULL,
        .profile_mandatory = 0,
        .proxies = NULL,
    };
}

void acme_policy_inherit(acme_policy_t *dst, const acme_policy_t *src)
{
    if (!dst->ca_urls) dst->ca_urls = src->ca_urls;
    if (!dst->ca_file) dst->ca_file = src->ca_file;
    if (dst->agreement < 0) dst->agreement = src->agreement;
    if (!dst->contact) dst->contact = src->contact;
    if (!dst->challenges) dst->challenges = src->challenges;
    if (!dst->key_specs) dst->key_specs = src->key_specs;
    if (!dst->renew_window) dst->renew_window = src->renew_window;
    if (dst->members_auto < 0) dst->members_auto = src->members_auto;
    if (!dst->dns01_command) dst->dns01_command = src->dns01_command;
    if (dst->dns01_timeout < 0) dst->dns01_timeout = src->dns01_timeout;
    if (!dst->dns01_propagation) dst->dns01_propagation = src->dns01_propagation;
    if (!dst->preferred_chain) dst->preferred_chain = src->preferred_chain;
    if (!dst->profile) {
        dst->profile = src->profile;
        dst->profile_mandatory = src->profile_mandatory;
    }
    if (!dst->proxies) dst->proxies = src->proxies;
    if (!dst->eab_kid) {
        dst->eab_kid = src->eab_kid;
        dst->eab_file = src->eab_file;
    }
}

void acme_policy_defaults(acme_policy_t *policy, apr_pool_t *p)
{
    if (!policy->ca_urls) {
        policy->ca_urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(policy->ca_urls, const char *) = ACME_CA_LETSENCRYPT;
    }
    if (policy->agreement < 0) policy->agreement = 0;
    if (!policy->challenges) policy->challenges = apr_array_make(p, 1, sizeof(const char *));
    if (!policy->key_specs) {
        policy->key_specs = apr_array_make(p, 1, sizeof(acme_keyspec_t));
        APR_ARRAY_PUSH(policy->key_specs, acme_keyspec_t) =
            (acme_keyspec_t){ .kind = ACME_KEY_EC, .bits = ACME_DEFAULT_KEY_BITS };
    }
    if (!policy->renew_window) policy->renew_window = "auto";
    if (policy->members_auto < 0) policy->members_auto = 1;
    if (policy->dns01_timeout < 0) policy->dns01_timeout = apr_time_from_sec(60);
}

const char *acme_domain_ca_url(apr_pool_t *p, const char *text, const char **reason)
{
    if (!strcasecmp(text, "letsencrypt")) {
        return ACME_CA_LETSENCRYPT;
    }
    if (!strcasecmp(text, "letsencrypt-staging")) {
        return ACME_CA_LETSENCRYPT_STAGING;
    }
    if (strncasecmp(text, "https://", 8) != 0 || !text[8] || text[8] == '/') {
        *reason = apr_psprintf(p, "'%s' is neither 'letsencrypt', 'letsencrypt-staging' nor "
                               "the https:// URL of an ACME directory", text);
        return NULL;
    }
    if (strpbrk(text, " \t\"<>\\")) {
        *reason = apr_psprintf(p, "'%s' contains characters a URL cannot hold", text);
        return NULL;
    }
    return text;
}

const char *acme_domain_ca_id(apr_pool_t *p, const char *ca_url)
{
    const char *host = ca_url + (strncasecmp(ca_url, "https://", 8) ? 0 : 8);
    apr_size_t host_len = strcspn(host, "/?#");
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    char *id, *c;

    apr_sha1_init(&ctx);
    apr_sha1_update(&ctx, ca_url, (unsigned int)strlen(ca_url));
    apr_sha1_final(digest, &ctx);
    id = apr_psprintf(p, "%s-%02x%02x%02x%02x", apr_pstrmemdup(p, host, host_len),
                      digest[0], digest[1], digest[2], digest[3]);
    for (c = id; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '.' && *c != '-') {
            *c = '_';
        }
    }
    /* The store refuses names starting with '.', and a leading '-' reads as an option. */
    if (id[0] == '.' || id[0] == '-') {
        id[0] = '_';
    }
    return id;
}

acme_domain_t *acme_domain_make(apr_pool_t *p, const char *defined_in, int defined_line)
{
    acme_domain_t *dom = apr_palloc(p, sizeof(*dom));

    *dom = (acme_domain_t){
        .name = NULL,
        .idents = apr_array_make(p, 4, sizeof(acme_ident_t)),
        .defined_in = defined_in,
        .defined_line = defined_line,
        .from_vhost = 0,
    };
    acme_policy_init(&dom->policy, p);
    return dom;
}

int acme_domain_has_ident(const acme_domain_t *dom, const acme_ident_t *ident)
{
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *have = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        if (have->type == ident->type && !strcmp(have->value, ident->value)) {
            return 1;
        }
    }
    return 0;
}

apr_status_t acme_domain_add_name(apr_pool_t *p, acme_domain_t *dom, const char *text,
                                  const char **reason)
{
    acme_ident_t ident;
    apr_status_t rv = acme_names_parse(p, text, &ident, reason);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (acme_domain_has_ident(dom, &ident)) {
        return APR_SUCCESS;
    }
    APR_ARRAY_PUSH(dom->idents, acme_ident_t) = ident;
    if (!dom->name) {
        dom->name = ident.value;
    }
    return APR_SUCCESS;
}

static json_t *acme_domain_strings_to_json(const apr_array_header_t *list)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(list, i, const char *)));
    }
    return arr;
}

/*
 * ACMEProxy as it applies to each of the domain's CAs, for a2acme: the URL without its
 * credentials (domains.json is readable by the User's group), "credentials" saying they were
 * left out. Only CAs with a rule are listed.
 */
static json_t *acme_domain_proxies_to_json(const acme_policy_t *pol)
{
    json_t *arr = json_array();
    apr_pool_t *p = NULL;
    int i;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return arr;
    }
    for (i = 0; pol->ca_urls && i < pol->ca_urls->nelts; ++i) {
        const char *ca = APR_ARRAY_IDX(pol->ca_urls, i, const char *);
        const acme_proxy_rule_t *r = acme_proxy_find(pol->proxies, ca);
        if (r) {
            json_array_append_new(arr, json_pack("{s:s, s:s?, s:b}", "ca", ca,
                                                 "proxy", acme_proxy_strip(p, r->url),
                                                 "credentials",
                                                 acme_proxy_has_credentials(r->url)));
        }
    }
    apr_pool_destroy(p);
    return arr;
}

static void acme_domain_proxies_from_json(apr_pool_t *p, json_t *arr, acme_policy_t *pol)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr)) {
        return;
    }
    pol->proxies = apr_array_make(p, 2, sizeof(acme_proxy_rule_t));
    json_array_foreach(arr, i, v) {
        const char *ca = json_string_value(json_object_get(v, "ca"));
        const char *url = json_string_value(json_object_get(v, "proxy"));
        if (ca) {
            APR_ARRAY_PUSH(pol->proxies, acme_proxy_rule_t) = (acme_proxy_rule_t){
                .ca_url = apr_pstrdup(p, ca),
                .url = url ? apr_pstrdup(p, url) : NULL,
                .withheld = json_is_true(json_object_get(v, "credentials")),
            };
        }
    }
}

json_t *acme_domain_to_json(const acme_domain_t *dom)
{
    const acme_policy_t *pol = &dom->policy;
    json_t *idents = json_array(), *specs = json_array();
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        json_array_append_new(idents, json_pack("{s:s, s:s}", "type",
                                                id->type == ACME_IDENT_IP ? "ip" : "dns",
                                                "value", id->value));
    }
    for (i = 0; pol->key_specs && i < pol->key_specs->nelts; ++i) {
        json_array_append_new(specs, json_string(acme_crypto_keyspec_name(
            &APR_ARRAY_IDX(pol->key_specs, i, acme_keyspec_t))));
    }
    json_t *json = json_pack("{s:s, s:o, s:o, s:s?, s:b, s:s?, s:o, s:o, s:s?, s:s?, s:i}",
                     "name", dom->name,
                     "identifiers", idents,
                     "ca_urls", acme_domain_strings_to_json(pol->ca_urls),
                     "ca_file", pol->ca_file,
                     "agreement", pol->agreement > 0,
                     "contact", pol->contact,
                     "challenges", acme_domain_strings_to_json(pol->challenges),
                     "key_specs", specs,
                     "renew_window", pol->renew_window,
                     "defined_in", dom->defined_in,
                     "defined_line", dom->defined_line);

    if (json && dom->ondemand) {
        json_object_set_new(json, "ondemand", json_true());     /* issue 19 */
    }
    /* dns-01 (issue 6): only when configured, so domains without it keep their JSON. */
    if (json && pol->dns01_command && pol->dns01_command->nelts > 0) {
        json_object_set_new(json, "dns01_command", acme_domain_strings_to_json(pol->dns01_command));
    }
    if (json && pol->dns01_timeout > 0) {
        json_object_set_new(json, "dns01_timeout_ms",
                            json_integer((json_int_t)apr_time_as_msec(pol->dns01_timeout)));
    }
    if (json && pol->dns01_propagation) {
        json_object_set_new(json, "dns01_propagation", json_string(pol->dns01_propagation));
    }
    if (json && pol->preferred_chain) {
        json_object_set_new(json, "preferred_chain", json_string(pol->preferred_chain));
    }
    if (json && pol->profile) {
        json_object_set_new(json, "profile", json_string(pol->profile));
        json_object_set_new(json, "profile_mandatory", json_boolean(pol->profile_mandatory));
    }
    if (json && pol->proxies && pol->proxies->nelts > 0) {
        json_object_set_new(json, "proxies", acme_domain_proxies_to_json(pol));
    }
    /* Where the binding's key is, never the key: domains.json is readable by the User's group. */
    if (json && pol->eab_kid && *pol->eab_kid && pol->eab_file) {
        json_object_set_new(json, "eab_kid", json_string(pol->eab_kid));
        json_object_set_new(json, "eab_file", json_string(pol->eab_file));
    }
    return json;
}

static apr_status_t acme_domain_bad_json(acme_result_t *res, apr_pool_t *p, const char *what)
{
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                            apr_psprintf(p, "domain set: %s", what));
}

static void acme_domain_profile_from_json(apr_pool_t *p, json_t *json, acme_policy_t *pol)
{
    const char *profile = json_string_value(json_object_get(json, "profile"));

    if (profile && *profile) {
        pol->profile = apr_pstrdup(p, profile);
        pol->profile_mandatory = json_is_true(json_object_get(json, "profile_mandatory"));
    }
}

static void acme_domain_ca_options_from_json(apr_pool_t *p, json_t *json, acme_policy_t *pol)
{
    const char *kid = json_string_value(json_object_get(json, "eab_kid"));
    const char *file = json_string_value(json_object_get(json, "eab_file"));
    const char *chain = json_string_value(json_object_get(json, "preferred_chain"));

    if (chain && *chain) {
        pol->preferred_chain = apr_pstrdup(p, chain);
    }
    acme_domain_profile_from_json(p, json, pol);
    if (kid && *kid && file && *file) {
        pol->eab_kid = apr_pstrdup(p, kid);
        pol->eab_file = apr_pstrdup(p, file);
    }
}

static apr_array_header_t *acme_domain_strings_from_json(apr_pool_t *p, json_t *arr)
{
    apr_array_header_t *list = apr_array_make(p, 2, sizeof(const char *));
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        if (json_is_string(v)) {
            APR_ARRAY_PUSH(list, const char *) = apr_pstrdup(p, json_string_value(v));
        }
    }
    return list;
}

static apr_status_t acme_domain_idents_from_json(apr_pool_t *p, json_t *arr,
                                                 acme_domain_t *dom, acme_result_t *res)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *value = json_string_value(json_object_get(v, "value"));
        if (!type || !value || (strcmp(type, "dns") && strcmp(type, "ip"))) {
            return acme_domain_bad_json(res, p, "identifier without a dns/ip type and value");
        }
        APR_ARRAY_PUSH(dom->idents, acme_ident_t) = (acme_ident_t){
            .type = strcmp(type, "ip") ? ACME_IDENT_DNS : ACME_IDENT_IP,
            .value = apr_pstrdup(p, value),
        };
    }
    return APR_SUCCESS;
}

static apr_status_t acme_domain_specs_from_json(apr_pool_t *p, json_t *arr,
                                                acme_policy_t *pol, acme_result_t *res)
{
    size_t i;
    json_t *v;

    pol->key_specs = apr_array_make(p, 2, sizeof(acme_keyspec_t));
    json_array_foreach(arr, i, v) {
        acme_keyspec_t spec;
        const char *reason = NULL;
        if (!json_is_string(v)
            || acme_crypto_keyspec_parse(json_string_value(v), &spec, &reason, p)) {
            return acme_domain_bad_json(res, p, "unknown key spec");
        }
        APR_ARRAY_PUSH(pol->key_specs, acme_keyspec_t) = spec;
    }
    return APR_SUCCESS;
}

apr_status_t acme_domain_from_json(apr_pool_t *p, json_t *json, acme_domain_t **pdom,
                                   acme_result_t *res)
{
    const char *name = json_string_value(json_object_get(json, "name"));
    const char *file = json_string_value(json_object_get(json, "defined_in"));
    const char *window;
    acme_domain_t *dom;
    apr_status_t rv;

    if (!name) {
        return acme_domain_bad_json(res, p, "domain without a name");
    }
    dom = acme_domain_make(p, file ? apr_pstrdup(p, file) : NULL,
                           (int)json_integer_value(json_object_get(json, "defined_line")));
    dom->name = apr_pstrdup(p, name);
    dom->ondemand = json_is_true(json_object_get(json, "ondemand"));
    rv = acme_domain_idents_from_json(p, json_object_get(json, "identifiers"), dom, res);
    if (rv == APR_SUCCESS) {
        rv = acme_domain_specs_from_json(p, json_object_get(json, "key_specs"), &dom->policy, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    dom->policy.ca_urls = acme_domain_strings_from_json(p, json_object_get(json, "ca_urls"));
    dom->policy.challenges = acme_domain_strings_from_json(p, json_object_get(json, "challenges"));
    dom->policy.agreement = json_is_true(json_object_get(json, "agreement"));
    if (json_string_value(json_object_get(json, "ca_file"))) {
        dom->policy.ca_file = apr_pstrdup(p, json_string_value(json_object_get(json, "ca_file")));
    }
    if (json_string_value(json_object_get(json, "contact"))) {
        dom->policy.contact = apr_pstrdup(p, json_string_value(json_object_get(json, "contact")));
    }
    window = json_string_value(json_object_get(json, "renew_window"));
    dom->policy.renew_window = apr_pstrdup(p, window ? window : "auto");
    dom->policy.members_auto = 1;
    if (json_is_array(json_object_get(json, "dns01_command"))) {
        dom->policy.dns01_command = acme_domain_strings_from_json(p, json_object_get(json,
                                                                          "dns01_command"));
    }
    dom->policy.dns01_timeout = json_integer_value(json_object_get(json, "dns01_timeout_ms")) > 0
        && json_integer_value(json_object_get(json, "dns01_timeout_ms")) <= APR_INT64_MAX / 1000
        ? apr_time_from_msec(json_integer_value(json_object_get(json, "dns01_timeout_ms")))
        : apr_time_from_sec(60);
    if (json_string_value(json_object_get(json, "dns01_propagation"))) {
        dom->policy.dns01_propagation = apr_pstrdup(p, json_string_value(
            json_object_get(json, "dns01_propagation")));
    }
    acme_domain_ca_options_from_json(p, json, &dom->policy);
    acme_domain_proxies_from_json(p, json_object_get(json, "proxies"), &dom->policy);
    if (dom->idents->nelts == 0 || dom->policy.ca_urls->nelts == 0) {
        return acme_domain_bad_json(res, p, apr_pstrcat(p, "domain ", name,
                                                        " has no identifiers or no CA", NULL));
    }
    *pdom = dom;
    return APR_SUCCESS;
}

json_t *acme_domain_set_to_json(const apr_array_header_t *domains)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; i < domains->nelts; ++i) {
        json_array_append_new(arr, acme_domain_to_json(APR_ARRAY_IDX(domains, i, acme_domain_t *)));
    }
    return json_pack("{s:i, s:o}", "version", 1, "domains", arr);
}

apr_status_t acme_domain_set_from_json(apr_pool_t *p, json_t *json,
                                       apr_array_header_t **pdomains, acme_result_t *res)
{
    json_t *arr = json_object_get(json, "domains"), *v;
    apr_array_header_t *domains;
    size_t i;

    if (!json_is_array(arr)) {
        return acme_domain_bad_json(res, p, "no \"domains\" array");
    }
    domains = apr_array_make(p, (int)json_array_size(arr) + 1, sizeof(acme_domain_t *));
    json_array_foreach(arr, i, v) {
        acme_domain_t *dom;
        apr_status_t rv = acme_domain_from_json(p, v, &dom, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(domains, acme_domain_t *) = dom;
    }
    *pdomains = domains;
    return APR_SUCCESS;
}
