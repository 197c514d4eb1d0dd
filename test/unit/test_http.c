#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_http.h"
#include "acme_version.h"
#include "unit_support.h"

#define BASE "https://ca.example/acme/order/17"
/* Fri, 27 Nov 2026 10:00:00 GMT */
#define NOW (apr_time_from_sec(1795773600))

/* The shared pool, and libcurl's process-wide state, which the transport needs before use. */
static int setup_pool(void **state)
{
    unit_setup_pool(state);
    acme_http_global_init();
    return 0;
}

static acme_http_response_t *feed(apr_pool_t *p, const char *const *lines)
{
    acme_http_response_t *resp = acme_http_response_make(p);

    for (; *lines; ++lines) {
        acme_http_response_header(resp, p, *lines, strlen(*lines), BASE, NOW);
    }
    return resp;
}

static const acme_http_link_t *link_at(const acme_http_response_t *resp, int i)
{
    return &APR_ARRAY_IDX(resp->links, i, acme_http_link_t);
}

/* ------------------------------------------------------------------ header parsing */

static void test_replay_nonce(void **state)
{
    const char *lines[] = { "HTTP/1.1 200 OK\r\n", "replay-nonce: oFvnlFP1wIhRlYS2jTaXbA\r\n", NULL };
    const char *junk[] = { "HTTP/2 200\r\n", "Replay-Nonce: abc def\r\n", NULL };
    const char *padded[] = { "HTTP/2 200\r\n", "Replay-Nonce: abc=\r\n", NULL };

    assert_string_equal(feed(*state, lines)->nonce, "oFvnlFP1wIhRlYS2jTaXbA");
    assert_null(feed(*state, junk)->nonce);
    assert_null(feed(*state, padded)->nonce);
}

static void test_location_absolute_and_relative(void **state)
{
    const char *abs[] = { "HTTP/1.1 201 Created", "Location: https://other.example/my-order/1", NULL };
    const char *rel[] = { "HTTP/1.1 201 Created", "Location: /acme/order/18", NULL };
    const char *relpath[] = { "HTTP/1.1 201 Created", "Location: 19", NULL };

    assert_string_equal(feed(*state, abs)->location, "https://other.example/my-order/1");
    assert_string_equal(feed(*state, rel)->location, "https://ca.example/acme/order/18");
    assert_string_equal(feed(*state, relpath)->location, "https://ca.example/acme/order/19");
}

static void test_multiple_link_headers(void **state)
{
    const char *lines[] = {
        "HTTP/1.1 200 OK\r\n",
        "Link: <https://ca.example/dir>;rel=\"index\"\r\n",
        "Link: <https://ca.example/cert/1/alternate/1>;rel=\"alternate\"\r\n",
        "Link: <https://ca.example/cert/1/alternate/2>; rel=alternate\r\n",
        "link: <https://ca.example/authz/5>;rel=\"up\"\r\n",
        NULL,
    };
    acme_http_response_t *resp = feed(*state, lines);
    apr_array_header_t *alts = acme_http_links(resp, "alternate", *state);

    assert_int_equal(resp->links->nelts, 4);
    assert_string_equal(acme_http_link(resp, "index"), "https://ca.example/dir");
    assert_string_equal(acme_http_link(resp, "up"), "https://ca.example/authz/5");
    assert_int_equal(alts->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(alts, 0, const char *), "https://ca.example/cert/1/alternate/1");
    assert_string_equal(APR_ARRAY_IDX(alts, 1, const char *), "https://ca.example/cert/1/alternate/2");
    assert_null(acme_http_link(resp, "next"));
}

static void test_links_in_one_header(void **state)
{
    const char *lines[] = {
        "HTTP/1.1 200 OK",
        "Link: </acme/orders/1?cursor=2>; rel=\"next\"; title=\"page, two\", "
        "<https://ca.example/dir>;rel=\"index\" , <https://x.example/a>;rel=\"UP alternate\"",
        NULL,
    };
    acme_http_response_t *resp = feed(*state, lines);

    assert_int_equal(resp->links->nelts, 4);
    assert_string_equal(link_at(resp, 0)->url, "https://ca.example/acme/orders/1?cursor=2");
    assert_string_equal(link_at(resp, 0)->rel, "next");
    assert_string_equal(link_at(resp, 1)->rel, "index");
    /* Relation types are case-insensitive, and one link may carry several. */
    assert_string_equal(link_at(resp, 2)->rel, "up");
    assert_string_equal(link_at(resp, 3)->rel, "alternate");
    assert_string_equal(link_at(resp, 3)->url, "https://x.example/a");
}

static void test_link_first_rel_wins_and_junk_is_skipped(void **state)
{
    apr_array_header_t *links = apr_array_make(*state, 2, sizeof(acme_http_link_t));

    acme_http_parse_links(*state, "<https://a.example/>; rel=up; rel=alternate", BASE, links);
    assert_int_equal(links->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(links, 0, acme_http_link_t).rel, "up");
    apr_array_clear(links);
    acme_http_parse_links(*state, "garbage", BASE, links);
    acme_http_parse_links(*state, "<https://a.example/>; title=x", BASE, links);
    assert_int_equal(links->nelts, 0);
}

static void test_retry_after_seconds(void **state)
{
    assert_true(acme_http_parse_retry_after("120", NOW) == NOW + apr_time_from_sec(120));
    assert_true(acme_http_parse_retry_after(" 0 ", NOW) == NOW);
    assert_true(acme_http_parse_retry_after("12x", NOW) == 0);
    assert_true(acme_http_parse_retry_after("-5", NOW) == 0);
    assert_true(acme_http_parse_retry_after("", NOW) == 0);
    /* Absurd values are capped rather than overflowing. */
    assert_true(acme_http_parse_retry_after("99999999999999999999999", NOW)
                == NOW + apr_time_from_sec(400LL * 24 * 3600));
}

static void test_retry_after_http_date(void **state)
{
    apr_time_t later = NOW + apr_time_from_sec(90);

    assert_true(acme_http_parse_retry_after("Fri, 27 Nov 2026 10:01:30 GMT", NOW) == later);
    assert_true(acme_http_parse_retry_after("Friday, 27-Nov-26 10:01:30 GMT", NOW) == later);
    assert_true(acme_http_parse_retry_after("Fri Nov 27 10:01:30 2026", NOW) == later);
    assert_true(acme_http_parse_retry_after("tomorrow", NOW) == 0);
}

static void test_retry_after_header(void **state)
{
    const char *lines[] = { "HTTP/1.1 429 Too Many Requests", "Retry-After: 3600", NULL };

    assert_true(feed(*state, lines)->retry_after == NOW + apr_time_from_sec(3600));
}

static void test_content_type(void **state)
{
    const char *lines[] = { "HTTP/1.1 400 Bad Request",
                            "Content-Type: Application/Problem+JSON; charset=utf-8", NULL };
    acme_http_response_t *resp = feed(*state, lines);

    assert_string_equal(resp->content_type, "application/problem+json");
    assert_true(acme_http_is_type(resp, "application/problem+json"));
    assert_false(acme_http_is_type(resp, "application/json"));
}

static void test_status_line_starts_over(void **state)
{
    const char *lines[] = {
        "HTTP/1.1 200 Connection established",
        "Replay-Nonce: fromproxy",
        "Link: <https://proxy.example/>;rel=\"index\"",
        "",
        "HTTP/1.1 201 Created",
        "Location: https://ca.example/acct/1",
        NULL,
    };
    acme_http_response_t *resp = feed(*state, lines);

    assert_int_equal(resp->status, 201);
    assert_null(resp->nonce);
    assert_int_equal(resp->links->nelts, 0);
    assert_string_equal(resp->location, "https://ca.example/acct/1");
}

static void test_resolve_url(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(acme_http_resolve_url(p, BASE, "https://b.example/x"), "https://b.example/x");
    assert_string_equal(acme_http_resolve_url(p, BASE, "//b.example/x"), "https://b.example/x");
    assert_string_equal(acme_http_resolve_url(p, BASE, "/x"), "https://ca.example/x");
    assert_string_equal(acme_http_resolve_url(p, BASE, "x/y"), "https://ca.example/acme/order/x/y");
    assert_string_equal(acme_http_resolve_url(p, BASE, "?a=1"), "https://ca.example/acme/order/17?a=1");
    assert_string_equal(acme_http_resolve_url(p, "https://ca.example", "x"), "https://ca.example/x");
}

static void test_origin(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(acme_http_origin(p, BASE), "https://ca.example");
    assert_string_equal(acme_http_origin(p, "HTTPS://CA.Example:443/dir"), "https://ca.example");
    assert_string_equal(acme_http_origin(p, "http://ca.example:80"), "http://ca.example");
    assert_string_equal(acme_http_origin(p, "http://ca.example:8443?x"), "http://ca.example:8443");
    assert_string_equal(acme_http_origin(p, "https://u:pw@ca.example:0443/x"),
                        "https://ca.example");
    assert_string_equal(acme_http_origin(p, "https://[::1]:14000/dir"), "https://[::1]:14000");
    assert_string_equal(acme_http_origin(p, "https://a.example#@b.example/"), "https://a.example");
    /* not an http(s) URL with a host and a numeric port: no origin at all */
    assert_null(acme_http_origin(p, NULL));
    assert_null(acme_http_origin(p, "/relative/path"));
    assert_null(acme_http_origin(p, "ftp://ca.example/"));
    assert_null(acme_http_origin(p, "https:///path"));
    assert_null(acme_http_origin(p, "https://ca.example:/x"));
    assert_null(acme_http_origin(p, "https://ca.example:12x/x"));
    assert_null(acme_http_origin(p, "https://ca.example:123456/x"));
    assert_null(acme_http_origin(p, "https://[::1/x"));
    assert_null(acme_http_origin(p, "https://[::1]x:1/x"));
}

/* The check that keeps signed requests on the CA's host. */
static void test_same_origin(void **state)
{
    apr_pool_t *p = *state;
    const char *dir = "https://acme.example/directory";

    assert_true(acme_http_same_origin(p, dir, "https://acme.example/acme/authz/1"));
    assert_true(acme_http_same_origin(p, dir, "https://ACME.example:443/cert/9"));
    assert_false(acme_http_same_origin(p, dir, "https://acme.example.evil.test/authz/1"));
    assert_false(acme_http_same_origin(p, dir, "https://evil.test/acme.example/authz"));
    assert_false(acme_http_same_origin(p, dir, "https://acme.example@evil.test/authz/1"));
    assert_false(acme_http_same_origin(p, dir, "http://acme.example/authz/1"));
    assert_false(acme_http_same_origin(p, dir, "https://acme.example:8443/authz/1"));
    assert_false(acme_http_same_origin(p, dir, "/authz/1"));
    assert_false(acme_http_same_origin(p, dir, NULL));
    assert_false(acme_http_same_origin(p, "not a url", "not a url"));
}

/* ------------------------------------------------------------------ transport, on loopback */

typedef struct {
    apr_socket_t *listener;
    const char *response;       /* NULL: accept, read, never answer */
    apr_size_t response_len;
    char request[4096];
    apr_size_t request_len;
} fake_server_t;

static void *APR_THREAD_FUNC serve_one(apr_thread_t *thread, void *data)
{
    fake_server_t *srv = data;
    apr_socket_t *conn;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    if (apr_socket_accept(&conn, srv->listener, p) == APR_SUCCESS) {
        while (srv->request_len < sizeof(srv->request) - 1
               && !strstr(srv->request, "\r\n\r\n")) {
            apr_size_t n = sizeof(srv->request) - 1 - srv->request_len;

            if (apr_socket_recv(conn, srv->request + srv->request_len, &n) != APR_SUCCESS) {
                break;
            }
            srv->request_len += n;
            srv->request[srv->request_len] = '\0';
        }
        if (srv->response) {
            apr_size_t n = srv->response_len;

            apr_socket_send(conn, srv->response, &n);
        }
        else {
            apr_sleep(apr_time_from_msec(1500));
        }
        apr_socket_close(conn);
    }
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static const char *listen_loopback(apr_pool_t *p, apr_socket_t **sock)
{
    apr_sockaddr_t *sa;

    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(sock, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p), APR_SUCCESS);
    assert_int_equal(apr_socket_bind(*sock, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(*sock, 4), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, *sock), APR_SUCCESS);
    return apr_psprintf(p, "http://127.0.0.1:%d", (int)sa->port);
}

static acme_http_t *make_http(apr_pool_t *p, apr_size_t cap)
{
    acme_http_t *http;
    acme_result_t res;
    acme_http_options_t opts = {
        .timeout = apr_time_from_msec(700),
        .connect_timeout = apr_time_from_msec(700),
        .max_response_size = cap,
    };

    assert_int_equal(acme_http_create(&http, p, &opts, &res), APR_SUCCESS);
    return http;
}

static void test_post_roundtrip(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] =
        "HTTP/1.1 201 Created\r\n"
        "Content-Type: application/json\r\n"
        "Replay-Nonce: nonce-2_x\r\n"
        "Location: /my-order/7\r\n"
        "Link: <https://ca.example/dir>;rel=\"index\"\r\n"
        "Link: </authz/1>;rel=\"up\"\r\n"
        "Retry-After: 2\r\n"
        "Content-Length: 20\r\n"
        "Connection: close\r\n\r\n"
        "{\"status\":\"pending\"}";
    fake_server_t srv = { .response = answer, .response_len = sizeof(answer) - 1 };
    const char *base = listen_loopback(p, &srv.listener);
    const char *url = apr_pstrcat(p, base, "/order-plz", NULL);
    acme_http_t *http = make_http(p, 0);
    acme_http_response_t *resp;
    acme_result_t res;
    apr_thread_t *thread;
    apr_status_t trv;
    apr_time_t before = apr_time_now();

    assert_int_equal(apr_thread_create(&thread, NULL, serve_one, &srv, p), APR_SUCCESS);
    assert_int_equal(acme_http_post_jose(http, p, url, "{\"payload\":\"\"}", &resp, &res), APR_SUCCESS);
    apr_thread_join(&trv, thread);
    assert_int_equal(resp->status, 201);
    assert_string_equal(resp->body, "{\"status\":\"pending\"}");
    assert_string_equal(resp->nonce, "nonce-2_x");
    assert_string_equal(resp->location, apr_pstrcat(p, base, "/my-order/7", NULL));
    assert_string_equal(acme_http_link(resp, "up"), apr_pstrcat(p, base, "/authz/1", NULL));
    assert_true(resp->retry_after >= before + apr_time_from_sec(2));
    assert_non_null(strstr(srv.request, "POST /order-plz HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.request, "Content-Type: application/jose+json\r\n"));
    assert_non_null(strstr(srv.request, "User-Agent: " ACME_USER_AGENT_PRODUCT " libcurl/"));
    assert_memory_equal(acme_http_user_agent(http), ACME_USER_AGENT_PRODUCT " libcurl/",
                        strlen(ACME_USER_AGENT_PRODUCT " libcurl/"));
}

static void test_response_size_cap(void **state)
{
    apr_pool_t *p = *state;
    const char *body = apr_psprintf(p, "%0*d", 5000, 0);
    const char *answer = apr_psprintf(p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%s", body);
    fake_server_t srv = { .response = answer, .response_len = strlen(answer) };
    const char *url = apr_pstrcat(p, listen_loopback(p, &srv.listener), "/big", NULL);
    acme_http_t *http = make_http(p, 1000);
    acme_http_response_t *resp;
    acme_result_t res;
    apr_thread_t *thread;
    apr_status_t trv;

    assert_int_equal(apr_thread_create(&thread, NULL, serve_one, &srv, p), APR_SUCCESS);
    assert_int_not_equal(acme_http_get(http, p, url, &resp, &res), APR_SUCCESS);
    apr_thread_join(&trv, thread);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, url));
    assert_non_null(strstr(res.message, "larger than 1000 bytes"));
}

static void test_hanging_server_times_out(void **state)
{
    apr_pool_t *p = *state;
    fake_server_t srv = { .response = NULL };
    const char *url = apr_pstrcat(p, listen_loopback(p, &srv.listener), "/dir", NULL);
    acme_http_t *http = make_http(p, 0);
    acme_http_response_t *resp;
    acme_result_t res;
    apr_thread_t *thread;
    apr_status_t trv;
    apr_time_t start = apr_time_now();

    assert_int_equal(apr_thread_create(&thread, NULL, serve_one, &srv, p), APR_SUCCESS);
    assert_int_equal(acme_http_get(http, p, url, &resp, &res), APR_TIMEUP);
    assert_true(apr_time_now() - start < apr_time_from_msec(1400));
    apr_thread_join(&trv, thread);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, url));
}

static void test_connection_refused(void **state)
{
    apr_pool_t *p = *state;
    apr_socket_t *sock;
    const char *url = apr_pstrcat(p, listen_loopback(p, &sock), "/dir", NULL);
    acme_http_t *http = make_http(p, 0);
    acme_http_response_t *resp;
    acme_result_t res;

    apr_socket_close(sock);
    assert_int_not_equal(acme_http_head(http, p, url, &resp, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, "HEAD "));
    assert_non_null(strstr(res.message, url));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_nonce),
        cmocka_unit_test(test_location_absolute_and_relative),
        cmocka_unit_test(test_multiple_link_headers),
        cmocka_unit_test(test_links_in_one_header),
        cmocka_unit_test(test_link_first_rel_wins_and_junk_is_skipped),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_http_date),
        cmocka_unit_test(test_retry_after_header),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_status_line_starts_over),
        cmocka_unit_test(test_resolve_url),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_post_roundtrip),
        cmocka_unit_test(test_response_size_cap),
        cmocka_unit_test(test_hanging_server_times_out),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests_name("http", tests, setup_pool, unit_teardown_pool);
}
