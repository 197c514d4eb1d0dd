/*
 * The dns-01 propagation check (src/acme_dns01.c): the DNS answer a resolver sends back to
 * "ACMEDns01Propagation check", the query built for a name, and the list of pending teardowns
 * kept in jobs/<domain>.dns01.json. acme_dns01.c is compiled into this harness to reach its
 * static parsers without a socket. First byte:
 *   0  a DNS message (its own id is taken as the query's); looked for the fixed TXT value
 *   1  a name: query built, then walked back by the answer parser's name skipper
 *   2  a pending-teardown file
 */
#include "fuzz_common.h"
#include "../../src/acme_dns01.c"

#define TXT_VALUE "LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ"

static const char *scratch_file(void)
{
    static char path[4096];

    if (!path[0]) {
        snprintf(path, sizeof(path), "%s", fuzz_scratch("fuzz_dns01.json"));
    }
    return path;
}

static void fuzz_answer(const uint8_t *m, size_t len)
{
    apr_uint16_t id = len >= 2 ? (apr_uint16_t)(m[0] << 8 | m[1]) : 0;

    (void)acme_dns01_answer_has(m, len, id, TXT_VALUE);
    (void)acme_dns01_answer_has(m, len, id, "");
}

static void fuzz_query(apr_pool_t *p, const char *name)
{
    unsigned char q[300];
    const char *fqdn = acme_dns01_fqdn(p, name);
    apr_size_t n = fqdn ? acme_dns01_query(q, sizeof(q), fqdn, 0x1234) : 0;

    if (n) {
        FUZZ_ASSERT(n >= 12 + 1 + 4 && n <= sizeof(q));
        FUZZ_ASSERT(acme_dns01_skip_name(q, n, 12) == n - 4);
    }
}

static void fuzz_pending(apr_pool_t *p, const uint8_t *data, size_t size)
{
    const char *path = scratch_file();
    acme_dns01_record_t rec = { .fqdn = "_acme-challenge.example.org", .value = TXT_VALUE };
    FILE *f = fopen(path, "wb");
    json_t *list, *entry;
    size_t i;

    if (!f) {
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) {
        abort();
    }
    fclose(f);
    list = acme_dns01_pending_load(p, path);
    FUZZ_ASSERT(json_is_array(list));
    json_array_foreach(list, i, entry) {
        (void)acme_dns01_same(entry, &rec);
    }
    json_decref(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_answer(data + 1, size - 1);
        break;
    case 1:
        fuzz_query(p, fuzz_str(p, data + 1, size - 1));
        break;
    default:
        fuzz_pending(p, data + 1, size - 1);
        break;
    }
    return 0;
}
