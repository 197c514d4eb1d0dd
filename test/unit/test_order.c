#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_order.h"
#include "unit_support.h"

static const acme_ident_t idents[] = {
    { ACME_IDENT_DNS, "www.example.test" },
    { ACME_IDENT_DNS, "example.test" },
    { ACME_IDENT_IP, "192.0.2.7" },
};

/* What Pebble answers to newOrder. */
static const char pending_order[] =
    "{\"status\":\"pending\",\"expires\":\"2026-11-28T10:00:00Z\","
    "\"identifiers\":[{\"type\":\"ip\",\"value\":\"192.0.2.7\"},"
    "{\"type\":\"dns\",\"value\":\"example.test\"},{\"type\":\"dns\",\"value\":\"www.example.test\"}],"
    "\"finalize\":\"https://ca.example/finalize-order/abc\","
    "\"authorizations\":[\"https://ca.example/authZ/1\",\"https://ca.example/authZ/2\","
    "\"https://ca.example/authZ/3\"]}";

static acme_order_t *pending(apr_pool_t *p)
{
    acme_order_t *order = acme_order_make(p, idents, 3, "secp256r1");
    acme_result_t res;

    order->url = "https://ca.example/my-order/abc";
    order->account_url = "https://ca.example/my-account/1";
    assert_int_equal(acme_order_update(order, p, pending_order, strlen(pending_order), &res),
                     APR_SUCCESS);
    return order;
}

static void test_status_names(void **state)
{
    acme_order_status_t st;

    for (int i = ACME_ORDER_NEW; i <= ACME_ORDER_INVALID; ++i) {
        assert_int_equal(acme_order_status_parse(acme_order_status_name(i), &st), APR_SUCCESS);
        assert_int_equal(st, i);
    }
    assert_int_equal(acme_order_status_parse("deactivated", &st), APR_EINVAL);
    assert_int_equal(acme_order_status_parse(NULL, &st), APR_EINVAL);
}

static void test_update_takes_server_order(void **state)
{
    acme_order_t *order = pending(*state);

    assert_int_equal(order->status, ACME_ORDER_PENDING);
    assert_int_equal(order->authz_urls->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(order->authz_urls, 2, const char *), "https://ca.example/authZ/3");
    assert_string_equal(order->finalize_url, "https://ca.example/finalize-order/abc");
    assert_string_equal(order->expires, "2026-11-28T10:00:00Z");
    assert_null(order->certificate_url);
    assert_null(order->error);
}

static void test_update_to_valid_and_invalid(void **state)
{
    static const char valid[] =
        "{\"status\":\"valid\",\"finalize\":\"https://ca.example/finalize-order/abc\","
        "\"certificate\":\"https://ca.example/certZ/9\"}";
    static const char invalid[] =
        "{\"status\":\"invalid\",\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\","
        "\"detail\":\"refused\"}}";
    acme_order_t *order = pending(*state);
    acme_result_t res;

    assert_int_equal(acme_order_update(order, *state, valid, strlen(valid), &res), APR_SUCCESS);
    assert_int_equal(order->status, ACME_ORDER_VALID);
    assert_string_equal(order->certificate_url, "https://ca.example/certZ/9");
    /* An answer without authorizations keeps the ones we know. */
    assert_int_equal(order->authz_urls->nelts, 3);
    assert_int_equal(acme_order_update(order, *state, invalid, strlen(invalid), &res), APR_SUCCESS);
    assert_int_equal(order->status, ACME_ORDER_INVALID);
    assert_non_null(strstr(order->error, "\"detail\":\"refused\""));
}

static void test_update_rejects_other_identifiers(void **state)
{
    static const char other[] =
        "{\"status\":\"ready\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"evil.example\"}],"
        "\"finalize\":\"https://ca.example/f\"}";
    acme_order_t *order = pending(*state);
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_order_update(order, *state, other, strlen(other), &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(order->status, ACME_ORDER_PENDING);
}

static void test_update_rejects_garbage(void **state)
{
    static const char *const garbage[] = {
        "{}", "{\"status\":\"new\"}", "{\"status\":\"bogus\"}", "nope",
        "{\"status\":\"pending\",\"authorizations\":[1]}",
        "{\"status\":\"pending\",\"authorizations\":\"https://ca.example/a\"}",
        /* fields of the wrong JSON type are not silently skipped */
        "{\"status\":\"ready\",\"finalize\":42}",
        "{\"status\":\"valid\",\"certificate\":[\"https://ca.example/c\"]}",
        "{\"status\":\"pending\",\"expires\":1}",
        "[{\"status\":\"pending\"}]",
    };
    acme_order_t *order = pending(*state);
    acme_result_t res;

    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); ++i) {
        if (acme_order_update(order, *state, garbage[i], strlen(garbage[i]), &res) == APR_SUCCESS) {
            fail_msg("accepted: %s", garbage[i]);
        }
    }
    assert_int_equal(order->status, ACME_ORDER_PENDING);
}

static void test_same_identifiers_is_a_set_compare(void **state)
{
    acme_order_t *order = acme_order_make(*state, idents, 3, NULL);
    const acme_ident_t shuffled[] = { idents[2], { ACME_IDENT_DNS, "EXAMPLE.test" }, idents[0] };
    const acme_ident_t fewer[] = { idents[0], idents[1] };
    const acme_ident_t wrong_type[] = { idents[0], idents[1], { ACME_IDENT_DNS, "192.0.2.7" } };

    assert_true(acme_order_same_identifiers(order, shuffled, 3));
    assert_false(acme_order_same_identifiers(order, fewer, 2));
    assert_false(acme_order_same_identifiers(order, wrong_type, 3));
}

static void test_json_round_trip(void **state)
{
    apr_pool_t *p = *state;
    acme_order_t *order = pending(p), *back;
    const char *json, *again;
    acme_result_t res;

    order->profile = "shortlived";
    order->replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
    order->error = "{\"type\":\"urn:ietf:params:acme:error:dns\"}";
    assert_int_equal(acme_order_to_json(order, p, &json, &res), APR_SUCCESS);
    assert_int_equal(acme_order_from_json(p, json, strlen(json), &back, &res), APR_SUCCESS);
    assert_string_equal(back->url, order->url);
    assert_string_equal(back->account_url, order->account_url);
    assert_int_equal(back->status, ACME_ORDER_PENDING);
    assert_int_equal(back->identifiers->nelts, 3);
    assert_int_equal(APR_ARRAY_IDX(back->identifiers, 2, acme_ident_t).type, ACME_IDENT_IP);
    assert_string_equal(APR_ARRAY_IDX(back->identifiers, 2, acme_ident_t).value, "192.0.2.7");
    assert_true(acme_order_same_identifiers(back, idents, 3));
    assert_int_equal(back->authz_urls->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(back->authz_urls, 1, const char *), "https://ca.example/authZ/2");
    assert_string_equal(back->finalize_url, order->finalize_url);
    assert_null(back->certificate_url);
    assert_string_equal(back->expires, order->expires);
    assert_string_equal(back->key_spec, "secp256r1");
    assert_string_equal(back->profile, "shortlived");
    assert_string_equal(back->replaces, order->replaces);
    assert_string_equal(back->error, order->error);
    /* Stable: serializing the copy gives the same text. */
    assert_int_equal(acme_order_to_json(back, p, &again, &res), APR_SUCCESS);
    assert_string_equal(again, json);
}

static void test_new_order_round_trip(void **state)
{
    apr_pool_t *p = *state;
    acme_order_t *order = acme_order_make(p, idents, 1, "rsa2048"), *back;
    const char *json;
    acme_result_t res;

    assert_int_equal(acme_order_to_json(order, p, &json, &res), APR_SUCCESS);
    assert_int_equal(acme_order_from_json(p, json, strlen(json), &back, &res), APR_SUCCESS);
    assert_int_equal(back->status, ACME_ORDER_NEW);
    assert_null(back->url);
    assert_int_equal(back->authz_urls->nelts, 0);
}

static void test_from_json_rejects_broken_records(void **state)
{
    static const char *const broken[] = {
        "",
        "[]",
        "{\"version\":2,\"status\":\"pending\",\"url\":\"u\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a\"}]}",
        "{\"version\":1,\"status\":\"pending\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a\"}]}",
        "{\"version\":1,\"status\":\"pending\",\"url\":\"u\",\"identifiers\":[]}",
        "{\"version\":1,\"status\":\"pending\",\"url\":\"u\",\"identifiers\":[{\"type\":\"email\",\"value\":\"a\"}]}",
        "{\"version\":1,\"status\":\"bogus\",\"url\":\"u\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a\"}]}",
    };
    acme_order_t *order;
    acme_result_t res;

    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); ++i) {
        acme_result_reset(&res);
        if (acme_order_from_json(*state, broken[i], strlen(broken[i]), &order, &res) == APR_SUCCESS) {
            fail_msg("accepted: %s", broken[i]);
        }
        assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_update_takes_server_order),
        cmocka_unit_test(test_update_to_valid_and_invalid),
        cmocka_unit_test(test_update_rejects_other_identifiers),
        cmocka_unit_test(test_update_rejects_garbage),
        cmocka_unit_test(test_same_identifiers_is_a_set_compare),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_new_order_round_trip),
        cmocka_unit_test(test_from_json_rejects_broken_records),
    };
    return cmocka_run_group_tests_name("order", tests, unit_setup_pool, unit_teardown_pool);
}
