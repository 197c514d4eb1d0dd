#include <string.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_names.h"

#define NAME_MAX_LEN   253
#define LABEL_MAX_LEN  63
#define IPV6_TEXT_SIZE 40   /* "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" + NUL */
#define HOST_KEY_SIZE  256

typedef enum {
    IPV4_OK = 0,
    IPV4_NOT_QUAD,
    IPV4_LEADING_ZERO,
    IPV4_RANGE
} ipv4_error_t;

/* ------------------------------------------------------------------ IP literals */

static ipv4_error_t ipv4_part(const char *s, apr_size_t len, unsigned char *out)
{
    unsigned int value = 0;

    if (len == 0 || len > 3) {
        return IPV4_NOT_QUAD;
    }
    for (apr_size_t i = 0; i < len; i++) {
        if (!apr_isdigit(s[i])) {
            return IPV4_NOT_QUAD;
        }
        value = value * 10 + (unsigned int)(s[i] - '0');
    }
    if (len > 1 && s[0] == '0') {
        return IPV4_LEADING_ZERO;
    }
    if (value > 255) {
        return IPV4_RANGE;
    }
    *out = (unsigned char)value;
    return IPV4_OK;
}

/* Strict dotted quad: exactly four decimal parts, no shorthand, no leading zeros. */
static ipv4_error_t ipv4_from_text(const char *s, apr_size_t len, unsigned char out[4])
{
    const char *end = s + len;

    for (int i = 0; i < 4; i++) {
        const char *dot = memchr(s, '.', (apr_size_t)(end - s));
        const char *part_end = dot ? dot : end;
        ipv4_error_t err;

        if ((i < 3) != (dot != NULL)) {
            return IPV4_NOT_QUAD;
        }
        err = ipv4_part(s, (apr_size_t)(part_end - s), &out[i]);
        if (err != IPV4_OK) {
            return err;
        }
        s = part_end + 1;
    }
    return IPV4_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)apr_tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Reads 1-4 hex digits at s[*i]; -1 when there are none or too many. */
static long ipv6_group(const char *s, apr_size_t len, apr_size_t *i)
{
    long value = 0;
    apr_size_t start = *i;

    while (*i < len && hex_value(s[*i]) >= 0) {
        if (*i - start == 4) {
            return -1;
        }
        value = value * 16 + hex_value(s[*i]);
        (*i)++;
    }
    return (*i == start) ? -1 : value;
}

/* Fills groups[] from text; *gap is the group index "::" stands at, -1 if none. */
static int ipv6_groups(const char *s, apr_size_t len, unsigned int groups[8], int *n, int *gap)
{
    apr_size_t i = 0;

    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        *gap = 0;
        i = 2;
    }
    while (i < len) {
        const char *rest = s + i;
        apr_size_t rest_len = len - i;
        unsigned char v4[4];
        long value;

        if (*n == 8) {
            return -1;
        }
        if (memchr(rest, '.', rest_len) && !memchr(rest, ':', rest_len)) {
            if (*n > 6 || ipv4_from_text(rest, rest_len, v4) != IPV4_OK) {
                return -1;
            }
            groups[(*n)++] = (unsigned int)(v4[0] << 8 | v4[1]);
            groups[(*n)++] = (unsigned int)(v4[2] << 8 | v4[3]);
            return 0;
        }
        if ((value = ipv6_group(s, len, &i)) < 0) {
            return -1;
        }
        groups[(*n)++] = (unsigned int)value;
        if (i == len) {
            return 0;
        }
        if (s[i++] != ':' || i == len) {
            return -1;
        }
        if (s[i] == ':') {
            if (*gap >= 0) {
                return -1;
            }
            *gap = *n;
            i++;
        }
    }
    return 0;
}

static int ipv6_from_text(const char *s, apr_size_t len, unsigned char out[16])
{
    unsigned int groups[8] = { 0 };
    unsigned int full[8] = { 0 };
    int n = 0, gap = -1;

    if (ipv6_groups(s, len, groups, &n, &gap) != 0) {
        return -1;
    }
    if ((gap < 0 && n != 8) || (gap >= 0 && n > 7)) {
        return -1;
    }
    for (int i = 0, j = 0; i < n; i++, j++) {
        if (i == gap) {
            j += 8 - n;
        }
        full[j] = groups[i];
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (unsigned char)(full[i] >> 8);
        out[2 * i + 1] = (unsigned char)(full[i] & 0xff);
    }
    return 0;
}

/* RFC 5952 §4: lower case, no leading zeros, the first longest run (>= 2) of zero groups
 * as "::". */
static void ipv6_to_text(const unsigned char a[16], char buf[IPV6_TEXT_SIZE])
{
    unsigned int g[8];
    int best = -1, best_len = 1;
    char *out = buf;

    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned int)(a[2 * i] << 8 | a[2 * i + 1]);
    }
    for (int i = 0; i < 8; i++) {
        int run = 0;

        while (i + run < 8 && g[i + run] == 0) {
            run++;
        }
        if (run > best_len) {
            best = i;
            best_len = run;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            out += apr_snprintf(out, 3, "::");
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len) {
            *out++ = ':';
        }
        out += apr_snprintf(out, 5, "%x", g[i]);
    }
    *out = '\0';
}

static int is_zero(const unsigned char *a, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (a[i]) {
            return 0;
        }
    }
    return 1;
}

static int is_v4_mapped(const unsigned char a[16])
{
    return is_zero(a, 10) && a[10] == 0xff && a[11] == 0xff;
}

static const char *ipv6_reason(apr_pool_t *p, const char *text, const char *addr, apr_size_t len,
                               unsigned char a[16])
{
    if (memchr(addr, '%', len)) {
        return apr_psprintf(p, "'%s' contains a zone id ('%%...'): a certificate cannot name "
                            "a link-local scope", text);
    }
    if (ipv6_from_text(addr, len, a) != 0) {
        return apr_psprintf(p, "'%s' is not a valid IPv6 address", text);
    }
    if (is_zero(a, 16)) {
        return apr_psprintf(p, "'%s' is the unspecified IPv6 address and cannot be certified",
                            text);
    }
    if (is_v4_mapped(a)) {
        return apr_psprintf(p, "'%s' is an IPv4-mapped IPv6 address: name the IPv4 address "
                            "'%u.%u.%u.%u' instead", text, a[12], a[13], a[14], a[15]);
    }
    return NULL;
}

static const char *parse_ipv6(apr_pool_t *p, const char *text, acme_ident_t *ident)
{
    const char *addr = text;
    apr_size_t len = strlen(text);
    unsigned char a[16];
    char buf[IPV6_TEXT_SIZE];
    const char *reason;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (!close) {
            return apr_psprintf(p, "'%s' has '[' without a closing ']'", text);
        }
        if (close[1] != '\0') {
            return apr_psprintf(p, "'%s' has text after ']': give the address without a port",
                                text);
        }
        addr = text + 1;
        len = (apr_size_t)(close - addr);
    }
    if ((reason = ipv6_reason(p, text, addr, len, a)) != NULL) {
        return reason;
    }
    ipv6_to_text(a, buf);
    *ident = (acme_ident_t){ .type = ACME_IDENT_IP, .value = apr_pstrdup(p, buf) };
    return NULL;
}

static const char *parse_ipv4(apr_pool_t *p, const char *text, acme_ident_t *ident)
{
    unsigned char a[4];

    switch (ipv4_from_text(text, strlen(text), a)) {
    case IPV4_OK:
        break;
    case IPV4_LEADING_ZERO:
        return apr_psprintf(p, "IPv4 address '%s' has a part with a leading zero: write each "
                            "part in plain decimal (leading zeros are read as octal by some tools)",
                            text);
    case IPV4_RANGE:
        return apr_psprintf(p, "IPv4 address '%s' has a part larger than 255", text);
    default:
        return apr_psprintf(p, "'%s' is neither a host name nor an IPv4 address (four decimal "
                            "numbers 0-255 separated by dots)", text);
    }
    if (is_zero(a, 4)) {
        return apr_psprintf(p, "'%s' is the unspecified IPv4 address and cannot be certified",
                            text);
    }
    *ident = (acme_ident_t){ .type = ACME_IDENT_IP, .value = apr_pstrdup(p, text) };
    return NULL;
}

/* ------------------------------------------------------------------ DNS names */

static const char *label_char_reason(apr_pool_t *p, const char *label, const char *whole, char c)
{
    if (c == '*') {
        return apr_psprintf(p, "'%s' has '*' inside a label: a wildcard is allowed only as the "
                            "whole first label ('*.example.org')", whole);
    }
    if (apr_isprint(c)) {
        return apr_psprintf(p, "label '%s' in '%s' contains '%c': host names allow only letters, "
                            "digits and '-'", label, whole, c);
    }
    return apr_psprintf(p, "label '%s' in '%s' contains the control character 0x%02x: host names "
                        "allow only letters, digits and '-'", label, whole, (unsigned char)c);
}

static const char *check_label(apr_pool_t *p, const char *s, apr_size_t len, const char *whole)
{
    const char *label;

    if (len == 0) {
        return apr_psprintf(p, "'%s' contains an empty label ('..', or a dot at the start)", whole);
    }
    label = apr_pstrmemdup(p, s, len);
    if (len > LABEL_MAX_LEN) {
        return apr_psprintf(p, "label '%s' in '%s' is %" APR_SIZE_T_FMT " characters long: a label "
                            "may have at most 63", label, whole, len);
    }
    for (apr_size_t i = 0; i < len; i++) {
        if (!apr_islower(s[i]) && !apr_isdigit(s[i]) && s[i] != '-') {
            return label_char_reason(p, label, whole, s[i]);
        }
    }
    if (s[0] == '-' || s[len - 1] == '-') {
        return apr_psprintf(p, "label '%s' in '%s' %s with '-': a label must start and end with a "
                            "letter or digit", label, whole, s[0] == '-' ? "starts" : "ends");
    }
    if (len >= 4 && s[2] == '-' && s[3] == '-' && !(s[0] == 'x' && s[1] == 'n')) {
        return apr_psprintf(p, "label '%s' in '%s' has '--' in third and fourth place, which is "
                            "reserved: only the IDN prefix 'xn--' may use it", label, whole);
    }
    return NULL;
}

static int all_digits(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Checks the labels of a (non-wildcard) host name; counts them into *nlabels. */
static const char *check_labels(apr_pool_t *p, const char *host, const char *whole, int *nlabels)
{
    const char *s = host;

    for (;;) {
        const char *dot = strchr(s, '.');
        apr_size_t len = dot ? (apr_size_t)(dot - s) : strlen(s);
        const char *reason = check_label(p, s, len, whole);

        if (reason) {
            return reason;
        }
        (*nlabels)++;
        if (!dot) {
            if (all_digits(s, len)) {
                return apr_psprintf(p, "the last label of '%s' is all digits: top-level domains "
                                    "are never numeric (was an IP address meant?)", whole);
            }
            return NULL;
        }
        s = dot + 1;
    }
}

/* `name` is lower case without trailing dot; `text` is what the admin wrote, for reasons. */
static const char *check_dns(apr_pool_t *p, const char *name, const char *text)
{
    int wildcard = (strncmp(name, "*.", 2) == 0);
    const char *host = wildcard ? name + 2 : name;
    int nlabels = 0;
    const char *reason;
    apr_size_t len = strlen(name);

    if (len > NAME_MAX_LEN) {
        return apr_psprintf(p, "'%.40s...' is %" APR_SIZE_T_FMT " characters long: a DNS name may "
                            "have at most 253", text, len);
    }
    if ((reason = check_labels(p, host, text, &nlabels)) != NULL) {
        return reason;
    }
    if (nlabels < 2 && wildcard) {
        return apr_psprintf(p, "wildcard '%s' must be followed by at least two labels "
                            "('*.example.org')", text);
    }
    if (nlabels < 2) {
        return apr_psprintf(p, "'%s' has a single label: a CA only certifies names with at least "
                            "two labels ('host.example.org')", text);
    }
    return NULL;
}

static const char *parse_dns(apr_pool_t *p, const char *text, acme_ident_t *ident)
{
    char *name = apr_pstrdup(p, text);
    apr_size_t len = strlen(name);
    const char *reason;

    if (len > 0 && name[len - 1] == '.') {
        name[--len] = '\0';
    }
    if (len == 0) {
        return apr_psprintf(p, "'%s' is not a host name", text);
    }
    for (char *c = name; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    if ((reason = check_dns(p, name, text)) != NULL) {
        return reason;
    }
    *ident = (acme_ident_t){ .type = ACME_IDENT_DNS, .value = name };
    return NULL;
}

/* ------------------------------------------------------------------ parse */

static int has_non_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return 1;
        }
    }
    return 0;
}

static int looks_like_ipv4(const char *s)
{
    return s[strspn(s, "0123456789.")] == '\0' && strpbrk(s, "0123456789") != NULL;
}

static const char *parse_any(apr_pool_t *p, const char *text, acme_ident_t *ident)
{
    const char *colon;

    if (!text || !*text) {
        return "empty name: give a host name or an IP address";
    }
    if (has_non_ascii(text)) {
        return apr_psprintf(p, "'%s' contains non-ASCII characters: give an internationalised "
                            "name in its A-label (punycode) form, e.g. 'xn--bcher-kva.example'",
                            text);
    }
    colon = strchr(text, ':');
    if (colon && text[0] != '[' && !strchr(colon + 1, ':')) {
        return apr_psprintf(p, "'%s' contains ':': give the name without a port", text);
    }
    if (text[0] == '[' || colon) {
        return parse_ipv6(p, text, ident);
    }
    if (looks_like_ipv4(text)) {
        return parse_ipv4(p, text, ident);
    }
    return parse_dns(p, text, ident);
}

apr_status_t acme_names_parse(apr_pool_t *p, const char *text, acme_ident_t *ident,
                              const char **reason)
{
    const char *why = parse_any(p, text, ident);

    if (reason) {
        *reason = why;
    }
    return why ? APR_EINVAL : APR_SUCCESS;
}

/* ------------------------------------------------------------------ wildcards, reverse DNS */

int acme_names_is_wildcard(const char *name)
{
    return name && name[0] == '*' && name[1] == '.';
}

int acme_names_wildcard_matches(const char *wildcard, const char *host)
{
    const char *base, *dot;
    apr_size_t base_len, rest_len;

    if (!acme_names_is_wildcard(wildcard) || !host) {
        return 0;
    }
    base = wildcard + 2;
    base_len = strlen(base);
    dot = strchr(host, '.');
    if (!dot || dot == host) {
        return 0;
    }
    rest_len = strlen(dot + 1);
    if (rest_len > 0 && dot[rest_len] == '.') {
        rest_len--;
    }
    return rest_len == base_len && strncasecmp(dot + 1, base, base_len) == 0;
}

static const char *reverse_ipv4(apr_pool_t *p, const char *value)
{
    unsigned char a[4];

    if (ipv4_from_text(value, strlen(value), a) != IPV4_OK) {
        return NULL;
    }
    return apr_psprintf(p, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
}

static const char *reverse_ipv6(apr_pool_t *p, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char a[16];
    char *buf, *out;

    if (ipv6_from_text(value, strlen(value), a) != 0) {
        return NULL;
    }
    out = buf = apr_palloc(p, 64 + sizeof("ip6.arpa"));
    for (int i = 15; i >= 0; i--) {
        *out++ = hex[a[i] & 0x0f];
        *out++ = '.';
        *out++ = hex[a[i] >> 4];
        *out++ = '.';
    }
    memcpy(out, "ip6.arpa", sizeof("ip6.arpa"));
    return buf;
}

const char *acme_names_reverse_dns(apr_pool_t *p, const acme_ident_t *ip)
{
    if (!ip || ip->type != ACME_IDENT_IP || !ip->value) {
        return NULL;
    }
    return strchr(ip->value, ':') ? reverse_ipv6(p, ip->value) : reverse_ipv4(p, ip->value);
}

/* ------------------------------------------------------------------ index */

struct acme_names_index_t {
    apr_pool_t *pool;
    apr_hash_t *map;
};

/* Strips [brackets] or ":port", one trailing dot; lower-cases; canonicalises IPv6.
 * 0 if unusable. */
static apr_size_t host_key(const char *host, char buf[HOST_KEY_SIZE])
{
    const char *s = host;
    apr_size_t len = strlen(host);
    const char *colon = strchr(host, ':');
    unsigned char a[16];

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close) {
            return 0;
        }
        s++;
        len = (apr_size_t)(close - s);
    }
    else if (colon && !strchr(colon + 1, ':')) {
        len = (apr_size_t)(colon - s);
    }
    if (len > 0 && s[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len >= HOST_KEY_SIZE) {
        return 0;
    }
    for (apr_size_t i = 0; i < len; i++) {
        buf[i] = (char)apr_tolower(s[i]);
    }
    buf[len] = '\0';
    if (memchr(buf, ':', len) && ipv6_from_text(buf, len, a) == 0) {
        ipv6_to_text(a, buf);
        len = strlen(buf);
    }
    return len;
}

acme_names_index_t *acme_names_index_make(apr_pool_t *p)
{
    acme_names_index_t *idx = apr_palloc(p, sizeof(*idx));

    *idx = (acme_names_index_t){ .pool = p, .map = apr_hash_make(p) };
    return idx;
}

apr_status_t acme_names_index_add(acme_names_index_t *idx, const char *name, void *value,
                                  void **existing)
{
    char buf[HOST_KEY_SIZE];
    apr_size_t len = host_key(name, buf);
    void *old;

    if (len == 0) {
        return APR_EINVAL;
    }
    if ((old = apr_hash_get(idx->map, buf, (apr_ssize_t)len)) != NULL) {
        if (existing) {
            *existing = old;
        }
        return APR_EEXIST;
    }
    apr_hash_set(idx->map, apr_pstrmemdup(idx->pool, buf, len), (apr_ssize_t)len, value);
    return APR_SUCCESS;
}

void *acme_names_index_get(const acme_names_index_t *idx, const char *host)
{
    char key[HOST_KEY_SIZE], wild[HOST_KEY_SIZE + 2];
    apr_size_t len = host ? host_key(host, key) : 0;
    const char *dot;
    void *value;

    if (len == 0) {
        return NULL;
    }
    if ((value = apr_hash_get(idx->map, key, (apr_ssize_t)len)) != NULL) {
        return value;
    }
    if ((dot = strchr(key, '.')) == NULL || dot == key) {
        return NULL;
    }
    len = (apr_size_t)apr_snprintf(wild, sizeof(wild), "*%s", dot);
    return apr_hash_get(idx->map, wild, (apr_ssize_t)len);
}

unsigned int acme_names_index_count(const acme_names_index_t *idx)
{
    return apr_hash_count(idx->map);
}
