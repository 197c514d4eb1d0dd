#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "acme_b64.h"
#include "unit_support.h"

/* RFC 4648 §10; these inputs never hit the two characters that differ from base64. */
static const struct { const char *plain, *encoded; } rfc4648[] = {
    { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
};

static void test_rfc4648_vectors_encode(void **state)
{
    size_t i;

    for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); ++i) {
        assert_string_equal(acme_b64_encode_str(*state, rfc4648[i].plain), rfc4648[i].encoded);
    }
}

static void test_rfc4648_vectors_decode(void **state)
{
    size_t i;

    for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); ++i) {
        unsigned char *out = NULL;
        apr_size_t len = 99;
        assert_int_equal(acme_b64_decode(*state, rfc4648[i].encoded, &out, &len), APR_SUCCESS);
        assert_int_equal(len, strlen(rfc4648[i].plain));
        assert_memory_equal(out, rfc4648[i].plain, len);
        assert_int_equal(out[len], '\0');
    }
}

/* Bytes whose standard base64 is "+/8=" and "++//": the url alphabet uses '-' and '_'. */
static void test_url_alphabet(void **state)
{
    static const unsigned char a[] = { 0xfb, 0xff };
    static const unsigned char b[] = { 0xfb, 0xef, 0xff };
    unsigned char *out;
    apr_size_t len;

    assert_string_equal(acme_b64_encode(*state, a, sizeof(a)), "-_8");
    assert_string_equal(acme_b64_encode(*state, b, sizeof(b)), "--__");
    assert_int_equal(acme_b64_decode(*state, "--__", &out, &len), APR_SUCCESS);
    assert_int_equal(len, 3);
    assert_memory_equal(out, b, 3);
}

static void test_round_trip_all_lengths_and_bytes(void **state)
{
    unsigned char data[300];
    apr_size_t n, i;

    for (i = 0; i < sizeof(data); ++i) {
        data[i] = (unsigned char)(i * 151 + 7);
    }
    for (n = 0; n <= sizeof(data); ++n) {
        const char *enc = acme_b64_encode(*state, data, n);
        unsigned char *out;
        apr_size_t len;

        assert_int_equal(strlen(enc), (n * 4 + 2) / 3);
        assert_null(strpbrk(enc, "=+/"));
        assert_int_equal(acme_b64_decode(*state, enc, &out, &len), APR_SUCCESS);
        assert_int_equal(len, n);
        assert_memory_equal(out, data, n);
    }
}

static void test_decode_rejects_non_canonical(void **state)
{
    static const char *bad[] = {
        "Zg==", "Zg=", "Zm8=",          /* padding */
        "-+", "ab/c", "a+bc",           /* standard alphabet */
        " Zg", "Zg ", "Zm\n9v", "Zm9v\t", /* whitespace */
        "Z", "Zm9vY", "abcde",          /* length % 4 == 1 cannot come from an encoder */
        "Zh", "Zm9", "Zm9vYh",          /* non-zero unused bits */
        "Zm9v\x80", "Zm.v",             /* outside the alphabet */
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        unsigned char *out = NULL;
        apr_size_t len = 0;
        if (acme_b64_decode(*state, bad[i], &out, &len) != APR_EINVAL) {
            fail_msg("accepted '%s'", bad[i]);
        }
    }
    {
        unsigned char *out = NULL;
        apr_size_t len = 0;
        assert_int_equal(acme_b64_decode(*state, NULL, &out, &len), APR_EINVAL);
    }
}

static void test_decode_empty(void **state)
{
    unsigned char *out = NULL;
    apr_size_t len = 5;

    assert_int_equal(acme_b64_decode(*state, "", &out, &len), APR_SUCCESS);
    assert_int_equal(len, 0);
    assert_non_null(out);
    assert_int_equal(out[0], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors_encode),
        cmocka_unit_test(test_rfc4648_vectors_decode),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_round_trip_all_lengths_and_bytes),
        cmocka_unit_test(test_decode_rejects_non_canonical),
        cmocka_unit_test(test_decode_empty),
    };
    return cmocka_run_group_tests_name("b64", tests, unit_setup_pool, unit_teardown_pool);
}
