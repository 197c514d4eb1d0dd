/*
 * What etcd's JSON gateway sends the cluster client (src/acme_etcd.c): a watch stream cut into
 * arbitrary chunks, and a key-value object. First byte:
 *   0  a watch stream; the next byte sets the chunk size libcurl would deliver it in
 *   1  one kv object (JSON), parsed under the prefix "/p/"
 *   2  a sealed value opened with a fixed cluster secret (src/acme_vault.c)
 */
#include "fuzz_common.h"
#include "../../src/acme_etcd.c"
#include "acme_vault.h"

static void fuzz_watch_stream(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_etcd_t etcd = { .opts = { .prefix = "/p/" } };
    acme_etcd_body_t body = { .p = p, .etcd = &etcd };
    size_t chunk = size > 0 ? (size_t)(data[0] % 64) + 1 : 1, off = 1;
    int i;

    body.events = apr_array_make(p, 4, sizeof(acme_etcd_event_t));
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (acme_etcd_watch_collect((char *)data + off, 1, n, &body) == 0) {
            break;
        }
        off += n;
    }
    free(body.data);
    if (body.events->nelts > ACME_ETCD_MAX_EVENTS) {
        abort();
    }
    for (i = 0; i < body.events->nelts; ++i) {
        const acme_etcd_event_t *e = &APR_ARRAY_IDX(body.events, i, acme_etcd_event_t);
        if (!e->kv.key || !e->kv.value || strlen(e->kv.key) > 2 * size) {
            abort();        /* never a key outside the prefix, never a NULL value */
        }
    }
}

static void fuzz_kv(apr_pool_t *p, const uint8_t *data, size_t size)
{
    acme_etcd_t etcd = { .opts = { .prefix = "/p/" } };
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    acme_etcd_kv_t kv;

    if (j && acme_etcd_kv_parse(&etcd, p, j, &kv)) {
        if (!kv.key || !kv.value || kv.value[kv.value_len] != '\0') {
            abort();
        }
    }
    json_decref(j);
}

static void fuzz_vault(apr_pool_t *p, const uint8_t *data, size_t size)
{
    static const char secret[] = "a fixed fuzzing secret of at least 32 bytes";
    acme_vault_t *vault = NULL;
    acme_result_t res;
    char *out = NULL;
    apr_size_t len = 0;

    acme_result_reset(&res);
    if (acme_vault_create(&vault, p, secret, sizeof(secret) - 1, &res) != APR_SUCCESS) {
        abort();
    }
    if (acme_vault_open(vault, p, "k", fuzz_str(p, data, size), &out, &len, &res)
        == APR_SUCCESS && out[len] != '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_watch_stream(p, data + 1, size - 1);
        break;
    case 1:
        fuzz_kv(p, data + 1, size - 1);
        break;
    default:
        fuzz_vault(p, data + 1, size - 1);
        break;
    }
    return 0;
}
