#ifndef UNIT_SUPPORT_H
#define UNIT_SUPPORT_H

/*
 * Fixtures and helpers that several cmocka programs in test/unit share, so that each test file
 * keeps only what is particular to it. Helpers that check something fail the running test
 * through cmocka (they may be called from a test, a setup or a group setup); include
 * <cmocka.h> and its prerequisites before this header wherever they are used.
 */

#include <apr_file_info.h>
#include <apr_pools.h>

#include <openssl/x509.h>

#include "acme_crypto.h"
#include "acme_store.h"

/* ------------------------------------------------------------------ fixtures */

/* Group setup/teardown for programs whose tests make their own pools: only APR itself. */
int unit_setup_apr(void **state);
int unit_teardown_apr(void **state);

/*
 * A fresh pool in *state, for a whole group or for one test. APR is initialised along with it
 * (APR counts nested apr_initialize calls), so the pair works with or without unit_setup_apr.
 */
int unit_setup_pool(void **state);
int unit_teardown_pool(void **state);

/* ------------------------------------------------------------------ scratch files */

/* A new empty directory /tmp/acme-test-<tag>-XXXXXX, named in p; fails the test if mkdtemp does. */
const char *unit_tmpdir(apr_pool_t *p, const char *tag);

/* Removes dir and all below it, as the tests' teardowns do; a failure here checks nothing. */
void unit_tmpdir_remove(apr_pool_t *p, const char *dir);

/* Opens (and so creates) the store at path; fails the test unless that works. */
acme_store_t *unit_store_open(apr_pool_t *p, const char *path);

/*
 * The per-test fixture most store tests want: a pool, a scratch directory and a store opened
 * at <dir>/store. It lives in its own pool, which unit_store_fixture_free destroys.
 */
typedef struct {
    apr_pool_t *pool;
    const char *dir;            /* fresh scratch directory, removed with the fixture */
    const char *store;          /* <dir>/store */
    acme_store_t *st;           /* the store opened at `store` */
} unit_store_fixture_t;

unit_store_fixture_t *unit_store_fixture_make(const char *tag);
void unit_store_fixture_free(unit_store_fixture_t *fx);

/* The permission bits of path (mode & 07777), or -1 if it cannot be stat'ed. */
int unit_mode_of(const char *path);

/* Writes text to path with acme_store_write_file; fails the test unless that works. */
void unit_write_file(apr_pool_t *p, const char *path, const char *text, apr_fileperms_t perms);

/* The whole file as a NUL-terminated string, or NULL if it cannot be read (tests compare it). */
char *unit_read_text(apr_pool_t *p, const char *path);

/* ------------------------------------------------------------------ keys and certificates */

/* A new private key in p; fails the test unless generation works. */
acme_key_t *unit_key_generate(apr_pool_t *p, acme_key_kind_t kind, int bits);

/* What unit_cert_make puts into a test certificate; fields left out are NULL or 0. */
typedef struct {
    const char *cn;             /* subject common name */
    const acme_key_t *key;      /* the certified (public) key */
    X509 *issuer;               /* NULL: self-signed with `key` */
    const acme_key_t *issuer_key;
    int is_ca;                  /* basicConstraints CA:TRUE (critical) or CA:FALSE */
    const char *sans;           /* subjectAltName in openssl.cnf syntax, or NULL for none */
    long serial;
    long not_before;            /* seconds from now (negative: in the past) */
    long not_after;             /* seconds from now */
} unit_cert_spec_t;

/*
 * A v3 certificate with subject and authority key identifiers, signed with SHA-256 by the
 * issuer's key; NULL if OpenSSL refuses any step. The caller frees it with X509_free.
 */
X509 *unit_cert_make(const unit_cert_spec_t *spec);

/* x as PEM text in p. */
const char *unit_x509_pem(apr_pool_t *p, X509 *x);

#endif
