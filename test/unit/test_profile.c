/* ACMEProfile: the profile a newOrder asks for, the limits checked before it, and the cached
 * directory configtest trusts only with the worker's MAC. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_client.h"
#include "acme_domain.h"
#include "acme_profile.h"
#include "acme_job.h"
#include "acme_seal.h"
#include "acme_status.h"
#include "unit_support.h"

#define CA "https://ca.example/dir"

/* Let's Encrypt's profiles as strings, plus one object with limits (the CA front's form). */
static const char le_dir[] =
    "{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":\"o\",\"renewalInfo\":\"r\","
    "\"meta\":{\"profiles\":{\"classic\":\"https://letsencrypt.org/docs/profiles#classic\","
    "\"tlsserver\":{\"description\":\"45 days\",\"maxNames\":25,\"identifierTypes\":[\"dns\"]},"
    "\"shortlived\":{\"description\":\"160 hours\",\"maxNames\":25,"
    "\"identifierTypes\":[\"dns\",\"ip\"]}}}}";
static const char bare_dir[] = "{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":\"o\"}";

static acme_client_meta_t meta_of(apr_pool_t *p, const char *dir)
{
    acme_client_meta_t meta;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_client_meta_parse(p, dir, strlen(dir), &meta, &res), APR_SUCCESS);
    return meta;
}

static const acme_ident_t dns1[] = { { ACME_IDENT_DNS, "www.example.org" } };
static const acme_ident_t with_ip[] = { { ACME_IDENT_DNS, "www.example.org" },
                                        { ACME_IDENT_IP, "192.0.2.7" } };

static apr_status_t choose(apr_pool_t *p, const char *dir, const char *wanted, int mandatory,
                           const acme_ident_t *ids, int n, const char **chosen, const char **note,
                           acme_result_t *res)
{
    acme_client_meta_t meta = meta_of(p, dir);
    acme_profile_request_t req = { .ca_url = CA, .wanted = wanted, .mandatory = mandatory,
                                   .idents = ids, .n_idents = n };

    acme_result_reset(res);
    return acme_profile_choose(p, &req, &meta, chosen, note, res);
}

static void test_limits_parsed(void **state)
{
    acme_client_meta_t meta = meta_of(*state, le_dir);
    const acme_client_profile_t *prof = (const acme_client_profile_t *)meta.profiles->elts;

    assert_int_equal(meta.profiles->nelts, 3);
    assert_int_equal(prof[0].max_names, 0);
    assert_null(prof[0].identifier_types);
    assert_int_equal(prof[1].max_names, 25);
    assert_string_equal(prof[1].identifier_types, "dns");
    assert_string_equal(prof[2].identifier_types, "dns,ip");
    assert_string_equal(acme_profile_offered_text(*state, &meta), "classic, tlsserver, shortlived");
}

static void test_offered_profile_is_ordered(void **state)
{
    const char *chosen = NULL, *note = "x";
    acme_result_t res;

    assert_int_equal(choose(*state, le_dir, "tlsserver", 1, dns1, 1, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_string_equal(chosen, "tlsserver");
    assert_null(note);
    assert_int_equal(choose(*state, le_dir, "classic", 0, with_ip, 2, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_string_equal(chosen, "classic");     /* no limits published: the CA decides */
}

static void test_unknown_profile_names_the_offered(void **state)
{
    const char *chosen = "x", *note = NULL;
    acme_result_t res;

    assert_int_not_equal(choose(*state, le_dir, "tlsclient", 0, dns1, 1, &chosen, &note, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_null(chosen);
    assert_non_null(strstr(res.message, "tlsclient"));
    assert_non_null(strstr(res.message, CA));
    assert_non_null(strstr(res.message, "classic, tlsserver, shortlived"));
}

static void test_not_offered_at_all(void **state)
{
    const char *chosen = "x", *note = NULL;
    acme_result_t res;

    /* mandatory: an error naming the CA and the profile */
    assert_int_not_equal(choose(*state, bare_dir, "shortlived", 1, dns1, 1, &chosen, &note,
                                &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "shortlived mandatory"));
    assert_non_null(strstr(res.message, CA));
    /* not mandatory: ordered without, with a note for the log */
    assert_int_equal(choose(*state, bare_dir, "shortlived", 0, dns1, 1, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_null(chosen);
    assert_non_null(note);
    assert_non_null(strstr(note, "without"));
}

static void test_automatic_for_ip(void **state)
{
    const char *chosen = "x", *note = NULL;
    acme_result_t res;

    assert_int_equal(choose(*state, le_dir, NULL, 0, with_ip, 2, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_string_equal(chosen, "shortlived");
    assert_non_null(note);
    /* DNS names only: the CA's default, silently */
    assert_int_equal(choose(*state, le_dir, NULL, 0, dns1, 1, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_null(chosen);
    assert_null(note);
    /* a CA without shortlived: its default */
    assert_int_equal(choose(*state, bare_dir, NULL, 0, with_ip, 2, &chosen, &note, &res),
                     APR_SUCCESS);
    assert_null(chosen);
}

static void test_limits_checked_before_ordering(void **state)
{
    acme_ident_t many[26];
    const char *chosen = NULL;
    acme_result_t res;
    int i;

    for (i = 0; i < 26; ++i) {
        many[i] = (acme_ident_t){ ACME_IDENT_DNS, apr_psprintf(*state, "n%d.example.org", i) };
    }
    assert_int_not_equal(choose(*state, le_dir, "tlsserver", 0, many, 26, &chosen, NULL, &res),
                         APR_SUCCESS);
    assert_non_null(strstr(res.message, "at most 25 names"));
    assert_non_null(strstr(res.message, "has 26"));
    assert_int_equal(choose(*state, le_dir, "tlsserver", 0, many, 25, &chosen, NULL, &res),
                     APR_SUCCESS);
    /* an IP address in a DNS-only profile */
    assert_int_not_equal(choose(*state, le_dir, "tlsserver", 1, with_ip, 2, &chosen, NULL, &res),
                         APR_SUCCESS);
    assert_non_null(strstr(res.message, "192.0.2.7"));
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
}

static void test_cache_round_trip_and_forgery(void **state)
{
    unsigned char key[ACME_SEAL_PROOF_KEY_LEN], other[ACME_SEAL_PROOF_KEY_LEN];
    acme_client_meta_t meta = meta_of(*state, le_dir), back;
    apr_time_t fetched = 0;
    acme_result_t res;
    json_t *json;

    memset(key, 7, sizeof(key));
    memset(other, 8, sizeof(other));
    json = acme_profile_cache_make(*state, key, CA, &meta, apr_time_from_sec(1767225600));
    assert_non_null(json);
    acme_result_reset(&res);
    assert_int_equal(acme_profile_cache_read(*state, key, CA, json, &back, &fetched, &res),
                     APR_SUCCESS);
    assert_int_equal(fetched, apr_time_from_sec(1767225600));
    assert_int_equal(back.profiles->nelts, 3);
    assert_string_equal(acme_profile_offered_text(*state, &back),
                        "classic, shortlived, tlsserver");     /* sorted in the cache */
    assert_string_equal(back.renewal_info, "r");
    /* another CA's file, another key, or an edited directory: not trusted */
    assert_int_not_equal(acme_profile_cache_read(*state, key, "https://other/dir", json, &back,
                                                 &fetched, &res), APR_SUCCESS);
    assert_int_not_equal(acme_profile_cache_read(*state, other, CA, json, &back, &fetched, &res),
                         APR_SUCCESS);
    json_object_set_new(json, "directory", json_string("{\"meta\":{\"profiles\":{}}}"));
    assert_int_not_equal(acme_profile_cache_read(*state, key, CA, json, &back, &fetched, &res),
                         APR_SUCCESS);
    json_decref(json);
    assert_string_equal(acme_profile_cache_file(*state, CA),
                        apr_pstrcat(*state, "directory.", acme_domain_ca_id(*state, CA), ".json",
                                    NULL));
}

/* The profile of each certificate survives a restart (jobs/<name>.json), bounded. */
static void test_job_keeps_profiles(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("profile-job");
    acme_job_t *job = acme_job_make(fx->pool, "p.test"), *back = NULL;
    acme_result_t res;
    int i;

    (void)state;
    for (i = 0; i < ACME_JOB_PROFILES_MAX + 3; ++i) {
        acme_job_profile_note(job, fx->pool, apr_psprintf(fx->pool, "%02X", i),
                              i % 2 ? "shortlived" : NULL);
    }
    acme_job_profile_note(job, fx->pool, "0A", "tlsserver");    /* noted again: newest */
    acme_result_reset(&res);
    assert_int_equal(acme_job_save(fx->pool, fx->st, job, &res), APR_SUCCESS);
    assert_int_equal(acme_job_load(fx->pool, fx->st, "p.test", &back, &res), APR_SUCCESS);
    assert_int_equal(apr_table_elts(back->cert_profiles)->nelts, ACME_JOB_PROFILES_MAX);
    assert_null(acme_job_profile_of(back, "00"));               /* the oldest made room */
    assert_string_equal(acme_job_profile_of(back, "0A"), "tlsserver");
    assert_string_equal(acme_job_profile_of(back, "09"), "shortlived");
    assert_string_equal(acme_job_profile_of(back, "08"), "");   /* the CA's default */
    assert_null(acme_job_profile_of(back, "FF"));
    unit_store_fixture_free(fx);
}

/* The status: profile and the real lifetime of each certificate. */
static void test_status_profile_and_lifetime(void **state)
{
    static const struct { apr_int64_t seconds; const char *text; } lifetimes[] = {
        { 160 * 3600, "160h" }, { 45 * 86400, "45d" }, { 64 * 86400 + 3600, "64d1h" },
        { 90 * 86400 - 1, "89d23h" }, { 1800, "1800s" },
    };
    acme_domain_t *dom = acme_domain_make(*state, "test", 1);
    acme_job_t *job = acme_job_make(*state, "s.test");
    acme_active_t active = { .certs = apr_array_make(*state, 1, sizeof(acme_active_cert_t)) };
    acme_active_cert_t *cert = apr_array_push(active.certs);
    size_t i;

    assert_int_equal(acme_domain_add_name(*state, dom, "s.test", NULL), APR_SUCCESS);
    dom->policy.ca_urls = apr_array_make(*state, 1, sizeof(const char *));
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = CA;
    acme_job_profile_note(job, *state, "ABCD", "shortlived");
    for (i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); ++i) {
        json_t *out, *c;
        *cert = (acme_active_cert_t){ .spec = "secp256r1" };
        cert->info.serial_hex = i ? "EF01" : "ABCD";
        cert->info.not_before = apr_time_from_sec(1767225600);
        cert->info.not_after = cert->info.not_before + apr_time_from_sec(lifetimes[i].seconds);
        out = acme_status_domain(dom, &active, job);
        c = json_array_get(json_object_get(out, "certificates"), 0);
        assert_string_equal(json_string_value(json_object_get(c, "lifetime")), lifetimes[i].text);
        assert_int_equal(json_integer_value(json_object_get(c, "lifetime_seconds")),
                         lifetimes[i].seconds);
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(c, "profile")), "shortlived");
        }
        else {
            assert_true(json_is_null(json_object_get(c, "profile")));
        }
        json_decref(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_parsed),
        cmocka_unit_test(test_offered_profile_is_ordered),
        cmocka_unit_test(test_unknown_profile_names_the_offered),
        cmocka_unit_test(test_not_offered_at_all),
        cmocka_unit_test(test_automatic_for_ip),
        cmocka_unit_test(test_limits_checked_before_ordering),
        cmocka_unit_test(test_cache_round_trip_and_forgery),
        cmocka_unit_test(test_job_keeps_profiles),
        cmocka_unit_test(test_status_profile_and_lifetime),
    };

    return cmocka_run_group_tests(tests, unit_setup_pool, unit_teardown_pool);
}
