/* ACMEProxy values (src/acme_proxy.c): parsing, the fix in each error, redaction, per-CA rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_http.h"
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

/* ------------------------------------------------------------------ through acme_http */

/* A proxy that reads one request (a CONNECT) and gives one answer. */
typedef struct {
    apr_socket_t *listener;
    const char *answer;
    char request[4096];
    apr_size_t request_len;
} fake_proxy_t;

/*
 * accept() with a deadline: a client that never comes (the code under test went elsewhere) must
 * not hang the test. APR's accept does not wait on a non-blocking listener, so poll for it.
 */
static apr_status_t fake_proxy_accept(apr_socket_t **conn, apr_socket_t *listener,
                                      apr_pool_t *p)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(8);
    apr_status_t rv;

    while ((rv = apr_socket_accept(conn, listener, p)) != APR_SUCCESS
           && APR_STATUS_IS_EAGAIN(rv) && apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(5));
    }
    if (rv == APR_SUCCESS) {
        apr_socket_opt_set(*conn, APR_SO_NONBLOCK, 0);
        apr_socket_timeout_set(*conn, apr_time_from_sec(8));
    }
    return rv;
}

static void *APR_THREAD_FUNC fake_proxy_serve(apr_thread_t *thread, void *data)
{
    fake_proxy_t *fp = data;
    apr_socket_t *conn;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    if (fake_proxy_accept(&conn, fp->listener, p) == APR_SUCCESS) {
        while (fp->request_len < sizeof(fp->request) - 1 && !strstr(fp->request, "\r\n\r\n")) {
            apr_size_t n = sizeof(fp->request) - 1 - fp->request_len;
            if (apr_socket_recv(conn, fp->request + fp->request_len, &n) != APR_SUCCESS) {
                break;
            }
            fp->request_len += n;
            fp->request[fp->request_len] = '\0';
        }
        apr_size_t n = strlen(fp->answer);
        apr_socket_send(conn, fp->answer, &n);
        apr_socket_close(conn);
    }
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static int fake_proxy_listen(apr_pool_t *p, apr_socket_t **sock)
{
    apr_sockaddr_t *sa;

    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(sock, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_bind(*sock, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(*sock, 4), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, *sock), APR_SUCCESS);
    assert_int_equal(apr_socket_opt_set(*sock, APR_SO_NONBLOCK, 1), APR_SUCCESS);
    return (int)sa->port;
}

static acme_http_t *http_via(apr_pool_t *p, const char *proxy)
{
    acme_http_t *http;
    acme_result_t res;
    acme_http_options_t opts = {
        .proxy = proxy,
        .timeout = apr_time_from_sec(5),
        .connect_timeout = apr_time_from_sec(5),
    };

    assert_int_equal(acme_http_create(&http, p, &opts, &res), APR_SUCCESS);
    return http;
}

/* GET through a proxy answering `answer` to the CONNECT: the failure message the admin reads. */
static const char *through_fake_proxy(apr_pool_t *p, const char *answer, fake_proxy_t *fp,
                                      const char **shown)
{
    int port = fake_proxy_listen(p, &fp->listener);
    const char *proxy = apr_psprintf(p, "http://alice:%s@127.0.0.1:%d", SECRET, port);
    acme_http_t *http = http_via(p, proxy);
    acme_http_response_t *resp = NULL;
    apr_thread_t *thread;
    apr_status_t trv;
    acme_result_t res;

    fp->answer = answer;
    assert_int_equal(apr_thread_create(&thread, NULL, fake_proxy_serve, fp, p), APR_SUCCESS);
    assert_int_not_equal(acme_http_get(http, p, "https://ca.example/dir", &resp, &res),
                         APR_SUCCESS);
    apr_thread_join(&trv, thread);
    apr_socket_close(fp->listener);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_null(strstr(res.message, SECRET));
    assert_null(strstr(res.message, "alice"));
    *shown = apr_psprintf(p, "the proxy http://***@127.0.0.1:%d ", port);
    return res.message;
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part)) {
        fail_msg("'%s' lacks '%s'", text, part);
    }
}

static void test_proxy_refusals_name_the_proxy(void **state)
{
    apr_pool_t *p = new_pool();
    fake_proxy_t fp = { 0 };
    const char *msg, *shown;

    (void)state;
    msg = through_fake_proxy(p, "HTTP/1.1 407 Proxy Authentication Required\r\n"
                             "Content-Length: 0\r\n\r\n", &fp, &shown);
    assert_contains(fp.request, "CONNECT ca.example:443 HTTP/1.1\r\n");
    assert_contains(fp.request, "Proxy-Authorization: Basic ");
    assert_contains(msg, "failed at the proxy, not at the CA");
    assert_contains(msg, shown);
    assert_contains(msg, "requires authentication");
    assert_contains(msg, "(HTTP 407 to CONNECT)");

    memset(&fp, 0, sizeof(fp));
    msg = through_fake_proxy(p, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", &fp,
                             &shown);
    assert_contains(msg, "refused the tunnel to the CA (HTTP 403 to CONNECT)");
    assert_contains(msg, shown);

    memset(&fp, 0, sizeof(fp));
    msg = through_fake_proxy(p, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", &fp,
                             &shown);
    assert_contains(msg, "through the proxy http://***@");
    assert_contains(msg, "could not open a tunnel to the CA (HTTP 502 to CONNECT)");
    apr_pool_destroy(p);
}

static void test_proxy_down_is_named(void **state)
{
    apr_pool_t *p = new_pool();
    apr_socket_t *sock;
    int port = fake_proxy_listen(p, &sock);
    acme_http_t *http;
    acme_http_response_t *resp = NULL;
    acme_result_t res;

    (void)state;
    apr_socket_close(sock);
    http = http_via(p, apr_psprintf(p, "http://alice:%s@127.0.0.1:%d", SECRET, port));
    assert_int_not_equal(acme_http_get(http, p, "https://ca.example/dir", &resp, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_contains(res.message, apr_psprintf(p, "the proxy http://***@127.0.0.1:%d cannot be "
                                              "reached", port));
    assert_null(strstr(res.message, SECRET));
    apr_pool_destroy(p);
}

/*
 * The environment picks nothing: without a proxy a request goes direct even with http_proxy
 * set (a refused connection, not a hang at the listening "proxy"), and with one, NO_PROXY does
 * not send the CA around it.
 */
static void test_the_environment_is_ignored(void **state)
{
    apr_pool_t *p = new_pool();
    apr_socket_t *env_proxy, *closed;
    int env_port = fake_proxy_listen(p, &env_proxy), closed_port = fake_proxy_listen(p, &closed);
    const char *env_url = apr_psprintf(p, "http://127.0.0.1:%d", env_port);
    fake_proxy_t fp = { 0 };
    acme_http_response_t *resp = NULL;
    acme_result_t res;
    const char *msg, *shown;

    (void)state;
    apr_socket_close(closed);
    setenv("http_proxy", env_url, 1);
    setenv("HTTPS_PROXY", env_url, 1);
    setenv("ALL_PROXY", env_url, 1);
    assert_int_not_equal(acme_http_get(http_via(p, NULL), p, apr_psprintf(p,
                         "http://127.0.0.1:%d/dir", closed_port), &resp, &res), APR_SUCCESS);
    assert_contains(res.message, "curl error 7");
    assert_null(strstr(res.message, "proxy"));
    setenv("NO_PROXY", "*", 1);
    msg = through_fake_proxy(p, "HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n", &fp, &shown);
    assert_contains(msg, "(HTTP 407 to CONNECT)");
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("NO_PROXY");
    apr_socket_close(env_proxy);
    apr_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_proxy_urls_and_makes_the_port_explicit),
        cmocka_unit_test(test_refuses_bad_urls_with_the_fix),
        cmocka_unit_test(test_redacts_and_strips_credentials),
        cmocka_unit_test(test_a_rule_naming_the_ca_wins),
        cmocka_unit_test(test_proxy_refusals_name_the_proxy),
        cmocka_unit_test(test_proxy_down_is_named),
        cmocka_unit_test(test_the_environment_is_ignored),
    };
    return cmocka_run_group_tests_name("proxy", tests, unit_setup_apr, unit_teardown_apr);
}
