/* ACMEProxy values (src/acme_proxy.c): parsing, the fix in each error, redaction, per-CA rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_proxy.h"
#include "unit_support.h"

#define SECRET "s3cr%40t"

static apr_pool_t *new_pool(void)
{
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    return p;
}

static void accepted(apr_pool_t *p, const char *text, const char *expect)
{
    const char *url = "unset", *reason = NULL;

    assert_int_equal(acme_proxy_parse(p, text, &url, &reason), 0);
    if (expect) {
        assert_non_null(url);
        assert_string_equal(url, expect);
    }
    else {
        assert_null(url);
    }
}

/* Refused, the reason names the problem and never the password. */
static void refused(apr_pool_t *p, const char *text, const char *why)
{
    const char *url = NULL, *reason = NULL;

    assert_int_equal(acme_proxy_parse(p, text, &url, &reason), -1);
    assert_non_null(reason);
    if (!strstr(reason, why)) {
        fail_msg("reason for '%s' lacks '%s': %s", text, why, reason);
    }
    assert_null(strstr(reason, SECRET));
    assert_null(strstr(reason, "s3cr"));
}

static void test_accepts_proxy_urls_and_makes_the_port_explicit(void **state)
{
    apr_pool_t *p = new_pool();

    (void)state;
    accepted(p, "http://proxy.example.org:3128", "http://proxy.example.org:3128");
    accepted(p, "HTTP://proxy.example.org:3128/", "http://proxy.example.org:3128");
    accepted(p, "http://proxy.example.org", "http://proxy.example.org:80");
    accepted(p, "https://proxy.example.org", "https://proxy.example.org:443");
    accepted(p, "socks5h://127.0.0.1", "socks5h://127.0.0.1:1080");
    accepted(p, "socks5://10.0.0.1:9050", "socks5://10.0.0.1:9050");
    accepted(p, "http://[::1]:8080", "http://[::1]:8080");
    accepted(p, "http://[::1]", "http://[::1]:80");
    accepted(p, "http://alice:" SECRET "@proxy:03128", "http://alice:" SECRET "@proxy:3128");
    accepted(p, "http://alice@proxy:3128", "http://alice@proxy:3128");
    accepted(p, "none", NULL);
    accepted(p, "None", NULL);
    apr_pool_destroy(p);
}

static void test_refuses_bad_urls_with_the_fix(void **state)
{
    apr_pool_t *p = new_pool();

    (void)state;
    refused(p, "proxy.example.org:3128", "has no scheme: write http://host:port");
    refused(p, "alice:" SECRET "@proxy:3128", "has no scheme");
    refused(p, "ftp://proxy:21", "write http://, https://, socks5:// or socks5h://");
    refused(p, "socks4://proxy:1080", "not a kind of proxy");
    refused(p, "http://", "names no host");
    refused(p, "http://:3128", "names no host");
    refused(p, "http://alice:" SECRET "@:3128", "names no host");
    refused(p, "http://alice:" SECRET "@", "names no host");
    refused(p, "http://proxy:0", "port that is not a number from 1 to 65535");
    refused(p, "http://proxy:65536", "from 1 to 65535");
    refused(p, "http://proxy:31x8", "from 1 to 65535");
    refused(p, "http://proxy:", "from 1 to 65535");
    refused(p, "http://alice:" SECRET "@proxy:99999", "from 1 to 65535");
    refused(p, "http://pro xy:3128", "is not a URL");
    refused(p, "http://proxy:3128/path", "has a path");
    refused(p, "http://proxy:3128?x=1", "has a path");
    refused(p, "http://pr!oxy:3128", "host name that is not valid");
    refused(p, "http://[zz]:3128", "host name that is not valid");
    refused(p, "http://[::1]x:3128", "host name that is not valid");
    refused(p, "http://@proxy:3128", "unusable credentials");
    refused(p, "http://al@ice:" SECRET "@proxy:3128", "%40");
    refused(p, "", "is not a URL");
    apr_pool_destroy(p);
}

static void test_redacts_and_strips_credentials(void **state)
{
    apr_pool_t *p = new_pool();
    const char *url = "http://alice:" SECRET "@proxy.example.org:3128";

    (void)state;
    assert_string_equal(acme_proxy_redact(p, url), "http://***@proxy.example.org:3128");
    assert_string_equal(acme_proxy_strip(p, url), "http://proxy.example.org:3128");
    assert_true(acme_proxy_has_credentials(url));
    assert_true(acme_proxy_has_credentials("http://alice@proxy:3128"));
    assert_false(acme_proxy_has_credentials("http://proxy:3128"));
    assert_false(acme_proxy_has_credentials(NULL));
    assert_string_equal(acme_proxy_redact(p, "http://proxy:3128"), "http://proxy:3128");
    assert_string_equal(acme_proxy_redact(p, NULL), "none");
    assert_null(acme_proxy_strip(p, NULL));
    apr_pool_destroy(p);
}

static void push(apr_array_header_t *rules, const char *ca, const char *url)
{
    APR_ARRAY_PUSH(rules, acme_proxy_rule_t) = (acme_proxy_rule_t){ .ca_url = ca, .url = url };
}

static void test_a_rule_naming_the_ca_wins(void **state)
{
    apr_pool_t *p = new_pool();
    apr_array_header_t *rules = apr_array_make(p, 4, sizeof(acme_proxy_rule_t));
    const char *le = "https://acme-v02.api.letsencrypt.org/directory";
    const char *internal = "https://ca.internal/acme/directory";

    (void)state;
    assert_null(acme_proxy_for(NULL, le));
    assert_null(acme_proxy_find(rules, le));
    push(rules, internal, NULL);
    assert_null(acme_proxy_for(rules, le));
    assert_non_null(acme_proxy_find(rules, internal));
    push(rules, NULL, "http://corp:3128");
    assert_string_equal(acme_proxy_for(rules, le), "http://corp:3128");
    assert_null(acme_proxy_for(rules, internal));
    push(rules, NULL, "http://corp2:3128");
    assert_string_equal(acme_proxy_for(rules, le), "http://corp2:3128");
    push(rules, le, "http://le-proxy:8080");
    assert_string_equal(acme_proxy_for(rules, le), "http://le-proxy:8080");
    assert_null(acme_proxy_for(rules, internal));
    apr_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_proxy_urls_and_makes_the_port_explicit),
        cmocka_unit_test(test_refuses_bad_urls_with_the_fix),
        cmocka_unit_test(test_redacts_and_strips_credentials),
        cmocka_unit_test(test_a_rule_naming_the_ca_wins),
    };
    return cmocka_run_group_tests_name("proxy", tests, unit_setup_apr, unit_teardown_apr);
}
