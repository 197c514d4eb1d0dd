#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include <curl/curl.h>

#include "acme_ondemand.h"
#include "acme_ondemand_ask.h"
#include "acme_ondemand_queue.h"
#include "acme_store.h"
#include "acme_seal.h"
#include "unit_support.h"

#define MIN(x) apr_time_from_sec(60 * (x))
#define T0 apr_time_from_sec(1800000000)

static const unsigned char proof_key[ACME_SEAL_PROOF_KEY_LEN] = "0123456789abcdef0123456789abcde";

static acme_ondemand_policy_t policy(int count, int max)
{
    return (acme_ondemand_policy_t){ .rate = { .count = count, .period = MIN(1) },
                                     .max_domains = max };
}

static void test_rate_parse(void **state)
{
    acme_ondemand_rate_t r;
    const char *why = NULL;

    assert_int_equal(acme_ondemand_rate_parse("10/1m", &r, &why, *state), APR_SUCCESS);
    assert_int_equal(r.count, 10);
    assert_true(r.period == MIN(1));
    assert_int_equal(acme_ondemand_rate_parse("100/1h", &r, &why, *state), APR_SUCCESS);
    assert_int_equal(acme_ondemand_rate_parse("10", &r, &why, *state), APR_EINVAL);
    assert_int_equal(acme_ondemand_rate_parse("0/1m", &r, &why, *state), APR_EINVAL);
    assert_int_equal(acme_ondemand_rate_parse("x/1m", &r, &why, *state), APR_EINVAL);
    assert_int_equal(acme_ondemand_rate_parse("5/soon", &r, &why, *state), APR_EINVAL);
    assert_non_null(strstr(why, "duration"));
}

static void test_names(void **state)
{
    const char *why = NULL;

    assert_string_equal(acme_ondemand_name(*state, "Shop.Example.NET", 0, &why),
                        "shop.example.net");
    assert_null(acme_ondemand_name(*state, "*.example.net", 0, &why));
    assert_null(acme_ondemand_name(*state, "192.0.2.1", 0, &why));
    assert_non_null(acme_ondemand_name(*state, "192.0.2.1", 1, &why));
    assert_null(acme_ondemand_name(*state, "", 0, &why));
    assert_null(acme_ondemand_name(*state, "under_score.example", 0, &why));
    assert_null(acme_ondemand_name(*state, NULL, 0, &why));
}

/* A flood of new names asks at most the rate's count per period; the bucket refills. */
static void test_flood_is_bounded_by_the_rate(void **state)
{
    acme_ondemand_registry_t *reg = acme_ondemand_registry_make(*state);
    acme_ondemand_policy_t pol = policy(10, 0);
    const char *why = NULL;
    int i, asked = 0;

    for (i = 0; i < 1000; ++i) {
        const char *name = apr_psprintf(*state, "r%d.example.net", i);
        asked += acme_ondemand_decide(reg, *state, name, &pol, T0 + i, &why) == ACME_ONDEMAND_ASK;
    }
    assert_int_equal(asked, 10);
    assert_non_null(strstr(why, "ACMEOnDemandRate"));
    /* half a period later: five more */
    for (i = 0, asked = 0; i < 100; ++i) {
        const char *name = apr_psprintf(*state, "s%d.example.net", i);
        asked += acme_ondemand_decide(reg, *state, name, &pol, T0 + MIN(1) / 2 + 1000, &why)
                 == ACME_ONDEMAND_ASK;
    }
    assert_int_equal(asked, 5);
}

static void test_answers_are_remembered(void **state)
{
    acme_ondemand_registry_t *reg = acme_ondemand_registry_make(*state);
    acme_ondemand_policy_t pol = policy(100, 0);
    const char *why = NULL;

    assert_int_equal(acme_ondemand_decide(reg, *state, "yes.example", &pol, T0, &why),
                     ACME_ONDEMAND_ASK);
    acme_ondemand_answered(reg, "yes.example", 1, T0);
    acme_ondemand_answered(reg, "no.example", 0, T0);
    assert_int_equal(acme_ondemand_decide(reg, *state, "yes.example", &pol, T0 + MIN(1), &why),
                     ACME_ONDEMAND_SERVE);
    assert_int_equal(acme_ondemand_decide(reg, *state, "no.example", &pol, T0 + MIN(9), &why),
                     ACME_ONDEMAND_LATER);
    assert_non_null(strstr(why, "refused"));
    /* a refusal is cached for 10 minutes, then the endpoint is asked again */
    assert_int_equal(acme_ondemand_decide(reg, *state, "no.example", &pol, T0 + MIN(11), &why),
                     ACME_ONDEMAND_ASK);
}

static void test_failed_orders_back_off_and_the_cap_holds(void **state)
{
    acme_ondemand_registry_t *reg = acme_ondemand_registry_make(*state);
    acme_ondemand_policy_t pol = policy(100, 2);
    const char *why = NULL;

    acme_ondemand_answered(reg, "a.example", 1, T0);
    acme_ondemand_order_done(reg, "a.example", 0, T0);
    acme_ondemand_order_done(reg, "a.example", 0, T0);
    assert_int_equal(acme_ondemand_decide(reg, *state, "a.example", &pol, T0 + MIN(1), &why),
                     ACME_ONDEMAND_LATER);          /* second failure: 2 minutes */
    assert_int_equal(acme_ondemand_decide(reg, *state, "a.example", &pol, T0 + MIN(2) + 1,
                                          &why), ACME_ONDEMAND_SERVE);
    acme_ondemand_order_done(reg, "a.example", 1, T0 + MIN(3));
    assert_int_equal(acme_ondemand_decide(reg, *state, "a.example", &pol, T0 + MIN(3), &why),
                     ACME_ONDEMAND_SERVE);
    acme_ondemand_answered(reg, "b.example", 1, T0);
    assert_int_equal(acme_ondemand_decide(reg, *state, "c.example", &pol, T0, &why),
                     ACME_ONDEMAND_LATER);
    assert_non_null(strstr(why, "ACMEOnDemandMax"));
    assert_true(acme_ondemand_forget(reg, "b.example"));
    assert_false(acme_ondemand_forget(reg, "b.example"));
    assert_int_equal(acme_ondemand_decide(reg, *state, "c.example", &pol, T0, &why),
                     ACME_ONDEMAND_ASK);
}

static void test_registry_round_trip_and_forgery(void **state)
{
    acme_ondemand_registry_t *reg = acme_ondemand_registry_make(*state), *back = NULL;
    apr_array_header_t *names;
    acme_result_t res;
    json_t *doc;

    acme_result_reset(&res);
    acme_ondemand_answered(reg, "b.example", 1, T0);
    acme_ondemand_answered(reg, "a.example", 1, T0);
    acme_ondemand_answered(reg, "no.example", 0, T0);
    acme_ondemand_order_done(reg, "b.example", 0, T0);
    doc = acme_ondemand_registry_json(reg, *state, proof_key, T0);
    assert_int_equal(acme_ondemand_registry_read(*state, doc, proof_key, &back, &res),
                     APR_SUCCESS);
    names = acme_ondemand_approved(back, *state);
    assert_int_equal(names->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(names, 0, const char *), "a.example");
    assert_int_equal(((acme_ondemand_entry_t *)apr_hash_get(back->entries, "b.example",
                                                             APR_HASH_KEY_STRING))->failures, 1);
    /* the httpd User adds a name: the whole registry is refused */
    json_object_set_new(json_object_get(doc, "entries"), "evil.example",
                        json_pack("{s:s}", "state", "approved"));
    assert_int_equal(acme_ondemand_registry_read(*state, doc, proof_key, &back, &res),
                     APR_EINVAL);
    assert_non_null(strstr(res.message, "MAC"));
    json_decref(doc);
    /* expired refusals are dropped when written */
    doc = acme_ondemand_registry_json(reg, *state, proof_key, T0 + MIN(11));
    assert_null(json_object_get(json_object_get(doc, "entries"), "no.example"));
    json_decref(doc);
}

/* ------------------------------------------------------------------ the ask endpoint */

typedef struct {
    int fd;
    int answers;        /* how many connections to answer */
} ask_server_t;

/* Answers 200 for ?domain=yes.example, 403 otherwise; "slow.example" gets no answer. */
static void *ask_server_run(void *data)
{
    ask_server_t *srv = data;
    int i;

    for (i = 0; i < srv->answers; ++i) {
        char req[2048] = "";
        int c = accept(srv->fd, NULL, NULL);
        ssize_t n = c >= 0 ? read(c, req, sizeof(req) - 1) : -1;
        const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nyes";
        const char *no = "HTTP/1.1 403 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (n > 0 && strstr(req, "domain=slow.example")) {
            sleep(2);
        }
        else if (n > 0) {
            const char *a = strstr(req, "GET /ask?domain=yes.example ") ? ok : no;
            (void)!write(c, a, strlen(a));
        }
        close(c);
    }
    return NULL;
}

static void test_ask_endpoint(void **state)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ask_server_t srv = { .fd = socket(AF_INET, SOCK_STREAM, 0), .answers = 3 };
    const char *detail = NULL, *url;
    pthread_t th;

    assert_int_equal(bind(srv.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(srv.fd, 4), 0);
    assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(pthread_create(&th, NULL, ask_server_run, &srv), 0);
    url = apr_psprintf(*state, "http://127.0.0.1:%d/ask", ntohs(sa.sin_port));
    assert_int_equal(acme_ondemand_ask(*state, url, "yes.example", apr_time_from_sec(5),
                                       &detail), ACME_ONDEMAND_ASK_YES);
    assert_int_equal(acme_ondemand_ask(*state, url, "no.example", apr_time_from_sec(5),
                                       &detail), ACME_ONDEMAND_ASK_NO);
    assert_string_equal(detail, "HTTP 403");
    assert_int_equal(acme_ondemand_ask(*state, url, "slow.example", apr_time_from_msec(300),
                                       &detail), ACME_ONDEMAND_ASK_UNREACHABLE);
    pthread_join(th, NULL);
    close(srv.fd);
    assert_int_equal(acme_ondemand_ask(*state, url, "yes.example", apr_time_from_sec(2),
                                       &detail), ACME_ONDEMAND_ASK_UNREACHABLE);
    assert_string_equal(acme_ondemand_ask_url(*state, "http://h/ask?k=1", "a.example"),
                        "http://h/ask?k=1&domain=a.example");
    assert_string_equal(acme_ondemand_ask_url(*state, "http://h/a", "x y&z"),
                        "http://h/a?domain=x%20y%26z");
}

/* ------------------------------------------------------------------ the request queue */

static int has_name(const apr_array_header_t *names, const char *name)
{
    int i;

    for (i = 0; i < names->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(names, i, const char *), name)) {
            return 1;
        }
    }
    return 0;
}

static void test_queue_put_and_take(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("odqueue");
    const char *q = apr_pstrcat(fx->pool, fx->store, "/" ACME_STORE_API_QUEUE, NULL);
    acme_result_t res;
    apr_array_header_t *names;
    int dropped = -1;

    (void)state;
    acme_result_reset(&res);
    assert_int_equal(acme_ondemand_queue_put(fx->pool, fx->store, "a.example", &res),
                     APR_SUCCESS);
    /* Asked twice before the worker came: one request. */
    assert_int_equal(acme_ondemand_queue_put(fx->pool, fx->store, "a.example", &res),
                     APR_SUCCESS);
    assert_int_equal(acme_ondemand_queue_put(fx->pool, fx->store, "b.example", &res),
                     APR_SUCCESS);
    /* What another process of the User may leave: garbage, another spelling, a symlink,
     * an IP literal, and the certificate API's own entries, which stay. */
    unit_write_file(fx->pool, apr_pstrcat(fx->pool, q, "/bad..name.ondemand", NULL), "",
                    APR_FPROT_UREAD | APR_FPROT_UWRITE);
    unit_write_file(fx->pool, apr_pstrcat(fx->pool, q, "/B.Example.ondemand", NULL), "",
                    APR_FPROT_UREAD | APR_FPROT_UWRITE);
    unit_write_file(fx->pool, apr_pstrcat(fx->pool, q, "/127.0.0.1.ondemand", NULL), "",
                    APR_FPROT_UREAD | APR_FPROT_UWRITE);
    assert_int_equal(symlink("/etc/passwd", apr_pstrcat(fx->pool, q, "/c.example.ondemand",
                                                        NULL)), 0);
    unit_write_file(fx->pool, apr_pstrcat(fx->pool, q, "/x.example.renew", NULL), "",
                    APR_FPROT_UREAD | APR_FPROT_UWRITE);

    names = acme_ondemand_queue_take(fx->pool, fx->store, 100, 0, &dropped);
    assert_int_equal(names->nelts, 3);
    assert_true(has_name(names, "a.example") && has_name(names, "b.example"));
    assert_true(has_name(names, "c.example"));      /* a name only: the link is not read */
    assert_int_equal(dropped, 3);
    assert_int_equal(access("/etc/passwd", R_OK), 0);
    /* Taken entries are gone; the API's are not touched. */
    assert_int_equal(acme_ondemand_queue_take(fx->pool, fx->store, 100, 0, NULL)->nelts, 0);
    assert_int_equal(access(apr_pstrcat(fx->pool, q, "/x.example.renew", NULL), F_OK), 0);
    unit_store_fixture_free(fx);
}

static void test_queue_take_is_bounded(void **state)
{
    unit_store_fixture_t *fx = unit_store_fixture_make("odqueue2");
    acme_result_t res;
    int i;

    (void)state;
    acme_result_reset(&res);
    for (i = 0; i < 50; ++i) {
        assert_int_equal(acme_ondemand_queue_put(fx->pool, fx->store,
                                                 apr_psprintf(fx->pool, "n%d.example", i), &res),
                         APR_SUCCESS);
    }
    assert_int_equal(acme_ondemand_queue_take(fx->pool, fx->store, 20, 0, NULL)->nelts, 20);
    assert_int_equal(acme_ondemand_queue_take(fx->pool, fx->store, 100, 0, NULL)->nelts, 30);
    unit_store_fixture_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_parse),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_flood_is_bounded_by_the_rate),
        cmocka_unit_test(test_answers_are_remembered),
        cmocka_unit_test(test_failed_orders_back_off_and_the_cap_holds),
        cmocka_unit_test(test_registry_round_trip_and_forgery),
        cmocka_unit_test(test_ask_endpoint),
        cmocka_unit_test(test_queue_put_and_take),
        cmocka_unit_test(test_queue_take_is_bounded),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests_name("ondemand", tests, unit_setup_pool, unit_teardown_pool);
}
