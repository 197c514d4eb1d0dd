/* ACMEExport: layouts, permissions, atomic replacement, stale removal (src/acme_export.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_export.h"
#include "acme_notify.h"
#include "unit_support.h"

#define KEY_EC "-----BEGIN PRIVATE KEY-----\nECKEY\n-----END PRIVATE KEY-----\n"
#define KEY_RSA "-----BEGIN PRIVATE KEY-----\nRSAKEY\n-----END PRIVATE KEY-----\n"
#define LEAF "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n"
#define INTER "-----BEGIN CERTIFICATE-----\nINTER\n-----END CERTIFICATE-----\n"

typedef struct {
    apr_pool_t *pool;
    const char *dir;            /* the export directory (inside a scratch directory) */
    const char *base;
    acme_export_spec_t spec;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    unit_setup_pool((void **)&fx->pool);
    fx->base = unit_tmpdir(fx->pool, "export");
    fx->dir = apr_pstrcat(fx->pool, fx->base, "/out", NULL);
    fx->spec = (acme_export_spec_t){ .dir = fx->dir, .format = ACME_EXPORT_HAPROXY,
                                     .mode = ACME_EXPORT_MODE_DEFAULT };
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    unit_tmpdir_remove(fx->pool, fx->base);
    unit_teardown_pool((void **)&fx->pool);
    free(fx);
    return 0;
}

static const char *at(fixture_t *fx, const char *name)
{
    return apr_pstrcat(fx->pool, fx->dir, "/", name, NULL);
}

static apr_array_header_t *strs(apr_pool_t *p, const char *a, const char *b, const char *c)
{
    apr_array_header_t *arr = apr_array_make(p, 3, sizeof(const char *));
    const char *all[] = { a, b, c };
    int i;

    for (i = 0; i < 3; ++i) {
        if (all[i]) {
            APR_ARRAY_PUSH(arr, const char *) = all[i];
        }
    }
    return arr;
}

/* A domain with an EC certificate (the key text names the domain) and, when dual, an RSA one. */
static void add_domain(apr_pool_t *p, apr_array_header_t *domains, const char *name,
                       apr_array_header_t *names, int dual)
{
    apr_array_header_t *certs = apr_array_make(p, 2, sizeof(acme_export_cert_t));

    APR_ARRAY_PUSH(certs, acme_export_cert_t) = (acme_export_cert_t){
        .key_type = "secp256r1", .key_pem = apr_pstrcat(p, KEY_EC, "# ", name, "\n", NULL),
        .chain_pem = LEAF INTER,
    };
    if (dual) {
        APR_ARRAY_PUSH(certs, acme_export_cert_t) = (acme_export_cert_t){
            .key_type = "rsa2048", .key_pem = KEY_RSA, .chain_pem = LEAF INTER,
        };
    }
    APR_ARRAY_PUSH(domains, acme_export_domain_t) = (acme_export_domain_t){
        .name = name, .names = names, .certs = certs,
    };
}

static const acme_export_file_t *file_named(const apr_array_header_t *files, const char *path)
{
    int i;

    for (i = 0; i < files->nelts; ++i) {
        const acme_export_file_t *f = &APR_ARRAY_IDX(files, i, acme_export_file_t);
        if (!strcmp(f->path, path)) {
            return f;
        }
    }
    return NULL;
}

/* Lays out and writes; returns the changed domains joined with spaces, sorted by nothing. */
static const char *export(fixture_t *fx, apr_array_header_t *domains, apr_hash_t *keep)
{
    apr_array_header_t *files = NULL, *changed = NULL;
    acme_result_t res;
    const char *out = "";
    int i;

    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_export_write(fx->pool, &fx->spec, files, keep, &changed, &res),
                     APR_SUCCESS);
    for (i = 0; i < changed->nelts; ++i) {
        out = apr_pstrcat(fx->pool, out, "[", APR_ARRAY_IDX(changed, i, const char *), "]",
                          NULL);
    }
    return out;
}

static ino_t inode_of(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? st.st_ino : 0;
}

/* ------------------------------------------------------------------ settings */

static void test_mode_parse(void **state)
{
    fixture_t *fx = *state;
    mode_t mode = 0;

    assert_null(acme_export_mode_parse(fx->pool, "0640", &mode));
    assert_int_equal(mode, 0640);
    assert_null(acme_export_mode_parse(fx->pool, "0600", &mode));
    assert_int_equal(mode, 0600);
    assert_null(acme_export_mode_parse(fx->pool, "440", &mode));
    assert_int_equal(mode, 0440);
    /* others read, others or group write, special bits, no owner read, not octal */
    assert_non_null(acme_export_mode_parse(fx->pool, "0644", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0604", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0602", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0660", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "04640", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0040", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0x1a0", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "0680", &mode));
    assert_non_null(acme_export_mode_parse(fx->pool, "", &mode));
    assert_int_equal(mode, 0440);
    assert_int_equal(acme_export_dir_mode(0640), 0750);
    assert_int_equal(acme_export_dir_mode(0600), 0700);
}

static void test_format_parse(void **state)
{
    acme_export_format_t f;

    (void)state;
    assert_int_equal(acme_export_format_parse("txsni", &f), 0);
    assert_int_equal(f, ACME_EXPORT_TXSNI);
    assert_int_equal(acme_export_format_parse("haproxy", &f), 0);
    assert_int_equal(f, ACME_EXPORT_HAPROXY);
    assert_int_equal(acme_export_format_parse("split", &f), 0);
    assert_int_equal(f, ACME_EXPORT_SPLIT);
    assert_int_equal(acme_export_format_parse("pkcs12", &f), -1);
    assert_int_equal(acme_export_format_parse("HAProxy", &f), -1);
    assert_string_equal(acme_export_format_name(ACME_EXPORT_SPLIT), "split");
}

/* ------------------------------------------------------------------ layouts */

static void test_layout_txsni(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 2, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    const acme_export_file_t *f;
    acme_result_t res;

    fx->spec.format = ACME_EXPORT_TXSNI;
    add_domain(fx->pool, domains, "example.org",
               strs(fx->pool, "example.org", "www.example.org", "*.example.org"), 1);
    add_domain(fx->pool, domains, "ip.test", strs(fx->pool, "ip.test", "192.0.2.1", NULL), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    /* one file per DNS name; the wildcard and the IP address cannot be an SNI lookup */
    assert_int_equal(files->nelts, 3);
    f = file_named(files, "www.example.org.pem");
    assert_non_null(f);
    assert_string_equal(f->domain, "example.org");
    /* key, leaf, chain: the first key type only (txsni holds one certificate per name) */
    assert_string_equal(f->data, KEY_EC "# example.org\n" LEAF INTER);
    assert_int_equal(f->len, strlen(f->data));
    assert_non_null(file_named(files, "example.org.pem"));
    assert_non_null(file_named(files, "ip.test.pem"));
    assert_null(file_named(files, "*.example.org.pem"));
    assert_null(file_named(files, "192.0.2.1.pem"));
}

static void test_layout_haproxy(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 2, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    const acme_export_file_t *f;
    acme_result_t res;

    add_domain(fx->pool, domains, "example.org",
               strs(fx->pool, "example.org", "*.example.org", "192.0.2.1"), 1);
    add_domain(fx->pool, domains, "other.test", strs(fx->pool, "other.test", NULL, NULL), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    assert_int_equal(files->nelts, 4);
    f = file_named(files, "example.org.pem");
    assert_non_null(f);
    assert_string_equal(f->data, LEAF INTER KEY_EC "# example.org\n");
    f = file_named(files, "example.org.rsa2048.pem");
    assert_non_null(f);
    assert_string_equal(f->data, LEAF INTER KEY_RSA);
    assert_non_null(file_named(files, "other.test.pem"));
    f = file_named(files, ACME_EXPORT_CRT_LIST);
    assert_non_null(f);
    assert_null(f->domain);
    /* one line per key type with the same SNI filters (HAProxy picks ECDSA or RSA per client) */
    assert_non_null(strstr(f->data, apr_pstrcat(fx->pool, "\n", fx->dir, "/example.org.pem "
                                                "example.org *.example.org\n", NULL)));
    assert_non_null(strstr(f->data, apr_pstrcat(fx->pool, "\n", fx->dir, "/example.org.rsa2048"
                                                ".pem example.org *.example.org\n", NULL)));
    assert_non_null(strstr(f->data, apr_pstrcat(fx->pool, "\n", fx->dir, "/other.test.pem "
                                                "other.test\n", NULL)));
    assert_null(strstr(f->data, "192.0.2.1"));
}

static void test_layout_split(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    acme_result_t res;

    fx->spec.format = ACME_EXPORT_SPLIT;
    add_domain(fx->pool, domains, "example.org", strs(fx->pool, "example.org", NULL, NULL), 1);
    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    assert_int_equal(files->nelts, 8);
    assert_string_equal(file_named(files, "example.org/privkey.pem")->data,
                        KEY_EC "# example.org\n");
    assert_string_equal(file_named(files, "example.org/cert.pem")->data, LEAF);
    assert_string_equal(file_named(files, "example.org/chain.pem")->data, INTER);
    assert_string_equal(file_named(files, "example.org/fullchain.pem")->data, LEAF INTER);
    assert_string_equal(file_named(files, "example.org/privkey.rsa2048.pem")->data, KEY_RSA);
    assert_non_null(file_named(files, "example.org/fullchain.rsa2048.pem"));
}

static void test_layout_refuses_bad_domain_name(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    acme_result_t res;

    add_domain(fx->pool, domains, "../etc", strs(fx->pool, "x.test", NULL, NULL), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                         APR_SUCCESS);
}

/* ------------------------------------------------------------------ writing */

static void test_write_modes_and_no_rewrite(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    struct stat st;
    ino_t first;

    add_domain(fx->pool, domains, "example.org", strs(fx->pool, "example.org", NULL, NULL), 0);
    if (geteuid() == 0) {
        fx->spec.has_owner = 1;
        fx->spec.uid = 65534;
        fx->spec.gid = 65534;
    }
    /* the directory is made when missing */
    assert_string_equal(export(fx, domains, NULL), "[example.org]");
    assert_int_equal(lstat(at(fx, "example.org.pem"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, geteuid() == 0 ? 65534 : geteuid());
    assert_int_equal(st.st_gid, geteuid() == 0 ? 65534 : getegid());
    assert_int_equal(unit_mode_of(at(fx, ACME_EXPORT_MANIFEST)), 0640);
    assert_int_equal(unit_mode_of(at(fx, ACME_EXPORT_CRT_LIST)), 0640);
    assert_string_equal(unit_read_text(fx->pool, at(fx, "example.org.pem")),
                        LEAF INTER KEY_EC "# example.org\n");
    first = inode_of(at(fx, "example.org.pem"));

    /* the same content again: nothing written, nobody to notify */
    assert_string_equal(export(fx, domains, NULL), "");
    assert_int_equal(inode_of(at(fx, "example.org.pem")), first);

    /* a mode changed by hand is put back, by a new file */
    assert_int_equal(chmod(at(fx, "example.org.pem"), 0644), 0);
    assert_string_equal(export(fx, domains, NULL), "[example.org]");
    assert_int_equal(unit_mode_of(at(fx, "example.org.pem")), 0640);
    assert_int_not_equal(inode_of(at(fx, "example.org.pem")), first);

    /* no temporary file is left */
    assert_null(unit_read_text(fx->pool, apr_psprintf(fx->pool, "%s/.example.org.pem.tmp-%ld-1",
                                                      fx->dir, (long)getpid())));
}

/* A renewed certificate replaces the file by rename: an open reader keeps the old content. */
static void test_write_replaces_atomically(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    acme_export_cert_t *c;
    char buf[64] = "";
    FILE *old;

    add_domain(fx->pool, domains, "example.org", strs(fx->pool, "example.org", NULL, NULL), 0);
    export(fx, domains, NULL);
    old = fopen(at(fx, "example.org.pem"), "r");
    assert_non_null(old);
    c = &APR_ARRAY_IDX(APR_ARRAY_IDX(domains, 0, acme_export_domain_t).certs, 0,
                       acme_export_cert_t);
    c->chain_pem = "-----BEGIN CERTIFICATE-----\nRENEWED\n-----END CERTIFICATE-----\n";
    assert_string_equal(export(fx, domains, NULL), "[example.org]");
    assert_non_null(fgets(buf, sizeof(buf), old));
    assert_non_null(fgets(buf, sizeof(buf), old));
    assert_string_equal(buf, "LEAF\n");
    fclose(old);
    assert_non_null(strstr(unit_read_text(fx->pool, at(fx, "example.org.pem")), "RENEWED"));
}

static void test_write_stale_removal(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *both = apr_array_make(fx->pool, 2, sizeof(acme_export_domain_t));
    apr_array_header_t *one = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_hash_t *keep = apr_hash_make(fx->pool);
    const char *list;

    add_domain(fx->pool, both, "a.test", strs(fx->pool, "a.test", NULL, NULL), 0);
    add_domain(fx->pool, both, "b.test", strs(fx->pool, "b.test", NULL, NULL), 1);
    add_domain(fx->pool, one, "a.test", strs(fx->pool, "a.test", NULL, NULL), 0);
    export(fx, both, NULL);
    assert_non_null(unit_read_text(fx->pool, at(fx, "b.test.rsa2048.pem")));
    /* the admin's own file in the directory: never listed, never removed */
    unit_write_file(fx->pool, at(fx, "admin.pem"), "mine\n", APR_FPROT_UREAD);
    unit_write_file(fx->pool, at(fx, "c.test.pem"), "also mine\n", APR_FPROT_UREAD);

    /* b.test still configured but with nothing to export now: kept as it is */
    apr_hash_set(keep, "b.test", APR_HASH_KEY_STRING, "");
    assert_string_equal(export(fx, one, keep), "");
    assert_non_null(unit_read_text(fx->pool, at(fx, "b.test.pem")));

    /* b.test gone from the configuration: its files go, and it is reported */
    assert_string_equal(export(fx, one, NULL), "[b.test]");
    assert_null(unit_read_text(fx->pool, at(fx, "b.test.pem")));
    assert_null(unit_read_text(fx->pool, at(fx, "b.test.rsa2048.pem")));
    assert_non_null(unit_read_text(fx->pool, at(fx, "a.test.pem")));
    assert_string_equal(unit_read_text(fx->pool, at(fx, "admin.pem")), "mine\n");
    assert_string_equal(unit_read_text(fx->pool, at(fx, "c.test.pem")), "also mine\n");
    list = unit_read_text(fx->pool, at(fx, ACME_EXPORT_CRT_LIST));
    assert_null(strstr(list, "b.test"));
    assert_non_null(strstr(list, "a.test.pem"));
    assert_null(strstr(unit_read_text(fx->pool, at(fx, ACME_EXPORT_MANIFEST)), "b.test"));
}

static void test_write_split_dirs(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_array_header_t *none = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    struct stat st;

    fx->spec.format = ACME_EXPORT_SPLIT;
    fx->spec.mode = 0600;
    add_domain(fx->pool, domains, "a.test", strs(fx->pool, "a.test", NULL, NULL), 0);
    assert_string_equal(export(fx, domains, NULL), "[a.test]");
    assert_int_equal(lstat(at(fx, "a.test"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(unit_mode_of(at(fx, "a.test/privkey.pem")), 0600);
    assert_string_equal(unit_read_text(fx->pool, at(fx, "a.test/chain.pem")), INTER);
    assert_string_equal(export(fx, domains, NULL), "");
    /* removed: the files and then the directory they were in */
    assert_string_equal(export(fx, none, NULL), "[a.test]");
    assert_int_not_equal(lstat(at(fx, "a.test"), &st), 0);
}

/* Symlinks: the export directory itself is refused; a planted link is replaced, not followed. */
static void test_write_symlinks(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    const char *victim = apr_pstrcat(fx->pool, fx->base, "/victim", NULL);
    const char *real = apr_pstrcat(fx->pool, fx->base, "/real", NULL);
    acme_result_t res;
    struct stat st;

    add_domain(fx->pool, domains, "a.test", strs(fx->pool, "a.test", NULL, NULL), 0);
    unit_write_file(fx->pool, victim, "victim\n", APR_FPROT_UREAD | APR_FPROT_UWRITE);
    assert_int_equal(mkdir(real, 0755), 0);
    assert_int_equal(symlink(real, fx->dir), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    assert_int_not_equal(acme_export_write(fx->pool, &fx->spec, files, NULL, NULL, &res),
                         APR_SUCCESS);
    assert_null(unit_read_text(fx->pool, apr_pstrcat(fx->pool, real, "/a.test.pem", NULL)));

    fx->spec.dir = fx->dir = real;
    assert_int_equal(symlink(victim, at(fx, "a.test.pem")), 0);
    export(fx, domains, NULL);
    assert_int_equal(lstat(at(fx, "a.test.pem"), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_string_equal(unit_read_text(fx->pool, victim), "victim\n");
}

/* A manifest naming paths outside the directory removes nothing there. */
static void test_manifest_outside_ignored(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *none = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    const char *victim = apr_pstrcat(fx->pool, fx->base, "/victim", NULL);

    assert_int_equal(mkdir(fx->dir, 0755), 0);
    unit_write_file(fx->pool, victim, "victim\n", APR_FPROT_UREAD | APR_FPROT_UWRITE);
    unit_write_file(fx->pool, at(fx, ACME_EXPORT_MANIFEST),
                    "{\"files\": {\"../victim\": \"x.test\", \"/tmp/x\": \"x.test\", "
                    "\"a/../../victim\": \"x.test\", \".hidden\": \"x.test\"}}",
                    APR_FPROT_UREAD | APR_FPROT_UWRITE);
    assert_string_equal(export(fx, none, NULL), "");
    assert_string_equal(unit_read_text(fx->pool, victim), "victim\n");
}

/* Every change of the files is news for the hook (it reloads a daemon): never rate-limited. */
static void test_exported_event_always_due(void **state)
{
    apr_time_t now = apr_time_now();

    (void)state;
    assert_true(acme_notify_due("exported", now - apr_time_from_sec(1), now));
    assert_true(acme_notify_due("exported", now, now));
}

/* A directory others can write (a planted manifest, swapped files) is refused, untouched. */
static void test_write_refuses_shared_directory(void **state)
{
    fixture_t *fx = *state;
    apr_array_header_t *domains = apr_array_make(fx->pool, 1, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL;
    acme_result_t res;

    add_domain(fx->pool, domains, "a.test", strs(fx->pool, "a.test", NULL, NULL), 0);
    assert_int_equal(mkdir(fx->dir, 0755), 0);
    assert_int_equal(chmod(fx->dir, 0777), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_export_layout(fx->pool, &fx->spec, domains, &files, &res),
                     APR_SUCCESS);
    assert_int_not_equal(acme_export_write(fx->pool, &fx->spec, files, NULL, NULL, &res),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "writable by it only"));
    assert_null(unit_read_text(fx->pool, at(fx, "a.test.pem")));
    assert_int_equal(chmod(fx->dir, 0755), 0);
    assert_string_equal(export(fx, domains, NULL), "[a.test]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_txsni, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_haproxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_refuses_bad_domain_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_modes_and_no_rewrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_stale_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_split_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_outside_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_shared_directory, setup, teardown),
        cmocka_unit_test(test_exported_event_always_due),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
