#include <stdlib.h>
#include <string.h>

#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "acme_perms.h"
#include "acme_safefs.h"
#include "acme_activate.h"
#include "acme_seal.h"
#include "acme_worker.h"

/* How far ahead a notBefore may be and still mean "activate later" rather than "bad". */
#define ACME_ACTIVATE_FUTURE_MAX apr_time_from_sec(24 * 3600)
#define ACME_FALLBACK_VALIDITY apr_time_from_sec(30 * 24 * 3600)

static const char *acme_activate_file(apr_pool_t *p, const char *dir, const char *prefix,
                                      const acme_keyspec_t *spec, const char *suffix)
{
    return apr_pstrcat(p, dir, "/", prefix, ".", acme_crypto_keyspec_name(spec), suffix, NULL);
}

apr_status_t acme_activate_chain_read(apr_pool_t *p, const char *path, apr_array_header_t **chain,
                                      acme_cert_info_t *info, acme_result_t *res)
{
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv = acme_store_read_file(p, path, &text, &len, 0, res);

    if (rv == APR_SUCCESS && acme_crypto_chain_parse(p, text, len, chain, res) != APR_SUCCESS) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s is damaged (%s)", path, res->message));
    }
    if (rv == APR_SUCCESS && info) {
        rv = acme_crypto_cert_info(p, APR_ARRAY_IDX(*chain, 0, acme_cert_t *), info, res);
    }
    return rv;
}

apr_status_t acme_activate_key_check(apr_pool_t *p, const char *key_file, const acme_cert_t *leaf,
                                     acme_result_t *res)
{
    apr_pool_t *kp;
    acme_key_t *key = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    apr_pool_create(&kp, p);
    rv = acme_store_read_file(kp, key_file, &text, &len, 0, res);
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_key_from_pem(kp, text, len, &key, res);
        OPENSSL_cleanse(text, len);
        if (rv == APR_SUCCESS) {
            rv = acme_crypto_key_matches_cert(key, leaf, res);
        }
        if (rv != APR_SUCCESS) {
            rv = acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                  apr_psprintf(p, "%s is damaged (%s)", key_file, res->message));
        }
    }
    else {
        res->message = apr_pstrdup(p, res->message);
    }
    apr_pool_destroy(kp);
    return rv;
}

int acme_activate_has_set(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_DOMAINS, dom->name, NULL);
    apr_finfo_t finfo;

    return dir && apr_stat(&finfo, dir, APR_FINFO_TYPE, p) == APR_SUCCESS
           && finfo.filetype == APR_DIR;
}

int acme_activate_staged(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_STAGING, NULL, NULL);
    acme_safefs_dir_t *staging = NULL, *set = NULL;
    apr_pool_t *sp = NULL;
    apr_finfo_t finfo;
    acme_result_t res;
    int found;

    /* Asked for every domain at every monitor tick: nothing there costs one lstat, no open. */
    if (!dir || apr_stat(&finfo, apr_pstrcat(p, dir, "/", dom->name, NULL),
                         APR_FINFO_TYPE | APR_FINFO_LINK, p) != APR_SUCCESS) {
        return 0;
    }
    /* Looked at by descriptor: staging/<name> may be anything the User made. */
    apr_pool_create(&sp, p);
    acme_result_reset(&res);
    found = acme_safefs_dir_open(sp, dir, &staging, &res) == APR_SUCCESS
            && acme_safefs_dir_sub(sp, staging, dom->name, ACME_SAFEFS_ANY_OWNER, &set, &res)
               == APR_SUCCESS
            && acme_safefs_exists(set, ACME_WORKER_STAGED_FILE);
    apr_pool_destroy(sp);
    return found;
}

static int acme_activate_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static apr_status_t acme_activate_refuse(apr_pool_t *p, const acme_domain_t *dom,
                                         const acme_keyspec_t *spec, acme_result_t *res)
{
    /* Keep the check's own words, prefixed with which file it was about. */
    res->message = apr_psprintf(p, "staged %s certificate of %s %s: %s",
                                acme_crypto_keyspec_name(spec), dom->name,
                                res->err_class == ACME_CLASS_PERMANENT ? "refused"
                                : res->err_class == ACME_CLASS_RETRY_SOON ? "not activated yet"
                                : "not trusted", res->message ? res->message : "invalid");
    if (res->err_class == ACME_CLASS_NONE) {
        res->err_class = ACME_CLASS_PERMANENT;
    }
    return res->status == APR_SUCCESS ? (res->status = APR_EINVAL) : res->status;
}

static const char *acme_activate_ssl_error(apr_pool_t *p, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return e ? apr_psprintf(p, "%s (%s)", what, buf) : what;
}

/*
 * Loads the pair into a TLS server context the way mod_ssl does at start-up (leaf, chain, key,
 * key check): whatever mod_ssl would refuse at a restart, and so stop the server, is refused here
 * instead. With the certificates and key as parsed already: OpenSSL 3 takes longer to parse a
 * key or certificate than to do all of this, and the parent checks every set it activates.
 */
static apr_status_t acme_activate_load_like_mod_ssl(apr_pool_t *p,
                                                    const apr_array_header_t *chain,
                                                    const acme_key_t *key, acme_result_t *res)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *failure = NULL;
    int i;

    if (!ctx || SSL_CTX_use_certificate(ctx, acme_crypto_cert_x509(
                                            APR_ARRAY_IDX(chain, 0, acme_cert_t *))) != 1) {
        failure = "mod_ssl could not load the certificate";
    }
    for (i = 1; !failure && i < chain->nelts; ++i) {
        if (SSL_CTX_add1_chain_cert(ctx, acme_crypto_cert_x509(
                                        APR_ARRAY_IDX(chain, i, acme_cert_t *))) != 1) {
            failure = "mod_ssl could not load the certificate chain";
        }
    }
    if (!failure && SSL_CTX_use_PrivateKey(ctx, acme_crypto_key_evp(key)) != 1) {
        failure = "mod_ssl could not load the private key";
    }
    if (!failure && SSL_CTX_check_private_key(ctx) != 1) {
        failure = "the private key does not match the certificate";
    }
    if (failure) {
        acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                         acme_activate_ssl_error(p, failure));
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return failure ? APR_EINVAL : APR_SUCCESS;
}

/* The certificate names what the domain names: none missing (checked before), none extra. */
static apr_status_t acme_activate_exact_names(apr_pool_t *p, const acme_cert_t *leaf,
                                              const acme_domain_t *dom, acme_result_t *res)
{
    acme_cert_info_t info;
    apr_status_t rv = acme_crypto_cert_info(p, leaf, &info, res);

    if (rv == APR_SUCCESS && info.sans->nelts != dom->idents->nelts) {
        rv = acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                              apr_psprintf(p, "the certificate has %d names, the domain %d",
                                           info.sans->nelts, dom->idents->nelts));
    }
    return rv;
}

/* The staged files of one spec, as read. */
typedef struct {
    char *chain;
    apr_size_t chain_len;
    char *sealed;
    apr_size_t sealed_len;
} acme_activate_files_t;

static const char *acme_activate_name(apr_pool_t *p, const char *prefix,
                                      const acme_keyspec_t *spec, const char *suffix)
{
    return apr_pstrcat(p, prefix, ".", acme_crypto_keyspec_name(spec), suffix, NULL);
}

/* By descriptor, regular files of the worker's user only: staging/ is the User's. */
static apr_status_t acme_activate_read_spec(apr_pool_t *p, const acme_safefs_dir_t *dir,
                                            uid_t owner, const acme_keyspec_t *spec,
                                            acme_activate_files_t *f, acme_result_t *res)
{
    apr_status_t rv = acme_safefs_read(p, dir, acme_activate_name(p, "pubcert", spec, ".pem"),
                                       owner, ACME_STORE_READ_MAX, &f->chain, &f->chain_len, res);

    if (rv == APR_SUCCESS) {
        rv = acme_safefs_read(p, dir, acme_activate_name(p, "privkey", spec, ".sealed"), owner,
                              ACME_STORE_READ_MAX, &f->sealed, &f->sealed_len, res);
    }
    return rv;
}

/*
 * Valid now. A notBefore ahead of this clock (a CA whose clock runs ahead, or ours behind) is
 * no verdict: the set is activated at a later look, once it is valid.
 */
static apr_status_t acme_activate_check_time(apr_pool_t *p, const acme_cert_t *leaf,
                                             acme_result_t *res)
{
    acme_cert_info_t info;
    apr_status_t rv = acme_crypto_cert_info(p, leaf, &info, res);
    apr_time_t now = apr_time_now();
    char when[APR_RFC822_DATE_LEN];

    if (rv == APR_SUCCESS && info.not_before > now
        && info.not_before <= now + ACME_ACTIVATE_FUTURE_MAX) {
        /* A fixed time, not a countdown: the same words at every look are logged once. */
        apr_rfc822_date(when, info.not_before);
        return acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "the certificate becomes valid at %s (this "
                                             "server's clock is behind the CA's); it is "
                                             "activated then", when));
    }
    return rv == APR_SUCCESS ? acme_crypto_cert_check_time(p, leaf, now, res) : rv;
}

/* Checks one spec's files as mod_ssl would need them; on success the plain key PEM. */
static apr_status_t acme_activate_check_spec(apr_pool_t *p, const acme_activate_seal_t *seal,
                                             const acme_domain_t *dom, const acme_keyspec_t *spec,
                                             const acme_activate_files_t *f, char **key_pem,
                                             apr_size_t *key_len, acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    acme_key_t *key = NULL;
    acme_cert_t *leaf;
    apr_status_t rv;

    rv = acme_crypto_chain_parse(p, f->chain, f->chain_len, &chain, res);
    if (rv == APR_SUCCESS) {
        rv = acme_seal_decrypt(p, seal->key, seal->cert, f->sealed, f->sealed_len, key_pem,
                               key_len, res);
        /* The proof says the worker made it: a key that does not open never will. */
        res->err_class = rv == APR_SUCCESS ? res->err_class : ACME_CLASS_PERMANENT;
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
        || (rv = acme_activate_exact_names(p, leaf, dom, res)) != APR_SUCCESS
        || (rv = acme_crypto_chain_check_issued(p, chain, res)) != APR_SUCCESS
        || (rv = acme_activate_check_time(p, leaf, res)) != APR_SUCCESS
        || (rv = acme_activate_load_like_mod_ssl(p, chain, key, res)) != APR_SUCCESS) {
        return acme_activate_refuse(p, dom, spec, res);
    }
    return APR_SUCCESS;
}

/* Hex SHA-256 over every spec's files, length-prefixed so that no two sets collide. */
static void acme_activate_digest_add(EVP_MD_CTX *md, const char *data, apr_size_t len)
{
    unsigned char n[8];
    int i;

    for (i = 0; i < 8; ++i) {
        n[i] = (unsigned char)((apr_uint64_t)len >> (8 * (7 - i)));
    }
    EVP_DigestUpdate(md, n, sizeof(n));
    EVP_DigestUpdate(md, data, len);
}

static const char *acme_activate_digest_end(apr_pool_t *p, EVP_MD_CTX *md)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *hex;

    EVP_DigestFinal_ex(md, out, &n);
    hex = apr_palloc(p, 2 * n + 1);
    for (i = 0; i < n; ++i) {
        apr_snprintf(hex + 2 * i, 3, "%02x", out[i]);
    }
    return hex;
}

/* What the proof binds a set to besides its files: the domain and its identifiers. */
static const char *acme_activate_proof_context(apr_pool_t *p, const acme_domain_t *dom)
{
    const char *text = apr_pstrcat(p, "mod_acme staged set 1\n", dom->name, "\n", NULL);
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        text = apr_pstrcat(p, text, id->type == ACME_IDENT_IP ? "ip:" : "dns:", id->value, "\n",
                           NULL);
    }
    return text;
}

static const char *acme_activate_proof_of(apr_pool_t *p, const unsigned char *key,
                                          const acme_domain_t *dom,
                                          const acme_activate_files_t *files)
{
    int n = dom->policy.key_specs->nelts, j;
    acme_seal_part_t *parts = apr_pcalloc(p, sizeof(*parts) * (apr_size_t)(2 * n));

    for (j = 0; j < n; ++j) {
        parts[2 * j] = (acme_seal_part_t){ .data = files[j].chain, .len = files[j].chain_len };
        parts[2 * j + 1] = (acme_seal_part_t){ .data = files[j].sealed,
                                               .len = files[j].sealed_len };
    }
    return acme_seal_proof(p, key, acme_activate_proof_context(p, dom), parts, 2 * n);
}

/* Every spec's files (files[j] for spec j) and the digest over all of them. */
static apr_status_t acme_activate_read_files(apr_pool_t *p, const acme_safefs_dir_t *dir,
                                             uid_t owner, const acme_domain_t *dom,
                                             acme_activate_files_t **files, const char **digest,
                                             acme_result_t *res)
{
    const apr_array_header_t *specs = dom->policy.key_specs;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    apr_status_t rv = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? APR_SUCCESS
                      : acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                         "SHA-256 is not available");
    int j;

    *files = apr_pcalloc(p, sizeof(**files) * (apr_size_t)specs->nelts);
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        const acme_keyspec_t *spec = &APR_ARRAY_IDX(specs, j, acme_keyspec_t);
        if ((rv = acme_activate_read_spec(p, dir, owner, spec, &(*files)[j], res))
            != APR_SUCCESS) {
            rv = acme_activate_refuse(p, dom, spec, res);
            break;
        }
        acme_activate_digest_add(md, (*files)[j].chain, (*files)[j].chain_len);
        acme_activate_digest_add(md, (*files)[j].sealed, (*files)[j].sealed_len);
    }
    *digest = rv == APR_SUCCESS ? acme_activate_digest_end(p, md) : NULL;
    EVP_MD_CTX_free(md);
    return rv;
}

/* The proof staged.json carries; class ADMIN (not trusted) when there is none. */
static apr_status_t acme_activate_read_proof(apr_pool_t *p, const acme_safefs_dir_t *dir,
                                             uid_t owner, const char **proof, acme_result_t *res)
{
    char *text = NULL;
    apr_size_t len = 0;
    json_t *json;
    apr_status_t rv = acme_safefs_read(p, dir, ACME_WORKER_STAGED_FILE, owner, 64 * 1024, &text,
                                       &len, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    json = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    *proof = json_is_string(json_object_get(json, "proof"))
             ? apr_pstrdup(p, json_string_value(json_object_get(json, "proof"))) : NULL;
    json_decref(json);
    return *proof ? APR_SUCCESS
           : acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                              apr_pstrcat(p, dir->path, "/" ACME_WORKER_STAGED_FILE " carries no "
                                          "proof of origin", NULL));
}

/*
 * Opens staging/<name>/ by descriptor and reads the set, which must carry the worker's proof:
 * anything else (planted, damaged, not made by the worker) fails with class ADMIN and is left
 * alone; system errors keep class RETRY_SOON.
 */
static apr_status_t acme_activate_read_set(apr_pool_t *p, const acme_store_t *st,
                                           const acme_activate_seal_t *seal,
                                           const acme_domain_t *dom,
                                           acme_activate_files_t **files, const char **digest,
                                           acme_result_t *res)
{
    acme_safefs_dir_t *staging = NULL, *dir = NULL;
    const char *proof = NULL, *expected;
    apr_status_t rv = acme_safefs_dir_open(p, acme_store_path(p, st, ACME_STORE_STAGING, NULL,
                                                              NULL), &staging, res);

    if (rv == APR_SUCCESS) {
        rv = acme_safefs_dir_sub(p, staging, dom->name, seal->owner, &dir, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_activate_read_proof(p, dir, seal->owner, &proof, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_activate_read_files(p, dir, seal->owner, dom, files, digest, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    expected = seal->proof_key ? acme_activate_proof_of(p, seal->proof_key, dom, *files) : NULL;
    if (!acme_seal_proof_equal(expected, proof)) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "staged set of %s: its proof of origin does not "
                                             "match; it was not made by the renewal worker (or "
                                             "for other names) and is ignored", dom->name));
    }
    return APR_SUCCESS;
}

apr_status_t acme_activate_proof_make(apr_pool_t *p, const unsigned char *key,
                                      const acme_domain_t *dom, const char *dir,
                                      const char **proof, acme_result_t *res)
{
    acme_safefs_dir_t *d = NULL;
    acme_activate_files_t *files = NULL;
    const char *digest = NULL;
    apr_status_t rv = acme_safefs_dir_open(p, dir, &d, res);

    if (rv == APR_SUCCESS) {
        rv = acme_activate_read_files(p, d, ACME_SAFEFS_ANY_OWNER, dom, &files, &digest, res);
    }
    if (rv == APR_SUCCESS && !(*proof = acme_activate_proof_of(p, key, dom, files))) {
        rv = acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                              "HMAC-SHA256 is not available");
    }
    return rv;
}

apr_status_t acme_activate_seal_open(apr_pool_t *p, const char *store_dir, uid_t owner,
                                     acme_activate_seal_t *seal, acme_result_t *res)
{
    apr_status_t rv;

    *seal = (acme_activate_seal_t){ .owner = owner };
    rv = acme_seal_key_load(p, store_dir, &seal->key, &seal->cert, res);
    if (rv == APR_SUCCESS) {
        rv = acme_seal_proof_key_load(p, store_dir, &seal->proof_key, res);
    }
    return rv;
}

apr_status_t acme_activate_check_digest(apr_pool_t *p, const acme_store_t *st,
                                        const acme_activate_seal_t *seal,
                                        const acme_domain_t *dom, const char **digest,
                                        acme_result_t *res)
{
    const apr_array_header_t *specs = dom->policy.key_specs;
    acme_activate_files_t *files = NULL;
    const char *read_digest = NULL;
    apr_status_t rv = acme_activate_read_set(p, st, seal, dom, &files, &read_digest, res);
    int j;

    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        char *key_pem = NULL;
        apr_size_t key_len = 0;

        rv = acme_activate_check_spec(p, seal, dom, &APR_ARRAY_IDX(specs, j, acme_keyspec_t),
                                      &files[j], &key_pem, &key_len, res);
        if (key_pem) {
            OPENSSL_cleanse(key_pem, key_len);
        }
    }
    if (rv == APR_SUCCESS && digest) {
        *digest = read_digest;
    }
    return rv;
}

apr_status_t acme_activate_check(apr_pool_t *p, const acme_store_t *st,
                                 const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                 acme_result_t *res)
{
    return acme_activate_check_digest(p, st, seal, dom, NULL, res);
}

/*
 * Reads the staged set and writes it (plain keys 0600) into tmp_dir. When the files are exactly
 * what acme_activate_check_digest passed (same digest), they are only opened, not checked again.
 * The writes are not synced one by one: the caller syncs the directory's files once.
 */
static apr_status_t acme_activate_write_set(apr_pool_t *p, const acme_store_t *st,
                                            const acme_activate_seal_t *seal,
                                            const acme_domain_t *dom, const char *tmp_dir,
                                            const char *checked, acme_result_t *res)
{
    const apr_array_header_t *specs = dom->policy.key_specs;
    acme_activate_files_t *files = NULL;
    const char *digest = NULL;
    apr_status_t rv = acme_activate_read_set(p, st, seal, dom, &files, &digest, res);
    int j, verified;

    verified = digest && checked && !strcmp(digest, checked);
    if (rv == APR_SUCCESS) {
        rv = acme_store_remove_tree(p, tmp_dir, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_store_mkdirs(p, tmp_dir, res);
    }
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        const acme_keyspec_t *spec = &APR_ARRAY_IDX(specs, j, acme_keyspec_t);
        char *key_pem = NULL;
        apr_size_t key_len = 0;

        rv = verified ? acme_seal_decrypt(p, seal->key, seal->cert, files[j].sealed,
                                          files[j].sealed_len, &key_pem, &key_len, res)
                      : acme_activate_check_spec(p, seal, dom, spec, &files[j], &key_pem,
                                                 &key_len, res);
        if (rv == APR_SUCCESS) {
            rv = acme_store_write_file_volatile(p, acme_activate_file(p, tmp_dir, "privkey", spec,
                                                                      ".pem"),
                                                key_pem, key_len, ACME_PERMS_0600, res);
        }
        if (key_pem) {
            OPENSSL_cleanse(key_pem, key_len);
        }
        if (rv == APR_SUCCESS) {
            rv = acme_store_write_file_volatile(p, acme_activate_file(p, tmp_dir, "pubcert", spec,
                                                                      ".pem"),
                                                files[j].chain, files[j].chain_len,
                                                ACME_PERMS_0644, res);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = acme_store_sync_files(p, tmp_dir, res);
    }
    return rv;
}

apr_status_t acme_activate_install(apr_pool_t *p, const acme_store_t *st,
                                   const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                   acme_result_t *res)
{
    return acme_activate_install_checked(p, st, seal, dom, NULL, res);
}

/* Removes staging/<name>/ by descriptors: it is the User's, whatever it holds now. */
static void acme_activate_unstage(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom)
{
    acme_safefs_dir_t *staging = NULL;
    acme_result_t ignored;

    acme_result_reset(&ignored);
    if (acme_safefs_dir_open(p, acme_store_path(p, st, ACME_STORE_STAGING, NULL, NULL), &staging,
                             &ignored) == APR_SUCCESS) {
        acme_safefs_remove(p, staging, dom->name, &ignored);
    }
}

apr_status_t acme_activate_install_checked(apr_pool_t *p, const acme_store_t *st,
                                           const acme_activate_seal_t *seal,
                                           const acme_domain_t *dom, const char *checked,
                                           acme_result_t *res)
{
    const char *tmp_dir = acme_store_path(p, st, ACME_STORE_TMP, dom->name, NULL);
    const char *active = acme_store_path(p, st, ACME_STORE_DOMAINS, dom->name, NULL);
    const char *archive = acme_store_path(p, st, ACME_STORE_ARCHIVE, NULL, NULL);
    acme_result_t ignored;
    apr_status_t rv;

    rv = acme_activate_write_set(p, st, seal, dom, tmp_dir, checked, res);
    if (rv == APR_SUCCESS) {
        rv = acme_store_replace_dir(p, tmp_dir, active, archive, ACME_ACTIVATE_ARCHIVE_KEEP, res);
    }
    acme_result_reset(&ignored);
    if (rv != APR_SUCCESS) {
        /* No plain key may stay behind in tmp/ when the swap did not happen. */
        acme_store_remove_tree(p, tmp_dir, &ignored);
    }
    if (rv == APR_SUCCESS) {
        acme_activate_unstage(p, st, dom);
    }
    else if (res->err_class == ACME_CLASS_PERMANENT) {
        /* Proven bad: kept for the admin where the User cannot reach it, never deleted. */
        acme_activate_reject(p, st, dom, &ignored);
    }
    return rv;
}

static int acme_activate_is_rejected_of(const char *entry, const acme_domain_t *dom)
{
    apr_size_t n = strlen(dom->name);

    return !strncmp(entry, dom->name, n) && entry[n] == '.' && apr_isdigit(entry[n + 1]);
}

/* The rejected sets of dom, oldest first (stamps sort as text). */
static apr_array_header_t *acme_activate_rejected_list(apr_pool_t *p, const acme_store_t *st,
                                                       const acme_domain_t *dom)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_REJECTED, NULL, NULL);
    apr_array_header_t *mine = apr_array_make(p, 4, sizeof(const char *));
    apr_dir_t *d = NULL;
    apr_finfo_t fi;

    if (dir && apr_dir_open(&d, dir, p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            if (acme_activate_is_rejected_of(fi.name, dom)) {
                APR_ARRAY_PUSH(mine, const char *) = apr_pstrdup(p, fi.name);
            }
        }
        apr_dir_close(d);
    }
    qsort(mine->elts, (size_t)mine->nelts, sizeof(const char *), acme_activate_cmp_names);
    return mine;
}

int acme_activate_rejected_count(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom)
{
    return acme_activate_rejected_list(p, st, dom)->nelts;
}

apr_status_t acme_activate_reject(apr_pool_t *p, const acme_store_t *st,
                                  const acme_domain_t *dom, acme_result_t *res)
{
    acme_safefs_dir_t *staging = NULL, *rejected = NULL;
    apr_array_header_t *old;
    apr_status_t rv = acme_safefs_dir_open(p, acme_store_path(p, st, ACME_STORE_STAGING, NULL,
                                                              NULL), &staging, res);
    int i;

    if (rv == APR_SUCCESS) {
        rv = acme_safefs_dir_open(p, acme_store_path(p, st, ACME_STORE_REJECTED, NULL, NULL),
                                  &rejected, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_safefs_move(p, staging, dom->name, rejected,
                              apr_psprintf(p, "%s.%" APR_TIME_T_FMT, dom->name, apr_time_now()),
                              res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_safefs_sync(staging);
    acme_safefs_sync(rejected);
    old = acme_activate_rejected_list(p, st, dom);
    for (i = 0; i < old->nelts - ACME_ACTIVATE_REJECTED_KEEP; ++i) {
        acme_safefs_remove(p, rejected, APR_ARRAY_IDX(old, i, const char *), res);
    }
    return APR_SUCCESS;
}

static apr_status_t acme_activate_load_spec(apr_pool_t *p, const char *dir,
                                            const acme_domain_t *dom, const acme_keyspec_t *spec,
                                            apr_time_t now, int key_checked,
                                            acme_active_cert_t *out, acme_result_t *res)
{
    apr_array_header_t *chain = NULL;
    apr_finfo_t finfo;
    apr_status_t rv;
    acme_cert_t *leaf;

    *out = (acme_active_cert_t){
        .spec = acme_crypto_keyspec_name(spec),
        .cert_file = acme_activate_file(p, dir, "pubcert", spec, ".pem"),
        .key_file = acme_activate_file(p, dir, "privkey", spec, ".pem"),
    };
    if ((rv = apr_stat(&finfo, out->key_file, APR_FINFO_TYPE | APR_FINFO_LINK, p)) != APR_SUCCESS
        && APR_STATUS_IS_ENOENT(rv)) {
        return rv;
    }
    if ((rv = acme_activate_chain_read(p, out->cert_file, &chain, &out->info, res))
        != APR_SUCCESS) {
        return rv;
    }
    /* domains/ is root's: only activation writes the chain, so its mtime says when. */
    if (apr_stat(&finfo, out->cert_file, APR_FINFO_MTIME, p) == APR_SUCCESS) {
        out->activated = finfo.mtime;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    /* mod_ssl refuses to start on a key it cannot load: the set is not served, the worker
     * orders a new one. */
    if (!key_checked && (rv = acme_activate_key_check(p, out->key_file, leaf, res))
                        != APR_SUCCESS) {
        return rv;
    }
    out->key_stamp = acme_store_file_stamp(p, out->key_file);
    out->cert_stamp = acme_store_file_stamp(p, out->cert_file);
    /* An expired certificate is still served (better than nothing) but never counts as complete. */
    if (acme_crypto_cert_check_time(p, leaf, now, res) != APR_SUCCESS
        || acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)dom->idents->elts,
                                   dom->idents->nelts, res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* The one EC key every fallback certificate uses: cheap with thousands of domains. */
static apr_status_t acme_activate_fallback_key(apr_pool_t *p, const char *key_path,
                                               acme_key_t **key, acme_result_t *res)
{
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    const char *pem = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (acme_store_read_file(p, key_path, &text, &len, 0, res) == APR_SUCCESS
        && acme_crypto_key_from_pem(p, text, len, key, res) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    acme_result_reset(res);
    if ((rv = acme_crypto_key_generate(p, &spec, key, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(p, *key, &pem, res)) != APR_SUCCESS) {
        return rv;
    }
    return acme_store_write_file(p, key_path, pem, strlen(pem), ACME_PERMS_0600, res);
}

apr_status_t acme_activate_fallback_prepare(apr_pool_t *p, const acme_store_t *st,
                                            acme_activate_fallback_t *fallback,
                                            acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_DOMAINS, ACME_ACTIVATE_FALLBACK_DIR, NULL);
    const char *key_path = apr_pstrcat(p, dir, "/fallback.key", NULL);
    acme_key_t *key = NULL;
    apr_status_t rv = acme_activate_fallback_key(p, key_path, &key, res);

    if (rv == APR_SUCCESS) {
        *fallback = (acme_activate_fallback_t){
            .key_file = key_path, .key = key,
            .key_stamp = acme_store_file_stamp(p, key_path),
            .known = fallback->known, .checked = fallback->checked,
            .groups = fallback->groups, .ready = fallback->ready,
        };
    }
    return rv;
}

/* The stamp of a fallback file: its identity, the key's, and when the certificate expires. */
static const char *acme_activate_fallback_stamp(apr_pool_t *p,
                                                const acme_activate_fallback_t *fallback,
                                                const char *path, const char *members,
                                                apr_time_t not_after)
{
    const char *file = acme_store_file_stamp(p, path);

    return file && fallback->key_stamp
           ? apr_psprintf(p, "%s|%s|%s|%" APR_TIME_T_FMT, file, fallback->key_stamp,
                          members ? members : "-", apr_time_sec(not_after))
           : NULL;
}

/*
 * When an earlier pass checked this very file with this very key and it is still good: the
 * certificate's notAfter, else 0.
 */
static apr_time_t acme_activate_fallback_known(apr_pool_t *p,
                                               const acme_activate_fallback_t *fallback,
                                               const char *path, const char *members)
{
    const char *stamp = fallback->known ? apr_hash_get((apr_hash_t *)fallback->known, path,
                                                       APR_HASH_KEY_STRING) : NULL;
    const char *bar = stamp ? strrchr(stamp, '|') : NULL;
    const char *now;
    apr_time_t not_after;

    if (!bar) {
        return 0;
    }
    not_after = apr_time_from_sec(apr_atoi64(bar + 1));
    now = acme_activate_fallback_stamp(p, fallback, path, members, not_after);
    return now && !strcmp(now, stamp) && not_after > apr_time_now() + apr_time_from_sec(86400)
           ? not_after : 0;
}

static void acme_activate_fallback_note(apr_pool_t *p, const acme_activate_fallback_t *fallback,
                                        const char *path, const char *members,
                                        apr_time_t not_after)
{
    const char *stamp;

    if (!fallback->checked || !(stamp = acme_activate_fallback_stamp(p, fallback, path, members,
                                                                     not_after))) {
        return;
    }
    APR_ARRAY_PUSH(fallback->checked, acme_activate_known_t) = (acme_activate_known_t){
        .path = path, .stamp = stamp,
    };
}

/* ------------------------------------------------------------------ fallback groups */

static apr_uint32_t acme_activate_fnv1a(const char *text, apr_uint32_t h)
{
    for (; *text; ++text) {
        h = (h ^ (unsigned char)*text) * 16777619u;
    }
    return h;
}

static int acme_activate_group_of(const acme_activate_fallback_t *fallback,
                                  const acme_domain_t *dom)
{
    return (int)(acme_activate_fnv1a(dom->name, 2166136261u) % (apr_uint32_t)fallback->groups);
}

static const char *acme_activate_group_path(apr_pool_t *p, const acme_store_t *st,
                                            const acme_activate_fallback_t *fallback,
                                            const acme_domain_t *dom)
{
    if (fallback->groups <= 0) {
        return "";
    }
    return apr_psprintf(p, "%s/group-%02d.pem",
                        acme_store_path(p, st, ACME_STORE_DOMAINS, ACME_ACTIVATE_FALLBACK_DIR,
                                        NULL),
                        acme_activate_group_of(fallback, dom));
}

/* One group's file: good when it parses, lasts another day, is of the key and names them all. */
static int acme_activate_group_good(apr_pool_t *p, const acme_activate_fallback_t *fallback,
                                    const char *path, const apr_array_header_t *idents,
                                    apr_time_t *not_after)
{
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    acme_result_t res;
    acme_cert_t *leaf;

    acme_result_reset(&res);
    if (acme_activate_chain_read(p, path, &chain, &info, &res) != APR_SUCCESS) {
        return 0;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    *not_after = info.not_after;
    return acme_crypto_cert_check_time(p, leaf, apr_time_now() + apr_time_from_sec(86400), &res)
               == APR_SUCCESS
           && acme_crypto_key_matches_cert(fallback->key, leaf, &res) == APR_SUCCESS
           && acme_crypto_cert_covers(p, leaf, (const acme_ident_t *)idents->elts, idents->nelts,
                                      &res) == APR_SUCCESS;
}

static apr_status_t acme_activate_group_make(apr_pool_t *p, const acme_activate_fallback_t *fb,
                                             const char *path, const char *members,
                                             const apr_array_header_t *idents,
                                             acme_result_t *res)
{
    apr_time_t not_after;
    const char *pem = NULL;
    apr_status_t rv;

    if ((not_after = acme_activate_fallback_known(p, fb, path, members)) != 0
        || acme_activate_group_good(p, fb, path, idents, &not_after)) {
        acme_activate_fallback_note(p, fb, path, members, not_after);
        return APR_SUCCESS;
    }
    rv = acme_crypto_selfsigned_create_names(p, fb->key, (const acme_ident_t *)idents->elts,
                                             idents->nelts, ACME_FALLBACK_VALIDITY, NULL, &pem,
                                             res);
    if (rv == APR_SUCCESS) {
        rv = acme_store_write_file_volatile(p, path, pem, strlen(pem), ACME_PERMS_0644, res);
    }
    if (rv == APR_SUCCESS) {
        acme_activate_fallback_note(p, fb, path, members, apr_time_now() + ACME_FALLBACK_VALIDITY
                                                          - apr_time_from_sec(3600));
    }
    return rv;
}

apr_status_t acme_activate_fallback_groups(apr_pool_t *p, const acme_store_t *st,
                                           const apr_array_header_t *domains,
                                           acme_activate_fallback_t *fallback,
                                           acme_result_t *res)
{
    apr_array_header_t **idents;
    apr_uint32_t *hashes;
    int i, j, g;

    fallback->groups = ACME_ACTIVATE_FALLBACK_GROUPS;
    fallback->ready = apr_hash_make(p);
    idents = apr_pcalloc(p, sizeof(*idents) * ACME_ACTIVATE_FALLBACK_GROUPS);
    hashes = apr_pcalloc(p, sizeof(*hashes) * ACME_ACTIVATE_FALLBACK_GROUPS);
    for (i = 0; i < domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(domains, i, const acme_domain_t *);
        g = acme_activate_group_of(fallback, dom);
        if (!idents[g]) {
            idents[g] = apr_array_make(p, 8, sizeof(acme_ident_t));
            hashes[g] = 2166136261u;
        }
        for (j = 0; j < dom->idents->nelts; ++j) {
            const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, j, acme_ident_t);
            APR_ARRAY_PUSH(idents[g], acme_ident_t) = *id;
            hashes[g] = acme_activate_fnv1a(id->value, acme_activate_fnv1a("\n", hashes[g]));
        }
    }
    for (g = 0; g < ACME_ACTIVATE_FALLBACK_GROUPS; ++g) {
        const char *path, *members;
        apr_status_t rv;
        if (!idents[g]) {
            continue;
        }
        path = apr_psprintf(p, "%s/group-%02d.pem", acme_store_path(p, st, ACME_STORE_DOMAINS,
                                                                   ACME_ACTIVATE_FALLBACK_DIR,
                                                                   NULL), g);
        members = apr_psprintf(p, "%d:%08x", idents[g]->nelts, hashes[g]);
        rv = acme_activate_group_make(p, fallback, path, members, idents[g], res);
        if (rv != APR_SUCCESS) {
            return rv;      /* the domains of that group fall back to files of their own */
        }
        apr_hash_set(fallback->ready, path, APR_HASH_KEY_STRING, "1");
    }
    return APR_SUCCESS;
}

/* domains/_fallback/<name>.pem, made again when missing, expiring or not of the shared key. */
static apr_status_t acme_activate_fallback_cert(apr_pool_t *p, const acme_store_t *st,
                                                const acme_activate_fallback_t *fallback,
                                                const acme_domain_t *dom, const char **cert_path,
                                                acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_STORE_DOMAINS, ACME_ACTIVATE_FALLBACK_DIR, NULL);
    const acme_ident_t *first = &APR_ARRAY_IDX(dom->idents, 0, acme_ident_t);
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    const char *pem = NULL;
    apr_status_t rv;

    apr_time_t known;

    *cert_path = acme_activate_group_path(p, st, fallback, dom);
    if (fallback->ready && apr_hash_get(fallback->ready, *cert_path, APR_HASH_KEY_STRING)) {
        return APR_SUCCESS;
    }
    *cert_path = apr_pstrcat(p, dir, "/", dom->name, ".pem", NULL);
    if ((known = acme_activate_fallback_known(p, fallback, *cert_path, NULL)) != 0) {
        acme_activate_fallback_note(p, fallback, *cert_path, NULL, known);
        return APR_SUCCESS;
    }
    if (acme_activate_chain_read(p, *cert_path, &chain, &info, res) == APR_SUCCESS
        && acme_crypto_cert_check_time(p, APR_ARRAY_IDX(chain, 0, acme_cert_t *),
                                       apr_time_now() + apr_time_from_sec(86400), res)
           == APR_SUCCESS
        && acme_crypto_key_matches_cert(fallback->key, APR_ARRAY_IDX(chain, 0, acme_cert_t *),
                                        res) == APR_SUCCESS) {
        acme_activate_fallback_note(p, fallback, *cert_path, NULL, info.not_after);
        return APR_SUCCESS;
    }
    acme_result_reset(res);
    rv = acme_crypto_selfsigned_create(p, fallback->key, first, ACME_FALLBACK_VALIDITY, NULL,
                                       &pem, res);
    if (rv == APR_SUCCESS) {
        /* A torn file after a crash fails the checks above and is simply made again. */
        rv = acme_store_write_file_volatile(p, *cert_path, pem, strlen(pem), ACME_PERMS_0644,
                                            res);
    }
    if (rv == APR_SUCCESS) {
        /* The certificate starts a little before now: this bound is never later than it. */
        acme_activate_fallback_note(p, fallback, *cert_path, NULL,
                                    apr_time_now() + ACME_FALLBACK_VALIDITY
                                    - apr_time_from_sec(3600));
    }
    return rv;
}

apr_status_t acme_activate_load(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom,
                                apr_time_t now, acme_activate_fallback_t *fallback,
                                acme_active_t **pactive, acme_result_t *res)
{
    return acme_activate_load_ex(p, st, dom, now, fallback, 0, pactive, res);
}

apr_status_t acme_activate_load_ex(apr_pool_t *p, const acme_store_t *st,
                                   const acme_domain_t *dom, apr_time_t now,
                                   acme_activate_fallback_t *fallback, int key_checked,
                                   acme_active_t **pactive, acme_result_t *res)
{
    apr_status_t rv;
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
        acme_result_reset(&ignored);
        rv = acme_activate_load_spec(p, dir, dom, &APR_ARRAY_IDX(specs, j, acme_keyspec_t), now,
                                     key_checked, &cert, &ignored);
        if (rv != APR_SUCCESS) {
            active->complete = 0;
        }
        if (rv != APR_SUCCESS && rv != APR_EGENERAL && !APR_STATUS_IS_ENOENT(rv)
            && !active->load_error) {
            active->load_error = acme_result_describe(&ignored, p);
        }
        if (rv == APR_SUCCESS || rv == APR_EGENERAL) {
            APR_ARRAY_PUSH(active->certs, acme_active_cert_t) = cert;
        }
    }
    if (active->certs->nelts > 0 || !fallback) {
        return APR_SUCCESS;
    }
    rv = fallback->key ? APR_SUCCESS : acme_activate_fallback_prepare(p, st, fallback, res);
    if (rv == APR_SUCCESS) {
        rv = acme_activate_fallback_cert(p, st, fallback, dom, &active->fallback_cert, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    active->fallback_key = fallback->key_file;
    return APR_SUCCESS;
}
