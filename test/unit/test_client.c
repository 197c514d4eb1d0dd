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
#include <jansson.h>

#include "acme_b64.h"
#include "acme_client.h"
#include "acme_client_shared.h"
#include "acme_http.h"
#include "unit_support.h"

static void test_rfc3339(void **state)
{
    apr_time_t t;
    const apr_time_t base = apr_time_from_sec(1795773600);    /* 2026-11-27T10:00:00Z */

    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00Z", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27t10:00:00.25z", &t), APR_SUCCESS);
    assert_true(t == base + apr_time_from_msec(250));
    assert_int_equal(acme_client_parse_time("2026-11-27T12:30:00+02:30", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27T09:00:00-01:00", &t), APR_SUCCESS);
    assert_true(t == base);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00.123456789Z", &t), APR_SUCCESS);
    assert_true(t == base + 123456);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27 10:00:00Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-13-27T10:00:00Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00Zjunk", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time("2026-11-27T10:00:00.Z", &t), APR_EINVAL);
    assert_int_equal(acme_client_parse_time(NULL, &t), APR_EINVAL);
}

static void test_renewal_info(void **state)
{
    static const char body[] =
        "{\"suggestedWindow\":{\"start\":\"2026-11-27T10:00:00Z\",\"end\":\"2026-11-28T10:00:00Z\"},"
        "\"explanationURL\":\"https://ca.example/incident/1\"}";
    acme_client_renewal_info_t info;
    acme_result_t res;
    apr_time_t ra = apr_time_from_sec(1795777200);

    assert_int_equal(acme_client_renewal_info_parse(*state, body, strlen(body), ra, &info, &res),
                     APR_SUCCESS);
    assert_true(info.start == apr_time_from_sec(1795773600));
    assert_true(info.end == apr_time_from_sec(1795773600 + 86400));
    assert_string_equal(info.explanation_url, "https://ca.example/incident/1");
    assert_true(info.retry_after == ra);
}

static void test_renewal_info_rejects_bad_windows(void **state)
{
    static const char *const bad[] = {
        "{\"suggestedWindow\":{\"start\":\"2026-11-28T10:00:00Z\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":\"2026-11-27T10:00:00Z\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":\"yesterday\",\"end\":\"2026-11-27T10:00:00Z\"}}",
        "{\"explanationURL\":\"https://x\"}",
        "not json",
    };
    acme_client_renewal_info_t info;
    acme_result_t res;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        acme_result_reset(&res);
        if (acme_client_renewal_info_parse(*state, bad[i], strlen(bad[i]), 0, &info, &res)
            == APR_SUCCESS) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    }
}

static void test_authz_parse(void **state)
{
    static const char body[] =
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"example.test\"},"
        "\"wildcard\":true,\"expires\":\"2026-11-27T11:00:00Z\",\"challenges\":["
        "{\"type\":\"dns-01\",\"url\":\"https://ca.example/chalZ/1\",\"token\":\"tok1\",\"status\":\"pending\"},"
        "{\"type\":\"http-01\",\"url\":\"https://ca.example/chalZ/2\",\"token\":\"tok2\",\"status\":\"invalid\","
        "\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\",\"detail\":\"refused\"}}]}";
    acme_client_authz_t *authz;
    const acme_client_challenge_t *chal;
    acme_result_t res;

    assert_int_equal(acme_client_authz_parse(*state, "https://ca.example/authZ/1", body,
                                             strlen(body), &authz, &res), APR_SUCCESS);
    assert_int_equal(authz->identifier.type, ACME_IDENT_DNS);
    assert_string_equal(authz->identifier.value, "example.test");
    assert_string_equal(authz->status, "pending");
    assert_true(authz->wildcard);
    assert_int_equal(authz->challenges->nelts, 2);
    chal = acme_client_authz_challenge(authz, "dns-01");
    assert_non_null(chal);
    assert_string_equal(chal->token, "tok1");
    assert_null(chal->error);
    chal = acme_client_authz_challenge(authz, "http-01");
    assert_non_null(strstr(chal->error, "\"detail\":\"refused\""));
    assert_null(acme_client_authz_challenge(authz, "tls-alpn-01"));
}

static void test_authz_parse_rejects_garbage(void **state)
{
    static const char *const bad[] = {
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"email\",\"value\":\"a@b\"},\"challenges\":[]}",
        "{\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":[]}",
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":[{\"type\":\"x\"}]}",
        "[]",
        /* the right fields with the wrong JSON types */
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":12},\"challenges\":[]}",
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
        "\"challenges\":\"http-01\"}",
        "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
        "\"challenges\":[{\"type\":\"http-01\",\"url\":7}]}",
    };
    acme_client_authz_t *authz;
    acme_result_t res;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (acme_client_authz_parse(*state, "u", bad[i], strlen(bad[i]), &authz, &res) == APR_SUCCESS) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

static void test_directory_meta(void **state)
{
    static const char dir[] =
        "{\"newNonce\":\"https://ca.example/nonce-plz\",\"newAccount\":\"https://ca.example/sign-me-up\","
        "\"newOrder\":\"https://ca.example/order-plz\",\"renewalInfo\":\"https://ca.example/ari/\","
        "\"meta\":{\"termsOfService\":\"data:text/plain,Do%20what%20thou%20wilt\","
        "\"externalAccountRequired\":true,\"caaIdentities\":[\"ca.example\",\"ca2.example\"],"
        "\"profiles\":{\"classic\":\"The default\",\"shortlived\":{\"description\":\"6 days\"}}}}";
    acme_client_meta_t meta;
    acme_result_t res;

    assert_int_equal(acme_client_meta_parse(*state, dir, strlen(dir), &meta, &res), APR_SUCCESS);
    assert_string_equal(meta.terms_of_service, "data:text/plain,Do%20what%20thou%20wilt");
    assert_true(meta.external_account_required);
    assert_int_equal(meta.caa_identities->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(meta.caa_identities, 1, const char *), "ca2.example");
    assert_int_equal(meta.profiles->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 0, acme_client_profile_t).name, "classic");
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 0, acme_client_profile_t).description, "The default");
    assert_string_equal(APR_ARRAY_IDX(meta.profiles, 1, acme_client_profile_t).description, "6 days");
    assert_string_equal(meta.renewal_info, "https://ca.example/ari/");
}

static void test_directory_without_meta(void **state)
{
    static const char dir[] = "{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":\"o\"}";
    acme_client_meta_t meta;
    acme_result_t res;

    assert_int_equal(acme_client_meta_parse(*state, dir, strlen(dir), &meta, &res), APR_SUCCESS);
    assert_null(meta.terms_of_service);
    assert_false(meta.external_account_required);
    assert_int_equal(meta.profiles->nelts, 0);
    assert_null(meta.renewal_info);
    assert_int_not_equal(acme_client_meta_parse(*state, "<html>", 6, &meta, &res), APR_SUCCESS);
}

static void test_create_needs_a_directory(void **state)
{
    acme_client_t *c;
    acme_result_t res;

    assert_int_not_equal(acme_client_create(&c, *state, "", NULL, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_int_equal(acme_client_create(&c, *state, "https://ca.example/dir", NULL, &res), APR_SUCCESS);
    assert_int_equal(acme_client_request_count(c), 0);
    assert_non_null(strstr(acme_client_user_agent(c), "mod_acme/"));
}

static void test_dns01_value(void **state)
{
    /* base64url(SHA-256("abc")), RFC 4634 test vector. */
    assert_string_equal(acme_client_dns01_value(*state, "abc"),
                        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

/* ------------------------------------------------------------------ a CA refusing nonces */

/*
 * A plain-HTTP CA on loopback, one request per connection: a directory, HEAD newNonce, and one
 * order whose POST-as-GET is refused with badNonce `refusals` times (< 0: always) before it is
 * answered. It checks that every re-sent POST is signed with the nonce the refusal carried.
 */
typedef struct {
    apr_socket_t *listener;
    const char *base;
    int refusals;
    volatile int stop;
    int posts, heads, dirs;
    int finalizes;              /* POSTs to the finalize URL */
    int not_ready;              /* of them, refused with orderNotReady */
    int nonce_mismatches;       /* re-sends signed with anything but the refusal's nonce */
    char last_nonce[32];        /* the Replay-Nonce of the last answer */
} fake_ca_t;

static apr_size_t fake_ca_read(apr_socket_t *conn, char *buf, apr_size_t size)
{
    apr_size_t len = 0;
    const char *end, *cl;

    for (;;) {
        apr_size_t n = size - 1 - len;

        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        cl = strstr(buf, "Content-Length:");
        if (end && (!cl || cl > end || len >= (apr_size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))) {
            return len;
        }
        if (n == 0 || apr_socket_recv(conn, buf + len, &n) != APR_SUCCESS) {
            return len;
        }
        len += n;
    }
}

/* The nonce in the JWS's protected header, or "". */
static const char *fake_ca_jws_nonce(apr_pool_t *p, const char *body)
{
    json_t *jws = json_loads(body ? body : "", 0, NULL), *prot = NULL;
    const char *b64 = json_string_value(json_object_get(jws, "protected")), *nonce = "";
    unsigned char *text = NULL;
    apr_size_t len = 0;

    if (b64 && acme_b64_decode(p, b64, &text, &len) == APR_SUCCESS) {
        prot = json_loadb((const char *)text, len, 0, NULL);
        nonce = apr_pstrdup(p, json_string_value(json_object_get(prot, "nonce")) ?
                               json_string_value(json_object_get(prot, "nonce")) : "");
    }
    json_decref(prot);
    json_decref(jws);
    return nonce;
}

/* An answer carrying the CA's last nonce: status line and type, and the body. */
static const char *fake_ca_reply(fake_ca_t *ca, apr_pool_t *p, const char *status,
                                 const char *type, const char *body)
{
    return apr_psprintf(p, "HTTP/1.1 %s\r\nContent-Type: %s\r\nReplay-Nonce: %s\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n%s", status, type,
                        ca->last_nonce, (int)strlen(body), body);
}

/* The fake CA's one order, in state `status`. */
static const char *fake_ca_order(fake_ca_t *ca, apr_pool_t *p, const char *status)
{
    return fake_ca_reply(ca, p, "200 OK", "application/json", apr_psprintf(p,
        "{\"status\":\"%s\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"nonce.test\"}],"
        "\"authorizations\":[\"%s/authz/1\"],\"finalize\":\"%s/finalize/1\"}", status, ca->base,
        ca->base));
}

static const char *fake_ca_post(fake_ca_t *ca, apr_pool_t *p, const char *body)
{
    int refuse = ca->refusals < 0 || ca->posts < ca->refusals;

    if (ca->posts > 0 && strcmp(fake_ca_jws_nonce(p, body), ca->last_nonce) != 0) {
        ++ca->nonce_mismatches;
    }
    ++ca->posts;
    apr_snprintf(ca->last_nonce, sizeof(ca->last_nonce), "nonce-%d", ca->posts);
    if (refuse) {
        return fake_ca_reply(ca, p, "400 Bad Request", "application/problem+json",
                             "{\"type\":\"urn:ietf:params:acme:error:badNonce\","
                             "\"detail\":\"JWS has an invalid anti-replay nonce\"}");
    }
    return fake_ca_order(ca, p, "pending");
}

/* The finalize URL: orderNotReady for the first `not_ready` POSTs, then "processing". */
static const char *fake_ca_finalize(fake_ca_t *ca, apr_pool_t *p)
{
    apr_snprintf(ca->last_nonce, sizeof(ca->last_nonce), "fin-%d", ++ca->finalizes);
    if (ca->finalizes <= ca->not_ready) {
        return fake_ca_reply(ca, p, "403 Forbidden", "application/problem+json",
                             "{\"type\":\"urn:ietf:params:acme:error:orderNotReady\","
                             "\"detail\":\"order is pending\"}");
    }
    return fake_ca_order(ca, p, "processing");
}

static const char *fake_ca_answer(fake_ca_t *ca, apr_pool_t *p, const char *req)
{
    const char *body = strstr(req, "\r\n\r\n");

    if (!strncmp(req, "GET /dir ", 9)) {
        ++ca->dirs;
        body = apr_psprintf(p, "{\"newNonce\":\"%s/nonce\",\"newAccount\":\"%s/acct\","
                            "\"newOrder\":\"%s/order-plz\"}", ca->base, ca->base, ca->base);
        return apr_psprintf(p, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                            (int)strlen(body), body);
    }
    if (!strncmp(req, "HEAD /nonce ", 12)) {
        ++ca->heads;
        apr_snprintf(ca->last_nonce, sizeof(ca->last_nonce), "head-%d", ca->heads);
        return apr_psprintf(p, "HTTP/1.1 200 OK\r\nReplay-Nonce: %s\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n", ca->last_nonce);
    }
    if (!strncmp(req, "POST /order/1 ", 14)) {
        return fake_ca_post(ca, p, body ? body + 4 : NULL);
    }
    if (!strncmp(req, "POST /finalize/1 ", 17)) {
        return fake_ca_finalize(ca, p);
    }
    return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

/* Serves until told to stop; the listener's timeout bounds each wait for a connection. */
static void *APR_THREAD_FUNC fake_ca_serve(apr_thread_t *thread, void *data)
{
    fake_ca_t *ca = data;
    apr_pool_t *p;
    apr_socket_t *conn;
    char req[16384];

    apr_pool_create(&p, NULL);
    while (!ca->stop) {
        if (apr_socket_accept(&conn, ca->listener, p) != APR_SUCCESS) {
            continue;
        }
        apr_socket_timeout_set(conn, apr_time_from_sec(2));
        if (fake_ca_read(conn, req, sizeof(req)) > 0) {
            const char *answer = fake_ca_answer(ca, p, req);
            apr_size_t n = strlen(answer);

            apr_socket_send(conn, answer, &n);
        }
        apr_socket_close(conn);
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    (void)thread;
    return NULL;
}

static void fake_ca_start(apr_pool_t *p, fake_ca_t *ca, apr_thread_t **thread)
{
    apr_sockaddr_t *sa;

    acme_http_global_init();
    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&ca->listener, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_bind(ca->listener, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(ca->listener, 8), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, ca->listener), APR_SUCCESS);
    apr_socket_timeout_set(ca->listener, apr_time_from_msec(100));
    ca->base = apr_psprintf(p, "http://127.0.0.1:%d", (int)sa->port);
    assert_int_equal(apr_thread_create(thread, NULL, fake_ca_serve, ca, p), APR_SUCCESS);
}

static void fake_ca_stop(fake_ca_t *ca, apr_thread_t *thread)
{
    apr_status_t trv;

    ca->stop = 1;
    apr_thread_join(&trv, thread);
    apr_socket_close(ca->listener);
}

/* Re-reads the fake CA's order with a client whose retry budget is `budget`. */
static apr_status_t refresh_at(apr_pool_t *p, fake_ca_t *ca, apr_interval_time_t budget,
                               acme_client_counts_t *counts, acme_result_t *res)
{
    acme_client_options_t opts = { .timeout = apr_time_from_sec(3), .retry_budget = budget };
    const acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = "nonce.test" };
    acme_key_t *key = unit_key_generate(p, ACME_KEY_EC, 256);
    acme_order_t *order = acme_order_make(p, &ident, 1, "secp256r1");
    acme_client_t *c;
    apr_status_t rv;

    assert_int_equal(acme_client_create(&c, p, apr_pstrcat(p, ca->base, "/dir", NULL), &opts,
                                        res), APR_SUCCESS);
    acme_client_account_use(c, key, apr_pstrcat(p, ca->base, "/acct/1", NULL));
    order->url = apr_pstrcat(p, ca->base, "/order/1", NULL);
    rv = acme_client_order_refresh(c, p, order, res);
    acme_client_counts(c, counts);
    if (rv == APR_SUCCESS) {
        assert_int_equal(order->status, ACME_ORDER_PENDING);
    }
    return rv;
}

static void test_bad_nonce_retried_past_any_count(void **state)
{
    apr_pool_t *p = *state;
    fake_ca_t ca = { .refusals = 12 };
    acme_client_counts_t counts;
    apr_thread_t *thread;
    acme_result_t res;
    apr_status_t rv;

    fake_ca_start(p, &ca, &thread);
    /* Twelve refusals in a row (1 in 4096 at Pebble's 50 %): within the budget, no failure. */
    rv = refresh_at(p, &ca, apr_time_from_sec(20), &counts, &res);
    fake_ca_stop(&ca, thread);
    assert_int_equal(rv, APR_SUCCESS);
    assert_int_equal(ca.posts, 13);
    assert_int_equal(counts.bad_nonce_retries, 12);
    assert_int_equal(ca.heads, 1);              /* every re-send used the refusal's nonce */
    assert_int_equal(ca.nonce_mismatches, 0);
}

static void test_bad_nonce_retries_end_with_the_budget(void **state)
{
    apr_pool_t *p = *state;
    fake_ca_t ca = { .refusals = -1 };
    acme_client_counts_t counts;
    apr_thread_t *thread;
    acme_result_t res;
    apr_time_t start = apr_time_now(), took;
    apr_status_t rv;

    fake_ca_start(p, &ca, &thread);
    rv = refresh_at(p, &ca, apr_time_from_sec(3), &counts, &res);
    took = apr_time_now() - start;
    fake_ca_stop(&ca, thread);
    assert_int_not_equal(rv, APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.problem_type, "badNonce"));
    assert_true(counts.bad_nonce_retries > 8);
    assert_int_equal(ca.posts, (int)counts.bad_nonce_retries + 1);
    assert_int_equal(ca.nonce_mismatches, 0);
    /* It keeps trying for the budget, short of the last pause (1 s at most) that would end past
     * it, and stops then. */
    assert_true(took >= apr_time_from_sec(2));
    assert_true(took < apr_time_from_sec(5));
}

/* An early finalize of the fake CA's pending order, `answered` 10 ms ago. */
static apr_status_t finalize_early_at(apr_pool_t *p, fake_ca_t *ca, acme_order_t **order,
                                      acme_client_counts_t *counts, acme_result_t *res)
{
    acme_client_options_t opts = { .timeout = apr_time_from_sec(3) };
    const acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = "nonce.test" };
    acme_client_t *c;
    apr_status_t rv;

    assert_int_equal(acme_client_create(&c, p, apr_pstrcat(p, ca->base, "/dir", NULL), &opts,
                                        res), APR_SUCCESS);
    acme_client_account_use(c, unit_key_generate(p, ACME_KEY_EC, 256),
                            apr_pstrcat(p, ca->base, "/acct/1", NULL));
    *order = acme_order_make(p, &ident, 1, "secp256r1");
    (*order)->url = apr_pstrcat(p, ca->base, "/order/1", NULL);
    (*order)->finalize_url = apr_pstrcat(p, ca->base, "/finalize/1", NULL);
    (*order)->status = ACME_ORDER_PENDING;
    rv = acme_client_order_finalize_early(c, p, *order, unit_key_generate(p, ACME_KEY_EC, 256),
                                          apr_time_now() - apr_time_from_msec(10), res);
    acme_client_counts(c, counts);
    return rv;
}

/*
 * The finalize in place of the first poll: a CA that validated takes it (the order is
 * processing); one that has not refuses it, and the order is left pending with no error and
 * no failed request in the metrics.
 */
static void test_finalize_early(void **state)
{
    apr_pool_t *p = *state;
    fake_ca_t taken = { 0 }, refused = { .not_ready = 1 };
    acme_client_counts_t counts;
    acme_order_t *order;
    apr_thread_t *thread;
    acme_result_t res;

    fake_ca_start(p, &taken, &thread);
    assert_int_equal(finalize_early_at(p, &taken, &order, &counts, &res), APR_SUCCESS);
    fake_ca_stop(&taken, thread);
    assert_int_equal(taken.finalizes, 1);
    assert_int_equal(order->status, ACME_ORDER_PROCESSING);
    assert_int_equal(counts.failed, 0);

    fake_ca_start(p, &refused, &thread);
    assert_int_equal(finalize_early_at(p, &refused, &order, &counts, &res), APR_SUCCESS);
    fake_ca_stop(&refused, thread);
    assert_int_equal(refused.finalizes, 1);
    assert_int_equal(order->status, ACME_ORDER_PENDING);
    assert_int_equal(res.status, APR_SUCCESS);
    assert_int_equal(counts.failed, 0);
    assert_int_equal(counts.total, 3);          /* directory, nonce, the finalize */
}

/* Re-reads the fake CA's order with a new client attached to `shared`. */
static apr_status_t refresh_shared(apr_pool_t *p, fake_ca_t *ca, acme_client_shared_t *shared,
                                   acme_client_counts_t *counts, acme_result_t *res)
{
    acme_client_options_t opts = { .timeout = apr_time_from_sec(3) };
    const acme_ident_t ident = { .type = ACME_IDENT_DNS, .value = "nonce.test" };
    acme_order_t *order = acme_order_make(p, &ident, 1, "secp256r1");
    acme_client_t *c;
    apr_status_t rv;

    assert_int_equal(acme_client_create(&c, p, apr_pstrcat(p, ca->base, "/dir", NULL), &opts,
                                        res), APR_SUCCESS);
    acme_client_share(c, shared);
    acme_client_account_use(c, unit_key_generate(p, ACME_KEY_EC, 256),
                            apr_pstrcat(p, ca->base, "/acct/1", NULL));
    order->url = apr_pstrcat(p, ca->base, "/order/1", NULL);
    rv = acme_client_order_refresh(c, p, order, res);
    acme_client_counts(c, counts);
    return rv;
}

/*
 * Clients attached to one acme_client_shared_t (a worker's order threads): the directory is
 * fetched once, and one client's answer nonce signs another's request: no second HEAD. A
 * badNonce refusal's nonce still signs the re-send.
 */
static void test_shared_directory_and_nonces(void **state)
{
    apr_pool_t *p = *state;
    fake_ca_t ca = { .refusals = 0 };
    acme_client_shared_t *shared;
    acme_client_counts_t a, b, c;
    apr_thread_t *thread;
    acme_result_t res;

    assert_int_equal(acme_client_shared_create(&shared, p), APR_SUCCESS);
    fake_ca_start(p, &ca, &thread);
    assert_int_equal(refresh_shared(p, &ca, shared, &a, &res), APR_SUCCESS);
    assert_int_equal(refresh_shared(p, &ca, shared, &b, &res), APR_SUCCESS);
    ca.refusals = ca.posts + 3;         /* the next three POSTs are refused with badNonce */
    assert_int_equal(refresh_shared(p, &ca, shared, &c, &res), APR_SUCCESS);
    fake_ca_stop(&ca, thread);
    assert_int_equal(ca.dirs, 1);
    assert_int_equal(ca.heads, 1);
    assert_int_equal(a.directory + a.nonce, 2);
    assert_int_equal(b.directory + b.nonce + b.total, 1);
    assert_int_equal(c.bad_nonce_retries, 3);
    assert_int_equal(c.directory + c.nonce, 0);
    assert_int_equal(ca.nonce_mismatches, 0);
}

static void test_retry_plan(void **state)
{
    acme_client_options_t opts = { .retry_budget = apr_time_from_sec(10) };
    const apr_time_t t0 = apr_time_from_sec(1000);
    apr_interval_time_t pause = -1, last = 0;
    int r;

    (void)state;
    assert_true(acme_client_retry_plan(&opts, 0, t0, t0, &pause));
    assert_true(pause == 0);
    for (r = 1; r < 40; ++r) {          /* a count never ends it, and pauses grow to 1 s */
        assert_true(acme_client_retry_plan(&opts, r, t0, t0 + apr_time_from_sec(1), &pause));
        assert_true(pause >= last && pause <= apr_time_from_sec(1));
        last = pause;
    }
    assert_true(last == apr_time_from_sec(1));
    assert_false(acme_client_retry_plan(&opts, 1, t0, t0 + apr_time_from_sec(10), &pause));
    /* A pause that would end past the budget is not started. */
    assert_false(acme_client_retry_plan(&opts, 30, t0, t0 + apr_time_from_msec(9500), &pause));
    assert_true(acme_client_retry_plan(&opts, 3, t0, t0 + apr_time_from_msec(9500), &pause));
    opts.max_bad_nonce_retries = 3;     /* the optional cap */
    assert_false(acme_client_retry_plan(&opts, 3, t0, t0, &pause));
    assert_true(acme_client_retry_plan(NULL, 0, t0, t0 + apr_time_from_sec(44), &pause));
    assert_false(acme_client_retry_plan(NULL, 0, t0, t0 + apr_time_from_sec(45), &pause));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_renewal_info),
        cmocka_unit_test(test_renewal_info_rejects_bad_windows),
        cmocka_unit_test(test_authz_parse),
        cmocka_unit_test(test_authz_parse_rejects_garbage),
        cmocka_unit_test(test_directory_meta),
        cmocka_unit_test(test_directory_without_meta),
        cmocka_unit_test(test_create_needs_a_directory),
        cmocka_unit_test(test_dns01_value),
        cmocka_unit_test(test_retry_plan),
        cmocka_unit_test(test_finalize_early),
        cmocka_unit_test(test_shared_directory_and_nonces),
        cmocka_unit_test(test_bad_nonce_retried_past_any_count),
        cmocka_unit_test(test_bad_nonce_retries_end_with_the_budget),
    };
    return cmocka_run_group_tests_name("client", tests, unit_setup_pool, unit_teardown_pool);
}
