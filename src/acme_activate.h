#ifndef ACME_ACTIVATE_H
#define ACME_ACTIVATE_H

#include <apr_pools.h>
#include <apr_tables.h>

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
} acme_active_cert_t;

typedef struct {
    const char *name;
    apr_array_header_t *certs;      /* acme_active_cert_t, empty when nothing is served yet */
    int complete;                   /* one valid certificate per configured key spec */
    const char *fallback_cert;      /* when not complete */
    const char *fallback_key;
    const char *last_activation_error; /* why a staged set was refused, or NULL */
} acme_active_t;

/* The opened seal key, held only while activating. */
typedef struct {
    acme_key_t *key;
    acme_cert_t *cert;
} acme_activate_seal_t;

/* 1 when staging/<name>/ holds a finished set. */
int acme_activate_staged(apr_pool_t *p, const acme_store_t *st, const acme_domain_t *dom);

/*
 * Checks a staged set as mod_ssl would need it: for every configured key spec a
 * chain that parses, is in order, covers exactly the names, is valid now, and a
 * sealed key that opens and matches the leaf.
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
 * removes the staged set. A set that fails the check is removed too, with the
 * reason in res.
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
} acme_activate_fallback_t;

apr_status_t acme_activate_fallback_prepare(apr_pool_t *p, const acme_store_t *st,
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

#endif
