#ifndef ACME_PROXY_H
#define ACME_PROXY_H

#include <apr_pools.h>
#include <apr_tables.h>

/*
 * ACMEProxy: the outbound proxy for the traffic to a CA (ACME and ARI requests only; dns-01
 * propagation checks and self-checks never use it). A proxy URL may carry credentials
 * (http://user:password@proxy:3128): every message that names a proxy uses acme_proxy_redact,
 * and domains.json records the URL without them (acme_proxy_rule_t.withheld).
 *
 * Without a rule for a CA the CA is reached directly and the environment's http_proxy,
 * https_proxy, ALL_PROXY and NO_PROXY are ignored, as with `ACMEProxy none`: httpd's
 * environment differs between apachectl, systemd and init scripts, and what reaches the CA
 * must follow from httpd.conf alone.
 */

/* One ACMEProxy line. */
typedef struct {
    const char *ca_url;         /* the CA's directory URL; NULL: every CA of its context */
    const char *url;            /* normalized proxy URL, credentials included; NULL: direct */
    int withheld;               /* read from domains.json: the URL's credentials were left out */
} acme_proxy_rule_t;

/*
 * Parses an ACMEProxy value: "none" (*url NULL) or scheme://[user[:password]@]host[:port][/]
 * with scheme http, https, socks5 or socks5h. The result is "scheme://[userinfo@]host:port",
 * the port made explicit (80, 443, 1080 by scheme: libcurl's own default, 1080, surprises for
 * http). Returns 0, or -1 with *reason saying what is wrong and how to write it; the reason
 * never repeats the credentials.
 */
int acme_proxy_parse(apr_pool_t *p, const char *text, const char **url, const char **reason);

/* The URL with any credentials replaced by "***" (safe for logs and errors); "none" for NULL. */
const char *acme_proxy_redact(apr_pool_t *p, const char *url);

/* The URL without its credentials (for domains.json); NULL for NULL. */
const char *acme_proxy_strip(apr_pool_t *p, const char *url);

/* 1 when the URL carries user info (a user name, a password or both). */
int acme_proxy_has_credentials(const char *url);

/*
 * The rule for ca_url among one context's rules (acme_proxy_rule_t): one naming the CA wins over
 * one for every CA (the last line of each kind counts). NULL: no rule, go direct.
 */
const acme_proxy_rule_t *acme_proxy_find(const apr_array_header_t *rules, const char *ca_url);

/* The proxy URL for ca_url (credentials included), or NULL for direct. */
const char *acme_proxy_for(const apr_array_header_t *rules, const char *ca_url);

#endif
