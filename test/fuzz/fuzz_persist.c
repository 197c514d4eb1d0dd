/*
 * dns-persist-01 (src/acme_persist.c): the TXT value of a _validation-persist record as the
 * worker reads it from DNS, the verdict over a set of such values, and the DNS answer they come
 * from. First byte:
 *   0  one TXT value: parsed, then checked (alone) against a fixed CA and account
 *   1  several TXT values, one per line, checked together
 *   2  a DNS message (its own id is taken as the query's): the TXT values in it
 *   3  jobs/<domain>.persist.json (what the records were last checked against), then checked
 */
#include "fuzz_common.h"
#include "acme_persist.h"

#define ISSUER "authority.example"
#define HASHED "https://ca.example/account-hash/sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw"

static acme_persist_want_t fuzz_want(apr_pool_t *p, int wildcard)
{
    apr_array_header_t *issuers = apr_array_make(p, 1, sizeof(const char *));
    apr_array_header_t *uris = apr_array_make(p, 1, sizeof(const char *));

    APR_ARRAY_PUSH(issuers, const char *) = ISSUER;
    APR_ARRAY_PUSH(uris, const char *) = HASHED;
    return (acme_persist_want_t){
        .fqdn = "_validation-persist.example.com", .issuers = issuers, .accounturis = uris,
        .expected = acme_persist_value(p, ISSUER, HASHED, wildcard, 0), .wildcard = wildcard,
        .now = 1800000000,
    };
}

static void fuzz_check(apr_pool_t *p, apr_array_header_t *txts, int wildcard)
{
    acme_persist_want_t want = fuzz_want(p, wildcard);
    acme_persist_record_t rec;
    const char *why = NULL;
    acme_persist_verdict_t v = acme_persist_check(p, txts, &want, &rec, &why);
    const char *c;

    FUZZ_ASSERT(why != NULL && strlen(why) < 4096);
    for (c = why; *c; ++c) {
        FUZZ_ASSERT(*c >= 0x20 && *c < 0x7f);   /* a log line: nothing a terminal acts on */
    }
    if (v == ACME_PERSIST_OK) {
        FUZZ_ASSERT(!strcmp(rec.issuer, ISSUER) && !strcmp(rec.accounturi, HASHED));
        FUZZ_ASSERT(!wildcard || rec.wildcard);
        FUZZ_ASSERT(!rec.has_until || rec.persist_until > want.now);
    }
}

static void fuzz_value(apr_pool_t *p, const char *text)
{
    apr_array_header_t *txts = apr_array_make(p, 1, sizeof(const char *));
    acme_persist_record_t rec;
    const char *reason = NULL;

    if (acme_persist_parse(p, text, &rec, &reason) == APR_SUCCESS) {
        FUZZ_ASSERT(rec.issuer && rec.accounturi && *rec.accounturi);
        FUZZ_ASSERT(acme_persist_issuer_norm(p, rec.issuer)
                    && !strcmp(acme_persist_issuer_norm(p, rec.issuer), rec.issuer));
    }
    else {
        FUZZ_ASSERT(reason != NULL);
    }
    APR_ARRAY_PUSH(txts, const char *) = text;
    fuzz_check(p, txts, 0);
    fuzz_check(p, txts, 1);
}

static void fuzz_values(apr_pool_t *p, char *text)
{
    apr_array_header_t *txts = apr_array_make(p, 4, sizeof(const char *));
    char *line, *last = NULL;

    for (line = apr_strtok(text, "\n", &last); line; line = apr_strtok(NULL, "\n", &last)) {
        APR_ARRAY_PUSH(txts, const char *) = line;
    }
    fuzz_check(p, txts, txts->nelts % 2);
}

static void fuzz_answer(apr_pool_t *p, const uint8_t *m, size_t len)
{
    unsigned int id = len >= 2 ? (unsigned int)(m[0] << 8 | m[1]) : 0;
    apr_array_header_t *txts = NULL;

    if (acme_persist_txt_answer(p, m, len, id, &txts) == APR_SUCCESS) {
        FUZZ_ASSERT(txts && txts->nelts <= 64);
        fuzz_check(p, txts, 0);
    }
}

static void fuzz_watch(apr_pool_t *p, const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    apr_array_header_t *watches = NULL, *txts = apr_array_make(p, 1, sizeof(const char *));
    apr_time_t at = 0;
    int i;

    acme_persist_watch_parse(p, doc, &watches, &at);
    json_decref(doc);
    FUZZ_ASSERT(watches && at >= 0);
    APR_ARRAY_PUSH(txts, const char *) = "authority.example; accounturi=" HASHED;
    for (i = 0; i < watches->nelts; ++i) {
        acme_persist_watch_t *w = &APR_ARRAY_IDX(watches, i, acme_persist_watch_t);
        acme_persist_record_t rec;
        const char *why = NULL;
        FUZZ_ASSERT(w->name && w->want.fqdn && w->want.expected && w->want.issuers
                    && w->want.accounturis && w->want.issuers->nelts <= 10);
        (void)acme_persist_check(p, txts, &w->want, &rec, &why);
        FUZZ_ASSERT(why != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    if (size < 1) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_value(p, fuzz_str(p, data + 1, size - 1));
        break;
    case 1:
        fuzz_values(p, fuzz_str(p, data + 1, size - 1));
        break;
    case 2:
        fuzz_answer(p, data + 1, size - 1);
        break;
    default:
        fuzz_watch(p, data + 1, size - 1);
        break;
    }
    return 0;
}
