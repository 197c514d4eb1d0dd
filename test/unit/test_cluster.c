#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_cluster.h"
#include "unit_support.h"

static void test_endpoints(void **state)
{
    apr_array_header_t *eps = NULL;

    assert_null(acme_cluster_endpoints_parse(*state, "http://127.0.0.1:2379,https://e-b:2379",
                                             &eps));
    assert_int_equal(eps->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(eps, 1, const char *), "https://e-b:2379");
    assert_null(acme_cluster_endpoints_parse(*state, "http://[::1]:2379", &eps));
    /* each of these is refused with a reason configtest shows */
    assert_non_null(acme_cluster_endpoints_parse(*state, "127.0.0.1:2379", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://127.0.0.1", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://127.0.0.1:0", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://127.0.0.1:70000", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://h:23x", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://h:2379/v3", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://u@h:2379", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "http://:2379", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, ",", &eps));
    assert_non_null(acme_cluster_endpoints_parse(*state, "ftp://h:21", &eps));
}

static void test_prefix_node_secret(void **state)
{
    assert_null(acme_cluster_prefix_check(*state, "/mod_acme"));
    assert_null(acme_cluster_prefix_check(*state, "/prod/web-1.x"));
    assert_non_null(acme_cluster_prefix_check(*state, "mod_acme"));
    assert_non_null(acme_cluster_prefix_check(*state, "/mod_acme/"));
    assert_non_null(acme_cluster_prefix_check(*state, "/a//b"));
    assert_non_null(acme_cluster_prefix_check(*state, "/"));
    assert_non_null(acme_cluster_prefix_check(*state, "/a b"));
    assert_null(acme_cluster_node_check(*state, "web-1.example_x"));
    assert_non_null(acme_cluster_node_check(*state, ""));
    assert_non_null(acme_cluster_node_check(*state, "a/b"));
    assert_int_equal(acme_cluster_secret_len("0123456789012345678901234567890\n", 32), 0);
    assert_int_equal(acme_cluster_secret_len("01234567890123456789012345678901\r\n", 34), 32);
}

static void test_key_layout(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(acme_cluster_key_lock(p, "a.example"), "locks/a.example");
    assert_string_equal(acme_cluster_key_order(p, "a.example"), "orders/a.example");
    assert_string_equal(acme_cluster_key_record(p, "a.example"), "certs/a.example/record");
    assert_string_equal(acme_cluster_key_cert(p, "a.example", "rsa2048", "key"),
                        "certs/a.example/rsa2048/key");
    assert_string_equal(acme_cluster_key_node(p, "n1"), "nodes/n1");
    assert_string_equal(acme_cluster_key_answer(p, "http-01", "tok_-1"),
                        "challenges/http-01/tok_-1");
    assert_string_equal(acme_cluster_key_answer(p, "tls-alpn-01", "a.example"),
                        "challenges/tls-alpn-01/a.example");
    assert_string_equal(acme_cluster_key_ack(p, "http-01", "tok_-1", "n2"),
                        "acks/http-01/tok_-1/n2");
    assert_string_equal(acme_cluster_key_ack(p, "tls-alpn-01", "a.example", ""),
                        "acks/tls-alpn-01/a.example/");
    assert_string_equal(acme_cluster_key_domain(p, "certs/*.a.example/ec/chain"),
                        "*.a.example");
    assert_null(acme_cluster_key_domain(p, "certs//record"));
    assert_null(acme_cluster_key_domain(p, "locks/a.example"));
    assert_null(acme_cluster_key_domain(p, "certs/a.example"));
}

static acme_cluster_record_t record_of(apr_pool_t *p)
{
    acme_cluster_record_t rec = {
        .domain = "a.example", .node = "n1", .serial = "01AB", .config_digest = "d1",
        .not_before = apr_time_from_sec(1000), .not_after = apr_time_from_sec(2000),
        .published = apr_time_from_sec(1001),
        .specs = apr_array_make(p, 2, sizeof(const char *)),
    };

    APR_ARRAY_PUSH(rec.specs, const char *) = "rsa2048";
    APR_ARRAY_PUSH(rec.specs, const char *) = "P-256";
    return rec;
}

static void test_record_round_trip(void **state)
{
    acme_cluster_record_t rec = record_of(*state), back;
    const char *json = acme_cluster_record_to_json(*state, &rec);

    assert_non_null(json);
    assert_null(acme_cluster_record_parse(*state, json, strlen(json), &back));
    assert_string_equal(back.domain, "a.example");
    assert_string_equal(back.node, "n1");
    assert_string_equal(back.serial, "01AB");
    assert_string_equal(back.config_digest, "d1");
    assert_true(back.not_before == rec.not_before && back.not_after == rec.not_after);
    assert_int_equal(back.specs->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(back.specs, 1, const char *), "P-256");
}

static void test_record_refused(void **state)
{
    acme_cluster_record_t rec = record_of(*state), back;
    const char *bad[] = {
        "", "[]", "{\"version\":1}",
        /* a version from the future, a serial that is no hex, validity reversed, no spec */
        "{\"version\":2,\"domain\":\"a\",\"serial\":\"01\",\"not_before\":1,\"not_after\":2,"
        "\"published\":1,\"specs\":[\"ec\"]}",
        "{\"version\":1,\"domain\":\"a\",\"serial\":\"0x1\",\"not_before\":1,\"not_after\":2,"
        "\"published\":1,\"specs\":[\"ec\"]}",
        "{\"version\":1,\"domain\":\"a\",\"serial\":\"01\",\"not_before\":3,\"not_after\":2,"
        "\"published\":1,\"specs\":[\"ec\"]}",
        "{\"version\":1,\"domain\":\"a\",\"serial\":\"01\",\"not_before\":1,\"not_after\":2,"
        "\"published\":1,\"specs\":[]}",
        "{\"version\":1,\"domain\":\"a\",\"serial\":\"01\",\"not_before\":1,\"not_after\":2,"
        "\"published\":1,\"specs\":[\"../x\"]}",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_non_null(acme_cluster_record_parse(*state, bad[i], strlen(bad[i]), &back));
    }
    /* newer: a later not_before with another serial; the same serial never is */
    assert_true(acme_cluster_record_newer(&rec, apr_time_from_sec(500), "0F"));
    assert_false(acme_cluster_record_newer(&rec, apr_time_from_sec(500), "01AB"));
    assert_false(acme_cluster_record_newer(&rec, apr_time_from_sec(1500), "0F"));
    assert_true(acme_cluster_record_newer(&rec, 0, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_prefix_node_secret),
        cmocka_unit_test(test_key_layout),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_refused),
    };
    return cmocka_run_group_tests_name("cluster", tests, unit_setup_pool, unit_teardown_pool);
}
