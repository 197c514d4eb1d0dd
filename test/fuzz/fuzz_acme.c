/*
 * The ACME JSON documents a CA sends (src/acme_client.c, acme_order.c, acme_problem.c) and the
 * Replay-Nonce pool they feed. acme_client.c and acme_client_account.c are compiled into this
 * harness to reach their static parsers (directory, account, nonces) without a network. First byte:
 *   0  directory          1  account          2  authorization (+ challenge lookup)
 *   3  ARI renewalInfo    4  order update     5  stored order (job's "order")
 *   6  problem document   7  error response: byte 1 status, byte 2 content type, then body
 *   8  RFC 3339 time      9  header lines whose Replay-Nonces feed the nonce pool
 */
#include "fuzz_common.h"
#include "../../src/acme_client.c"
#include "../../src/acme_client_account.c"
#include "acme_problem.h"

static acme_client_t *fake_client(apr_pool_t *p)
{
    acme_client_t *c = apr_pcalloc(p, sizeof(*c));

    c->pool = p;
    c->directory_url = "https://ca.example/dir";
    c->account_url = "https://ca.example/acct/1";
    return c;
}

static acme_http_response_t *fake_response(apr_pool_t *p, int status, const uint8_t *body,
                                           size_t len)
{
    acme_http_response_t *resp = acme_http_response_make(p);

    resp->status = status;
    resp->body = apr_pstrmemdup(p, (const char *)body, len);
    resp->body_len = len;
    resp->content_type = "application/json";
    return resp;
}

static void fuzz_order(apr_pool_t *p, const char *body, apr_size_t len)
{
    acme_ident_t ids[2] = { { ACME_IDENT_DNS, "example.org" }, { ACME_IDENT_IP, "192.0.2.1" } };
    acme_order_t *order = acme_order_make(p, ids, 2, "secp256r1");
    acme_order_t *back = NULL;
    acme_result_t res;
    const char *json = NULL;

    acme_result_reset(&res);
    order->url = "https://ca.example/order/1";
    if (acme_order_update(order, p, body, len, &res) != APR_SUCCESS) {
        return;
    }
    /* What was accepted must survive the store's round trip. */
    FUZZ_ASSERT(acme_order_to_json(order, p, &json, &res) == APR_SUCCESS);
    FUZZ_ASSERT(acme_order_from_json(p, json, strlen(json), &back, &res) == APR_SUCCESS);
    FUZZ_ASSERT(back->status == order->status);
    FUZZ_ASSERT(acme_order_same_identifiers(back, ids, 2));
}

static void fuzz_stored_order(apr_pool_t *p, const char *body, apr_size_t len)
{
    acme_order_t *order = NULL;
    acme_result_t res;
    const char *json = NULL;

    acme_result_reset(&res);
    if (acme_order_from_json(p, body, len, &order, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(acme_order_to_json(order, p, &json, &res) == APR_SUCCESS);
        (void)acme_order_status_name(order->status);
    }
}

static void fuzz_nonces(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_client_t *c = fake_client(p);
    acme_http_response_t *resp = acme_http_response_make(p);
    acme_result_t res;
    const char *nonce;
    size_t off = 1;
    char *line;

    acme_result_reset(&res);
    while ((line = fuzz_line(p, data, size, &off)) != NULL) {
        acme_http_response_header(resp, p, line, strlen(line), c->directory_url, 0);
        note_response(c, resp);
        FUZZ_ASSERT(c->n_nonces >= 0 && c->n_nonces <= CLIENT_NONCE_POOL);
    }
    while (c->n_nonces > 0) {
        FUZZ_ASSERT(nonce_take(c, p, &nonce, &res) == APR_SUCCESS);
        FUZZ_ASSERT(*nonce && strlen(nonce) < CLIENT_NONCE_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_result_t res;
    const char *body;
    apr_size_t len;

    if (size < 1) {
        return 0;
    }
    acme_result_reset(&res);
    body = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
    len = size - 1;
    switch (data[0] % 10) {
    case 0: {
        acme_client_t *c = fake_client(p);
        acme_client_meta_t meta;
        if (directory_parse(c, fake_response(p, 200, data + 1, len), &res) == APR_SUCCESS) {
            FUZZ_ASSERT(c->dir->new_nonce && c->dir->new_account && c->dir->new_order);
        }
        (void)acme_client_meta_parse(p, body, len, &meta, &res);
        break;
    }
    case 1: {
        acme_client_account_t *acct = account_from(fake_client(p), p,
                                                   fake_response(p, 201, data + 1, len));
        FUZZ_ASSERT(acct && acct->created);
        break;
    }
    case 2: {
        acme_client_authz_t *authz = NULL;
        if (acme_client_authz_parse(p, "https://ca.example/authz/1", body, len, &authz, &res)
            == APR_SUCCESS) {
            FUZZ_ASSERT(authz->identifier.value && authz->status);
            (void)acme_client_authz_challenge(authz, "http-01");
            (void)acme_client_authz_challenge(authz, "dns-01");
        }
        break;
    }
    case 3: {
        acme_client_renewal_info_t info;
        if (acme_client_renewal_info_parse(p, body, len, 0, &info, &res) == APR_SUCCESS) {
            FUZZ_ASSERT(info.end > info.start);
        }
        break;
    }
    case 4:
        fuzz_order(p, body, len);
        break;
    case 5:
        fuzz_stored_order(p, body, len);
        break;
    case 6:
        (void)acme_problem_from_json(&res, p, "finalize", body, len, ACME_CLASS_PERMANENT);
        (void)acme_problem_is(&res, "badNonce");
        break;
    case 7: {
        static const char *const types[] = { "application/problem+json", "application/json",
                                             "text/html", NULL };
        int status = size > 1 ? 100 + data[1] * 2 : 400;
        const char *type = types[(size > 2 ? data[2] : 0) % 4];
        size_t skip = size > 3 ? 3 : size;
        (void)acme_problem_from_response(&res, p, "POST newOrder", status, type,
                                         (const char *)data + skip, size - skip,
                                         (size > 1 && data[1] & 1) ? apr_time_now() : 0);
        FUZZ_ASSERT(res.status != APR_SUCCESS);
        (void)acme_problem_short_name(res.problem_type);
        break;
    }
    case 8: {
        apr_time_t t;
        (void)acme_client_parse_time(body, &t);
        break;
    }
    default:
        fuzz_nonces(p, data, size);
        break;
    }
    return 0;
}
