#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/err.h>

#include "acme_activate.h"
#include "acme_seal.h"
#include "acme_worker.h"
#include "unit_support.h"

/*
 * A CA built once for the program: root -> intermediate, EC keys only so that
 * it stays fast. Each test gets a fresh store with its own seal key pair and
 * stages leaf certificates the way the renewal worker does.
 */
typedef struct {
    apr_pool_t *pool;
    acme_key_t *root_key, *int_key;
    X509 *root, *inter;
} ca_t;


/* A fresh fallback state per call, as each configuration pass of the server has. */
#define FALLBACK (&(acme_activate_fallback_t){ .key_file = NULL, .key = NULL })

static ca_t ca;

typedef struct {
    apr_pool_t *pool;
    const char *dir;
    acme_store_t *st;
    const char *seal_pem;
    acme_activate_seal_t seal;
} fixture_t;

#define SPEC_EC "secp256r1"
#define DAY 86400L

/* ------------------------------------------------------------------ certificates */

typedef enum { ORDER_GOOD, ORDER_ROOT_FIRST } chain_order_t;

/* A leaf for `sans` with the given key and validity, as a chain PEM in the given order. */
static const char *issue(apr_pool_t *p, const acme_key_t *key, const char *sans, long from_s,
                         long to_s, chain_order_t order)
{
    static long serial = 1000;
    X509 *leaf = unit_cert_make(&(unit_cert_spec_t){
        .cn = "leaf", .key = key, .issuer = ca.inter, .issuer_key = ca.int_key, .sans = sans,
        .serial = ++serial, .not_before = from_s, .not_after = to_s });
    const char *pem;

    assert_non_null(leaf);
    switch (order) {
    case ORDER_ROOT_FIRST:
        pem = apr_pstrcat(p, unit_x509_pem(p, leaf), unit_x509_pem(p, ca.root),
                          unit_x509_pem(p, ca.inter), NULL);
        break;
    default:
        pem = apr_pstrcat(p, unit_x509_pem(p, leaf), unit_x509_pem(p, ca.inter),
                          unit_x509_pem(p, ca.root), NULL);
    }
    X509_free(leaf);
    return pem;
}

static const char *key_pem(apr_pool_t *p, const acme_key_t *key)
{
    const char *pem = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_to_pem(p, key, &pem, &res), APR_SUCCESS);
    return pem;
}

/* ------------------------------------------------------------------ fixtures */

static int setup_group(void **state)
{
    apr_initialize();
    apr_pool_create(&ca.pool, NULL);
    ca.root_key = unit_key_generate(ca.pool, ACME_KEY_EC, 256);
    ca.int_key = unit_key_generate(ca.pool, ACME_KEY_EC, 256);
    ca.root = unit_cert_make(&(unit_cert_spec_t){
        .cn = "Test Root", .key = ca.root_key, .is_ca = 1, .serial = 1,
        .not_before = -DAY, .not_after = 3650 * DAY });
    ca.inter = unit_cert_make(&(unit_cert_spec_t){
        .cn = "Test Intermediate", .key = ca.int_key, .issuer = ca.root,
        .issuer_key = ca.root_key, .is_ca = 1, .serial = 2,
        .not_before = -DAY, .not_after = 1000 * DAY });
    return ca.root && ca.inter ? 0 : -1;
}

static int teardown_group(void **state)
{
    X509_free(ca.root);
    X509_free(ca.inter);
    apr_pool_destroy(ca.pool);
    apr_terminate();
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    acme_result_t res;

    apr_pool_create(&fx->pool, NULL);
    fx->dir = unit_tmpdir(fx->pool, "activate");
    fx->st = unit_store_open(fx->pool, apr_pstrcat(fx->pool, fx->dir, "/store", NULL));
    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(fx->pool, acme_store_base(fx->st), &fx->seal_pem,
                                              &res), APR_SUCCESS);
    assert_int_equal(acme_activate_seal_open(fx->pool, acme_store_base(fx->st), geteuid(),
                                             &fx->seal, &res), APR_SUCCESS);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    unit_tmpdir_remove(fx->pool, fx->dir);
    apr_pool_destroy(fx->pool);
    free(fx);
    ERR_clear_error();
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static acme_domain_t *domain(apr_pool_t *p, const char *specs, ...)
{
    acme_domain_t *dom = acme_domain_make(p, "test.conf", 1);
    const char *name, *reason = NULL;
    char *list = apr_pstrdup(p, specs), *last = NULL, *tok;
    va_list ap;

    va_start(ap, specs);
    while ((name = va_arg(ap, const char *)) != NULL) {
        assert_int_equal(acme_domain_add_name(p, dom, name, &reason), APR_SUCCESS);
    }
    va_end(ap);
    dom->policy.key_specs = apr_array_make(p, 2, sizeof(acme_keyspec_t));
    for (tok = apr_strtok(list, " ", &last); tok; tok = apr_strtok(NULL, " ", &last)) {
        acme_keyspec_t spec;
        assert_int_equal(acme_crypto_keyspec_parse(tok, &spec, &reason, p), APR_SUCCESS);
        APR_ARRAY_PUSH(dom->policy.key_specs, acme_keyspec_t) = spec;
    }
    acme_policy_defaults(&dom->policy, p);
    return dom;
}

static const char *path_of(fixture_t *fx, const char *group, const char *name, const char *file)
{
    const char *path = acme_store_path(fx->pool, fx->st, group, name, file);

    assert_non_null(path);
    return path;
}

static const char *seal(fixture_t *fx, const char *plain)
{
    const char *sealed = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_encrypt(fx->pool, fx->seal_pem, plain, strlen(plain), &sealed,
                                       &res), APR_SUCCESS);
    return sealed;
}

/* Puts one spec's files into staging/<name>/ as the worker leaves them; sealed may be raw. */
static void stage_spec(fixture_t *fx, const acme_domain_t *dom, const char *spec,
                       const char *chain_pem, const char *sealed)
{
    unit_write_file(fx->pool, path_of(fx, ACME_STORE_STAGING, dom->name,
                                      apr_pstrcat(fx->pool, "pubcert.", spec, ".pem", NULL)),
                    chain_pem, 0644);
    unit_write_file(fx->pool, path_of(fx, ACME_STORE_STAGING, dom->name,
                                      apr_pstrcat(fx->pool, "privkey.", spec, ".sealed", NULL)),
                    sealed, 0600);
}

/* staged.json with the worker's proof over the files staged now, as the worker writes it. */
static void stage_done(fixture_t *fx, const acme_domain_t *dom)
{
    const char *proof = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    /* A set the worker could not have made (a file missing) gets no proof at all. */
    if (acme_activate_proof_make(fx->pool, fx->seal.proof_key, dom,
                                 path_of(fx, ACME_STORE_STAGING, dom->name, NULL), &proof, &res)
        != APR_SUCCESS) {
        proof = "";
    }
    unit_write_file(fx->pool, path_of(fx, ACME_STORE_STAGING, dom->name, ACME_WORKER_STAGED_FILE),
                    apr_psprintf(fx->pool, "{\"staged\":1700000000,\"proof\":\"%s\"}\n", proof),
                    0644);
}

/* A good staged set for dom's names with a fresh EC key; returns the key PEM. */
static const char *stage_good(fixture_t *fx, const acme_domain_t *dom, const char *sans)
{
    acme_key_t *key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);
    const char *pem = key_pem(fx->pool, key);

    stage_spec(fx, dom, SPEC_EC, issue(fx->pool, key, sans, -3600, 90 * DAY, ORDER_GOOD),
               seal(fx, pem));
    stage_done(fx, dom);
    return pem;
}

static int dir_entries(apr_pool_t *p, const char *dir, const char *prefix)
{
    apr_dir_t *d = NULL;
    apr_finfo_t fi;
    int n = 0;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return -1;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")
            && !strncmp(fi.name, prefix, strlen(prefix))) {
            n++;
        }
    }
    apr_dir_close(d);
    return n;
}

#define SANS "DNS:example.org,DNS:www.example.org"

/* ------------------------------------------------------------------ check */

static void test_staged_flag(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_key_t *key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);

    assert_false(acme_activate_staged(fx->pool, fx->st, dom));
    /* Files without staged.json are work in progress, not a finished set. */
    stage_spec(fx, dom, SPEC_EC, issue(fx->pool, key, SANS, -3600, 90 * DAY, ORDER_GOOD),
               seal(fx, key_pem(fx->pool, key)));
    assert_false(acme_activate_staged(fx->pool, fx->st, dom));
    stage_done(fx, dom);
    assert_true(acme_activate_staged(fx->pool, fx->st, dom));
}

static void test_check_accepts_good_set(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_result_t res;

    stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_check(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);
    /* Checking does not consume the staged set. */
    assert_true(acme_activate_staged(fx->pool, fx->st, dom));
}

static void test_check_accepts_ip_identifiers(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "192.0.2.10", "2001:db8::10", NULL);
    acme_result_t res;

    stage_good(fx, dom, "IP:192.0.2.10,IP:2001:db8:0:0::10");
    acme_result_reset(&res);
    assert_int_equal(acme_activate_check(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);
}

typedef enum {
    BAD_KEY_MISMATCH, BAD_NAMES, BAD_EXPIRED, BAD_NOT_YET, BAD_ORDER, BAD_GARBAGE_SEALED,
    BAD_SEALED_NOT_A_KEY, BAD_UNSEALED_KEY, BAD_NO_CHAIN, BAD_GARBAGE_CHAIN, BAD_SEALED_ELSEWHERE
} bad_kind_t;

static const struct {
    bad_kind_t kind;
    const char *what;
    const char *reason;     /* a fragment of the refusal's message */
} bad_sets[] = {
    { BAD_KEY_MISMATCH, "key mismatch", "public key" },
    { BAD_NAMES, "names not covered", "extra.example.org" },
    { BAD_EXPIRED, "expired leaf", "expired" },
    { BAD_NOT_YET, "leaf not valid for two more days", "not valid before" },
    { BAD_ORDER, "broken chain order", "is not issued by" },
    { BAD_GARBAGE_SEALED, "garbage sealed key", "cannot be opened" },
    { BAD_SEALED_NOT_A_KEY, "sealed text that is no key", "private key" },
    { BAD_UNSEALED_KEY, "plain key instead of a sealed one", "cannot be opened" },
    { BAD_GARBAGE_CHAIN, "chain that is no PEM", "no certificate" },
    { BAD_SEALED_ELSEWHERE, "key sealed to another store", "cannot be opened" },
};

/* Stages the bad set of that kind; the domain always is example.org + www. */
static void stage_bad(fixture_t *fx, acme_domain_t *dom, bad_kind_t kind)
{
    acme_key_t *key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);
    const char *pem = key_pem(fx->pool, key);
    const char *chain = issue(fx->pool, key, SANS, -3600, 90 * DAY, ORDER_GOOD);
    const char *sealed = seal(fx, pem);

    switch (kind) {
    case BAD_KEY_MISMATCH:
        sealed = seal(fx, key_pem(fx->pool, unit_key_generate(fx->pool, ACME_KEY_EC, 256)));
        break;
    case BAD_NAMES:
        assert_int_equal(acme_domain_add_name(fx->pool, dom, "extra.example.org", NULL),
                         APR_SUCCESS);
        break;
    case BAD_EXPIRED:
        chain = issue(fx->pool, key, SANS, -90 * DAY, -DAY, ORDER_GOOD);
        break;
    case BAD_NOT_YET:
        chain = issue(fx->pool, key, SANS, 2 * DAY, 90 * DAY, ORDER_GOOD);
        break;
    case BAD_ORDER:
        chain = issue(fx->pool, key, SANS, -3600, 90 * DAY, ORDER_ROOT_FIRST);
        break;
    case BAD_GARBAGE_SEALED:
        sealed = "-----BEGIN CMS-----\nAAAAAAAA\n-----END CMS-----\n";
        break;
    case BAD_SEALED_NOT_A_KEY:
        sealed = seal(fx, "this is not a key\n");
        break;
    case BAD_UNSEALED_KEY:
        sealed = pem;
        break;
    case BAD_NO_CHAIN:
        unit_write_file(fx->pool,
                        path_of(fx, ACME_STORE_STAGING, dom->name, "privkey." SPEC_EC ".sealed"),
                        sealed, 0600);
        stage_done(fx, dom);
        return;
    case BAD_GARBAGE_CHAIN:
        chain = "not a certificate\n";
        break;
    case BAD_SEALED_ELSEWHERE: {
        const char *other = NULL;
        acme_result_t res;
        acme_result_reset(&res);
        assert_int_equal(acme_seal_keypair_ensure(fx->pool, apr_pstrcat(fx->pool, fx->dir,
                                                                        "/other", NULL),
                                                  &other, &res), APR_SUCCESS);
        assert_int_equal(acme_seal_encrypt(fx->pool, other, pem, strlen(pem), &sealed, &res),
                         APR_SUCCESS);
        break;
    }
    }
    stage_spec(fx, dom, SPEC_EC, chain, sealed);
    stage_done(fx, dom);
}

static void expect_refused(const acme_result_t *res, const char *name, const char *what,
                           const char *reason)
{
    if (res->status == APR_SUCCESS || !res->message) {
        fail_msg("%s: no failure recorded", what);
    }
    if (!strstr(res->message, "refused") || !strstr(res->message, name)
        || !strstr(res->message, SPEC_EC) || !strstr(res->message, reason)) {
        fail_msg("%s: message '%s' does not name the domain, the key type and '%s'", what,
                 res->message, reason);
    }
    /* Never the key itself. */
    if (strstr(res->message, "PRIVATE KEY")) {
        fail_msg("%s: message shows key material", what);
    }
}

static void test_check_refuses_bad_sets(void **state)
{
    fixture_t *fx = *state;
    size_t i;

    for (i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); ++i) {
        acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
        acme_result_t res;
        acme_result_reset(&res);
        stage_bad(fx, dom, bad_sets[i].kind);
        if (acme_activate_check(fx->pool, fx->st, &fx->seal, dom, &res) == APR_SUCCESS) {
            fail_msg("%s: accepted", bad_sets[i].what);
        }
        expect_refused(&res, "example.org", bad_sets[i].what, bad_sets[i].reason);
        assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
        /* Leave nothing in OpenSSL's queue for mod_ssl to misreport. */
        if (ERR_peek_error()) {
            fail_msg("%s: OpenSSL error queue left non-empty", bad_sets[i].what);
        }
        acme_result_reset(&res);
        assert_int_equal(acme_store_remove_tree(fx->pool, path_of(fx, ACME_STORE_STAGING,
                                                                  dom->name, NULL), &res),
                         APR_SUCCESS);
    }
}

static void test_check_needs_every_spec(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, "secp256r1 rsa2048", "example.org", "www.example.org",
                                NULL);
    acme_result_t res;

    /* Only the EC certificate was staged. */
    stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_check(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    assert_non_null(strstr(res.message, "rsa2048"));
    /* The worker never stages half a set: one without its proof is not trusted, not refused. */
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
}

/* ------------------------------------------------------------------ install */

/*
 * A set checked once is installed without a second check; a set swapped in after the check
 * (another digest) is checked in full, so a bad one never gets in that way.
 */
static void test_install_checked_trusts_only_the_same_files(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    const char *key_path = path_of(fx, ACME_STORE_DOMAINS, dom->name, "privkey." SPEC_EC ".pem");
    const char *digest = NULL, *again = NULL, *key;
    acme_result_t res;

    key = stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_check_digest(fx->pool, fx->st, &fx->seal, dom, &digest, &res),
                     APR_SUCCESS);
    assert_int_equal(strlen(digest), 64);
    assert_int_equal(acme_activate_check_digest(fx->pool, fx->st, &fx->seal, dom, &again, &res),
                     APR_SUCCESS);
    assert_string_equal(digest, again);
    assert_int_equal(acme_activate_install_checked(fx->pool, fx->st, &fx->seal, dom, digest,
                                                   &res), APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, key_path), key);

    /* Checked good, then replaced by an expired set before the install: refused. */
    stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_check_digest(fx->pool, fx->st, &fx->seal, dom, &digest, &res),
                     APR_SUCCESS);
    stage_bad(fx, dom, BAD_EXPIRED);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install_checked(fx->pool, fx->st, &fx->seal, dom, digest,
                                                       &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "expired"));
    assert_string_equal(unit_read_text(fx->pool, key_path), key);
}

static void test_install_moves_set_into_place(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    const char *key_path = path_of(fx, ACME_STORE_DOMAINS, dom->name, "privkey." SPEC_EC ".pem");
    const char *cert_path = path_of(fx, ACME_STORE_DOMAINS, dom->name, "pubcert." SPEC_EC ".pem");
    const char *archive = path_of(fx, ACME_STORE_ARCHIVE, NULL, NULL);
    const char *first_key, *first_chain, *second_key, *text;
    acme_result_t res;

    first_key = stage_good(fx, dom, SANS);
    first_chain = unit_read_text(fx->pool, path_of(fx, ACME_STORE_STAGING, dom->name,
                                                   "pubcert." SPEC_EC ".pem"));
    acme_result_reset(&res);
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);
    assert_int_equal(unit_mode_of(key_path), 0600);
    assert_string_equal(unit_read_text(fx->pool, key_path), first_key);
    assert_string_equal(unit_read_text(fx->pool, cert_path), first_chain);
    /* Staging is done with, and no scratch copy of the key is left behind. */
    assert_false(acme_activate_staged(fx->pool, fx->st, dom));
    assert_int_equal(unit_mode_of(path_of(fx, ACME_STORE_STAGING, dom->name, NULL)), -1);
    assert_int_equal(unit_mode_of(path_of(fx, ACME_STORE_TMP, dom->name, NULL)), -1);
    assert_true(dir_entries(fx->pool, archive, "example.org") <= 0);

    /* A renewal: the new set replaces the old one, which goes to the archive. */
    second_key = stage_good(fx, dom, SANS);
    assert_string_not_equal(first_key, second_key);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, key_path), second_key);
    assert_int_equal(unit_mode_of(key_path), 0600);
    assert_int_equal(dir_entries(fx->pool, archive, "example.org."), 1);
    assert_int_equal(unit_mode_of(path_of(fx, ACME_STORE_STAGING, dom->name, NULL)), -1);
    {
        apr_dir_t *d = NULL;
        apr_finfo_t fi;
        int found = 0;
        assert_int_equal(apr_dir_open(&d, archive, fx->pool), APR_SUCCESS);
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            if (!strncmp(fi.name, "example.org.", 12)) {
                text = unit_read_text(fx->pool, apr_pstrcat(fx->pool, archive, "/", fi.name,
                                                            "/privkey." SPEC_EC ".pem", NULL));
                assert_non_null(text);
                assert_string_equal(text, first_key);
                found = 1;
            }
        }
        apr_dir_close(d);
        assert_true(found);
    }
}

static void test_install_keeps_a_small_archive(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_result_t res;
    int i;

    for (i = 0; i < ACME_ACTIVATE_ARCHIVE_KEEP + 3; ++i) {
        stage_good(fx, dom, SANS);
        acme_result_reset(&res);
        assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    }
    assert_int_equal(dir_entries(fx->pool, path_of(fx, ACME_STORE_ARCHIVE, NULL, NULL),
                                 "example.org."), ACME_ACTIVATE_ARCHIVE_KEEP);
}

static void test_install_refuses_bad_set_and_keeps_active(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    const char *key_path = path_of(fx, ACME_STORE_DOMAINS, dom->name, "privkey." SPEC_EC ".pem");
    const char *good;
    acme_result_t res;

    good = stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);

    stage_bad(fx, dom, BAD_EXPIRED);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    expect_refused(&res, "example.org", "install of an expired set", "expired");
    /* The refused set is kept in rejected/ (never deleted), the served one untouched. */
    assert_false(acme_activate_staged(fx->pool, fx->st, dom));
    assert_int_equal(acme_activate_rejected_count(fx->pool, fx->st, dom), 1);
    assert_string_equal(unit_read_text(fx->pool, key_path), good);
    assert_int_equal(dir_entries(fx->pool, path_of(fx, ACME_STORE_ARCHIVE, NULL, NULL),
                                 "example.org."), 0);
}

/* A set refused for its second key type leaves no unsealed first key lying around. */
static void test_refused_install_leaves_no_plain_key(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, "secp256r1 secp384r1", "example.org",
                                "www.example.org", NULL);
    const char *tmp = path_of(fx, ACME_STORE_TMP, dom->name, NULL);
    acme_result_t res;

    /* secp384r1 is a second EC spec, which the config refuses; the core does not care. */
    stage_good(fx, dom, SANS);
    stage_spec(fx, dom, "secp384r1", "not a certificate\n", "x");
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, tmp, "/privkey." SPEC_EC ".pem", NULL)),
                     -1);
    assert_int_equal(unit_mode_of(path_of(fx, ACME_STORE_DOMAINS, dom->name, NULL)), -1);
}

/* ------------------------------------------------------------------ load */

static void test_load_complete_after_install(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_active_t *active = NULL;
    const acme_active_cert_t *cert;
    acme_result_t res;

    stage_good(fx, dom, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res), APR_SUCCESS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, dom, apr_time_now(), FALLBACK, &active, &res),
                     APR_SUCCESS);
    assert_string_equal(active->name, "example.org");
    assert_true(active->complete);
    assert_int_equal(active->certs->nelts, 1);
    assert_null(active->fallback_cert);
    assert_null(active->fallback_key);
    cert = &APR_ARRAY_IDX(active->certs, 0, acme_active_cert_t);
    assert_string_equal(cert->spec, SPEC_EC);
    assert_string_equal(cert->cert_file, path_of(fx, ACME_STORE_DOMAINS, dom->name,
                                                 "pubcert." SPEC_EC ".pem"));
    assert_string_equal(cert->key_file, path_of(fx, ACME_STORE_DOMAINS, dom->name,
                                                "privkey." SPEC_EC ".pem"));
    assert_non_null(cert->info.serial_hex);
    assert_non_null(strstr(cert->info.issuer, "Test Intermediate"));
    assert_int_equal(cert->info.sans->nelts, 2);
    assert_true(cert->info.not_after > apr_time_now() + apr_time_from_sec(80 * DAY));

    /* Long after: still served (better than nothing), but no longer complete. */
    acme_result_reset(&res);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, dom,
                                        apr_time_now() + apr_time_from_sec(100 * DAY), FALLBACK, &active,
                                        &res), APR_SUCCESS);
    assert_false(active->complete);
    assert_int_equal(active->certs->nelts, 1);

    /* The configuration gained a name the certificate lacks: incomplete, still served. */
    assert_int_equal(acme_domain_add_name(fx->pool, dom, "new.example.org", NULL), APR_SUCCESS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, dom, apr_time_now(), FALLBACK, &active, &res),
                     APR_SUCCESS);
    assert_false(active->complete);
    assert_int_equal(active->certs->nelts, 1);
}

static void test_load_incomplete_with_a_missing_spec(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *ec_only = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_domain_t *both = domain(fx->pool, "secp256r1 rsa2048", "example.org", "www.example.org",
                                 NULL);
    acme_active_t *active = NULL;
    acme_result_t res;

    stage_good(fx, ec_only, SANS);
    acme_result_reset(&res);
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, ec_only, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, both, apr_time_now(), FALLBACK, &active, &res),
                     APR_SUCCESS);
    assert_false(active->complete);
    assert_int_equal(active->certs->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(active->certs, 0, acme_active_cert_t).spec, SPEC_EC);
    /* One real certificate is served, so no fallback. */
    assert_null(active->fallback_cert);
}

static void check_fallback(fixture_t *fx, const acme_active_t *active, const char *first,
                           acme_ident_type_t type)
{
    apr_array_header_t *chain = NULL;
    acme_key_t *key = NULL;
    acme_cert_t *cert;
    acme_ident_t ident = { .type = type, .value = first };
    acme_result_t res;
    const char *text;

    assert_false(active->complete);
    assert_int_equal(active->certs->nelts, 0);
    assert_non_null(active->fallback_cert);
    assert_non_null(active->fallback_key);
    assert_int_equal(unit_mode_of(active->fallback_key), 0600);
    text = unit_read_text(fx->pool, active->fallback_cert);
    assert_non_null(text);
    acme_result_reset(&res);
    assert_int_equal(acme_crypto_chain_parse(fx->pool, text, strlen(text), &chain, &res),
                     APR_SUCCESS);
    cert = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    assert_int_equal(acme_crypto_cert_covers(fx->pool, cert, &ident, 1, &res), APR_SUCCESS);
    assert_int_equal(acme_crypto_cert_check_time(fx->pool, cert, apr_time_now(), &res),
                     APR_SUCCESS);
    text = unit_read_text(fx->pool, active->fallback_key);
    assert_int_equal(acme_crypto_key_from_pem(fx->pool, text, strlen(text), &key, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_crypto_key_matches_cert(key, cert, &res), APR_SUCCESS);
}

static void test_load_creates_shared_fallback(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *a = domain(fx->pool, SPEC_EC, "a.example", "www.a.example", NULL);
    acme_domain_t *b = domain(fx->pool, "secp256r1 rsa2048", "b.example", NULL);
    acme_domain_t *ip = domain(fx->pool, SPEC_EC, "192.0.2.10", NULL);
    acme_active_t *act_a = NULL, *act_b = NULL, *act_ip = NULL, *again = NULL;
    const char *key_a, *cert_a;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, a, apr_time_now(), FALLBACK, &act_a, &res),
                     APR_SUCCESS);
    check_fallback(fx, act_a, "a.example", ACME_IDENT_DNS);
    key_a = unit_read_text(fx->pool, act_a->fallback_key);
    cert_a = unit_read_text(fx->pool, act_a->fallback_cert);

    assert_int_equal(acme_activate_load(fx->pool, fx->st, b, apr_time_now(), FALLBACK, &act_b, &res),
                     APR_SUCCESS);
    check_fallback(fx, act_b, "b.example", ACME_IDENT_DNS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, ip, apr_time_now(), FALLBACK, &act_ip, &res),
                     APR_SUCCESS);
    check_fallback(fx, act_ip, "192.0.2.10", ACME_IDENT_IP);

    /* One key for all (cheap with many domains), one certificate per domain. */
    assert_string_equal(act_a->fallback_key, act_b->fallback_key);
    assert_string_equal(act_a->fallback_key, act_ip->fallback_key);
    assert_string_equal(unit_read_text(fx->pool, act_b->fallback_key), key_a);
    assert_string_not_equal(act_a->fallback_cert, act_b->fallback_cert);
    assert_string_not_equal(unit_read_text(fx->pool, act_b->fallback_cert), cert_a);
    /* The fallback lives outside any domain's directory. */
    assert_null(strstr(act_a->fallback_cert, "/" ACME_STORE_DOMAINS "/a.example/"));

    /* A restart reuses what is there. */
    assert_int_equal(acme_activate_load(fx->pool, fx->st, a, apr_time_now(), FALLBACK, &again, &res),
                     APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, again->fallback_key), key_a);
    assert_string_equal(unit_read_text(fx->pool, again->fallback_cert), cert_a);

    /* Once a real certificate is installed, no fallback. */
    stage_good(fx, a, "DNS:a.example,DNS:www.a.example");
    assert_int_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, a, &res), APR_SUCCESS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, a, apr_time_now(), FALLBACK, &again, &res),
                     APR_SUCCESS);
    assert_true(again->complete);
    assert_null(again->fallback_cert);
}

/* The checked files of one pass, as the server remembers them for the next. */
static apr_hash_t *known_of(apr_pool_t *p, const apr_array_header_t *checked)
{
    apr_hash_t *known = apr_hash_make(p);
    int i;

    for (i = 0; i < checked->nelts; ++i) {
        const acme_activate_known_t *e = &APR_ARRAY_IDX(checked, i, acme_activate_known_t);
        apr_hash_set(known, e->path, APR_HASH_KEY_STRING, e->stamp);
    }
    return known;
}

/* Many domains share a few group files, each naming all its domains; a pass that finds them
 * unchanged rewrites nothing, and a new domain renews only its own group's file. */
static void test_fallback_groups(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 300, sizeof(acme_domain_t *));
    apr_hash_t *files = apr_hash_make(fx->pool), *mtimes = apr_hash_make(fx->pool);
    acme_activate_fallback_t fb = { .checked = apr_array_make(fx->pool, 8,
                                                              sizeof(acme_activate_known_t)) };
    acme_domain_t *late;
    acme_active_t *act = NULL;
    acme_result_t res;
    apr_finfo_t fi;
    int i, changed = 0;

    for (i = 0; i < 300; ++i) {
        APR_ARRAY_PUSH(domains, acme_domain_t *) = domain(
            fx->pool, SPEC_EC, apr_psprintf(fx->pool, "d%03d.example", i),
            apr_psprintf(fx->pool, "www.d%03d.example", i), NULL);
    }
    acme_result_reset(&res);
    assert_int_equal(acme_activate_fallback_prepare(fx->pool, fx->st, &fb, &res), APR_SUCCESS);
    assert_int_equal(acme_activate_fallback_groups(fx->pool, fx->st, domains, &fb, &res),
                     APR_SUCCESS);
    for (i = 0; i < domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(domains, i, acme_domain_t *);
        assert_int_equal(acme_activate_load(fx->pool, fx->st, dom, apr_time_now(), &fb, &act,
                                            &res), APR_SUCCESS);
        check_fallback(fx, act, dom->name, ACME_IDENT_DNS);
        check_fallback(fx, act, apr_pstrcat(fx->pool, "www.", dom->name, NULL),
                       ACME_IDENT_DNS);
        apr_hash_set(files, act->fallback_cert, APR_HASH_KEY_STRING, "1");
    }
    assert_true(apr_hash_count(files) <= ACME_ACTIVATE_FALLBACK_GROUPS);
    assert_true(apr_hash_count(files) >= ACME_ACTIVATE_FALLBACK_GROUPS / 2);
    for (i = 0; i < fb.checked->nelts; ++i) {
        const char *path = APR_ARRAY_IDX(fb.checked, i, acme_activate_known_t).path;
        assert_int_equal(apr_stat(&fi, path, APR_FINFO_MTIME, fx->pool), APR_SUCCESS);
        apr_hash_set(mtimes, path, APR_HASH_KEY_STRING,
                     apr_pmemdup(fx->pool, &fi.mtime, sizeof(fi.mtime)));
    }

    /* The next pass, with one more domain. */
    late = domain(fx->pool, SPEC_EC, "late.example", NULL);
    APR_ARRAY_PUSH(domains, acme_domain_t *) = late;
    apr_sleep(apr_time_from_msec(20));      /* so that a rewrite shows in the mtime */
    fb = (acme_activate_fallback_t){ .known = known_of(fx->pool, fb.checked),
                                     .checked = apr_array_make(fx->pool, 8,
                                                               sizeof(acme_activate_known_t)) };
    assert_int_equal(acme_activate_fallback_prepare(fx->pool, fx->st, &fb, &res), APR_SUCCESS);
    assert_int_equal(acme_activate_fallback_groups(fx->pool, fx->st, domains, &fb, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, late, apr_time_now(), &fb, &act, &res),
                     APR_SUCCESS);
    check_fallback(fx, act, "late.example", ACME_IDENT_DNS);
    for (i = 0; i < fb.checked->nelts; ++i) {
        const char *path = APR_ARRAY_IDX(fb.checked, i, acme_activate_known_t).path;
        const apr_time_t *before = apr_hash_get(mtimes, path, APR_HASH_KEY_STRING);
        assert_int_equal(apr_stat(&fi, path, APR_FINFO_MTIME, fx->pool), APR_SUCCESS);
        if (!before || *before != fi.mtime) {
            ++changed;
            assert_string_equal(path, act->fallback_cert);
        }
    }
    assert_int_equal(changed, 1);
}

/* A fallback key that was lost must not leave certificates that no longer match it. */
static void test_fallback_survives_lost_key(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *a = domain(fx->pool, SPEC_EC, "a.example", NULL);
    acme_domain_t *b = domain(fx->pool, SPEC_EC, "b.example", NULL);
    acme_active_t *act = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, a, apr_time_now(), FALLBACK, &act, &res),
                     APR_SUCCESS);
    assert_int_equal(unlink(act->fallback_key), 0);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, b, apr_time_now(), FALLBACK, &act, &res),
                     APR_SUCCESS);
    check_fallback(fx, act, "b.example", ACME_IDENT_DNS);
    assert_int_equal(acme_activate_load(fx->pool, fx->st, a, apr_time_now(), FALLBACK, &act, &res),
                     APR_SUCCESS);
    check_fallback(fx, act, "a.example", ACME_IDENT_DNS);
}

/* ------------------------------------------------------------------ trust (issue 13) */

/* Only the worker's proof makes a set a candidate: forged, missing or stale proofs are ignored. */
static void test_check_ignores_sets_without_the_workers_proof(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    const char *json = path_of(fx, ACME_STORE_STAGING, dom->name, ACME_WORKER_STAGED_FILE);
    static const char *const forged[] = {
        "{\"forced\":true}\n",
        "{\"proof\":\"00\"}\n",
        "{\"proof\":\"5f0c2a0f1c4d7b0e8a9e3e1d6c2b4a59f1e0d3c2b7a6958473625140f1e2d3c4\"}\n",
        "not json\n",
    };
    acme_result_t res;
    size_t i;

    for (i = 0; i < sizeof(forged) / sizeof(forged[0]); ++i) {
        stage_good(fx, dom, SANS);
        unit_write_file(fx->pool, json, forged[i], 0644);
        acme_result_reset(&res);
        assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                             APR_SUCCESS);
        assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
        /* Left where it is (the worker replaces it), nothing activated, nothing rejected. */
        assert_true(acme_activate_staged(fx->pool, fx->st, dom));
        assert_false(acme_activate_has_set(fx->pool, fx->st, dom));
        assert_int_equal(acme_activate_rejected_count(fx->pool, fx->st, dom), 0);
    }
}

/* The proof covers the names: a good set of the worker's for other names is not taken. */
static void test_check_ignores_a_proof_for_other_names(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_domain_t *other = domain(fx->pool, SPEC_EC, "example.org", NULL);
    acme_result_t res;

    stage_good(fx, other, "DNS:example.org");
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_check(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "proof of origin"));
}

/* staging/<name> as a symlink to a directory holding a proper set: never read through. */
static void test_check_does_not_follow_a_symlinked_set(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    const char *staged = path_of(fx, ACME_STORE_STAGING, dom->name, NULL);
    const char *elsewhere = apr_pstrcat(fx->pool, fx->dir, "/elsewhere", NULL);
    acme_result_t res;

    stage_good(fx, dom, SANS);
    assert_int_equal(rename(staged, elsewhere), 0);
    assert_int_equal(symlink(elsewhere, staged), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, elsewhere, "/" ACME_WORKER_STAGED_FILE,
                                              NULL)) >= 0, 1);
    assert_false(acme_activate_has_set(fx->pool, fx->st, dom));
}

/* Staged files of another owner than the worker's user are not taken. */
static void test_check_wants_the_workers_files(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_activate_seal_t seal = fx->seal;
    acme_result_t res;

    stage_good(fx, dom, SANS);
    seal.owner = geteuid() + 1;
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_check(fx->pool, fx->st, &seal, dom, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "owner"));
}

/* Even with the worker's proof, a lone self-signed leaf is no CA's certificate: refused. */
static void test_check_refuses_a_lone_self_signed_certificate(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_key_t *key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);
    X509 *self = unit_cert_make(&(unit_cert_spec_t){
        .cn = "example.org", .key = key, .sans = SANS, .serial = 7,
        .not_before = -3600, .not_after = 90 * DAY });
    acme_result_t res;

    assert_non_null(self);
    stage_spec(fx, dom, SPEC_EC, unit_x509_pem(fx->pool, self), seal(fx, key_pem(fx->pool, key)));
    X509_free(self);
    stage_done(fx, dom);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    expect_refused(&res, "example.org", "lone self-signed", "self-signed");
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    /* Proven bad: kept in rejected/, out of the User's reach, not deleted. */
    assert_false(acme_activate_staged(fx->pool, fx->st, dom));
    assert_int_equal(acme_activate_rejected_count(fx->pool, fx->st, dom), 1);
}

/* A notBefore a little ahead of this clock is no verdict: the set waits and is taken later. */
static void test_check_waits_for_a_certificate_not_valid_yet(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_key_t *key = unit_key_generate(fx->pool, ACME_KEY_EC, 256);
    acme_result_t res;

    stage_spec(fx, dom, SPEC_EC, issue(fx->pool, key, SANS, 600, 90 * DAY, ORDER_GOOD),
               seal(fx, key_pem(fx->pool, key)));
    stage_done(fx, dom);
    acme_result_reset(&res);
    assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, "becomes valid"));
    assert_true(acme_activate_staged(fx->pool, fx->st, dom));
    assert_int_equal(acme_activate_rejected_count(fx->pool, fx->st, dom), 0);
}

/* Only the newest few refused sets of a domain are kept. */
static void test_rejected_sets_are_bounded(void **state)
{
    fixture_t *fx = *state;
    acme_domain_t *dom = domain(fx->pool, SPEC_EC, "example.org", "www.example.org", NULL);
    acme_result_t res;
    int i;

    for (i = 0; i < ACME_ACTIVATE_REJECTED_KEEP + 3; ++i) {
        stage_bad(fx, dom, BAD_EXPIRED);
        acme_result_reset(&res);
        assert_int_not_equal(acme_activate_install(fx->pool, fx->st, &fx->seal, dom, &res),
                             APR_SUCCESS);
        apr_sleep(2000);
    }
    assert_int_equal(acme_activate_rejected_count(fx->pool, fx->st, dom),
                     ACME_ACTIVATE_REJECTED_KEEP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_staged_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_ignores_sets_without_the_workers_proof, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_ignores_a_proof_for_other_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_does_not_follow_a_symlinked_set, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_wants_the_workers_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_refuses_a_lone_self_signed_certificate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_waits_for_a_certificate_not_valid_yet, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rejected_sets_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_accepts_good_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_accepts_ip_identifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_refuses_bad_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_needs_every_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_moves_set_into_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_checked_trusts_only_the_same_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_install_keeps_a_small_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_refuses_bad_set_and_keeps_active, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_install_leaves_no_plain_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_complete_after_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_incomplete_with_a_missing_spec, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_creates_shared_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_survives_lost_key, setup, teardown),
    };

    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
