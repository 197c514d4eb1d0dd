#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <curl/curl.h>

#include "acme_proxy.h"

/* Where the authority (user info, host, port) of a URL or of a schemeless text starts and ends. */
static const char *acme_proxy_authority(const char *text, const char **end)
{
    const char *sep = strstr(text, "://");
    const char *start = sep ? sep + 3 : text;

    *end = start + strcspn(start, "/?#");
    return start;
}

/* The last '@' of the authority, or NULL. */
static const char *acme_proxy_at(const char *start, const char *end)
{
    const char *at;

    for (at = end; at > start && at[-1] != '@'; --at) {
    }
    return at > start ? at - 1 : NULL;
}

/* The text with the user info (anything up to the last '@' of the authority) replaced. */
static const char *acme_proxy_replace_userinfo(apr_pool_t *p, const char *text, const char *with)
{
    const char *end, *start = acme_proxy_authority(text, &end);
    const char *at = acme_proxy_at(start, end);

    if (!at) {
        return text;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, text, (apr_size_t)(start - text)), with, at + 1,
                       NULL);
}

const char *acme_proxy_redact(apr_pool_t *p, const char *url)
{
    return url ? acme_proxy_replace_userinfo(p, url, "***@") : "none";
}

const char *acme_proxy_strip(apr_pool_t *p, const char *url)
{
    return url ? acme_proxy_replace_userinfo(p, url, "") : NULL;
}

int acme_proxy_has_credentials(const char *url)
{
    const char *end, *start;

    if (!url) {
        return 0;
    }
    start = acme_proxy_authority(url, &end);
    return acme_proxy_at(start, end) != NULL;
}

static int acme_proxy_fail(apr_pool_t *p, const char **reason, const char *shown,
                           const char *what)
{
    *reason = apr_psprintf(p, "'%s' %s", shown, what);
    return -1;
}

/* The scheme's port when the URL names none: libcurl would use 1080 for every scheme. */
static const char *acme_proxy_default_port(const char *scheme)
{
    if (!strcmp(scheme, "https")) {
        return "443";
    }
    return strcmp(scheme, "http") ? "1080" : "80";
}

/* host or [v6]; *port_at is the ':' after it, or the end. */
static int acme_proxy_host_ok(const char *host, const char *end, const char **port_at)
{
    const char *c;

    if (*host == '[') {
        c = memchr(host, ']', (apr_size_t)(end - host));
        if (!c || c == host + 1 || strspn(host + 1, "0123456789abcdefABCDEF:.")
                                   != (apr_size_t)(c - host - 1)) {
            return 0;
        }
        *port_at = c + 1;
        return *port_at == end || **port_at == ':';
    }
    for (c = host; c < end && *c != ':'; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.' && *c != '_') {
            return 0;
        }
    }
    *port_at = c;
    return c > host;
}

/* The port text after ':' as a number 1..65535, normalized; NULL when it is not one. */
static const char *acme_proxy_port(apr_pool_t *p, const char *s, const char *end)
{
    apr_size_t n = (apr_size_t)(end - s);
    long port;

    if (n == 0 || n > 5 || strspn(s, "0123456789") < n) {
        return NULL;
    }
    port = strtol(apr_pstrmemdup(p, s, n), NULL, 10);
    return port >= 1 && port <= 65535 ? apr_ltoa(p, port) : NULL;
}

/* user info: one '@' at most (libcurl splits at the first), no spaces or controls. */
static int acme_proxy_userinfo_ok(const char *start, const char *at)
{
    const char *c;

    for (c = start; c < at; ++c) {
        if (*c == '@' || (unsigned char)*c <= ' ' || *c == 0x7f) {
            return 0;
        }
    }
    return at > start;
}

static int acme_proxy_parse_authority(apr_pool_t *p, const char *scheme, const char *start,
                                      const char *end, const char *shown, const char **url,
                                      const char **reason)
{
    const char *at = acme_proxy_at(start, end);
    const char *host = at ? at + 1 : start, *port_at = NULL, *port;

    if (at && !acme_proxy_userinfo_ok(start, at)) {
        return acme_proxy_fail(p, reason, shown, "has unusable credentials: write "
                               "user:password@ before the host, with '@', ':' in the user "
                               "name, spaces and '%' written as %40, %3A, %20 and %25");
    }
    if (host == end || *host == ':') {
        return acme_proxy_fail(p, reason, shown, "names no host: write e.g. "
                               "http://proxy.example.org:3128");
    }
    if (!acme_proxy_host_ok(host, end, &port_at)) {
        return acme_proxy_fail(p, reason, shown, "has a host name that is not valid: write "
                               "a DNS name, an IPv4 address or an [IPv6] address");
    }
    port = port_at == end ? acme_proxy_default_port(scheme)
                          : acme_proxy_port(p, port_at + 1, end);
    if (!port) {
        return acme_proxy_fail(p, reason, shown, "has a port that is not a number from 1 to "
                               "65535: write e.g. http://proxy.example.org:3128");
    }
    *url = apr_pstrcat(p, scheme, "://", apr_pstrmemdup(p, start, (apr_size_t)(host - start)),
                       apr_pstrmemdup(p, host, (apr_size_t)(port_at - host)), ":", port, NULL);
    return 0;
}

int acme_proxy_parse(apr_pool_t *p, const char *text, const char **url, const char **reason)
{
    const char *shown = acme_proxy_replace_userinfo(p, text, "***@");
    const char *sep = strstr(text, "://"), *end, *start;
    char *scheme;

    *url = NULL;
    if (!strcasecmp(text, "none")) {
        return 0;
    }
    if (!*text || strpbrk(text, " \t\r\n\"'<>\\")) {
        return acme_proxy_fail(p, reason, shown, "is not a URL: write e.g. "
                               "http://proxy.example.org:3128, or 'none'");
    }
    if (!sep) {
        return acme_proxy_fail(p, reason, shown, "has no scheme: write "
                               "http://host:port (or https://, socks5://, socks5h://)");
    }
    scheme = apr_pstrmemdup(p, text, (apr_size_t)(sep - text));
    for (char *c = scheme; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    if (strcmp(scheme, "http") && strcmp(scheme, "https") && strcmp(scheme, "socks5")
        && strcmp(scheme, "socks5h")) {
        return acme_proxy_fail(p, reason, shown, "is not a kind of proxy mod_acme can use: "
                               "write http://, https://, socks5:// or socks5h://");
    }
    if (!strcmp(scheme, "https")
        && !(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTPS_PROXY)) {
        return acme_proxy_fail(p, reason, shown, "needs a libcurl that speaks TLS to proxies, "
                               "and this one does not: use the proxy's http:// port");
    }
    start = acme_proxy_authority(text, &end);
    if (*end && strcmp(end, "/")) {
        return acme_proxy_fail(p, reason, shown, "has a path, query or fragment; a proxy is "
                               "named by scheme://host:port alone");
    }
    return acme_proxy_parse_authority(p, scheme, start, end, shown, url, reason);
}

const acme_proxy_rule_t *acme_proxy_find(const apr_array_header_t *rules, const char *ca_url)
{
    const acme_proxy_rule_t *any = NULL, *named = NULL;
    int i;

    for (i = 0; rules && i < rules->nelts; ++i) {
        const acme_proxy_rule_t *r = &APR_ARRAY_IDX(rules, i, acme_proxy_rule_t);
        if (!r->ca_url) {
            any = r;
        }
        else if (ca_url && !strcmp(r->ca_url, ca_url)) {
            named = r;
        }
    }
    return named ? named : any;
}

const char *acme_proxy_for(const apr_array_header_t *rules, const char *ca_url)
{
    const acme_proxy_rule_t *r = acme_proxy_find(rules, ca_url);

    return r ? r->url : NULL;
}
