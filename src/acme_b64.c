#include <string.h>

#include "acme_b64.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *acme_b64_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    apr_size_t full = len / 3, rest = len % 3;
    char *out = apr_palloc(p, full * 4 + (rest ? rest + 1 : 0) + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i < full * 3; i += 3) {
        unsigned long v = ((unsigned long)data[i] << 16) | ((unsigned long)data[i + 1] << 8)
                          | data[i + 2];
        *o++ = b64url_alphabet[(v >> 18) & 0x3f];
        *o++ = b64url_alphabet[(v >> 12) & 0x3f];
        *o++ = b64url_alphabet[(v >> 6) & 0x3f];
        *o++ = b64url_alphabet[v & 0x3f];
    }
    if (rest == 1) {
        unsigned long v = (unsigned long)data[i] << 16;
        *o++ = b64url_alphabet[(v >> 18) & 0x3f];
        *o++ = b64url_alphabet[(v >> 12) & 0x3f];
    }
    else if (rest == 2) {
        unsigned long v = ((unsigned long)data[i] << 16) | ((unsigned long)data[i + 1] << 8);
        *o++ = b64url_alphabet[(v >> 18) & 0x3f];
        *o++ = b64url_alphabet[(v >> 12) & 0x3f];
        *o++ = b64url_alphabet[(v >> 6) & 0x3f];
    }
    *o = '\0';
    return out;
}

const char *acme_b64_encode_str(apr_pool_t *p, const char *s)
{
    return acme_b64_encode(p, (const unsigned char *)s, strlen(s));
}

/* -1 for anything outside the url alphabet (including '=', '+', '/', whitespace). */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

apr_status_t acme_b64_decode(apr_pool_t *p, const char *s,
                             unsigned char **out, apr_size_t *out_len)
{
    apr_size_t len, i, n = 0;
    unsigned long acc = 0;
    int bits = 0;
    unsigned char *buf;

    if (!s) {
        return APR_EINVAL;
    }
    len = strlen(s);
    if (len % 4 == 1) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, (len / 4) * 3 + 3 + 1);
    for (i = 0; i < len; ++i) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            return APR_EINVAL;
        }
        acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits are padding of the last character and must be zero. */
    if (bits > 0 && (acc & ((1UL << bits) - 1)) != 0) {
        return APR_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return APR_SUCCESS;
}
