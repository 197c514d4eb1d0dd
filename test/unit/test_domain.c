#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_domain.h"
#include "unit_support.h"

static acme_keyspec_t spec_of(apr_pool_t *p, const char *text)
{
    acme_keyspec_t spec;
    const char *reason = NULL;

    assert_int_equal(acme_crypto_keyspec_parse(text, &spec, &reason, p), APR_SUCCESS);
    return spec;
}

static acme_domain_t *make_domain(apr_pool_t *p, const char *const *names, int n)
{
    acme_domain_t *dom = acme_domain_make(p, "/etc/apache2/sites/a.conf", 12);
    const char *reason = NULL;
    int i;

    for (i = 0; i < n; ++i) {
        assert_int_equal(acme_domain_add_name(p, dom, names[i], &reason), APR_SUCCESS);
    }
    return dom;
}

/* ------------------------------------------------------------------ names */

static void test_add_name_validates_and_dedups(void **state)
{
    apr_pool_t *p = *state;
    acme_domain_t *dom = acme_domain_make(p, "x.conf", 1);
    const char *reason = NULL;
    acme_ident_t ip6 = { .type = ACME_IDENT_IP, .value = "2001:db8::1" };
    acme_ident_t as_dns = { .type = ACME_IDENT_DNS, .value = "2001:db8::1" };
    acme_ident_t www = { .type = ACME_IDENT_DNS, .value = "www.example.org" };

    assert_null(dom->name);
    assert_int_equal(acme_domain_add_name(p, dom, "Example.ORG.", &reason), APR_SUCCESS);
    assert_string_equal(dom->name, "example.org");
    assert_int_equal(acme_domain_add_name(p, dom, "www.example.org", &reason), APR_SUCCESS);
    /* Again, in another spelling: accepted and ignored. */
    assert_int_equal(acme_domain_add_name(p, dom, "WWW.example.org", &reason), APR_SUCCESS);
    assert_int_equal(acme_domain_add_name(p, dom, "[2001:0db8:0::1]", &reason), APR_SUCCESS);
    assert_int_equal(dom->idents->nelts, 3);
    assert_string_equal(dom->name, "example.org");
    assert_true(acme_domain_has_ident(dom, &ip6));
    assert_true(acme_domain_has_ident(dom, &www));
    /* The type counts, not only the text. */
    assert_false(acme_domain_has_ident(dom, &as_dns));

    reason = NULL;
    assert_int_equal(acme_domain_add_name(p, dom, "bad..example.org", &reason), APR_EINVAL);
    assert_non_null(reason);
    assert_int_equal(acme_domain_add_name(p, dom, "-x.example.org", &reason), APR_EINVAL);
    assert_int_equal(acme_domain_add_name(p, dom, "a_b.example.org", &reason), APR_EINVAL);
    assert_int_equal(dom->idents->nelts, 3);
}

static void test_first_name_may_be_ip(void **state)
{
    apr_pool_t *p = *state;
    acme_domain_t *dom = acme_domain_make(p, NULL, 0);
    const char *reason = NULL;

    assert_int_equal(acme_domain_add_name(p, dom, "192.0.2.7", &reason), APR_SUCCESS);
    assert_string_equal(dom->name, "192.0.2.7");
    assert_int_equal(APR_ARRAY_IDX(dom->idents, 0, acme_ident_t).type, ACME_IDENT_IP);
}

/* ------------------------------------------------------------------ policies */

static void test_policy_inherit_and_defaults(void **state)
{
    apr_pool_t *p = *state;
    acme_policy_t dom, srv;
    acme_keyspec_t spec;

    acme_policy_init(&dom, p);
    acme_policy_init(&srv, p);
    assert_null(dom.ca_urls);
    assert_int_equal(dom.agreement, -1);
    assert_int_equal(dom.members_auto, -1);

    dom.contact = "dom@example.org";
    dom.members_auto = 0;
    srv.contact = "srv@example.org";
    srv.agreement = 1;
    srv.renew_window = "21d";
    srv.key_specs = apr_array_make(p, 2, sizeof(acme_keyspec_t));
    APR_ARRAY_PUSH(srv.key_specs, acme_keyspec_t) = spec_of(p, "rsa3072");
    srv.members_auto = 1;
    acme_policy_inherit(&dom, &srv);
    assert_string_equal(dom.contact, "dom@example.org");
    assert_int_equal(dom.agreement, 1);
    assert_string_equal(dom.renew_window, "21d");
    assert_int_equal(dom.members_auto, 0);
    assert_int_equal(dom.key_specs->nelts, 1);

    acme_policy_defaults(&dom, p);
    assert_int_equal(dom.ca_urls->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(dom.ca_urls, 0, const char *), ACME_CA_LETSENCRYPT);
    assert_string_equal(dom.renew_window, "21d");
    assert_int_equal(dom.key_specs->nelts, 1);
    assert_int_equal(APR_ARRAY_IDX(dom.key_specs, 0, acme_keyspec_t).kind, ACME_KEY_RSA);

    /* Nothing set anywhere: EC P-256, letsencrypt, auto window, members auto, no agreement. */
    acme_policy_init(&srv, p);
    acme_policy_defaults(&srv, p);
    spec = APR_ARRAY_IDX(srv.key_specs, 0, acme_keyspec_t);
    assert_string_equal(acme_crypto_keyspec_name(&spec), "secp256r1");
    assert_int_equal(srv.key_specs->nelts, 1);
    assert_string_equal(srv.renew_window, "auto");
    assert_int_equal(srv.members_auto, 1);
    assert_int_equal(srv.agreement, 0);
    assert_non_null(srv.challenges);
    assert_int_equal(srv.challenges->nelts, 0);
}

/* ------------------------------------------------------------------ CA */

static void test_ca_url_shorthands_and_urls(void **state)
{
    apr_pool_t *p = *state;
    static const char *bad[] = {
        "ftp://ca.example/dir", "http://ca.example/dir", "https://", "https:///dir",
        "https://ca.example/a b", "https://ca.example/\"x\"", "https://ca.example/<x>",
        "letsencrypt-prod", "", "ca.example/directory",
    };
    const char *reason = NULL;
    size_t i;

    assert_string_equal(acme_domain_ca_url(p, "letsencrypt", &reason), ACME_CA_LETSENCRYPT);
    assert_string_equal(acme_domain_ca_url(p, "LetsEncrypt", &reason), ACME_CA_LETSENCRYPT);
    assert_string_equal(acme_domain_ca_url(p, "letsencrypt-staging", &reason),
                        ACME_CA_LETSENCRYPT_STAGING);
    assert_string_equal(acme_domain_ca_url(p, "https://127.0.0.1:14000/dir", &reason),
                        "https://127.0.0.1:14000/dir");
    assert_string_equal(acme_domain_ca_url(p, "HTTPS://ca.example/directory", &reason),
                        "HTTPS://ca.example/directory");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        reason = NULL;
        assert_null(acme_domain_ca_url(p, bad[i], &reason));
        assert_non_null(reason);
        /* The reason quotes what was given, so the admin sees which value is wrong. */
        assert_non_null(strstr(reason, bad[i]));
    }
}

static int id_is_safe(const char *id)
{
    const char *c;

    /* acme_store_path refuses a component that starts with '.'. */
    if (!*id || id[0] == '.') {
        return 0;
    }
    for (c = id; *c; ++c) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '.' || *c == '-' || *c == '_')) {
            return 0;
        }
    }
    return 1;
}

static void test_ca_id_stable_distinct_and_safe(void **state)
{
    apr_pool_t *p = *state;
    const char *a = acme_domain_ca_id(p, "https://127.0.0.1:14000/dir");
    const char *b = acme_domain_ca_id(p, "https://127.0.0.1:14000/dir");
    const char *c = acme_domain_ca_id(p, "https://127.0.0.1:14000/dir2");
    const char *le = acme_domain_ca_id(p, ACME_CA_LETSENCRYPT);
    const char *st = acme_domain_ca_id(p, ACME_CA_LETSENCRYPT_STAGING);
    static const char *nasty[] = {
        "https://ca.example/../../etc/passwd", "https://ca.example:443/dir?x=/y#z",
        "https://user:pw@ca.example/dir", "https://ca.example\\..\\x/dir",
        "https://..", "https://.hidden.example/dir", "https://-x.example/dir",
    };
    size_t i;
    int unsafe = 0;

    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(le, st);
    /* The host is readable in the id. */
    assert_true(strncmp(le, "acme-v02.api.letsencrypt.org-", 29) == 0);
    assert_true(strncmp(st, "acme-staging-v02.api.letsencrypt.org-", 37) == 0);
    assert_true(id_is_safe(a));
    assert_null(strchr(a, ':'));
    for (i = 0; i < sizeof(nasty) / sizeof(nasty[0]); ++i) {
        const char *id = acme_domain_ca_id(p, nasty[i]);
        if (!id_is_safe(id)) {
            print_error("ca id '%s' of '%s' is not a safe file name\n", id, nasty[i]);
            unsafe++;
        }
    }
    assert_int_equal(unsafe, 0);
}

/* ------------------------------------------------------------------ JSON */

static void test_json_round_trip(void **state)
{
    apr_pool_t *p = *state;
    static const char *const names[] = { "example.org", "*.example.org", "192.0.2.1",
                                         "2001:db8::1" };
    acme_domain_t *dom = make_domain(p, names, 4), *back = NULL;
    acme_result_t res;
    json_t *json;
    int i;

    dom->policy.ca_urls = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = "https://127.0.0.1:14000/dir";
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = ACME_CA_LETSENCRYPT;
    dom->policy.ca_file = "/etc/ssl/pebble.pem";
    dom->policy.agreement = 1;
    dom->policy.contact = "admin@example.org";
    dom->policy.challenges = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(dom->policy.challenges, const char *) = "http-01";
    dom->policy.key_specs = apr_array_make(p, 2, sizeof(acme_keyspec_t));
    APR_ARRAY_PUSH(dom->policy.key_specs, acme_keyspec_t) = spec_of(p, "P-384");
    APR_ARRAY_PUSH(dom->policy.key_specs, acme_keyspec_t) = spec_of(p, "rsa4096");
    dom->policy.renew_window = "33%";

    json = acme_domain_to_json(dom);
    assert_non_null(json);
    acme_result_reset(&res);
    assert_int_equal(acme_domain_from_json(p, json, &back, &res), APR_SUCCESS);
    json_decref(json);

    assert_string_equal(back->name, "example.org");
    assert_string_equal(back->defined_in, "/etc/apache2/sites/a.conf");
    assert_int_equal(back->defined_line, 12);
    assert_int_equal(back->idents->nelts, 4);
    for (i = 0; i < 4; ++i) {
        const acme_ident_t *want = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        const acme_ident_t *got = &APR_ARRAY_IDX(back->idents, i, acme_ident_t);
        assert_int_equal(got->type, want->type);
        assert_string_equal(got->value, want->value);
    }
    assert_int_equal(APR_ARRAY_IDX(back->idents, 2, acme_ident_t).type, ACME_IDENT_IP);
    assert_int_equal(APR_ARRAY_IDX(back->idents, 3, acme_ident_t).type, ACME_IDENT_IP);
    assert_int_equal(back->policy.ca_urls->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(back->policy.ca_urls, 0, const char *),
                        "https://127.0.0.1:14000/dir");
    assert_string_equal(APR_ARRAY_IDX(back->policy.ca_urls, 1, const char *),
                        ACME_CA_LETSENCRYPT);
    assert_string_equal(back->policy.ca_file, "/etc/ssl/pebble.pem");
    assert_int_equal(back->policy.agreement, 1);
    assert_string_equal(back->policy.contact, "admin@example.org");
    assert_int_equal(back->policy.challenges->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(back->policy.challenges, 0, const char *), "http-01");
    assert_int_equal(back->policy.key_specs->nelts, 2);
    assert_string_equal(acme_crypto_keyspec_name(&APR_ARRAY_IDX(back->policy.key_specs, 0,
                                                                acme_keyspec_t)), "secp384r1");
    assert_string_equal(acme_crypto_keyspec_name(&APR_ARRAY_IDX(back->policy.key_specs, 1,
                                                                acme_keyspec_t)), "rsa4096");
    assert_string_equal(back->policy.renew_window, "33%");
}

static void test_json_optional_fields_absent(void **state)
{
    apr_pool_t *p = *state;
    static const char *const names[] = { "a.example" };
    acme_domain_t *dom = make_domain(p, names, 1), *back = NULL;
    acme_result_t res;
    json_t *json;

    acme_policy_defaults(&dom->policy, p);
    json = acme_domain_to_json(dom);
    assert_non_null(json);
    assert_true(json_is_null(json_object_get(json, "contact"))
                || !json_object_get(json, "contact"));
    assert_true(json_is_null(json_object_get(json, "ca_file"))
                || !json_object_get(json, "ca_file"));
    assert_true(json_is_false(json_object_get(json, "agreement")));
    acme_result_reset(&res);
    assert_int_equal(acme_domain_from_json(p, json, &back, &res), APR_SUCCESS);
    json_decref(json);
    assert_null(back->policy.contact);
    assert_null(back->policy.ca_file);
    assert_int_equal(back->policy.agreement, 0);
    assert_string_equal(back->policy.renew_window, "auto");
    assert_int_equal(back->policy.key_specs->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(back->policy.ca_urls, 0, const char *),
                        ACME_CA_LETSENCRYPT);
}

/* Like the job times fuzz_store caught: a timeout no apr_time_t holds falls back to the default. */
static void test_json_huge_dns01_timeout(void **state)
{
    apr_pool_t *p = *state;
    static const char *const names[] = { "a.example" };
    acme_domain_t *dom = make_domain(p, names, 1), *back = NULL;
    acme_result_t res;
    json_t *json;

    acme_policy_defaults(&dom->policy, p);
    json = acme_domain_to_json(dom);
    json_object_set_new(json, "dns01_timeout_ms", json_integer(APR_INT64_MAX));
    acme_result_reset(&res);
    assert_int_equal(acme_domain_from_json(p, json, &back, &res), APR_SUCCESS);
    assert_true(back->policy.dns01_timeout == apr_time_from_sec(60));
    json_object_set_new(json, "dns01_timeout_ms", json_integer(90000));
    assert_int_equal(acme_domain_from_json(p, json, &back, &res), APR_SUCCESS);
    assert_true(back->policy.dns01_timeout == apr_time_from_sec(90));
    json_decref(json);
}

static void expect_bad_json(apr_pool_t *p, const char *text, const char *fragment)
{
    json_error_t jerr;
    json_t *json = json_loads(text, 0, &jerr);
    acme_domain_t *dom = NULL;
    acme_result_t res;

    assert_non_null(json);
    acme_result_reset(&res);
    assert_int_not_equal(acme_domain_from_json(p, json, &dom, &res), APR_SUCCESS);
    json_decref(json);
    assert_non_null(res.message);
    if (!strstr(res.message, fragment)) {
        fail_msg("'%s' does not say '%s'", res.message, fragment);
    }
}

static void test_json_refuses_broken_domains(void **state)
{
    apr_pool_t *p = *state;

    expect_bad_json(p, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}],"
                       "\"ca_urls\":[\"https://ca/dir\"]}", "without a name");
    expect_bad_json(p, "{\"name\":\"a.example\",\"identifiers\":[{\"type\":\"email\","
                       "\"value\":\"a@example\"}],\"ca_urls\":[\"https://ca/dir\"]}",
                    "dns/ip");
    expect_bad_json(p, "{\"name\":\"a.example\",\"identifiers\":[{\"type\":\"dns\"}],"
                       "\"ca_urls\":[\"https://ca/dir\"]}", "dns/ip");
    expect_bad_json(p, "{\"name\":\"a.example\",\"identifiers\":[{\"type\":\"dns\","
                       "\"value\":\"a.example\"}],\"ca_urls\":[\"https://ca/dir\"],"
                       "\"key_specs\":[\"rsa1024\"]}", "key spec");
    expect_bad_json(p, "{\"name\":\"a.example\",\"identifiers\":[],"
                       "\"ca_urls\":[\"https://ca/dir\"]}", "no identifiers");
    expect_bad_json(p, "{\"name\":\"a.example\",\"identifiers\":[{\"type\":\"dns\","
                       "\"value\":\"a.example\"}],\"ca_urls\":[]}", "no CA");
}

static void test_json_set_round_trip(void **state)
{
    apr_pool_t *p = *state;
    static const char *const n1[] = { "one.example", "www.one.example" };
    static const char *const n2[] = { "198.51.100.4" };
    apr_array_header_t *domains = apr_array_make(p, 2, sizeof(acme_domain_t *)), *back = NULL;
    acme_domain_t *d1 = make_domain(p, n1, 2), *d2 = make_domain(p, n2, 1);
    acme_result_t res;
    json_t *json, *empty;
    char *text;

    acme_policy_defaults(&d1->policy, p);
    acme_policy_defaults(&d2->policy, p);
    APR_ARRAY_PUSH(domains, acme_domain_t *) = d1;
    APR_ARRAY_PUSH(domains, acme_domain_t *) = d2;
    json = acme_domain_set_to_json(domains);
    assert_non_null(json);
    /* Through text, as the store keeps it. */
    text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(json);
    json = json_loads(text, 0, NULL);
    free(text);
    acme_result_reset(&res);
    assert_int_equal(acme_domain_set_from_json(p, json, &back, &res), APR_SUCCESS);
    json_decref(json);
    assert_int_equal(back->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(back, 0, acme_domain_t *)->name, "one.example");
    assert_int_equal(APR_ARRAY_IDX(back, 0, acme_domain_t *)->idents->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(back, 1, acme_domain_t *)->name, "198.51.100.4");
    assert_int_equal(APR_ARRAY_IDX(APR_ARRAY_IDX(back, 1, acme_domain_t *)->idents, 0,
                                   acme_ident_t).type, ACME_IDENT_IP);

    empty = json_pack("{s:i}", "version", 1);
    assert_int_not_equal(acme_domain_set_from_json(p, empty, &back, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "domains"));
    json_decref(empty);
}

/*
 * ACMEProxy in domains.json: per CA as it applies, never the credentials (a flag says they were
 * left out); a CA without a rule is not listed; inner lines replace the outer ones.
 */
static void test_json_proxies_without_credentials(void **state)
{
    apr_pool_t *p = *state;
    static const char *const names[] = { "proxy.example.org" };
    const char *internal = "https://ca.internal/acme/directory";
    acme_domain_t *dom = make_domain(p, names, 1), *back = NULL;
    acme_policy_t outer;
    acme_result_t res;
    json_t *json;
    char *text;

    dom->policy.ca_urls = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = internal;
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = ACME_CA_LETSENCRYPT;
    dom->policy.proxies = apr_array_make(p, 2, sizeof(acme_proxy_rule_t));
    APR_ARRAY_PUSH(dom->policy.proxies, acme_proxy_rule_t) =
        (acme_proxy_rule_t){ .ca_url = ACME_CA_LETSENCRYPT,
                             .url = "http://u:s3cret@proxy.corp:3128" };
    acme_policy_init(&outer, p);
    outer.proxies = apr_array_make(p, 1, sizeof(acme_proxy_rule_t));
    APR_ARRAY_PUSH(outer.proxies, acme_proxy_rule_t) =
        (acme_proxy_rule_t){ .ca_url = NULL, .url = "http://other:8080" };
    acme_policy_inherit(&dom->policy, &outer);
    acme_policy_defaults(&dom->policy, p);
    assert_null(acme_proxy_for(dom->policy.proxies, internal));

    json = acme_domain_to_json(dom);
    text = json_dumps(json, JSON_COMPACT);
    assert_null(strstr(text, "s3cret"));
    assert_null(strstr(text, "u:"));
    assert_null(strstr(text, "\"ca\":\"https://ca.internal"));   /* no rule, not listed */
    acme_result_reset(&res);
    assert_int_equal(acme_domain_from_json(p, json, &back, &res), APR_SUCCESS);
    free(text);
    json_decref(json);
    assert_non_null(back->policy.proxies);
    assert_int_equal(back->policy.proxies->nelts, 1);
    assert_string_equal(acme_proxy_for(back->policy.proxies, ACME_CA_LETSENCRYPT),
                        "http://proxy.corp:3128");
    assert_true(acme_proxy_find(back->policy.proxies, ACME_CA_LETSENCRYPT)->withheld);
    assert_null(acme_proxy_find(back->policy.proxies, internal));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, unit_setup_pool, unit_teardown_pool)
    const struct CMUnitTest tests[] = {
        T(test_add_name_validates_and_dedups),
        T(test_first_name_may_be_ip),
        T(test_policy_inherit_and_defaults),
        T(test_ca_url_shorthands_and_urls),
        T(test_ca_id_stable_distinct_and_safe),
        T(test_json_round_trip),
        T(test_json_optional_fields_absent),
        T(test_json_huge_dns01_timeout),
        T(test_json_refuses_broken_domains),
        T(test_json_set_round_trip),
        T(test_json_proxies_without_credentials),
    };
#undef T

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
