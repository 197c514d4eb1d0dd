#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_names.h"
#include "unit_support.h"

typedef struct {
    const char *input;
    int ok;
    acme_ident_type_t type;
    const char *expect;     /* canonical value when ok, a fragment of the reason otherwise */
} name_case_t;

static const name_case_t name_cases[] = {
    /* good DNS names */
    { "example.org", 1, ACME_IDENT_DNS, "example.org" },
    { "WWW.Example.ORG", 1, ACME_IDENT_DNS, "www.example.org" },
    { "example.org.", 1, ACME_IDENT_DNS, "example.org" },
    { "a-b.c0.example", 1, ACME_IDENT_DNS, "a-b.c0.example" },
    { "*.example.org", 1, ACME_IDENT_DNS, "*.example.org" },
    { "xn--bcher-kva.example", 1, ACME_IDENT_DNS, "xn--bcher-kva.example" },
    { "1.2.3.example", 1, ACME_IDENT_DNS, "1.2.3.example" },
    { "123.example", 1, ACME_IDENT_DNS, "123.example" },
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", 1,
      ACME_IDENT_DNS, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example" },
    /* mod_md's accepted-bad cases */
    { "a..example.org", 0, 0, "empty label" },
    { ".example.org", 0, 0, "empty label" },
    { "example.org..", 0, 0, "empty label" },
    { "-a.example.org", 0, 0, "starts with '-'" },
    { "a-.example.org", 0, 0, "ends with '-'" },
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", 0, 0,
      "is 64 characters long" },
    { "a_b.example.org", 0, 0,
      "label 'a_b' in 'a_b.example.org' contains '_': host names allow only letters" },
    { "*.*.example.org", 0, 0, "wildcard is allowed only as the whole first label" },
    /* other bad DNS names */
    { "a*.example.org", 0, 0, "only as the whole first label" },
    { "*x.example.org", 0, 0, "only as the whole first label" },
    { "x.*.example.org", 0, 0, "only as the whole first label" },
    { "*", 0, 0, "only as the whole first label" },
    { "*.org", 0, 0, "at least two labels" },
    { "localhost", 0, 0, "single label" },
    { "example.123", 0, 0, "all digits" },
    { "ab--c.example", 0, 0, "reserved" },
    { "b\xc3\xbc" "cher.example", 0, 0, "non-ASCII" },
    { "exa mple.org", 0, 0, "contains ' '" },
    { "example.org:443", 0, 0, "without a port" },
    { "", 0, 0, "empty name" },
    { ".", 0, 0, "not a host name" },
    /* IPv4 */
    { "192.0.2.1", 1, ACME_IDENT_IP, "192.0.2.1" },
    { "127.0.0.1", 1, ACME_IDENT_IP, "127.0.0.1" },
    { "192.0.2.01", 0, 0, "leading zero" },
    { "192.0.2.256", 0, 0, "larger than 255" },
    { "192.0.2", 0, 0, "four decimal numbers" },
    { "192.0.2.1.5", 0, 0, "four decimal numbers" },
    { "127.1", 0, 0, "four decimal numbers" },
    { "0.0.0.0", 0, 0, "unspecified" },
    /* IPv6 */
    { "2001:DB8:0:0:0:0:0:1", 1, ACME_IDENT_IP, "2001:db8::1" },
    { "[::1]", 1, ACME_IDENT_IP, "::1" },
    { "2001:db8:0:0:1:0:0:1", 1, ACME_IDENT_IP, "2001:db8::1:0:0:1" },
    { "2001:db8::0:1", 1, ACME_IDENT_IP, "2001:db8::1" },
    { "2001:0db8:0000:0000:0001:0000:0000:0000", 1, ACME_IDENT_IP, "2001:db8:0:0:1::" },
    { "2001:db8:0:1:1:1:1:1", 1, ACME_IDENT_IP, "2001:db8:0:1:1:1:1:1" },
    { "fe80::", 1, ACME_IDENT_IP, "fe80::" },
    { "1:2:3:4:5:6:7::", 1, ACME_IDENT_IP, "1:2:3:4:5:6:7:0" },
    { "::1.2.3.4", 1, ACME_IDENT_IP, "::102:304" },
    { "64:ff9b::192.0.2.1", 1, ACME_IDENT_IP, "64:ff9b::c000:201" },
    { "::ffff:192.0.2.1", 0, 0, "name the IPv4 address '192.0.2.1' instead" },
    { "::", 0, 0, "unspecified" },
    { "fe80::1%eth0", 0, 0, "zone id" },
    { "[::1]:443", 0, 0, "without a port" },
    { "[::1", 0, 0, "without a closing ']'" },
    { "1::2::3", 0, 0, "not a valid IPv6" },
    { "12345::1", 0, 0, "not a valid IPv6" },
    { "1:2:3:4:5:6:7:8:9", 0, 0, "not a valid IPv6" },
    { "1:2:3:4:5:6:7", 0, 0, "not a valid IPv6" },
    { ":1:2:3:4:5:6:7", 0, 0, "not a valid IPv6" },
    { "1:2:3:4:5:6:7:", 0, 0, "not a valid IPv6" },
    { "::1.2.3", 0, 0, "not a valid IPv6" },
    { "g::1", 0, 0, "not a valid IPv6" },
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const name_case_t *c = &name_cases[i];
        acme_ident_t ident = { .value = NULL };
        const char *reason = NULL;
        apr_status_t rv = acme_names_parse(*state, c->input, &ident, &reason);

        print_message("%s -> %s\n", c->input, rv == APR_SUCCESS ? ident.value : reason);
        if (c->ok) {
            assert_int_equal(rv, APR_SUCCESS);
            assert_null(reason);
            assert_int_equal(ident.type, c->type);
            assert_string_equal(ident.value, c->expect);
        }
        else {
            assert_int_equal(rv, APR_EINVAL);
            assert_non_null(reason);
            assert_non_null(strstr(reason, c->expect));
            assert_null(ident.value);
        }
    }
}

static void test_parse_long_names(void **state)
{
    apr_pool_t *p = *state;
    const char *label = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 63 */
    const char *ok = apr_pstrcat(p, label, ".", label, ".", label, ".",
                                 apr_pstrndup(p, label, 57), ".org", NULL);        /* 253 */
    const char *too_long = apr_pstrcat(p, "a", ok, NULL);
    acme_ident_t ident;
    const char *reason = NULL;

    assert_int_equal(strlen(ok), 253);
    assert_int_equal(acme_names_parse(p, ok, &ident, &reason), APR_SUCCESS);
    assert_int_equal(acme_names_parse(p, apr_pstrcat(p, ok, ".", NULL), &ident, NULL),
                     APR_SUCCESS);
    assert_int_equal(acme_names_parse(p, too_long, &ident, &reason), APR_EINVAL);
    assert_non_null(strstr(reason, "at most 253"));
    assert_int_equal(acme_names_parse(p, NULL, &ident, &reason), APR_EINVAL);
}

static void test_wildcards(void **state)
{
    assert_true(acme_names_is_wildcard("*.example.org"));
    assert_false(acme_names_is_wildcard("example.org"));
    assert_false(acme_names_is_wildcard("*example.org"));
    assert_false(acme_names_is_wildcard(NULL));

    assert_true(acme_names_wildcard_matches("*.example.org", "a.example.org"));
    assert_true(acme_names_wildcard_matches("*.example.org", "WWW.Example.Org"));
    assert_true(acme_names_wildcard_matches("*.example.org", "www.example.org."));
    assert_false(acme_names_wildcard_matches("*.example.org", "example.org"));
    assert_false(acme_names_wildcard_matches("*.example.org", "a.b.example.org"));
    assert_false(acme_names_wildcard_matches("*.example.org", ".example.org"));
    assert_false(acme_names_wildcard_matches("*.example.org", "a.example.org.uk"));
    assert_false(acme_names_wildcard_matches("*.example.org", "a.xexample.org"));
    assert_false(acme_names_wildcard_matches("www.example.org", "www.example.org"));
}

static void test_reverse_dns(void **state)
{
    apr_pool_t *p = *state;
    acme_ident_t v4 = { .type = ACME_IDENT_IP, .value = "127.0.0.1" };
    acme_ident_t v6 = { .type = ACME_IDENT_IP, .value = "2001:db8::567:89ab" };
    acme_ident_t dns = { .type = ACME_IDENT_DNS, .value = "example.org" };
    acme_ident_t bad = { .type = ACME_IDENT_IP, .value = "not-an-ip" };

    assert_string_equal(acme_names_reverse_dns(p, &v4), "1.0.0.127.in-addr.arpa");
    assert_string_equal(acme_names_reverse_dns(p, &v6),
                        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_null(acme_names_reverse_dns(p, &dns));
    assert_null(acme_names_reverse_dns(p, &bad));
}

static void test_reverse_dns_of_parsed(void **state)
{
    apr_pool_t *p = *state;
    acme_ident_t ident;

    assert_int_equal(acme_names_parse(p, "[::1]", &ident, NULL), APR_SUCCESS);
    assert_string_equal(acme_names_reverse_dns(p, &ident),
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

static void test_index_exact_and_wildcard(void **state)
{
    acme_names_index_t *idx = acme_names_index_make(*state);
    int md_a = 1, md_b = 2, md_c = 3;

    assert_int_equal(acme_names_index_add(idx, "*.example.org", &md_a, NULL), APR_SUCCESS);
    assert_int_equal(acme_names_index_add(idx, "www.example.org", &md_b, NULL), APR_SUCCESS);
    assert_int_equal(acme_names_index_add(idx, "example.org", &md_c, NULL), APR_SUCCESS);
    assert_int_equal(acme_names_index_count(idx), 3);

    assert_ptr_equal(acme_names_index_get(idx, "www.example.org"), &md_b);  /* specific wins */
    assert_ptr_equal(acme_names_index_get(idx, "mail.example.org"), &md_a); /* wildcard */
    assert_ptr_equal(acme_names_index_get(idx, "example.org"), &md_c);
    assert_null(acme_names_index_get(idx, "a.b.example.org"));             /* one label only */
    assert_null(acme_names_index_get(idx, "example.net"));
    assert_null(acme_names_index_get(idx, "org"));
    assert_null(acme_names_index_get(idx, ""));
    assert_null(acme_names_index_get(idx, NULL));
}

static void test_index_normalises_host(void **state)
{
    acme_names_index_t *idx = acme_names_index_make(*state);
    int md = 1, ip4 = 2, ip6 = 3;

    acme_names_index_add(idx, "www.example.org", &md, NULL);
    acme_names_index_add(idx, "192.0.2.1", &ip4, NULL);
    acme_names_index_add(idx, "2001:db8::1", &ip6, NULL);

    assert_ptr_equal(acme_names_index_get(idx, "WWW.Example.ORG"), &md);
    assert_ptr_equal(acme_names_index_get(idx, "www.example.org."), &md);
    assert_ptr_equal(acme_names_index_get(idx, "www.example.org:8443"), &md);
    assert_ptr_equal(acme_names_index_get(idx, "www.example.org.:443"), &md);
    assert_ptr_equal(acme_names_index_get(idx, "192.0.2.1:80"), &ip4);
    assert_ptr_equal(acme_names_index_get(idx, "[2001:db8::1]:443"), &ip6);
    assert_ptr_equal(acme_names_index_get(idx, "[2001:DB8:0::1]"), &ip6);
    assert_ptr_equal(acme_names_index_get(idx, "2001:db8:0:0:0:0:0:1"), &ip6);
    assert_null(acme_names_index_get(idx, "[2001:db8::1"));
    assert_null(acme_names_index_get(idx, "www.example.org.."));
}

static void test_index_duplicate(void **state)
{
    acme_names_index_t *idx = acme_names_index_make(*state);
    int first = 1, second = 2;
    void *existing = NULL;

    assert_int_equal(acme_names_index_add(idx, "example.org", &first, NULL), APR_SUCCESS);
    assert_int_equal(acme_names_index_add(idx, "Example.Org.", &second, &existing), APR_EEXIST);
    assert_ptr_equal(existing, &first);
    assert_ptr_equal(acme_names_index_get(idx, "example.org"), &first);
    assert_int_equal(acme_names_index_add(idx, "", &second, NULL), APR_EINVAL);
    assert_int_equal(acme_names_index_count(idx), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_long_names),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_reverse_dns),
        cmocka_unit_test(test_reverse_dns_of_parsed),
        cmocka_unit_test(test_index_exact_and_wildcard),
        cmocka_unit_test(test_index_normalises_host),
        cmocka_unit_test(test_index_duplicate),
    };
    return cmocka_run_group_tests_name("names", tests, unit_setup_pool, unit_teardown_pool);
}
