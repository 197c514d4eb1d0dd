/*
 * The header parsing under the HTTPS transport (src/acme_http.c): what a CA, a proxy or anyone
 * on the path sends back. First byte:
 *   0  header lines, one per input line, fed as curl would (status lines restart a response);
 *   1  a Retry-After value;
 *   2  a Link header value, resolved against a fixed request URL;
 *   3  URL resolution: "base\nref".
 */
#include "fuzz_common.h"
#include "acme_http.h"

#define BASE_URL "https://ca.example/acme/order/1"

static void check_links(const apr_array_header_t *links)
{
    int i;

    for (i = 0; i < links->nelts; ++i) {
        const acme_http_link_t *l = &APR_ARRAY_IDX(links, i, acme_http_link_t);
        FUZZ_ASSERT(l->url && l->rel);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    apr_time_t now = apr_time_from_sec(1700000000);
    size_t off = 1;

    if (size < 1) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0: {
        acme_http_response_t *resp = acme_http_response_make(p);
        char *line;
        while ((line = fuzz_line(p, data, size, &off)) != NULL) {
            /* with and without CRLF, and the raw length (the line may hold a NUL) */
            acme_http_response_header(resp, p, line, strlen(line), BASE_URL, now);
        }
        check_links(resp->links);
        (void)acme_http_link(resp, "up");
        (void)acme_http_links(resp, "alternate", p);
        (void)acme_http_is_type(resp, "application/problem+json");
        break;
    }
    case 1: {
        apr_time_t t = acme_http_parse_retry_after(fuzz_str(p, data + 1, size - 1), now);
        (void)t;
        break;
    }
    case 2: {
        apr_array_header_t *links = apr_array_make(p, 2, sizeof(acme_http_link_t));
        acme_http_parse_links(p, fuzz_str(p, data + 1, size - 1), BASE_URL, links);
        check_links(links);
        break;
    }
    default: {
        char *base = fuzz_line(p, data, size, &off);
        char *ref = fuzz_line(p, data, size, &off);
        (void)acme_http_resolve_url(p, base, ref ? ref : "");
        break;
    }
    }
    return 0;
}
