/* dns-persist-01 records (src/acme_persist.c): parsing, the hashed account URI, the verdict. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_client.h"
#include "acme_persist.h"
#include "unit_support.h"

/* The draft's test vector (draft-ietf-acme-dns-persist-02 §10.2). */
#define THUMB "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
#define ACCT "https://ca.example/acct/123"
#define PREFIX "https://ca.example/account-hash/"
#define HASHED PREFIX "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw"
#define HASHED_ANY PREFIX "sha-256/NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug"

typedef struct {
    apr_pool_t *pool;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    apr_pool_create(&fx->pool, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    apr_pool_destroy(fx->pool);
    free(fx);
    return 0;
}

static void test_account_uri_matches_the_draft_vector(void **state)
{
    fixture_t *fx = *state;

    assert_string_equal(acme_persist_account_uri(fx->pool, PREFIX, "example.com", THUMB, ACCT),
                        HASHED);
    assert_string_equal(acme_persist_account_uri(fx->pool, PREFIX, "*", THUMB, ACCT), HASHED_ANY);
    assert_null(acme_persist_account_uri(fx->pool, PREFIX, "", THUMB, ACCT));
    assert_string_equal(acme_persist_fqdn(fx->pool, "*.example.com"),
                        "_validation-persist.example.com");
    assert_string_equal(acme_persist_fqdn(fx->pool, "www.example.com"),
                        "_validation-persist.www.example.com");
}

static void test_parses_the_draft_examples(void **state)
{
    fixture_t *fx = *state;
    acme_persist_record_t rec;
    const char *reason = NULL;

    assert_int_equal(acme_persist_parse(fx->pool, "authority.example; accounturi=" HASHED, &rec,
                                        &reason), APR_SUCCESS);
    assert_string_equal(rec.issuer, "authority.example");
    assert_string_equal(rec.accounturi, HASHED);
    assert_false(rec.wildcard);
    assert_false(rec.has_until);
    assert_int_equal(acme_persist_parse(fx->pool, "  Authority.Example.;accounturi = " HASHED
                                        " ;  policy=WildCard; persistUntil=1721952000; x-y=z;",
                                        &rec, &reason), APR_SUCCESS);
    assert_string_equal(rec.issuer, "authority.example");
    assert_true(rec.wildcard);
    assert_true(rec.has_until);
    assert_true(rec.persist_until == 1721952000);
    /* Another policy value is as if there were none. */
    assert_int_equal(acme_persist_parse(fx->pool, "a.example; accounturi=x; policy=subdomain",
                                        &rec, &reason), APR_SUCCESS);
    assert_false(rec.wildcard);
}

static void malformed(fixture_t *fx, const char *text, const char *hint)
{
    acme_persist_record_t rec;
    const char *reason = NULL;

    assert_int_equal(acme_persist_parse(fx->pool, text, &rec, &reason), APR_EINVAL);
    assert_non_null(reason);
    if (!strstr(reason, hint)) {
        fail_msg("'%s': reason '%s' lacks '%s'", text, reason, hint);
    }
}

static void test_rejects_malformed_records(void **state)
{
    fixture_t *fx = *state;

    malformed(fx, "", "issuer domain name");
    malformed(fx, "; accounturi=x", "issuer domain name");
    malformed(fx, "-bad.example; accounturi=x", "issuer domain name");
    malformed(fx, "a..example; accounturi=x", "issuer domain name");
    malformed(fx, "authority.example", "no accounturi");
    malformed(fx, "authority.example; policy=wildcard", "no accounturi");
    malformed(fx, "authority.example; accounturi=a; accounturi=b", "twice");
    malformed(fx, "authority.example; accounturi=a; persistUntil=12x", "base-10");
    malformed(fx, "authority.example; accounturi=a; persistUntil=-5", "base-10");
    malformed(fx, "authority.example; accounturi=a; persistUntil=", "base-10");
    malformed(fx, "authority.example; accounturi=a; policy", "tag=value");
    malformed(fx, "authority.example accounturi=a", "unexpected");
    /* Tags are spelt as the draft spells them: another case is an unknown tag. */
    malformed(fx, "authority.example; AccountURI=a", "no accounturi");
}

typedef struct {
    acme_persist_want_t want;
    apr_array_header_t *txts;
} check_t;

static check_t *want_for(fixture_t *fx, int wildcard)
{
    check_t *c = apr_pcalloc(fx->pool, sizeof(*c));
    apr_array_header_t *issuers = apr_array_make(fx->pool, 2, sizeof(const char *));
    apr_array_header_t *uris = apr_array_make(fx->pool, 2, sizeof(const char *));

    APR_ARRAY_PUSH(issuers, const char *) = "authority.example";
    APR_ARRAY_PUSH(issuers, const char *) = "ca.example.net";
    APR_ARRAY_PUSH(uris, const char *) = HASHED;
    APR_ARRAY_PUSH(uris, const char *) = HASHED_ANY;
    c->want = (acme_persist_want_t){
        .fqdn = "_validation-persist.example.com", .issuers = issuers, .accounturis = uris,
        .expected = acme_persist_value(fx->pool, "authority.example", HASHED, wildcard, 0),
        .wildcard = wildcard, .now = 1800000000,
    };
    c->txts = apr_array_make(fx->pool, 2, sizeof(const char *));
    return c;
}

static acme_persist_verdict_t verdict(fixture_t *fx, check_t *c, const char *hint)
{
    acme_persist_record_t rec;
    const char *why = NULL;
    acme_persist_verdict_t v = acme_persist_check(fx->pool, c->txts, &c->want, &rec, &why);

    assert_non_null(why);
    if (!strstr(why, hint)) {
        fail_msg("why '%s' lacks '%s'", why, hint);
    }
    return v;
}

static void test_verdicts_say_what_is_wrong(void **state)
{
    fixture_t *fx = *state;
    check_t *c = want_for(fx, 0);

    assert_int_equal(verdict(fx, c, "no TXT record at _validation-persist.example.com"),
                     ACME_PERSIST_NONE);
    APR_ARRAY_PUSH(c->txts, const char *) = "v=spf1 -all";
    APR_ARRAY_PUSH(c->txts, const char *) = "other.example; accounturi=" HASHED;
    assert_int_equal(verdict(fx, c, "another CA"), ACME_PERSIST_OTHER_CA);
    APR_ARRAY_PUSH(c->txts, const char *) = "ca.example.net; policy=wildcard";
    assert_int_equal(verdict(fx, c, "no accounturi"), ACME_PERSIST_MALFORMED);
    APR_ARRAY_PUSH(c->txts, const char *) = "ca.example.net; accounturi=" PREFIX "sha-256/AAAA";
    assert_int_equal(verdict(fx, c, "expected accounturi=" HASHED ", found accounturi=" PREFIX
                                    "sha-256/AAAA"), ACME_PERSIST_WRONG_ACCOUNT);
    APR_ARRAY_PUSH(c->txts, const char *) = "authority.example; accounturi=" HASHED
                                            "; persistUntil=1700000000";
    assert_int_equal(verdict(fx, c, "persistUntil=1700000000"), ACME_PERSIST_EXPIRED);
    APR_ARRAY_PUSH(c->txts, const char *) = "authority.example; accounturi=" HASHED_ANY
                                            "; persistUntil=1900000000";
    assert_int_equal(verdict(fx, c, "valid"), ACME_PERSIST_OK);
}

static void test_wildcard_needs_the_policy(void **state)
{
    fixture_t *fx = *state;
    check_t *c = want_for(fx, 1);
    acme_persist_record_t rec;
    const char *why;

    APR_ARRAY_PUSH(c->txts, const char *) = "authority.example; accounturi=" HASHED;
    assert_int_equal(verdict(fx, c, "no policy=wildcard"), ACME_PERSIST_NO_WILDCARD);
    APR_ARRAY_PUSH(c->txts, const char *) = "authority.example; accounturi=" HASHED
                                            "; policy=wildcard; persistUntil=1800000100";
    assert_int_equal(acme_persist_check(fx->pool, c->txts, &c->want, &rec, &why),
                     ACME_PERSIST_OK);
    assert_true(rec.has_until && rec.persist_until == 1800000100);
    assert_string_equal(c->want.expected, "authority.example; accounturi=" HASHED
                                          "; policy=wildcard");
}

/* A value from DNS reaches a log line printable and bounded. */
static void test_found_values_are_shown_safely(void **state)
{
    fixture_t *fx = *state;
    check_t *c = want_for(fx, 0);
    char *big = apr_palloc(fx->pool, 2001);
    const char *why;
    acme_persist_record_t rec;

    memset(big, 'a', 2000);
    big[2000] = '\0';
    APR_ARRAY_PUSH(c->txts, const char *) = apr_pstrcat(fx->pool, "x.example\n\x1b[31m; ", big,
                                                         NULL);
    acme_persist_check(fx->pool, c->txts, &c->want, &rec, &why);
    assert_null(strchr(why, '\n'));
    assert_null(strchr(why, '\x1b'));
    assert_true(strlen(why) < 1000);
}

static void test_issuer_names_are_normalised(void **state)
{
    fixture_t *fx = *state;

    assert_string_equal(acme_persist_issuer_norm(fx->pool, "LetsEncrypt.ORG."), "letsencrypt.org");
    assert_null(acme_persist_issuer_norm(fx->pool, "a_b.example"));
    assert_null(acme_persist_issuer_norm(fx->pool, "example-.org"));
    assert_null(acme_persist_issuer_norm(fx->pool, "."));
    assert_null(acme_persist_issuer_norm(fx->pool, "example.org.."));   /* empty last label */
    assert_null(acme_persist_issuer_norm(fx->pool, NULL));
}

static void test_txt_answer(void **state)
{
    fixture_t *fx = *state;
    /* id 0x1234, QR, 1 question, 2 answers: a TXT of two strings and an A record. */
    static const unsigned char m[] = {
        0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
        1, 'x', 0, 0, 16, 0, 1,
        0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 8, 3, 'a', 'b', ';', 3, ' ', 'c', 'd',
        0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
    };
    apr_array_header_t *txts;

    assert_int_equal(acme_persist_txt_answer(fx->pool, m, sizeof(m), 0x1234, &txts), APR_SUCCESS);
    assert_int_equal(txts->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(txts, 0, const char *), "ab; cd");
    assert_int_equal(acme_persist_txt_answer(fx->pool, m, sizeof(m), 0x1235, &txts), APR_EINVAL);
    assert_int_equal(acme_persist_txt_answer(fx->pool, m, sizeof(m) - 3, 0x1234, &txts),
                     APR_EINVAL);
}

/* The CA's side: directory meta and challenge object (draft §3.1, §3.2). */
static void test_client_reads_the_ca_fields(void **state)
{
    fixture_t *fx = *state;
    static const char dir[] = "{\"meta\":{\"issuerDomainNames\":[\"ca.test\",\"b.example\"],"
                              "\"accountHashPrefix\":\"https://ca.test/h/\"}}";
    static const char bad[] = "{\"meta\":{\"issuerDomainNames\":[\"CA.test\"],"
                              "\"accountHashPrefix\":\"https://ca.test/h/\\nX; y\"}}";
    static const char authz[] = "{\"identifier\":{\"type\":\"dns\",\"value\":\"a.test\"},"
        "\"status\":\"pending\",\"challenges\":[{\"type\":\"dns-persist-01\",\"url\":\"u\","
        "\"status\":\"pending\",\"issuerDomainNames\":[\"ca.test\"]},{\"type\":\"http-01\","
        "\"url\":\"v\",\"token\":\"t\"}]}";
    acme_client_meta_t meta;
    acme_client_authz_t *az = NULL;
    acme_result_t res;
    const acme_client_challenge_t *chal;

    acme_result_reset(&res);
    assert_int_equal(acme_client_meta_parse(fx->pool, dir, sizeof(dir) - 1, &meta, &res),
                     APR_SUCCESS);
    assert_int_equal(meta.issuer_domain_names->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(meta.issuer_domain_names, 1, const char *), "b.example");
    assert_string_equal(meta.account_hash_prefix, "https://ca.test/h/");
    /* Not lowercase: nonconforming, treated as absent (§3.2). */
    assert_int_equal(acme_client_meta_parse(fx->pool, bad, sizeof(bad) - 1, &meta, &res),
                     APR_SUCCESS);
    assert_int_equal(meta.issuer_domain_names->nelts, 0);
    assert_null(meta.account_hash_prefix);
    assert_int_equal(acme_client_authz_parse(fx->pool, "https://ca.test/az", authz,
                                             sizeof(authz) - 1, &az, &res), APR_SUCCESS);
    chal = acme_client_authz_challenge(az, "dns-persist-01");
    assert_non_null(chal);
    assert_null(chal->token);
    assert_int_equal(chal->issuer_domain_names->nelts, 1);
    assert_null(acme_client_authz_challenge(az, "http-01")->issuer_domain_names);
}

/* jobs/<domain>.persist.json round trip; what does not fit is skipped. */
static void test_watch_file_round_trip(void **state)
{
    fixture_t *fx = *state;
    check_t *c = want_for(fx, 1);
    apr_array_header_t *watches = apr_array_make(fx->pool, 1, sizeof(acme_persist_watch_t));
    apr_array_header_t *back = NULL;
    apr_time_t at = 0;
    json_t *doc;
    const acme_persist_watch_t *w;

    APR_ARRAY_PUSH(watches, acme_persist_watch_t) = (acme_persist_watch_t){
        .name = "*.example.com", .want = c->want };
    doc = acme_persist_watch_json(watches, apr_time_from_sec(1800000000));
    json_array_append_new(json_object_get(doc, "records"), json_pack("{s:s}", "name", "x"));
    acme_persist_watch_parse(fx->pool, doc, &back, &at);
    json_decref(doc);
    assert_int_equal(back->nelts, 1);
    assert_true(at == apr_time_from_sec(1800000000));
    w = &APR_ARRAY_IDX(back, 0, acme_persist_watch_t);
    assert_string_equal(w->name, "*.example.com");
    assert_string_equal(w->want.fqdn, c->want.fqdn);
    assert_string_equal(w->want.expected, c->want.expected);
    assert_true(w->want.wildcard);
    assert_int_equal(w->want.issuers->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(w->want.accounturis, 1, const char *), HASHED_ANY);
    doc = json_pack("{s:s, s:i}", "records", "no", "notified_at", -5);
    acme_persist_watch_parse(fx->pool, doc, &back, &at);
    json_decref(doc);
    assert_int_equal(back->nelts, 0);
    assert_true(at == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_account_uri_matches_the_draft_vector, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parses_the_draft_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_malformed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdicts_say_what_is_wrong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_needs_the_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_found_values_are_shown_safely, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_names_are_normalised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txt_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reads_the_ca_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_file_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests_name("persist", tests, unit_setup_apr, unit_teardown_apr);
}
