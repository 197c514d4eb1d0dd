#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "acme_account.h"

static int acme_account_str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The scheme (up to ':') in lower case: RFC 3986 schemes are case-insensitive. */
static char *acme_account_scheme_lower(apr_pool_t *p, const char *url)
{
    char *s = apr_pstrdup(p, url);
    char *c;

    for (c = s; *c && *c != ':'; ++c) {
        *c = (char)apr_tolower((unsigned char)*c);
    }
    return s;
}

const char *acme_account_contact_canon(apr_pool_t *p, const char *const *contact, int n)
{
    apr_array_header_t *list = apr_array_make(p, n > 0 ? n : 1, sizeof(const char *));
    json_t *arr = json_array();
    char *text;
    const char *out;
    int i;

    for (i = 0; contact && i < n; ++i) {
        if (contact[i] && *contact[i]) {
            APR_ARRAY_PUSH(list, const char *) = acme_account_scheme_lower(p, contact[i]);
        }
    }
    qsort(list->elts, (size_t)list->nelts, sizeof(const char *), acme_account_str_cmp);
    for (i = 0; i < list->nelts; ++i) {
        const char *c = APR_ARRAY_IDX(list, i, const char *);
        if (i == 0 || strcmp(c, APR_ARRAY_IDX(list, i - 1, const char *))) {
            json_array_append_new(arr, json_string(c));
        }
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    out = apr_pstrdup(p, text ? text : "[]");
    free(text);
    return out;
}

acme_account_contact_t acme_account_contact_check(const acme_job_account_t *rec,
                                                  const char *configured)
{
    if (!configured) {
        return ACME_ACCOUNT_CONTACT_SAME;
    }
    if (!rec->contact_config) {
        return ACME_ACCOUNT_CONTACT_ADOPT;
    }
    return strcmp(rec->contact_config, configured) ? ACME_ACCOUNT_CONTACT_PUSH
                                                   : ACME_ACCOUNT_CONTACT_SAME;
}

acme_account_tos_t acme_account_tos_check(const acme_job_account_t *rec,
                                          const char *directory_tos)
{
    if (!directory_tos || !*directory_tos) {
        return ACME_ACCOUNT_TOS_SAME;
    }
    if (!rec->tos_agreed) {
        return ACME_ACCOUNT_TOS_ADOPT;
    }
    if (!strcmp(rec->tos_agreed, directory_tos)) {
        return ACME_ACCOUNT_TOS_SAME;
    }
    return rec->tos_announced && !strcmp(rec->tos_announced, directory_tos)
           ? ACME_ACCOUNT_TOS_ANNOUNCED : ACME_ACCOUNT_TOS_CHANGED;
}

int acme_account_upkeep_due(const acme_job_account_t *rec, const char *contact_cfg,
                            apr_time_t now)
{
    if (acme_account_contact_check(rec, contact_cfg) == ACME_ACCOUNT_CONTACT_PUSH) {
        return 1;
    }
    return rec->tos_checked_at <= 0 || now - rec->tos_checked_at >= ACME_ACCOUNT_TOS_RECHECK
           || rec->tos_checked_at > now + ACME_ACCOUNT_TOS_RECHECK;
}

int acme_account_tos_blocked(acme_job_account_t *rec, int agreement, int *cleared)
{
    if (cleared) {
        *cleared = 0;
    }
    if (!rec->tos_blocked_at) {
        return 0;
    }
    if ((rec->tos_blocked_agreement != 0) != (agreement != 0)) {
        rec->tos_blocked = NULL;
        rec->tos_blocked_at = 0;
        rec->tos_blocked_agreement = 0;
        if (cleared) {
            *cleared = 1;
        }
        return 0;
    }
    return 1;
}

void acme_account_tos_block(acme_job_account_t *rec, apr_pool_t *p, const char *terms,
                            int agreement, apr_time_t now)
{
    rec->tos_blocked = terms ? apr_pstrdup(p, terms) : NULL;
    rec->tos_blocked_at = now;
    rec->tos_blocked_agreement = agreement != 0;
    if (terms) {
        /* Announced with the block: a later look at the directory need not say it again. */
        rec->tos_announced = rec->tos_blocked;
    }
}

void acme_account_tos_agree(acme_job_account_t *rec, apr_pool_t *p, const char *terms)
{
    rec->tos_blocked = NULL;
    rec->tos_blocked_at = 0;
    rec->tos_blocked_agreement = 0;
    if (terms) {
        rec->tos_agreed = apr_pstrdup(p, terms);
        rec->tos_announced = NULL;
    }
}

const char *acme_account_contact_parse(apr_pool_t *p, const char *arg, const char **why)
{
    const char *addr = arg, *at;
    const char *c;

    if (!strncasecmp(arg, "mailto:", 7)) {
        addr = arg + 7;
    }
    else if (strchr(arg, ':')) {
        *why = apr_psprintf(p, "'%s': only mailto: contacts are supported", arg);
        return NULL;
    }
    at = strchr(addr, '@');
    for (c = addr; *c; ++c) {
        if (apr_iscntrl((unsigned char)*c) || apr_isspace((unsigned char)*c)
            || strchr("?,;<>\"()[]\\", *c)) {
            break;
        }
    }
    if (*c || !at || at == addr || !at[1] || strchr(at + 1, '@') || strlen(addr) > 254) {
        *why = apr_psprintf(p, "'%s' is not one e-mail address (mailto:user@example.org; no "
                            "?headers, no lists)", arg);
        return NULL;
    }
    return apr_pstrcat(p, "mailto:", addr, NULL);
}

/* The canonical JSON array back as the list acme_client_account_update sends. */
static const char *const *acme_account_contact_list(apr_pool_t *p, const char *canon, int *n)
{
    json_t *arr = json_loads(canon, 0, NULL), *v;
    const char **list;
    size_t i;

    *n = 0;
    list = apr_pcalloc(p, sizeof(*list) * (json_array_size(arr) + 1));
    json_array_foreach(arr, i, v) {
        if (json_is_string(v)) {
            list[(*n)++] = apr_pstrdup(p, json_string_value(v));
        }
    }
    json_decref(arr);
    return list;
}

static void acme_account_sync_tos(acme_client_t *c, apr_pool_t *rec_pool,
                                  acme_job_account_t *rec, int agreement,
                                  acme_account_sync_t *out)
{
    const acme_client_meta_t *meta = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_client_meta(c, &meta, &res) != APR_SUCCESS) {
        return;
    }
    rec->tos_checked_at = apr_time_now();
    out->changed = 1;
    out->terms = meta->terms_of_service;
    if (out->terms && (!rec->tos_current || strcmp(rec->tos_current, out->terms))) {
        rec->tos_current = apr_pstrdup(rec_pool, out->terms);
        out->changed = 1;
    }
    out->tos = acme_account_tos_check(rec, out->terms);
    if (out->tos == ACME_ACCOUNT_TOS_ADOPT) {
        rec->tos_agreed = apr_pstrdup(rec_pool, out->terms);
        out->changed = 1;
    }
    else if (out->tos == ACME_ACCOUNT_TOS_CHANGED) {
        rec->tos_announced = apr_pstrdup(rec_pool, out->terms);
        out->changed = 1;
        if (agreement) {
            acme_account_tos_agree(rec, rec_pool, out->terms);
            out->tos_agreed_now = 1;
        }
    }
}

void acme_account_sync(acme_client_t *c, apr_pool_t *p, apr_pool_t *rec_pool,
                       acme_job_account_t *rec, const char *contact_cfg, int agreement,
                       acme_account_sync_t *out)
{
    const char *const *list;
    int n = 0;

    *out = (acme_account_sync_t){ .tos = ACME_ACCOUNT_TOS_SAME };
    acme_result_reset(&out->contact_error);
    acme_account_sync_tos(c, rec_pool, rec, agreement, out);
    out->contact = acme_account_contact_check(rec, contact_cfg);
    if (out->contact == ACME_ACCOUNT_CONTACT_SAME) {
        return;
    }
    if (out->contact == ACME_ACCOUNT_CONTACT_PUSH) {
        list = acme_account_contact_list(p, contact_cfg, &n);
        if (acme_client_account_update(c, p, list, n, NULL, &out->contact_error)
            != APR_SUCCESS) {
            return;
        }
        out->contact_pushed = 1;
    }
    rec->contact_config = apr_pstrdup(rec_pool, contact_cfg);
    out->changed = 1;
}
