#include <string.h>

#include <apr_file_info.h>
#include <apr_strings.h>

#include "acme_perms.h"
#include "acme_activate.h"
#include "acme_seal.h"
#include "acme_worker.h"

#define ACME_FALLBACK_VALIDITY apr_time_from_sec(30 * 24 * 3600)

static const char *acme_activate_file(apr_pool_t *p, const char *dir, const char *prefix,
                                      const acme_keyspec_t *spec, const char *suffix)
{
    return apr_pstrcat(p, dir, "/", prefix, ".", acme_crypto_keyspec_name(spec), suffix, NULL);
}

int acme_activate_staged(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_STAGING, dom->name, NULL);
    apr_finfo_t finfo;

    return dir && apr_stat(&finfo, apr_pstrcat(p, dir, "/" ACME_WORKER_STAGED_FILE, NULL),
                           APR_FINFO_TYPE, p) == APR_SUCCESS;
}

static apr_status_t acme_activate_refuse(apr_pool_t *p, const acme_domain_t *dom,
                                         const acme_keyspec_t *spec, acme_result_t *res)
{
    /* Keep the check's own words, prefixed with which file it was about. */
    res->message = apr_psprintf(p, "staged %s certificate of %s refused: %s",
                                acme_crypto_keyspec_name(spec), dom->name,
                                res->message ? res->message : "invalid");
    res->err_class = ACME_CLASS_PERMANENT;
    return res->status == APR_SUCCESS ? (res->status = APR_EINVAL) : res->status;
}

/* Loads and checks one spec of a staged set; on success the key PEM and chain PEM. */
static apr_status_t acme_activate_check_spec(apr_pool_t *p, const char *dir,
                                             const acme_activate_seal_t *seal,
                                             const acme_domain_t *dom, const acme_keyspec_t *spec,
                                             char **key_pem, apr_size_t *key_len,
                                             const char **chain_pem, acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    acme_key_t *key = NULL;
    acme_cert_t *leaf;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    rv = acme_store_read_file(p, acme_activate_file(p, dir, "pubcert", spec, ".pem"), &text, &len,
                              0, res);
    if (rv == APR_SUCCESS) {
        *chain_pem = text;
        rv = acme_crypto_chain_parse(p, text, len, &chain, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_store_read_file(p, acme_activate_file(p, dir, "privkey", spec, ".sealed"),
                                  &text, &len, 0, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_seal_decrypt(p, seal->key, seal->cert, text, len, key_pem, key_len, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_key_from_pem(p, *key_pem, *key_len, &key, res);
    }
    if (rv != APR_SUCCESS) {
        return acme_activate_refuse(p, dom, spec, res);
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    if ((rv = acme_crypto_key_matches_cert(key, leaf, res)) != APR_SUCCESS
        || (rv = acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)dom->idents->elts,
                                         dom->idents->nelts, res)) != APR_SUCCESS
        || (rv = acme_crypto_chain_check(p, chain, res)) != APR_SUCCESS
        || (rv = acme_crypto_cert_check_time(p, leaf, apr_time_now(), res)) != APR_SUCCESS) {
        return acme_activate_refuse(p, dom, spec, res);
    }
    return APR_SUCCESS;
}

apr_status_t acme_activate_check(apr_pool_t *p, const acme_store_t *st,
                                 const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                 acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_STAGING, dom->name, NULL);
    const apr_array_header_t *specs = dom->policy.key_specs;
    int j;

    for (j = 0; j < specs->nelts; ++j) {
        const char *chain_pem = NULL;
        char *key_pem = NULL;
        apr_size_t key_len = 0;
        apr_status_t rv = acme_activate_check_spec(p, dir, seal, dom,
                                                   &APR_ARRAY_IDX(specs, j, acme_keyspec_t),
                                                   &key_pem, &key_len, &chain_pem, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t acme_activate_write_set(apr_pool_t *p, const acme_store_t *st,
                                            const acme_activate_seal_t *seal,
                                            const acme_domain_t *dom, const char *tmp_dir,
                                            acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_STAGING, dom->name, NULL);
    const apr_array_header_t *specs = dom->policy.key_specs;
    apr_status_t rv = acme_store_remove_tree(p, tmp_dir, res);
    int j;

    if (rv == APR_SUCCESS) {
        rv = acme_store_mkdirs(p, tmp_dir, res);
    }
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        const acme_keyspec_t *spec = &APR_ARRAY_IDX(specs, j, acme_keyspec_t);
        const char *chain_pem = NULL;
        char *key_pem = NULL;
        apr_size_t key_len = 0;
        rv = acme_activate_check_spec(p, dir, seal, dom, spec, &key_pem, &key_len, &chain_pem,
                                      res);
        if (rv == APR_SUCCESS) {
            rv = acme_store_write_file(p, acme_activate_file(p, tmp_dir, "privkey", spec, ".pem"),
                                       key_pem, key_len, ACME_PERMS_0600, res);
        }
        if (rv == APR_SUCCESS) {
            rv = acme_store_write_file(p, acme_activate_file(p, tmp_dir, "pubcert", spec, ".pem"),
                                       chain_pem, strlen(chain_pem), ACME_PERMS_0644, res);
        }
    }
    return rv;
}

apr_status_t acme_activate_install(apr_pool_t *p, const acme_store_t *st,
                                   const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                   acme_result_t *res)
{
    const char *staged = acme_store_path(p, st, ACME_STORE_STAGING, dom->name, NULL);
    const char *tmp_dir = acme_store_path(p, st, ACME_STORE_TMP, dom->name, NULL);
    const char *active = acme_store_path(p, st, ACME_STORE_DOMAINS, dom->name, NULL);
    const char *archive = acme_store_path(p, st, ACME_STORE_ARCHIVE, NULL, NULL);
    acme_result_t ignored;
    apr_status_t rv;

    rv = acme_activate_write_set(p, st, seal, dom, tmp_dir, res);
    if (rv == APR_SUCCESS) {
        rv = acme_store_replace_dir(p, tmp_dir, active, archive, ACME_ACTIVATE_ARCHIVE_KEEP, res);
    }
    if (rv == APR_SUCCESS || res->err_class == ACME_CLASS_PERMANENT) {
        /* Installed, or never installable: either way the staged set is done with. */
        acme_result_reset(&ignored);
        acme_store_remove_tree(p, staged, &ignored);
    }
    return rv;
}

static apr_status_t acme_activate_load_spec(apr_pool_t *p, const char *dir,
                                            const acme_domain_t *dom, const acme_keyspec_t *spec,
                                            apr_time_t now, acme_active_cert_t *out,
                                            acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    apr_finfo_t finfo;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;
    acme_cert_t *leaf;

    *out = (acme_active_cert_t){
        .spec = acme_crypto_keyspec_name(spec),
        .cert_file = acme_activate_file(p, dir, "pubcert", spec, ".pem"),
        .key_file = acme_activate_file(p, dir, "privkey", spec, ".pem"),
    };
    if ((rv = apr_stat(&finfo, out->key_file, APR_FINFO_TYPE, p)) != APR_SUCCESS
        || (rv = acme_store_read_file(p, out->cert_file, &text, &len, 0, res)) != APR_SUCCESS
        || (rv = acme_crypto_chain_parse(p, text, len, &chain, res)) != APR_SUCCESS) {
        return rv;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    if ((rv = acme_crypto_cert_info(p, leaf, &out->info, res)) != APR_SUCCESS) {
        return rv;
    }
    /* An expired certificate is still served (better than nothing) but never counts as complete. */
    if (acme_crypto_cert_check_time(p, leaf, now, res) != APR_SUCCESS
        || acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)dom->idents->elts,
                                   dom->idents->nelts, res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t acme_activate_fallback(apr_pool_t *p, const acme_store_t *st,
                                           acme_active_t *active, const acme_domain_t *dom,
                                           acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_DOMAINS, ACME_ACTIVATE_FALLBACK_DIR, NULL);
    const char *key_path = apr_pstrcat(p, dir, "/fallback.key", NULL);
    const char *cert_path = apr_pstrcat(p, dir, "/", dom->name, ".pem", NULL);
    const acme_ident_t *first = &APR_ARRAY_IDX(dom->idents, 0, acme_ident_t);
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    apr_array_header_t *chain = NULL;
    acme_key_t *key = NULL;
    const char *pem = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    active->fallback_cert = cert_path;
    active->fallback_key = key_path;
    if (acme_store_read_file(p, cert_path, &text, &len, 0, res) == APR_SUCCESS
        && acme_crypto_chain_parse(p, text, len, &chain, res) == APR_SUCCESS
        && acme_crypto_cert_check_time(p, APR_ARRAY_IDX(chain, 0, acme_cert_t *),
                                       apr_time_now() + apr_time_from_sec(86400), res)
           == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    acme_result_reset(res);
    /* One EC key for every fallback: cheap with thousands of domains. */
    rv = acme_store_read_file(p, key_path, &text, &len, 0, res);
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_key_from_pem(p, text, len, &key, res);
    }
    else {
        acme_result_reset(res);
        if ((rv = acme_crypto_key_generate(p, &spec, &key, res)) == APR_SUCCESS
            && (rv = acme_crypto_key_to_pem(p, key, &pem, res)) == APR_SUCCESS) {
            rv = acme_store_write_file(p, key_path, pem, strlen(pem), ACME_PERMS_0600, res);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_selfsigned_create(p, key, first, ACME_FALLBACK_VALIDITY, NULL, &pem, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_store_write_file(p, cert_path, pem, strlen(pem), ACME_PERMS_0644, res);
    }
    return rv;
}

apr_status_t acme_activate_load(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom,
                                apr_time_t now, acme_active_t **pactive, acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_DOMAINS, dom->name, NULL);
    const apr_array_header_t *specs = dom->policy.key_specs;
    acme_active_t *active = apr_pcalloc(p, sizeof(*active));
    acme_result_t ignored;
    int j;

    active->name = dom->name;
    active->certs = apr_array_make(p, specs->nelts, sizeof(acme_active_cert_t));
    active->complete = 1;
    *pactive = active;
    for (j = 0; j < specs->nelts; ++j) {
        acme_active_cert_t cert;
        apr_status_t rv;
        acme_result_reset(&ignored);
        rv = acme_activate_load_spec(p, dir, dom, &APR_ARRAY_IDX(specs, j, acme_keyspec_t), now,
                                     &cert, &ignored);
        if (rv != APR_SUCCESS) {
            active->complete = 0;
        }
        if (rv == APR_SUCCESS || rv == APR_EGENERAL) {
            APR_ARRAY_PUSH(active->certs, acme_active_cert_t) = cert;
        }
    }
    if (active->certs->nelts > 0) {
        return APR_SUCCESS;
    }
    return acme_activate_fallback(p, st, active, dom, res);
}
