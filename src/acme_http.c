#include <stdlib.h>
#include <string.h>

#include <apr_date.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <curl/curl.h>

#include "acme_http.h"
#include "acme_proxy.h"
#include "acme_version.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(10)
#define HTTP_DEFAULT_TIMEOUT         apr_time_from_sec(30)
#define HTTP_DEFAULT_MAX_RESPONSE    (1024 * 1024)
/* A Retry-After beyond this is a typo or an attack, not a schedule. */
#define HTTP_MAX_RETRY_AFTER_SEC     (400LL * 24 * 3600)

struct acme_http_t {
    apr_pool_t *pool;
    CURL *curl;
    struct curl_slist *get_headers;
    struct curl_slist *post_headers;
    acme_http_options_t opts;
    const char *user_agent;
    const char *proxy_shown;    /* the proxy as messages name it: credentials redacted */
    char errbuf[CURL_ERROR_SIZE];
};

/* What one transfer collects while curl runs. */
typedef struct {
    apr_pool_t *pool;
    acme_http_response_t *resp;
    const char *url;
    char *buf;                  /* malloc'd: pool memory cannot shrink while growing */
    apr_size_t len;
    apr_size_t cap;
    apr_size_t max;
    int overflow;
} http_transfer_t;

apr_status_t acme_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

/* ------------------------------------------------------------------ parsing */

acme_http_response_t *acme_http_response_make(apr_pool_t *p)
{
    acme_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));

    resp->links = apr_array_make(p, 2, sizeof(acme_http_link_t));
    resp->body = "";
    return resp;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        ++s;
    }
    return s;
}

static int has_scheme(const char *ref)
{
    const char *s = ref;

    if (!apr_isalpha(*s)) {
        return 0;
    }
    while (apr_isalnum(*s) || *s == '+' || *s == '-' || *s == '.') {
        ++s;
    }
    return *s == ':';
}

const char *acme_http_resolve_url(apr_pool_t *p, const char *base, const char *ref)
{
    const char *authority, *path_start, *end;

    if (!ref || has_scheme(ref) || !base) {
        return ref;
    }
    authority = strstr(base, "://");
    if (!authority) {
        return ref;
    }
    if (ref[0] == '/' && ref[1] == '/') {
        return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(authority - base + 1)), ref, NULL);
    }
    path_start = authority + 3;
    path_start += strcspn(path_start, "/?#");
    if (ref[0] == '/') {
        return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(path_start - base)), ref, NULL);
    }
    if (ref[0] == '#' || ref[0] == '\0') {
        end = path_start + strcspn(path_start, "#");
        return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(end - base)), ref, NULL);
    }
    end = path_start + strcspn(path_start, "?#");
    if (ref[0] == '?') {
        return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(end - base)), ref, NULL);
    }
    /* A relative path replaces the last segment of the base path. */
    while (end > path_start && end[-1] != '/') {
        --end;
    }
    if (end == path_start) {
        return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(path_start - base)), "/", ref,
                           NULL);
    }
    return apr_pstrcat(p, apr_pstrndup(p, base, (apr_size_t)(end - base)), ref, NULL);
}

static char *lower(char *s)
{
    for (char *c = s; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return s;
}

const char *acme_http_origin(apr_pool_t *p, const char *url)
{
    const char *sep, *auth, *end, *at, *host_end, *port = NULL;
    char *scheme;

    sep = url ? strstr(url, "://") : NULL;
    if (!sep || !has_scheme(url)) {
        return NULL;
    }
    scheme = lower(apr_pstrndup(p, url, (apr_size_t)(sep - url)));
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        return NULL;
    }
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    /* user@host: only the last '@' ends the user info. */
    for (at = end; at > auth && at[-1] != '@'; --at) {
    }
    auth = at > auth ? at : auth;
    if (*auth == '[') {
        host_end = memchr(auth, ']', (apr_size_t)(end - auth));
        host_end = host_end ? host_end + 1 : NULL;
    }
    else {
        host_end = memchr(auth, ':', (apr_size_t)(end - auth));
        host_end = host_end ? host_end : end;
    }
    if (!host_end || host_end == auth || (host_end < end && *host_end != ':')) {
        return NULL;
    }
    if (host_end < end) {
        port = apr_pstrndup(p, host_end + 1, (apr_size_t)(end - host_end - 1));
        if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) {
            return NULL;
        }
        /* "https://ca:443" and "https://ca" are one origin, and so are ports "0443" and "443". */
        port = apr_ltoa(p, atol(port));
        if (strcmp(port, strcmp(scheme, "https") == 0 ? "443" : "80") == 0) {
            port = NULL;
        }
    }
    return apr_pstrcat(p, scheme, "://",
                       lower(apr_pstrndup(p, auth, (apr_size_t)(host_end - auth))),
                       port ? ":" : "", port ? port : "", NULL);
}

int acme_http_same_origin(apr_pool_t *p, const char *a, const char *b)
{
    const char *oa = acme_http_origin(p, a), *ob = acme_http_origin(p, b);

    return oa && ob && strcmp(oa, ob) == 0;
}

apr_time_t acme_http_parse_retry_after(const char *value, apr_time_t now)
{
    const char *s;
    apr_int64_t secs = 0;
    apr_time_t when;

    if (!value) {
        return 0;
    }
    value = skip_space(value);
    if (apr_isdigit(*value)) {
        for (s = value; apr_isdigit(*s); ++s) {
            if (secs < HTTP_MAX_RETRY_AFTER_SEC) {
                secs = secs * 10 + (*s - '0');
            }
        }
        if (*skip_space(s) != '\0') {
            return 0;
        }
        if (secs > HTTP_MAX_RETRY_AFTER_SEC) {
            secs = HTTP_MAX_RETRY_AFTER_SEC;
        }
        return now + apr_time_from_sec(secs);
    }
    when = apr_date_parse_http(value);
    if (when == APR_DATE_BAD) {
        return 0;
    }
    if (when > now + apr_time_from_sec(HTTP_MAX_RETRY_AFTER_SEC)) {
        when = now + apr_time_from_sec(HTTP_MAX_RETRY_AFTER_SEC);
    }
    return when;
}

/* A quoted-string (RFC 9110 §5.6.4) or token; s points at its start. */
static const char *parse_param_value(apr_pool_t *p, const char *s, const char **value)
{
    char *out, *o;

    if (*s != '"') {
        apr_size_t n = strcspn(s, ";, \t");

        *value = apr_pstrndup(p, s, n);
        return s + n;
    }
    out = o = apr_palloc(p, strlen(s) + 1);
    for (++s; *s && *s != '"'; ++s) {
        if (*s == '\\' && s[1]) {
            ++s;
        }
        *o++ = *s;
    }
    *o = '\0';
    *value = out;
    return *s == '"' ? s + 1 : s;
}

static void add_rels(apr_pool_t *p, const char *url, const char *rels, apr_array_header_t *links)
{
    while (*(rels = skip_space(rels))) {
        apr_size_t n = strcspn(rels, " \t");
        acme_http_link_t *link = apr_array_push(links);
        char *rel = apr_pstrndup(p, rels, n);

        for (char *c = rel; *c; ++c) {
            *c = (char)apr_tolower(*c);
        }
        link->url = url;
        link->rel = rel;
        rels += n;
    }
}

void acme_http_parse_links(apr_pool_t *p, const char *value, const char *base_url,
                           apr_array_header_t *links)
{
    const char *s = value;

    while (s && *s) {
        const char *gt, *url, *rels = NULL;

        while (*s == ' ' || *s == '\t' || *s == ',') {
            ++s;
        }
        if (*s != '<' || !(gt = strchr(s, '>'))) {
            return;
        }
        url = acme_http_resolve_url(p, base_url, apr_pstrndup(p, s + 1, (apr_size_t)(gt - s - 1)));
        s = skip_space(gt + 1);
        while (*s == ';') {
            const char *name = skip_space(s + 1), *pv = NULL;
            apr_size_t n = strcspn(name, "=;, \t");

            s = skip_space(name + n);
            if (*s == '=') {
                s = parse_param_value(p, skip_space(s + 1), &pv);
                s = skip_space(s);
            }
            /* RFC 8288 §3.3: only the first rel parameter counts. */
            if (!rels && pv && n == 3 && strncasecmp(name, "rel", 3) == 0) {
                rels = pv;
            }
        }
        if (rels) {
            add_rels(p, url, rels, links);
        }
        /* Skip anything unparsable up to the next link. */
        while (*s && *s != ',') {
            ++s;
        }
    }
}

static int is_nonce_char(char c)
{
    return apr_isalnum(c) || c == '-' || c == '_';
}

static const char *parse_media_type(apr_pool_t *p, const char *value)
{
    apr_size_t n = strcspn(value, "; \t");
    char *type = apr_pstrndup(p, value, n);

    for (char *c = type; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return n ? type : NULL;
}

static void parse_status_line(acme_http_response_t *resp, const char *line)
{
    const char *sp = strchr(line, ' ');

    resp->status = sp ? atoi(sp + 1) : 0;
    resp->nonce = NULL;
    resp->location = NULL;
    resp->content_type = NULL;
    resp->retry_after = 0;
    apr_array_clear(resp->links);
}

void acme_http_response_header(acme_http_response_t *resp, apr_pool_t *p,
                               const char *raw, apr_size_t len,
                               const char *base_url, apr_time_t now)
{
    const char *line, *colon, *value;
    apr_size_t name_len;

    while (len > 0 && (raw[len - 1] == '\r' || raw[len - 1] == '\n')) {
        --len;
    }
    line = apr_pstrndup(p, raw, len);
    if (strncmp(line, "HTTP/", 5) == 0) {
        parse_status_line(resp, line);
        return;
    }
    colon = strchr(line, ':');
    if (!colon) {
        return;
    }
    name_len = (apr_size_t)(colon - line);
    value = skip_space(colon + 1);
    if (name_len == 12 && strncasecmp(line, "Replay-Nonce", 12) == 0) {
        const char *c = value;

        while (is_nonce_char(*c)) {
            ++c;
        }
        /* A nonce with junk in it would only earn a badNonce later. */
        if (c > value && *skip_space(c) == '\0') {
            resp->nonce = apr_pstrndup(p, value, (apr_size_t)(c - value));
        }
    }
    else if (name_len == 8 && strncasecmp(line, "Location", 8) == 0) {
        resp->location = *value ? acme_http_resolve_url(p, base_url, value) : NULL;
    }
    else if (name_len == 4 && strncasecmp(line, "Link", 4) == 0) {
        acme_http_parse_links(p, value, base_url, resp->links);
    }
    else if (name_len == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
        resp->retry_after = acme_http_parse_retry_after(value, now);
    }
    else if (name_len == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
        resp->content_type = parse_media_type(p, value);
    }
}

const char *acme_http_link(const acme_http_response_t *resp, const char *rel)
{
    for (int i = 0; resp && i < resp->links->nelts; ++i) {
        const acme_http_link_t *link = &APR_ARRAY_IDX(resp->links, i, acme_http_link_t);

        if (strcasecmp(link->rel, rel) == 0) {
            return link->url;
        }
    }
    return NULL;
}

apr_array_header_t *acme_http_links(const acme_http_response_t *resp, const char *rel,
                                    apr_pool_t *p)
{
    apr_array_header_t *urls = apr_array_make(p, 2, sizeof(const char *));

    for (int i = 0; resp && i < resp->links->nelts; ++i) {
        const acme_http_link_t *link = &APR_ARRAY_IDX(resp->links, i, acme_http_link_t);

        if (strcasecmp(link->rel, rel) == 0) {
            APR_ARRAY_PUSH(urls, const char *) = link->url;
        }
    }
    return urls;
}

int acme_http_is_type(const acme_http_response_t *resp, const char *type)
{
    return resp && resp->content_type && strcasecmp(resp->content_type, type) == 0;
}

/* ------------------------------------------------------------------ transport */

static apr_status_t http_cleanup(void *data)
{
    acme_http_t *http = data;

    if (http->curl) {
        curl_easy_cleanup(http->curl);
        http->curl = NULL;
    }
    curl_slist_free_all(http->get_headers);
    curl_slist_free_all(http->post_headers);
    http->get_headers = http->post_headers = NULL;
    return APR_SUCCESS;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_transfer_t *t = userdata;
    apr_size_t n = size * nmemb;

    if (n > t->max - t->len) {
        t->overflow = 1;
        return 0;
    }
    if (t->len + n + 1 > t->cap) {
        apr_size_t cap = t->cap ? t->cap : 4096;
        char *grown;

        while (cap < t->len + n + 1) {
            cap *= 2;
        }
        grown = realloc(t->buf, cap);
        if (!grown) {
            return 0;
        }
        t->buf = grown;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, n);
    t->len += n;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_transfer_t *t = userdata;

    acme_http_response_header(t->resp, t->pool, data, size * nmemb, t->url, apr_time_now());
    return size * nmemb;
}

static long to_ms(apr_interval_time_t t)
{
    return (long)apr_time_as_msec(t);
}

/* Options that stay for the life of the handle. */
static CURLcode http_configure(acme_http_t *http)
{
    CURL *c = http->curl;
    CURLcode rc = CURLE_OK;

#define SETOPT(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(c, opt, val); } while (0)
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_ERRORBUFFER, http->errbuf);
    SETOPT(CURLOPT_USERAGENT, http->user_agent);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, to_ms(http->opts.connect_timeout));
    SETOPT(CURLOPT_TIMEOUT_MS, to_ms(http->opts.timeout));
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)http->opts.max_response_size);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* "" rather than unset: the environment of httpd must not pick a proxy for us. */
    SETOPT(CURLOPT_PROXY, http->opts.proxy ? http->opts.proxy : "");
    if (http->opts.proxy) {
        /* Nor may its NO_PROXY send the CA around the proxy the admin configured. */
        SETOPT(CURLOPT_NOPROXY, "");
    }
    if (http->opts.ca_file) {
        SETOPT(CURLOPT_CAINFO, http->opts.ca_file);
    }
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
#undef SETOPT
    return rc;
}

apr_status_t acme_http_create(acme_http_t **out, apr_pool_t *p,
                              const acme_http_options_t *opts, acme_result_t *res)
{
    acme_http_t *http = apr_pcalloc(p, sizeof(*http));
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    struct curl_slist *l;

    http->pool = p;
    http->opts = opts ? *opts : (acme_http_options_t){ 0 };
    if (http->opts.connect_timeout <= 0) {
        http->opts.connect_timeout = HTTP_DEFAULT_CONNECT_TIMEOUT;
    }
    if (http->opts.timeout <= 0) {
        http->opts.timeout = HTTP_DEFAULT_TIMEOUT;
    }
    if (http->opts.max_response_size == 0) {
        http->opts.max_response_size = HTTP_DEFAULT_MAX_RESPONSE;
    }
    http->user_agent = apr_pstrcat(p, ACME_USER_AGENT_PRODUCT, " libcurl/", cv->version, NULL);
    http->proxy_shown = http->opts.proxy ? acme_proxy_redact(p, http->opts.proxy) : NULL;
    http->curl = curl_easy_init();
    apr_pool_cleanup_register(p, http, http_cleanup, apr_pool_cleanup_null);
    if (!http->curl) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "cannot create a libcurl handle");
    }
    l = curl_slist_append(NULL, "Accept-Language: en");
    http->get_headers = l;
    l = curl_slist_append(NULL, "Accept-Language: en");
    l = l ? curl_slist_append(l, "Content-Type: application/jose+json") : NULL;
    /* JWS bodies are small; waiting for 100 Continue only costs a round trip. */
    l = l ? curl_slist_append(l, "Expect:") : NULL;
    http->post_headers = l;
    if (!http->get_headers || !http->post_headers || http_configure(http) != CURLE_OK) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "cannot configure the libcurl handle");
    }
    *out = http;
    return APR_SUCCESS;
}

const char *acme_http_user_agent(const acme_http_t *http)
{
    return http->user_agent;
}

/*
 * A failure with a proxy configured: when the proxy is the cause, say so (the admin must not go
 * looking at the CA), and name it only with its credentials redacted. Temporary like every
 * transport failure: a proxy that is down or refuses may be fixed while the old certificate
 * serves, and the renewal backs off meanwhile.
 */
static apr_status_t proxy_failure(acme_http_t *http, apr_pool_t *p, const char *method,
                                  const char *url, CURLcode rc, const char *why,
                                  acme_result_t *res)
{
    const char *blame = NULL;
    long connect_code = 0;

    curl_easy_getinfo(http->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    /* Some proxies (tinyproxy) answer wrong credentials with 401 rather than 407. */
    if (connect_code == 407 || connect_code == 401) {
        blame = apr_psprintf(p, "requires authentication, and the credentials were missing or "
                             "refused (HTTP %ld to CONNECT): check the user name and password "
                             "in ACMEProxy", connect_code);
    }
    else if (connect_code >= 500) {
        why = apr_psprintf(p, "the proxy could not open a tunnel to the CA (HTTP %ld to "
                           "CONNECT): it cannot reach the CA, or the CA is down", connect_code);
    }
    else if (connect_code >= 300) {
        blame = apr_psprintf(p, "refused the tunnel to the CA (HTTP %ld to CONNECT): its "
                             "rules must allow the CA's host and port", connect_code);
    }
    else if (rc == CURLE_COULDNT_RESOLVE_PROXY) {
        blame = "has a host name that cannot be resolved";
    }
    else if (rc == CURLE_COULDNT_CONNECT) {
        blame = "cannot be reached (is it running, are the host and port in ACMEProxy right?)";
    }
    if (!blame) {
        return acme_result_fail(res, rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP : APR_EGENERAL,
                                ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "%s %s through the proxy %s failed: %s (curl "
                                             "error %d)", method, url, http->proxy_shown, why,
                                             (int)rc));
    }
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                            apr_psprintf(p, "%s %s failed at the proxy, not at the CA: the proxy "
                                         "%s %s (curl error %d)", method, url,
                                         http->proxy_shown, blame, (int)rc));
}

static apr_status_t transport_failure(acme_http_t *http, apr_pool_t *p, const char *method,
                                      const char *url, CURLcode rc, const http_transfer_t *t,
                                      acme_result_t *res)
{
    const char *why = http->errbuf[0] ? http->errbuf : curl_easy_strerror(rc);
    acme_class_t cls = ACME_CLASS_RETRY_SOON;

    if (t->overflow || rc == CURLE_FILESIZE_EXCEEDED) {
        return acme_result_fail(res, APR_EGENERAL, cls,
                                apr_psprintf(p, "%s %s: response larger than %" APR_SIZE_T_FMT
                                             " bytes", method, url, http->opts.max_response_size));
    }
    if (http->proxy_shown) {
        return proxy_failure(http, p, method, url, rc, why, res);
    }
    /* A missing or unreadable CA file will not fix itself by waiting. */
    if (rc == CURLE_SSL_CACERT_BADFILE) {
        cls = ACME_CLASS_ADMIN;
    }
    return acme_result_fail(res, rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP : APR_EGENERAL, cls,
                            apr_psprintf(p, "%s %s failed: %s (curl error %d)", method, url, why,
                                         (int)rc));
}

typedef enum { HTTP_GET, HTTP_HEAD, HTTP_POST } http_method_t;

static CURLcode set_method(acme_http_t *http, http_method_t method, const char *body)
{
    CURL *c = http->curl;
    CURLcode rc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);

    if (rc == CURLE_OK && method == HTTP_HEAD) {
        rc = curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    if (rc == CURLE_OK && method == HTTP_POST) {
        rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        if (rc == CURLE_OK) {
            rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        }
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER,
                              method == HTTP_POST ? http->post_headers : http->get_headers);
    }
    return rc;
}

static apr_status_t perform(acme_http_t *http, apr_pool_t *p, http_method_t method,
                            const char *url, const char *body, acme_http_response_t **out,
                            acme_result_t *res)
{
    static const char *const names[] = { "GET", "HEAD", "POST" };
    http_transfer_t t = { .pool = p, .url = url, .max = http->opts.max_response_size };
    CURL *c = http->curl;
    CURLcode rc;
    long code = 0;

    acme_result_reset(res);
    t.resp = acme_http_response_make(p);
    http->errbuf[0] = '\0';
    rc = curl_easy_setopt(c, CURLOPT_URL, url);
    if (rc == CURLE_OK) {
        rc = set_method(http, method, body);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_perform(c);
    }
    /* Nothing may point at our stack frame once we return. */
    curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    if (rc != CURLE_OK) {
        free(t.buf);
        return transport_failure(http, p, names[method], url, rc, &t, res);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    t.resp->status = (int)code;
    if (t.len) {
        t.resp->body = apr_pstrmemdup(p, t.buf, t.len);
        t.resp->body_len = t.len;
    }
    free(t.buf);
    res->http_status = t.resp->status;
    *out = t.resp;
    return APR_SUCCESS;
}

apr_status_t acme_http_get(acme_http_t *http, apr_pool_t *p, const char *url,
                           acme_http_response_t **resp, acme_result_t *res)
{
    return perform(http, p, HTTP_GET, url, NULL, resp, res);
}

apr_status_t acme_http_head(acme_http_t *http, apr_pool_t *p, const char *url,
                            acme_http_response_t **resp, acme_result_t *res)
{
    return perform(http, p, HTTP_HEAD, url, NULL, resp, res);
}

apr_status_t acme_http_post_jose(acme_http_t *http, apr_pool_t *p, const char *url,
                                 const char *body, acme_http_response_t **resp,
                                 acme_result_t *res)
{
    return perform(http, p, HTTP_POST, url, body ? body : "", resp, res);
}
