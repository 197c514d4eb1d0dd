#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_time.h>

#include "acme_b64.h"
#include "acme_crypto.h"
#include "acme_dns01.h"
#include "acme_persist.h"

#define ACME_PERSIST_SHOWN_MAX 300
#define ACME_PERSIST_MAX_TXTS 64

const char *acme_persist_fqdn(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, ACME_PERSIST_PREFIX, strncmp(name, "*.", 2) ? name : name + 2, NULL);
}

/* A DNS value for a log line: printable ASCII only, bounded. */
static const char *acme_persist_shown(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i, max = n > ACME_PERSIST_SHOWN_MAX ? ACME_PERSIST_SHOWN_MAX : n;
    char *out = apr_palloc(p, max + 4);

    for (i = 0; i < max; ++i) {
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    }
    strcpy(out + max, n > max ? "..." : "");
    return out;
}

const char *acme_persist_issuer_norm(apr_pool_t *p, const char *name)
{
    apr_size_t n = name ? strlen(name) : 0, i, label = 0;
    char *out;

    if (n > 0 && name[n - 1] == '.') {
        --n;        /* the draft compares names without the trailing dot */
    }
    if (n == 0 || n > 253) {
        return NULL;
    }
    out = apr_pstrmemdup(p, name, n);
    for (i = 0; i < n; ++i) {
        char c = (char)apr_tolower(out[i]);
        out[i] = c;
        if (c == '.') {
            if (label == 0 || out[i - 1] == '-') {
                return NULL;
            }
            label = 0;
            continue;
        }
        if (!(apr_isalnum(c) || (c == '-' && label > 0)) || ++label > 63) {
            return NULL;
        }
    }
    /* label == 0 here means "a..": an empty last label, not a name */
    return (label == 0 || out[n - 1] == '-') ? NULL : out;
}

static const char *acme_persist_skip_wsp(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        ++s;
    }
    return s;
}

/* persistUntil: a base-10 integer, nothing else; the draft rejects the record otherwise. */
static int acme_persist_until(const char *v, apr_int64_t *out)
{
    apr_int64_t t = 0;

    if (!*v || strlen(v) > 18) {
        return 0;
    }
    for (; *v; ++v) {
        if (*v < '0' || *v > '9') {
            return 0;
        }
        t = t * 10 + (*v - '0');
    }
    *out = t;
    return 1;
}

/* One known parameter into rec; 0 with *reason for a duplicate or a bad value. */
static int acme_persist_param(apr_pool_t *p, const char *tag, const char *value,
                              acme_persist_record_t *rec, unsigned *seen, const char **reason)
{
    static const char *const known[] = { "accounturi", "policy", "persistUntil" };
    unsigned i;

    for (i = 0; i < 3 && strcmp(tag, known[i]); ++i) {
    }
    if (i == 3) {
        return 1;   /* unknown tags are ignored (draft §4.1 item 1) */
    }
    if (*seen & (1u << i)) {
        *reason = apr_psprintf(p, "the parameter %s appears twice", tag);
        return 0;
    }
    *seen |= 1u << i;
    if (i == 0) {
        rec->accounturi = value;
    }
    else if (i == 1) {
        rec->wildcard = !strcasecmp(value, "wildcard");
    }
    else if (!(rec->has_until = acme_persist_until(value, &rec->persist_until))) {
        *reason = apr_psprintf(p, "persistUntil=%s is not a base-10 UNIX time",
                               acme_persist_shown(p, value));
        return 0;
    }
    return 1;
}

/* tag *WSP "=" *WSP value (RFC 8659 §4.2); advances *s. */
static int acme_persist_next(apr_pool_t *p, const char **s, const char **tag, const char **value)
{
    const char *t = *s, *v;

    while (apr_isalnum(*t) || *t == '-') {
        ++t;
    }
    if (t == *s) {
        return 0;
    }
    *tag = apr_pstrmemdup(p, *s, (apr_size_t)(t - *s));
    t = acme_persist_skip_wsp(t);
    if (*t != '=') {
        return 0;
    }
    v = t = acme_persist_skip_wsp(t + 1);
    while (*t >= 0x21 && *t <= 0x7e && *t != ';') {
        ++t;
    }
    *value = apr_pstrmemdup(p, v, (apr_size_t)(t - v));
    *s = acme_persist_skip_wsp(t);
    return 1;
}

apr_status_t acme_persist_parse(apr_pool_t *p, const char *text, acme_persist_record_t *rec,
                                const char **reason)
{
    const char *s = acme_persist_skip_wsp(text ? text : ""), *start = s, *tag, *value;
    unsigned seen = 0;

    *rec = (acme_persist_record_t){ .issuer = NULL };
    while (apr_isalnum(*s) || *s == '-' || *s == '.') {
        ++s;
    }
    rec->issuer = acme_persist_issuer_norm(p, apr_pstrmemdup(p, start, (apr_size_t)(s - start)));
    if (!rec->issuer) {
        *reason = "it does not start with an issuer domain name";
        return APR_EINVAL;
    }
    s = acme_persist_skip_wsp(s);
    while (*s == ';') {
        s = acme_persist_skip_wsp(s + 1);
        if (!*s) {
            break;
        }
        if (!acme_persist_next(p, &s, &tag, &value)) {
            *reason = "a parameter is not tag=value";
            return APR_EINVAL;
        }
        if (!acme_persist_param(p, tag, value, rec, &seen, reason)) {
            return APR_EINVAL;
        }
    }
    if (*s) {
        *reason = apr_psprintf(p, "unexpected text '%s'", acme_persist_shown(p, s));
        return APR_EINVAL;
    }
    if (!rec->accounturi || !*rec->accounturi) {
        *reason = "it has no accounturi parameter";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

const char *acme_persist_account_uri(apr_pool_t *p, const char *prefix, const char *domain,
                                     const char *thumbprint, const char *account_url)
{
    apr_size_t dlen = strlen(domain), tlen = strlen(thumbprint), ulen = strlen(account_url);
    unsigned char digest[32], *buf;

    if (dlen == 0 || dlen > 255) {
        return NULL;
    }
    buf = apr_palloc(p, 1 + dlen + tlen + ulen);
    buf[0] = (unsigned char)dlen;
    memcpy(buf + 1, domain, dlen);
    memcpy(buf + 1 + dlen, thumbprint, tlen);
    memcpy(buf + 1 + dlen + tlen, account_url, ulen);
    acme_crypto_sha256(buf, 1 + dlen + tlen + ulen, digest);
    return apr_pstrcat(p, prefix, "sha-256/", acme_b64_encode(p, digest, sizeof(digest)), NULL);
}

const char *acme_persist_value(apr_pool_t *p, const char *issuer, const char *accounturi,
                               int wildcard, apr_int64_t until)
{
    return apr_pstrcat(p, issuer, "; accounturi=", accounturi,
                       wildcard ? "; policy=wildcard" : "",
                       until > 0 ? apr_psprintf(p, "; persistUntil=%" APR_INT64_T_FMT, until)
                                 : "", NULL);
}

static int acme_persist_listed(const apr_array_header_t *list, const char *s)
{
    int i;

    for (i = 0; s && list && i < list->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(list, i, const char *), s)) {
            return 1;
        }
    }
    return 0;
}

/* The verdict for one value, and the sentence that goes with it. */
static acme_persist_verdict_t acme_persist_one(apr_pool_t *p, const char *txt,
                                               const acme_persist_want_t *want,
                                               acme_persist_record_t *rec, const char **why)
{
    const char *reason = NULL, *shown = acme_persist_shown(p, txt);
    apr_status_t rv = acme_persist_parse(p, txt, rec, &reason);
    char date[APR_RFC822_DATE_LEN];

    if (!acme_persist_listed(want->issuers, rec->issuer)) {
        *why = apr_psprintf(p, "the TXT records at %s are for another CA (found \"%s\"; this CA's "
                            "issuer domain names: %s); add a record \"%s\"", want->fqdn, shown,
                            apr_array_pstrcat(p, want->issuers, ','), want->expected);
        return ACME_PERSIST_OTHER_CA;
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "the TXT record at %s is malformed: %s (found \"%s\"; expected "
                            "\"%s\")", want->fqdn, reason, shown, want->expected);
        return ACME_PERSIST_MALFORMED;
    }
    if (!acme_persist_listed(want->accounturis, rec->accounturi)) {
        *why = apr_psprintf(p, "the TXT record at %s names another account: expected accounturi=%s"
                            ", found accounturi=%s", want->fqdn,
                            want->accounturis && want->accounturis->nelts
                            ? APR_ARRAY_IDX(want->accounturis, 0, const char *) : "?",
                            acme_persist_shown(p, rec->accounturi));
        return ACME_PERSIST_WRONG_ACCOUNT;
    }
    if (rec->has_until && rec->persist_until <= want->now) {
        apr_rfc822_date(date, apr_time_from_sec(rec->persist_until));
        *why = apr_psprintf(p, "the TXT record at %s expired: persistUntil=%" APR_INT64_T_FMT
                            " (%s) has passed; publish \"%s\"", want->fqdn, rec->persist_until,
                            date, want->expected);
        return ACME_PERSIST_EXPIRED;
    }
    if (want->wildcard && !rec->wildcard) {
        *why = apr_psprintf(p, "a wildcard name is to be validated, but the TXT record at %s has "
                            "no policy=wildcard (found \"%s\"; expected \"%s\")", want->fqdn,
                            shown, want->expected);
        return ACME_PERSIST_NO_WILDCARD;
    }
    *why = apr_psprintf(p, "the TXT record at %s is valid for this CA and account", want->fqdn);
    return ACME_PERSIST_OK;
}

acme_persist_verdict_t acme_persist_check(apr_pool_t *p, const apr_array_header_t *txts,
                                          const acme_persist_want_t *want,
                                          acme_persist_record_t *match, const char **why)
{
    acme_persist_verdict_t best = ACME_PERSIST_NONE;
    int i;

    *match = (acme_persist_record_t){ .issuer = NULL };
    *why = apr_psprintf(p, "there is no TXT record at %s; create %s IN TXT \"%s\"", want->fqdn,
                        want->fqdn, want->expected);
    for (i = 0; txts && i < txts->nelts; ++i) {
        acme_persist_record_t rec;
        const char *one = NULL;
        acme_persist_verdict_t v = acme_persist_one(p, APR_ARRAY_IDX(txts, i, const char *),
                                                    want, &rec, &one);
        if (v > best) {
            best = v;
            *match = rec;
            *why = one;
        }
    }
    return best;
}

/* The character-strings of one TXT RDATA, joined (RFC 7208 §3.3 style). */
static const char *acme_persist_rdata(apr_pool_t *p, const unsigned char *r, apr_size_t rdlen)
{
    char *out = apr_palloc(p, rdlen + 1);
    apr_size_t i = 0, n = 0;

    while (i < rdlen) {
        apr_size_t slen = r[i];
        if (i + 1 + slen > rdlen) {
            break;
        }
        memcpy(out + n, r + i + 1, slen);
        n += slen;
        i += 1 + slen;
    }
    out[n] = '\0';
    return out;
}

apr_status_t acme_persist_txt_answer(apr_pool_t *p, const unsigned char *m, apr_size_t len,
                                     unsigned int id, apr_array_header_t **txts)
{
    apr_size_t off = 12;
    unsigned int qd, an, i;

    *txts = apr_array_make(p, 2, sizeof(const char *));
    if (len < 12 || (unsigned int)(m[0] << 8 | m[1]) != (id & 0xffff) || !(m[2] & 0x80)) {
        return APR_EINVAL;
    }
    qd = (unsigned int)(m[4] << 8 | m[5]);
    an = (unsigned int)(m[6] << 8 | m[7]);
    for (i = 0; i < qd; ++i) {
        if (!(off = acme_dns01_skip_name(m, len, off)) || (off += 4) > len) {
            return APR_EINVAL;
        }
    }
    for (i = 0; i < an && (*txts)->nelts < ACME_PERSIST_MAX_TXTS; ++i) {
        unsigned int type, rdlen;
        if (!(off = acme_dns01_skip_name(m, len, off)) || off + 10 > len) {
            return APR_EINVAL;
        }
        type = (unsigned int)(m[off] << 8 | m[off + 1]);
        rdlen = (unsigned int)(m[off + 8] << 8 | m[off + 9]);
        off += 10;
        if (off + rdlen > len) {
            return APR_EINVAL;
        }
        if (type == 16) {
            APR_ARRAY_PUSH(*txts, const char *) = acme_persist_rdata(p, m + off, rdlen);
        }
        off += rdlen;
    }
    return APR_SUCCESS;
}

const char *acme_persist_system_resolver(apr_pool_t *p, const char *path)
{
    FILE *f = fopen(path ? path : "/etc/resolv.conf", "re");
    char line[512], addr[64];
    struct in_addr in;
    const char *found = NULL;

    while (f && !found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, " nameserver %63s", addr) == 1 && inet_pton(AF_INET, addr, &in) == 1) {
            found = apr_pstrdup(p, addr);
        }
    }
    if (f) {
        fclose(f);
    }
    return found ? found : "127.0.0.1";
}

static json_t *acme_persist_strings(const apr_array_header_t *list)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(list, i, const char *)));
    }
    return arr;
}

json_t *acme_persist_watch_json(const apr_array_header_t *watches, apr_time_t notified_at)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < watches->nelts; ++i) {
        const acme_persist_watch_t *w = &APR_ARRAY_IDX(watches, i, acme_persist_watch_t);
        json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:o, s:o, s:s}",
            "name", w->name, "fqdn", w->want.fqdn, "wildcard", w->want.wildcard,
            "issuers", acme_persist_strings(w->want.issuers),
            "accounturis", acme_persist_strings(w->want.accounturis),
            "expected", w->want.expected));
    }
    return json_pack("{s:o, s:I}", "records", list,
                     "notified_at", (json_int_t)apr_time_sec(notified_at));
}

/* A JSON array of 1 to 10 strings; NULL otherwise. */
static apr_array_header_t *acme_persist_string_list(apr_pool_t *p, json_t *arr)
{
    apr_array_header_t *out;
    json_t *item;
    size_t i;

    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 10) {
        return NULL;
    }
    out = apr_array_make(p, (int)json_array_size(arr), sizeof(const char *));
    json_array_foreach(arr, i, item) {
        if (!json_is_string(item)) {
            return NULL;
        }
        APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(p, json_string_value(item));
    }
    return out;
}

void acme_persist_watch_parse(apr_pool_t *p, json_t *doc, apr_array_header_t **watches,
                              apr_time_t *notified_at)
{
    json_t *item, *at = json_object_get(doc, "notified_at");
    size_t i;

    *watches = apr_array_make(p, 2, sizeof(acme_persist_watch_t));
    *notified_at = json_is_integer(at) && json_integer_value(at) > 0
                   && json_integer_value(at) < 100000000000LL
                   ? apr_time_from_sec(json_integer_value(at)) : 0;
    json_array_foreach(json_object_get(doc, "records"), i, item) {
        acme_persist_watch_t w = {
            .name = json_string_value(json_object_get(item, "name")),
            .want = {
                .fqdn = json_string_value(json_object_get(item, "fqdn")),
                .wildcard = json_is_true(json_object_get(item, "wildcard")),
                .issuers = acme_persist_string_list(p, json_object_get(item, "issuers")),
                .accounturis = acme_persist_string_list(p, json_object_get(item,
                                                                           "accounturis")),
                .expected = json_string_value(json_object_get(item, "expected")),
            },
        };
        if (!w.name || !w.want.fqdn || !w.want.expected || !w.want.issuers
            || !w.want.accounturis || i >= 256) {
            continue;
        }
        w.name = apr_pstrdup(p, w.name);
        w.want.fqdn = apr_pstrdup(p, w.want.fqdn);
        w.want.expected = apr_pstrdup(p, w.want.expected);
        APR_ARRAY_PUSH(*watches, acme_persist_watch_t) = w;
    }
}
