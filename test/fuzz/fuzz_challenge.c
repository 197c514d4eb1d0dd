/*
 * What a validation request or a TLS handshake brings in (src/acme_challenge.c, acme_names.c):
 * the http-01 request path and Host, the SNI of tls-alpn-01 (a name or an RFC 8738 reverse-DNS
 * name) and of tls-sni-01, and the answer PEM split. Every path built from them must stay
 * under its challenge directory. First byte:
 *   0  "Host\npath" of an http-01 request, handled as acme_serve_http01 does
 *   1  a tls-alpn-01 SNI          2  a tls-sni-01 SNI          3  an answer PEM to split
 */
#include <strings.h>

#include "fuzz_common.h"
#include "acme_challenge.h"
#include "acme_names.h"
#include "acme_store.h"

#define STORE "/nonexistent/fuzz-store"
#define WELL_KNOWN "/.well-known/acme-challenge/"

/* path is STORE/challenges/<kind>/ followed by `parts` non-empty components, none "." or "..". */
static void check_path(const char *path, const char *kind, int parts)
{
    const char *prefix = STORE "/" ACME_STORE_CHALLENGES "/";
    const char *s;
    int n = 0;

    FUZZ_ASSERT(strncmp(path, prefix, strlen(prefix)) == 0);
    s = path + strlen(prefix);
    FUZZ_ASSERT(strncmp(s, kind, strlen(kind)) == 0 && s[strlen(kind)] == '/');
    s += strlen(kind) + 1;
    while (*s) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        FUZZ_ASSERT(len > 0);
        FUZZ_ASSERT(!(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.'));
        ++n;
        s += len + (end ? 1 : 0);
        FUZZ_ASSERT(!end || *s);
    }
    FUZZ_ASSERT(n == parts);
}

static void fuzz_http01(apr_pool_t *p, const uint8_t *data, size_t size)
{
    size_t off = 1;
    char *host = fuzz_line(p, data, size, &off);
    char *path = fuzz_line(p, data, size, &off);
    const char *token, *file, *key_authz = NULL;
    apr_size_t len = 0;

    if (!path || strncmp(path, WELL_KNOWN, strlen(WELL_KNOWN)) != 0) {
        return;
    }
    token = path + strlen(WELL_KNOWN);
    if (!acme_challenge_token_valid(token)) {
        FUZZ_ASSERT(acme_challenge_http01_path(p, STORE, host, token) == NULL);
        return;
    }
    file = acme_challenge_http01_path(p, STORE, host, token);
    if (file) {
        check_path(file, "http-01", 2);
        FUZZ_ASSERT(acme_challenge_http01_get(p, STORE, host, token, &key_authz, &len)
                    != APR_SUCCESS);
    }
}

static void fuzz_alpn(apr_pool_t *p, const char *sni)
{
    acme_ident_t id, again;
    const char *file, *rev;

    if (acme_names_parse(p, sni, &id, NULL) == APR_SUCCESS) {
        if ((file = acme_challenge_tlsalpn01_path(p, STORE, id.value)) != NULL) {
            check_path(file, "tls-alpn-01", 2);
        }
    }
    if (acme_challenge_ip_from_reverse(p, sni, &id) == APR_SUCCESS) {
        FUZZ_ASSERT(id.type == ACME_IDENT_IP);
        FUZZ_ASSERT(acme_names_parse(p, id.value, &again, NULL) == APR_SUCCESS);
        FUZZ_ASSERT(again.type == ACME_IDENT_IP && strcmp(again.value, id.value) == 0);
        /* the same address: the SNI's own spelling up to case and a trailing dot */
        rev = acme_names_reverse_dns(p, &id);
        FUZZ_ASSERT(strncasecmp(rev, sni, strlen(rev)) == 0
                    && (!sni[strlen(rev)] || !strcmp(sni + strlen(rev), ".")));
        if ((file = acme_challenge_tlsalpn01_path(p, STORE, id.value)) != NULL) {
            check_path(file, "tls-alpn-01", 2);
        }
    }
}

static void fuzz_sni01(apr_pool_t *p, const char *sni)
{
    const char *file = acme_challenge_tlssni01_path(p, STORE, sni);

    if (acme_challenge_tlssni01_name_valid(sni)) {
        FUZZ_ASSERT(file != NULL);
        check_path(file, "tls-sni-01", 2);
    }
    else {
        FUZZ_ASSERT(file == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *text, *cert = NULL, *key = NULL;

    if (size < 1) {
        return 0;
    }
    text = fuzz_str(p, data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        fuzz_http01(p, data, size);
        break;
    case 1:
        fuzz_alpn(p, text);
        break;
    case 2:
        fuzz_sni01(p, text);
        break;
    default:
        if (acme_challenge_tls_answer_split(p, text, &cert, &key) == APR_SUCCESS) {
            FUZZ_ASSERT(cert && key);
        }
        break;
    }
    return 0;
}
