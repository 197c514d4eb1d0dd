/*
 * Asking the admin's endpoint whether a name may have an on-demand certificate: see
 * acme_ondemand_ask.h.
 */
#include <string.h>

#include <apr_strings.h>

#include <curl/curl.h>

#include "acme_ondemand_ask.h"

#define ACME_ONDEMAND_ASK_BODY_MAX 4096

const char *acme_ondemand_ask_url(apr_pool_t *p, const char *url, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    char *enc = apr_palloc(p, 3 * strlen(name) + 1), *o = enc;
    const char *c;

    for (c = name; *c; ++c) {
        unsigned char u = (unsigned char)*c;
        if ((u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' || u == '.'
            || (u >= 'A' && u <= 'Z') || u == ':') {
            *o++ = (char)u;
        }
        else {
            *o++ = '%';
            *o++ = hex[u >> 4];
            *o++ = hex[u & 15];
        }
    }
    *o = '\0';
    return apr_pstrcat(p, url, strchr(url, '?') ? "&" : "?", "domain=", enc, NULL);
}

/* The answer's body is not wanted: a few bytes are taken, the rest ends the transfer. */
static size_t acme_ondemand_ask_discard(char *data, size_t size, size_t nmemb, void *baton)
{
    apr_size_t *seen = baton;

    (void)data;
    *seen += size * nmemb;
    return *seen > ACME_ONDEMAND_ASK_BODY_MAX ? 0 : size * nmemb;
}

acme_ondemand_ask_t acme_ondemand_ask(apr_pool_t *p, const char *url, const char *name,
                                      apr_interval_time_t timeout, const char **detail)
{
    CURL *c = curl_easy_init();
    apr_size_t seen = 0;
    long status = 0;
    CURLcode rc;

    if (!c) {
        *detail = "libcurl could not make a handle";
        return ACME_ONDEMAND_ASK_UNREACHABLE;
    }
    curl_easy_setopt(c, CURLOPT_URL, acme_ondemand_ask_url(p, url, name));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)apr_time_as_msec(timeout));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)apr_time_as_msec(timeout));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, acme_ondemand_ask_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (status == 0) {
        *detail = apr_pstrdup(p, curl_easy_strerror(rc));
        return ACME_ONDEMAND_ASK_UNREACHABLE;
    }
    *detail = apr_psprintf(p, "HTTP %ld", status);
    return status == 200 ? ACME_ONDEMAND_ASK_YES : ACME_ONDEMAND_ASK_NO;
}
