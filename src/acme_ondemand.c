/*
 * On-demand certificates: which SNI names may get one, when, and the registry that remembers
 * the answers. See acme_ondemand.h.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "acme_names.h"
#include "acme_ondemand.h"
#include "acme_plan.h"
#include "acme_seal.h"

#define ACME_ONDEMAND_BACKOFF_MIN apr_time_from_sec(60)
#define ACME_ONDEMAND_BACKOFF_MAX apr_time_from_sec(86400)
#define ACME_ONDEMAND_MAC_CONTEXT "mod_acme ondemand registry v1"
#define ACME_ONDEMAND_MAX_ENTRIES 100000

/* ------------------------------------------------------------------ rate */

apr_status_t acme_ondemand_rate_parse(const char *text, acme_ondemand_rate_t *rate,
                                      const char **why, apr_pool_t *p)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    char *end = NULL;
    long count;

    if (!slash) {
        *why = "expected COUNT/PERIOD, e.g. 10/1m";
        return APR_EINVAL;
    }
    count = strtol(text, &end, 10);
    if (end != slash || count < 1 || count > 100000) {
        *why = "the count before '/' must be a whole number from 1 to 100000";
        return APR_EINVAL;
    }
    if (acme_plan_duration_parse(slash + 1, &rate->period, why, p) != APR_SUCCESS
        || rate->period <= 0) {
        *why = "the period after '/' must be a duration such as 1m, 1h or 1d";
        return APR_EINVAL;
    }
    rate->count = (int)count;
    return APR_SUCCESS;
}

int acme_ondemand_bucket_take(acme_ondemand_bucket_t *b, const acme_ondemand_rate_t *rate,
                              apr_time_t now)
{
    if (b->at == 0 || now < b->at) {
        b->tokens = rate->count;        /* first use, or the clock went back: start full */
    }
    else {
        b->tokens += (double)(now - b->at) * rate->count / (double)rate->period;
        if (b->tokens > rate->count) {
            b->tokens = rate->count;
        }
    }
    b->at = now;
    if (b->tokens < 1.0) {
        return 0;
    }
    b->tokens -= 1.0;
    return 1;
}

/* ------------------------------------------------------------------ names and decisions */

const char *acme_ondemand_name(apr_pool_t *p, const char *sni, int allow_ip, const char **why)
{
    acme_ident_t ident;

    if (!sni || !*sni) {
        *why = "the client sent no server name";
        return NULL;
    }
    if (acme_names_parse(p, sni, &ident, why) != APR_SUCCESS) {
        return NULL;
    }
    if (acme_names_is_wildcard(ident.value)) {
        *why = "a wildcard is never ordered on demand";
        return NULL;
    }
    if (ident.type == ACME_IDENT_IP && !allow_ip) {
        *why = "an IP address is not ordered on demand";
        return NULL;
    }
    return ident.value;
}

acme_ondemand_registry_t *acme_ondemand_registry_make(apr_pool_t *p)
{
    acme_ondemand_registry_t *reg = apr_pcalloc(p, sizeof(*reg));

    reg->entries = apr_hash_make(p);
    return reg;
}

static acme_ondemand_entry_t *acme_ondemand_entry(acme_ondemand_registry_t *reg,
                                                  const char *name)
{
    acme_ondemand_entry_t *e = apr_hash_get(reg->entries, name, APR_HASH_KEY_STRING);
    apr_pool_t *p = apr_hash_pool_get(reg->entries);

    if (!e) {
        e = apr_pcalloc(p, sizeof(*e));
        e->name = apr_pstrdup(p, name);
        apr_hash_set(reg->entries, e->name, APR_HASH_KEY_STRING, e);
    }
    return e;
}

static int acme_ondemand_count_approved(const acme_ondemand_registry_t *reg)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = apr_hash_first(NULL, reg->entries); hi; hi = apr_hash_next(hi)) {
        const acme_ondemand_entry_t *e = apr_hash_this_val(hi);
        n += e->state == ACME_ONDEMAND_APPROVED;
    }
    return n;
}

acme_ondemand_verdict_t acme_ondemand_decide(acme_ondemand_registry_t *reg, apr_pool_t *p,
                                             const char *name,
                                             const acme_ondemand_policy_t *pol, apr_time_t now,
                                             const char **why)
{
    acme_ondemand_entry_t *e = apr_hash_get(reg->entries, name, APR_HASH_KEY_STRING);

    if (e && e->state == ACME_ONDEMAND_APPROVED) {
        if (e->next_try > now) {
            *why = apr_psprintf(p, "its last %d order(s) failed; the next try waits %"
                                APR_TIME_T_FMT " s", e->failures, apr_time_sec(e->next_try - now));
            return ACME_ONDEMAND_LATER;
        }
        *why = "approved";
        return ACME_ONDEMAND_SERVE;
    }
    if (e && e->state == ACME_ONDEMAND_REFUSED && e->until > now) {
        *why = "the ask endpoint refused it recently";
        return ACME_ONDEMAND_LATER;
    }
    if (pol->max_domains > 0 && acme_ondemand_count_approved(reg) >= pol->max_domains) {
        *why = apr_psprintf(p, "ACMEOnDemandMax (%d) on-demand domains exist already",
                            pol->max_domains);
        return ACME_ONDEMAND_LATER;
    }
    if (!acme_ondemand_bucket_take(&reg->bucket, &pol->rate, now)) {
        *why = apr_psprintf(p, "ACMEOnDemandRate (%d per %" APR_TIME_T_FMT " s) is used up",
                            pol->rate.count, apr_time_sec(pol->rate.period));
        return ACME_ONDEMAND_LATER;
    }
    *why = "new name";
    return ACME_ONDEMAND_ASK;
}

void acme_ondemand_answered(acme_ondemand_registry_t *reg, const char *name, int yes,
                            apr_time_t now)
{
    acme_ondemand_entry_t *e = acme_ondemand_entry(reg, name);

    e->state = yes ? ACME_ONDEMAND_APPROVED : ACME_ONDEMAND_REFUSED;
    e->asked = now;
    e->until = yes ? 0 : now + ACME_ONDEMAND_NO_TTL;
    e->failures = 0;
    e->next_try = 0;
}

void acme_ondemand_order_done(acme_ondemand_registry_t *reg, const char *name, int ok,
                              apr_time_t now)
{
    acme_ondemand_entry_t *e = apr_hash_get(reg->entries, name, APR_HASH_KEY_STRING);
    apr_interval_time_t wait = ACME_ONDEMAND_BACKOFF_MIN;
    int i;

    if (!e) {
        return;
    }
    if (ok) {
        e->failures = 0;
        e->next_try = 0;
        return;
    }
    e->failures++;
    for (i = 1; i < e->failures && wait < ACME_ONDEMAND_BACKOFF_MAX; ++i) {
        wait *= 2;
    }
    e->next_try = now + (wait < ACME_ONDEMAND_BACKOFF_MAX ? wait : ACME_ONDEMAND_BACKOFF_MAX);
}

int acme_ondemand_forget(acme_ondemand_registry_t *reg, const char *name)
{
    int was = apr_hash_get(reg->entries, name, APR_HASH_KEY_STRING) != NULL;

    apr_hash_set(reg->entries, name, APR_HASH_KEY_STRING, NULL);
    return was;
}

static int acme_ondemand_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

apr_array_header_t *acme_ondemand_approved(const acme_ondemand_registry_t *reg, apr_pool_t *p)
{
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(const char *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, reg->entries); hi; hi = apr_hash_next(hi)) {
        const acme_ondemand_entry_t *e = apr_hash_this_val(hi);
        if (e->state == ACME_ONDEMAND_APPROVED) {
            APR_ARRAY_PUSH(out, const char *) = e->name;
        }
    }
    qsort(out->elts, (size_t)out->nelts, sizeof(const char *), acme_ondemand_cmp);
    return out;
}

/* ------------------------------------------------------------------ the registry on disk */

static json_t *acme_ondemand_body(const acme_ondemand_registry_t *reg, apr_pool_t *p,
                                  apr_time_t now)
{
    json_t *entries = json_object();
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, reg->entries); hi; hi = apr_hash_next(hi)) {
        const acme_ondemand_entry_t *e = apr_hash_this_val(hi);
        if (e->state == ACME_ONDEMAND_UNKNOWN
            || (e->state == ACME_ONDEMAND_REFUSED && e->until <= now)) {
            continue;       /* an expired refusal is as good as never asked */
        }
        json_object_set_new(entries, e->name, json_pack(
            "{s:s, s:I, s:I, s:i, s:I}",
            "state", e->state == ACME_ONDEMAND_APPROVED ? "approved" : "refused",
            "asked", (json_int_t)e->asked, "until", (json_int_t)e->until,
            "failures", e->failures, "next_try", (json_int_t)e->next_try));
    }
    /* whole milli-tokens: a real would not print back to the same MAC'd text */
    return json_pack("{s:o, s:{s:I, s:I}}", "entries", entries, "bucket",
                     "millitokens", (json_int_t)(reg->bucket.tokens * 1000.0),
                     "at", (json_int_t)reg->bucket.at);
}

static const char *acme_ondemand_mac(apr_pool_t *p, const unsigned char *key, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    acme_seal_part_t part = { .data = text, .len = text ? strlen(text) : 0 };
    const char *mac = text ? acme_seal_proof(p, key, ACME_ONDEMAND_MAC_CONTEXT, &part, 1) : NULL;

    free(text);
    return mac;
}

json_t *acme_ondemand_registry_json(const acme_ondemand_registry_t *reg, apr_pool_t *p,
                                    const unsigned char *proof_key, apr_time_t now)
{
    json_t *body = acme_ondemand_body(reg, p, now);
    const char *mac = acme_ondemand_mac(p, proof_key, body);

    json_object_set_new(body, "mac", mac ? json_string(mac) : json_null());
    return body;
}

static int acme_ondemand_entry_read(acme_ondemand_registry_t *reg, const char *name, json_t *j)
{
    const char *state = json_string_value(json_object_get(j, "state"));
    acme_ondemand_entry_t *e;
    const char *why;

    if (!state || !acme_ondemand_name(apr_hash_pool_get(reg->entries), name, 1, &why)
        || (strcmp(state, "approved") && strcmp(state, "refused"))) {
        return 0;
    }
    e = acme_ondemand_entry(reg, name);
    e->state = !strcmp(state, "approved") ? ACME_ONDEMAND_APPROVED : ACME_ONDEMAND_REFUSED;
    e->asked = (apr_time_t)json_integer_value(json_object_get(j, "asked"));
    e->until = (apr_time_t)json_integer_value(json_object_get(j, "until"));
    e->failures = (int)json_integer_value(json_object_get(j, "failures"));
    e->next_try = (apr_time_t)json_integer_value(json_object_get(j, "next_try"));
    return e->failures >= 0;
}

apr_status_t acme_ondemand_registry_read(apr_pool_t *p, json_t *doc,
                                         const unsigned char *proof_key,
                                         acme_ondemand_registry_t **out, acme_result_t *res)
{
    json_t *body = json_is_object(doc) ? json_deep_copy(doc) : NULL, *entries, *j;
    const char *mac = json_string_value(json_object_get(doc, "mac")), *name;
    acme_ondemand_registry_t *reg = acme_ondemand_registry_make(p);
    json_t *bucket;
    int ok;

    json_object_del(body, "mac");
    ok = body && mac && acme_seal_proof_equal(mac, acme_ondemand_mac(p, proof_key, body));
    entries = json_object_get(body, "entries");
    ok = ok && json_is_object(entries) && json_object_size(entries) <= ACME_ONDEMAND_MAX_ENTRIES;
    json_object_foreach(ok ? entries : NULL, name, j) {
        ok = ok && acme_ondemand_entry_read(reg, name, j);
    }
    bucket = json_object_get(body, "bucket");
    reg->bucket.tokens = (double)json_integer_value(json_object_get(bucket, "millitokens"))
                         / 1000.0;
    reg->bucket.at = (apr_time_t)json_integer_value(json_object_get(bucket, "at"));
    json_decref(body);
    if (!ok) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                "jobs/" ACME_ONDEMAND_FILE " is not one the worker wrote (no "
                                "valid MAC, or malformed); it is ignored and no on-demand name "
                                "is trusted from it");
    }
    *out = reg;
    return APR_SUCCESS;
}
