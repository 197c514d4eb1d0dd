#ifndef ACME_ACTIVATE_H
#define ACME_ACTIVATE_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <sys/types.h>

#include "acme_crypto.h"
#include "acme_domain.h"
#include "acme_result.h"
#include "acme_store.h"

/*
 * The parent's side of a certificate's life: validating what the worker
 * staged, moving it into domains/<name>/ where mod_ssl loads it, knowing what
 * is served now, and the self-signed fallback served until then. Runs as
 * root; never touches the network.
 */

#define ACME_ACTIVATE_ARCHIVE_KEEP 5
#define ACME_ACTIVATE_FALLBACK_DIR "_fallback"  /* '_' cannot start a managed name */

/* One certificate served for a domain (one per key spec). */
typedef struct {
    const char *spec;               /* "secp256r1", ... */
    const char *cert_file;          /* chain PEM */
    const char *key_file;
    acme_cert_info_t info;          /* of the leaf */
    apr_time_t activated;           /* when the chain was installed (its file's mtime), or 0 */
    const char *key_stamp;          /* "inode:mtime:size" of key_file when its key was found
                                     * loadable (now, or as the set was installed), else NULL */
    const char *cert_stamp;         /* the same of cert_file when info was read from it */
} acme_active_cert_t;

typedef struct {
    const char *name;
    apr_array_header_t *certs;      /* acme_active_cert_t, empty when nothing is served yet */
    int complete;                   /* one valid certificate per configured key spec */
    const char *fallback_cert;      /* when not complete */
    const char *fallback_key;
    const char *last_activation_error; /* why a staged set was refused, or NULL */
    const char *load_error;         /* why a file in domains/<name>/ is not served, or NULL */
} acme_active_t;

/* The opened seal key and proof key, held only while activating. */
typedef struct {
    acme_key_t *key;
    acme_cert_t *cert;
    const unsigned char *proof_key;     /* seal/proof.key: staged sets must carry its MAC */
    uid_t owner;                        /* staged files must belong to it (the worker's user) */
} acme_activate_seal_t;

/* Loads both keys for activation; staged files must be owned by `owner`. */
apr_status_t acme_activate_seal_open(apr_pool_t *p, const char *store_dir, uid_t owner,
                                     acme_activate_seal_t *seal, acme_result_t *res);

/*
 * The proof of origin the worker puts into staged.json ("proof") for the set it wrote into dir:
 * an HMAC with the proof key over the domain, its identifiers and every spec's files.
 */
apr_status_t acme_activate_proof_make(apr_pool_t *p, const unsigned char *key,
                                      const acme_domain_t *dom, const char *dir,
                                      const char **proof, acme_result_t *res);

/* Rejected sets kept per domain in rejected/ (older ones are removed). */
#define ACME_ACTIVATE_REJECTED_KEEP 3

/*
 * Moves staging/<name>/ into the root-only rejected/<name>.<time>/ (renameat, nothing followed):
 * a set proven bad is kept for the admin, never deleted by root while the User can reach it.
 */
apr_status_t acme_activate_reject(apr_pool_t *p, const acme_store_t *st,
                                  const acme_domain_t *dom, acme_result_t *res);

/* How many refused sets of the domain rejected/ holds. */
int acme_activate_rejected_count(apr_pool_t *p, const acme_store_t *st,
                                 const acme_domain_t *dom);

/*
 * Reads a PEM chain file: the chain (leaf first) and, when info is not NULL, the leaf's details.
 */
apr_status_t acme_activate_chain_read(apr_pool_t *p, const char *path, apr_array_header_t **chain,
                                      acme_cert_info_t *info, acme_result_t *res);

/* 1 when staging/<name>/ holds a finished set. */
int acme_activate_staged(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom);

/*
 * Checks a staged set as mod_ssl would need it: first the worker's proof of origin, then for
 * every configured key spec a chain issued by a CA (not self-signed, every signature verified,
 * in order), naming exactly the domain's names, valid now, and a sealed key that opens and
 * matches the leaf. The class of a failure says what to do with the set:
 *   ACME_CLASS_PERMANENT   proven bad (made by the worker): acme_activate_reject it;
 *   ACME_CLASS_RETRY_SOON  not yet (I/O error, notBefore ahead of this clock): look again later;
 *   ACME_CLASS_ADMIN       not trusted or not readable as a set (no or wrong proof, a symlink,
 *                          FIFO or file of another owner): leave it alone, the worker cleans up.
 */
apr_status_t acme_activate_check(apr_pool_t *p, const acme_store_t *st,
                                 const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                 acme_result_t *res);

/*
 * The same, and *digest (hex SHA-256) identifies the exact files checked, for
 * acme_activate_install_checked.
 */
apr_status_t acme_activate_check_digest(apr_pool_t *p, const acme_store_t *st,
                                        const acme_activate_seal_t *seal,
                                        const acme_domain_t *dom, const char **digest,
                                        acme_result_t *res);

/*
 * Check, then install: writes the keys (0600) and chains into tmp/<name>/,
 * swaps that directory with domains/<name>/ (the old set goes to archive/), and
 * removes the staged set. A set proven bad (class PERMANENT) is moved to rejected/; any other
 * failure leaves it where it is. The reason is in res.
 */
apr_status_t acme_activate_install(apr_pool_t *p, const acme_store_t *st,
                                   const acme_activate_seal_t *seal, const acme_domain_t *dom,
                                   acme_result_t *res);

/*
 * acme_activate_install for a set acme_activate_check_digest passed with `checked`: when the
 * staged files still have that digest they are installed without being checked again (the
 * worker may have staged a newer set since: that one is checked in full). NULL: full check.
 */
apr_status_t acme_activate_install_checked(apr_pool_t *p, const acme_store_t *st,
                                           const acme_activate_seal_t *seal,
                                           const acme_domain_t *dom, const char *checked,
                                           acme_result_t *res);

/*
 * The fallback served while a domain has no certificate: a self-signed
 * certificate naming the domain, all of them signed with one shared EC key, so
 * that thousands of domains cost almost nothing at start-up (one signature and
 * one unsynced file each, made once). mod_ssl answers their requests with 503.
 */
typedef struct {
    const char *key_file;
    acme_key_t *key;                /* loaded once per configuration pass */
    const char *key_stamp;          /* the key file's identity (inode, mtime, size) */
    /*
     * Optional, to skip parsing files checked in an earlier pass (httpd reads its configuration
     * twice at start-up, and again at every restart): `known` maps a fallback file's path to the
     * stamp acme_activate_load recorded for it; every file checked or written now is appended to
     * `checked` (acme_activate_known_t) for the caller's next `known`.
     */
    const apr_hash_t *known;
    apr_array_header_t *checked;
    /* Set by acme_activate_fallback_groups: the group files ready in this pass. */
    int groups;
    apr_hash_t *ready;
} acme_activate_fallback_t;

typedef struct {
    const char *path;
    const char *stamp;
} acme_activate_known_t;

apr_status_t acme_activate_fallback_prepare(apr_pool_t *p, const acme_store_t *st,
                                            acme_activate_fallback_t *fallback,
                                            acme_result_t *res);

/*
 * Group fallback files, for many domains: every domain goes to one of
 * ACME_ACTIVATE_FALLBACK_GROUPS groups (by a hash of its name), and each group's file names all
 * its domains' names, so that 1,000 domains cost 64 signatures, not 1,000 (and mod_ssl finds
 * each vhost's name in its certificate). Made again when missing, expiring, of another key or
 * when the group's names changed. After it, acme_activate_load hands out the group files; on
 * failure the domains get files of their own. Call after acme_activate_fallback_prepare.
 */
#define ACME_ACTIVATE_FALLBACK_GROUPS 64
/* Below this many domains without a certificate, each gets a fallback file of its own: a group
 * file names other domains of the server, which a visitor of a new site could then read. */
#define ACME_ACTIVATE_FALLBACK_GROUP_FROM 128

/* 1 when domains/<name>/ exists: the domain has (or had) a certificate set of its own. */
/*
 * The private key of an active set (domains/<name>/privkey.*.pem) loads and belongs to leaf;
 * on failure the message names the file. The key text is wiped before it returns.
 */
apr_status_t acme_activate_key_check(apr_pool_t *p, const char *key_file, const acme_cert_t *leaf,
                                     acme_result_t *res);

int acme_activate_has_set(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom);

apr_status_t acme_activate_fallback_groups(apr_pool_t *p, const acme_store_t *st,
                                           const apr_array_header_t *domains,
                                           acme_activate_fallback_t *fallback,
                                           acme_result_t *res);

/*
 * What domains/<name>/ holds now; when nothing is served and `fallback` is
 * given, the domain's fallback certificate (the shared key is loaded into
 * `fallback` on first use). With NULL nothing is written: for read-only callers.
 */
apr_status_t acme_activate_load(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom,
                                apr_time_t now, acme_activate_fallback_t *fallback,
                                acme_active_t **active, acme_result_t *res);
/* As acme_activate_load; key_checked: the keys were checked as this set was installed a moment
 * ago (they are not parsed again: in OpenSSL 3 that costs more than the rest of the load). */
apr_status_t acme_activate_load_ex(apr_pool_t *p, const acme_store_t *st,
                                   const acme_domain_t *dom, apr_time_t now,
                                   acme_activate_fallback_t *fallback, int key_checked,
                                   acme_active_t **pactive, acme_result_t *res);

#endif
