#include <string.h>
#include <arpa/inet.h>

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_perms.h"
#include "acme_challenge.h"
#include "acme_crypto.h"
#include "acme_names.h"
#include "acme_store.h"

int acme_challenge_token_valid(const char *token)
{
    apr_size_t i;

    if (!token || !*token) {
        return 0;
    }
    for (i = 0; token[i]; ++i) {
        if (i >= ACME_CHALLENGE_TOKEN_MAX) {
            return 0;
        }
        if (!apr_isalnum(token[i]) && token[i] != '-' && token[i] != '_') {
            return 0;
        }
    }
    return 1;
}

static int acme_challenge_ident_usable(const char *ident)
{
    return ident && *ident && ident[0] != '.' && !strchr(ident, '/') && strlen(ident) <= 253;
}

const char *acme_challenge_http01_path(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token)
{
    if (!acme_challenge_ident_usable(ident) || !acme_challenge_token_valid(token)) {
        return NULL;
    }
    return apr_pstrcat(p, store_dir, "/" ACME_STORE_CHALLENGES "/" ACME_CHALLENGE_HTTP01_DIR "/",
                       ident, "/", token, NULL);
}

apr_status_t acme_challenge_http01_put(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token, const char *key_authz,
                                       acme_result_t *res)
{
    const char *path = acme_challenge_http01_path(p, store_dir, ident, token);
    const char *dir;
    apr_status_t rv;

    if (!path) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "the CA sent an unusable http-01 token for %s",
                                             ident));
    }
    dir = apr_pstrndup(p, path, (apr_size_t)(strrchr(path, '/') - path));
    rv = apr_dir_make_recursive(dir, ACME_PERMS_0755, p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        char buf[120];
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "cannot create %s: %s", dir,
                                             apr_strerror(rv, buf, sizeof(buf))));
    }
    /* Whatever the umask: the children must reach the answer. */
    apr_file_perms_set(apr_pstrndup(p, dir, (apr_size_t)(strrchr(dir, '/') - dir)),
                       ACME_PERMS_0755);
    apr_file_perms_set(dir, ACME_PERMS_0755);
    /* Unsynced: an answer lives as long as its order, which after a crash writes it anew. */
    return acme_store_write_file_volatile(p, path, key_authz, strlen(key_authz), ACME_PERMS_0644,
                                          res);
}

void acme_challenge_http01_remove(apr_pool_t *p, const char *store_dir, const char *ident,
                                  const char *token)
{
    const char *path = acme_challenge_http01_path(p, store_dir, ident, token);

    if (path) {
        apr_file_remove(path, p);
        /* The directory goes when it is empty; another token may still live in it. */
        apr_dir_remove(apr_pstrndup(p, path, (apr_size_t)(strrchr(path, '/') - path)), p);
    }
}

apr_status_t acme_challenge_http01_get(apr_pool_t *p, const char *store_dir, const char *ident,
                                       const char *token, const char **key_authz,
                                       apr_size_t *len)
{
    const char *path = acme_challenge_http01_path(p, store_dir, ident, token);
    acme_result_t res;
    char *data = NULL;
    apr_status_t rv;

    if (!path) {
        return APR_ENOENT;
    }
    acme_result_reset(&res);
    rv = acme_store_read_file(p, path, &data, len, 4096, &res);
    *key_authz = data;
    return rv;
}

/* ------------------------------------------------------------------ TLS challenges */

const char *acme_challenge_sha256_hex(apr_pool_t *p, const char *key_authz)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];
    char *out = apr_palloc(p, 65);
    int i;

    acme_crypto_sha256(key_authz, strlen(key_authz), digest);
    for (i = 0; i < 32; ++i) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[64] = '\0';
    return out;
}

const char *acme_challenge_tlssni01_name(apr_pool_t *p, const char *key_authz)
{
    const char *z = acme_challenge_sha256_hex(p, key_authz);

    return apr_pstrcat(p, apr_pstrndup(p, z, 32), ".", z + 32, ACME_CHALLENGE_TLSSNI01_SUFFIX,
                       NULL);
}

int acme_challenge_tlssni01_name_valid(const char *name)
{
    apr_size_t i;

    if (!name || strlen(name) != ACME_CHALLENGE_TLSSNI01_NAME_LEN
        || strcasecmp(name + 65, ACME_CHALLENGE_TLSSNI01_SUFFIX) != 0 || name[32] != '.') {
        return 0;
    }
    for (i = 0; i < 65; ++i) {
        if (i != 32 && !apr_isxdigit(name[i])) {
            return 0;
        }
    }
    return 1;
}

static int acme_challenge_ends_with(const char *s, apr_size_t len, const char *suffix)
{
    apr_size_t n = strlen(suffix);

    return len > n && strncasecmp(s + len - n, suffix, n) == 0;
}

/* "d.c.b.a" (the part before .in-addr.arpa) -> "a.b.c.d", each a decimal 0-255. */
static const char *acme_challenge_ipv4_from_reverse(apr_pool_t *p, const char *s, apr_size_t len)
{
    unsigned int octets[4];
    apr_size_t pos = 0;
    int n;

    for (n = 0; n < 4; ++n) {
        unsigned int v = 0;
        apr_size_t digits = 0;
        while (pos < len && apr_isdigit(s[pos]) && digits < 4) {
            v = v * 10 + (unsigned int)(s[pos++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[pos - digits] == '0')) {
            return NULL;
        }
        octets[n] = v;
        if (n < 3 && (pos >= len || s[pos++] != '.')) {
            return NULL;
        }
    }
    if (pos != len) {
        return NULL;
    }
    return apr_psprintf(p, "%u.%u.%u.%u", octets[3], octets[2], octets[1], octets[0]);
}

/* 32 nibbles "x.x. ... .x" (the part before .ip6.arpa), least significant first. */
static const char *acme_challenge_ipv6_from_reverse(apr_pool_t *p, const char *s, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    int i, out = 0;

    if (len != 63) {
        return NULL;
    }
    for (i = 0; i < 32; ++i) {
        char c = (char)apr_tolower(s[62 - 2 * i]);
        if (!strchr(hex, c) || !c || (i < 31 && s[62 - 2 * i - 1] != '.')) {
            return NULL;
        }
        text[out++] = c;
        if (i % 4 == 3 && i < 31) {
            text[out++] = ':';
        }
    }
    text[out] = '\0';
    /* The compressed form ("2001:db8::1"), which the names module then checks and keeps. */
    if (inet_pton(AF_INET6, text, addr) != 1 || !inet_ntop(AF_INET6, addr, text, sizeof(text))) {
        return NULL;
    }
    return apr_pstrdup(p, text);
}

apr_status_t acme_challenge_ip_from_reverse(apr_pool_t *p, const char *sni, acme_ident_t *ip)
{
    apr_size_t len = sni ? strlen(sni) : 0;
    const char *text = NULL;

    if (len > 0 && sni[len - 1] == '.') {
        len--;
    }
    if (acme_challenge_ends_with(sni, len, ".in-addr.arpa")) {
        text = acme_challenge_ipv4_from_reverse(p, sni, len - strlen(".in-addr.arpa"));
    }
    else if (acme_challenge_ends_with(sni, len, ".ip6.arpa")) {
        text = acme_challenge_ipv6_from_reverse(p, sni, len - strlen(".ip6.arpa"));
    }
    /* The names module gives the canonical form the configuration and the index use. */
    if (!text || acme_names_parse(p, text, ip, NULL) != APR_SUCCESS || ip->type != ACME_IDENT_IP) {
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t acme_challenge_tls_answer_pem(apr_pool_t *p, const acme_ident_t *ident,
                                           const unsigned char *acme_identifier_sha256,
                                           const char **pem, acme_result_t *res)
{
    const acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    const char *cert_pem = NULL, *key_pem = NULL;
    acme_key_t *key = NULL;
    apr_status_t rv;

    if ((rv = acme_crypto_key_generate(p, &spec, &key, res)) != APR_SUCCESS
        || (rv = acme_crypto_selfsigned_create(p, key, ident, ACME_CHALLENGE_TLS_VALIDITY,
                                               acme_identifier_sha256, &cert_pem, res))
           != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(p, key, &key_pem, res)) != APR_SUCCESS) {
        return rv;
    }
    *pem = apr_pstrcat(p, cert_pem, key_pem, NULL);
    return APR_SUCCESS;
}

apr_status_t acme_challenge_tls_answer_split(apr_pool_t *p, const char *pem,
                                             const char **cert_pem, const char **key_pem)
{
    const char *key = pem ? strstr(pem, "-----BEGIN PRIVATE KEY-----") : NULL;

    if (!key || key == pem || !strstr(pem, "-----BEGIN CERTIFICATE-----")) {
        return APR_EINVAL;
    }
    *cert_pem = apr_pstrndup(p, pem, (apr_size_t)(key - pem));
    *key_pem = key;
    return APR_SUCCESS;
}

static const char *acme_challenge_answer_path(apr_pool_t *p, const char *store_dir,
                                              const char *type_dir, const char *name)
{
    return apr_pstrcat(p, store_dir, "/" ACME_STORE_CHALLENGES "/", type_dir, "/", name,
                       "/" ACME_CHALLENGE_ANSWER_FILE, NULL);
}

static apr_status_t acme_challenge_answer_put(apr_pool_t *p, const char *path, const char *pem,
                                              acme_result_t *res)
{
    const char *dir = apr_pstrndup(p, path, (apr_size_t)(strrchr(path, '/') - path));
    apr_status_t rv = apr_dir_make_recursive(dir, ACME_PERMS_0755, p);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        char buf[120];
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "cannot create %s: %s", dir,
                                             apr_strerror(rv, buf, sizeof(buf))));
    }
    apr_file_perms_set(dir, ACME_PERMS_0755);
    /* Holds a key: readable by the owner, the User the children answer the handshake as.
     * Unsynced: an answer lives as long as its order, which after a crash writes it anew. */
    return acme_store_write_file_volatile(p, path, pem, strlen(pem), ACME_PERMS_0600, res);
}

static void acme_challenge_answer_remove(apr_pool_t *p, const char *path)
{
    if (path) {
        apr_file_remove(path, p);
        apr_dir_remove(apr_pstrndup(p, path, (apr_size_t)(strrchr(path, '/') - path)), p);
    }
}

static apr_status_t acme_challenge_answer_get(apr_pool_t *p, const char *path, const char **pem)
{
    acme_result_t res;
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!path) {
        return APR_ENOENT;
    }
    acme_result_reset(&res);
    rv = acme_store_read_file(p, path, &data, &len, 16384, &res);
    *pem = data;
    return rv;
}

const char *acme_challenge_tlsalpn01_path(apr_pool_t *p, const char *store_dir,
                                          const char *ident)
{
    if (!acme_challenge_ident_usable(ident)) {
        return NULL;
    }
    return acme_challenge_answer_path(p, store_dir, ACME_CHALLENGE_TLSALPN01_DIR, ident);
}

apr_status_t acme_challenge_tlsalpn01_put(apr_pool_t *p, const char *store_dir,
                                          const acme_ident_t *ident, const char *key_authz,
                                          acme_result_t *res)
{
    const char *path = acme_challenge_tlsalpn01_path(p, store_dir, ident ? ident->value : NULL);
    unsigned char digest[32];
    const char *pem = NULL;
    apr_status_t rv;

    if (!path) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                "the CA sent an unusable identifier for tls-alpn-01");
    }
    acme_crypto_sha256(key_authz, strlen(key_authz), digest);
    rv = acme_challenge_tls_answer_pem(p, ident, digest, &pem, res);
    return rv == APR_SUCCESS ? acme_challenge_answer_put(p, path, pem, res) : rv;
}

void acme_challenge_tlsalpn01_remove(apr_pool_t *p, const char *store_dir, const char *ident)
{
    acme_challenge_answer_remove(p, acme_challenge_tlsalpn01_path(p, store_dir, ident));
}

apr_status_t acme_challenge_tlsalpn01_get(apr_pool_t *p, const char *store_dir,
                                          const char *ident, const char **pem)
{
    return acme_challenge_answer_get(p, acme_challenge_tlsalpn01_path(p, store_dir, ident), pem);
}

const char *acme_challenge_tlssni01_path(apr_pool_t *p, const char *store_dir, const char *name)
{
    apr_size_t i;
    char *lower;

    if (!acme_challenge_tlssni01_name_valid(name)) {
        return NULL;
    }
    lower = apr_pstrdup(p, name);
    for (i = 0; lower[i]; ++i) {
        lower[i] = (char)apr_tolower(lower[i]);
    }
    return acme_challenge_answer_path(p, store_dir, ACME_CHALLENGE_TLSSNI01_DIR, lower);
}

apr_status_t acme_challenge_tlssni01_put(apr_pool_t *p, const char *store_dir,
                                         const char *key_authz, const char **name,
                                         acme_result_t *res)
{
    acme_ident_t ident = { .type = ACME_IDENT_DNS,
                           .value = acme_challenge_tlssni01_name(p, key_authz) };
    const char *pem = NULL;
    apr_status_t rv;

    *name = ident.value;
    rv = acme_challenge_tls_answer_pem(p, &ident, NULL, &pem, res);
    return rv == APR_SUCCESS
           ? acme_challenge_answer_put(p, acme_challenge_tlssni01_path(p, store_dir, ident.value),
                                       pem, res)
           : rv;
}

void acme_challenge_tlssni01_remove(apr_pool_t *p, const char *store_dir, const char *name)
{
    acme_challenge_answer_remove(p, acme_challenge_tlssni01_path(p, store_dir, name));
}

apr_status_t acme_challenge_tlssni01_get(apr_pool_t *p, const char *store_dir, const char *name,
                                         const char **pem)
{
    return acme_challenge_answer_get(p, acme_challenge_tlssni01_path(p, store_dir, name), pem);
}
