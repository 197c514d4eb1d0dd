#include <string.h>

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_perms.h"
#include "acme_challenge.h"
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
    apr_file_perms_set(dir, ACME_PERMS_0755);
    return acme_store_write_file(p, path, key_authz, strlen(key_authz), ACME_PERMS_0644, res);
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
