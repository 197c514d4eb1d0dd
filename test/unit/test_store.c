#include <dlfcn.h>
#include <fcntl.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "acme_store.h"
#include "unit_support.h"

#define PERMS_0600 (APR_FPROT_UREAD | APR_FPROT_UWRITE)
#define PERMS_0644 (PERMS_0600 | APR_FPROT_GREAD | APR_FPROT_WREAD)

/*
 * fsync as the store (and APR for it) calls it, interposed: records which directories were
 * flushed, so a test can see that a new directory is made durable in its parent.
 */
static char synced[4096];

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    char link[64], path[1024];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n > 0 && strlen(synced) + (size_t)n + 2 < sizeof(synced)) {
        path[n] = '\0';
        strcat(strcat(synced, path), "\n");
    }
    return real ? real(fd) : 0;
}

/* A fresh scratch directory per test, with the store opened at dir/store as fx->st. */
typedef unit_store_fixture_t fixture_t;

static int setup(void **state)
{
    *state = unit_store_fixture_make("store");
    return 0;
}

static int teardown(void **state)
{
    unit_store_fixture_free(*state);
    return 0;
}

static int exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* The files the tests plant themselves are private (0600). */
static void put(fixture_t *fx, const char *path, const char *text)
{
    unit_write_file(fx->pool, path, text, PERMS_0600);
}

/* Number of entries in dir (without "." and ".."). */
static int count_entries(fixture_t *fx, const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    int n = 0;

    if (apr_dir_open(&d, dir, fx->pool) != APR_SUCCESS) {
        return -1;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        n += strcmp(fi.name, ".") && strcmp(fi.name, "..");
    }
    apr_dir_close(d);
    return n;
}

/* ------------------------------------------------------------------ layout and paths */

static void test_open_creates_layout(void **state)
{
    fixture_t *fx = *state;
    const char *base = acme_store_base(fx->st);
    acme_store_t *again;
    acme_result_t res;

    assert_int_equal(unit_mode_of(base), 0755);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/accounts", NULL)), 0700);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/domains", NULL)), 0700);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/staging", NULL)), 0700);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/archive", NULL)), 0700);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/jobs", NULL)), 0700);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/challenges", NULL)), 0755);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/tmp", NULL)), 0700);

    /* a loosened private directory is tightened again on the next open */
    chmod(apr_pstrcat(fx->pool, base, "/accounts", NULL), 0755);
    assert_int_equal(acme_store_open(fx->pool, base, &again, &res), APR_SUCCESS);
    assert_int_equal(unit_mode_of(apr_pstrcat(fx->pool, base, "/accounts", NULL)), 0700);
}

static void test_open_refuses_file_in_place_of_dir(void **state)
{
    fixture_t *fx = *state;
    const char *base = apr_pstrcat(fx->pool, fx->dir, "/other", NULL);
    acme_store_t *st;
    acme_result_t res;

    put(fx, apr_pstrcat(fx->pool, base, "/domains", NULL), "not a dir");
    assert_int_not_equal(acme_store_open(fx->pool, base, &st, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "/other/domains"));
    assert_non_null(strstr(res.message, "not a directory"));
}

static void test_path(void **state)
{
    fixture_t *fx = *state;
    apr_pool_t *p = fx->pool;
    const char *base = acme_store_base(fx->st);

    assert_string_equal(acme_store_path(p, fx->st, "domains", "example.org",
                                        "pubcert.secp256r1.pem"),
                        apr_pstrcat(p, base, "/domains/example.org/pubcert.secp256r1.pem", NULL));
    assert_string_equal(acme_store_path(p, fx->st, "domains", "example.org", NULL),
                        apr_pstrcat(p, base, "/domains/example.org", NULL));
    assert_string_equal(acme_store_path(p, fx->st, "jobs", NULL, NULL),
                        apr_pstrcat(p, base, "/jobs", NULL));
    assert_null(acme_store_path(p, fx->st, "domains", "../etc", "passwd"));
    assert_null(acme_store_path(p, fx->st, "domains", "..", NULL));
    assert_null(acme_store_path(p, fx->st, "domains", "a/b", NULL));
    assert_null(acme_store_path(p, fx->st, "domains", ".hidden", NULL));
    assert_null(acme_store_path(p, fx->st, "domains", "example.org", ".x"));
    assert_null(acme_store_path(p, fx->st, "domains", "", NULL));
    assert_null(acme_store_path(p, fx->st, NULL, "example.org", NULL));
    assert_null(acme_store_path(p, fx->st, "domains", NULL, "file"));
}

/* ------------------------------------------------------------------ files */

static void test_write_read_round_trip(void **state)
{
    fixture_t *fx = *state;
    const char *dir = acme_store_path(fx->pool, fx->st, "domains", "example.org", NULL);
    const char *path = acme_store_path(fx->pool, fx->st, "domains", "example.org", "key.pem");
    const char *pub = acme_store_path(fx->pool, fx->st, "challenges", "example.org", "token");
    const char bin[] = { 'a', '\0', 'b' };
    char *data = NULL;
    apr_size_t len = 0;
    acme_result_t res;

    assert_int_equal(acme_store_write_file(fx->pool, path, "first", 5, PERMS_0600, &res),
                     APR_SUCCESS);
    assert_int_equal(unit_mode_of(dir), 0700);          /* parents are made private */
    assert_int_equal(unit_mode_of(path), 0600);
    assert_int_equal(acme_store_write_file(fx->pool, path, bin, sizeof(bin), PERMS_0600, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_store_read_file(fx->pool, path, &data, &len, 0, &res), APR_SUCCESS);
    assert_int_equal(len, 3);
    assert_memory_equal(data, bin, 3);
    assert_int_equal(data[3], '\0');
    assert_int_equal(count_entries(fx, dir), 1);        /* no temp file left */

    assert_int_equal(acme_store_write_file(fx->pool, pub, "ka", 2, PERMS_0644, &res),
                     APR_SUCCESS);
    assert_int_equal(unit_mode_of(pub), 0644);
    assert_int_equal(acme_store_write_file(fx->pool, pub, "", 0, PERMS_0644, &res), APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, pub), "");
}

static void test_mode_ignores_umask(void **state)
{
    fixture_t *fx = *state;
    const char *path = apr_pstrcat(fx->pool, fx->dir, "/group-writable", NULL);
    mode_t old = umask(077);
    acme_result_t res;
    apr_status_t rv;

    rv = acme_store_write_file(fx->pool, path, "x", 1, PERMS_0644 | APR_FPROT_GWRITE, &res);
    umask(old);
    assert_int_equal(rv, APR_SUCCESS);
    assert_int_equal(unit_mode_of(path), 0664);
}

static void test_read_missing_and_too_big(void **state)
{
    fixture_t *fx = *state;
    const char *path = apr_pstrcat(fx->pool, fx->dir, "/big", NULL);
    char *data = NULL;
    acme_result_t res;

    assert_true(APR_STATUS_IS_ENOENT(acme_store_read_file(fx->pool, path, &data, NULL, 0, &res)));
    assert_true(APR_STATUS_IS_ENOENT(res.status));
    assert_non_null(strstr(res.message, path));
    put(fx, path, "0123456789");
    assert_int_equal(acme_store_read_file(fx->pool, path, &data, NULL, 5, &res), APR_EINVAL);
    assert_non_null(strstr(res.message, "10 bytes"));
    assert_int_equal(acme_store_read_file(fx->pool, path, &data, NULL, 10, &res), APR_SUCCESS);
    assert_int_equal(acme_store_read_file(fx->pool, fx->dir, &data, NULL, 0, &res), APR_EINVAL);
}

static void test_write_fails_when_parent_is_a_file(void **state)
{
    fixture_t *fx = *state;
    const char *file = apr_pstrcat(fx->pool, fx->dir, "/plain", NULL);
    const char *path = apr_pstrcat(fx->pool, file, "/child.pem", NULL);
    acme_result_t res;
    apr_status_t rv;

    put(fx, file, "content");
    rv = acme_store_write_file(fx->pool, path, "x", 1, PERMS_0600, &res);
    assert_int_not_equal(rv, APR_SUCCESS);
    assert_int_equal(res.status, rv);
    assert_non_null(strstr(res.message, path));
    assert_non_null(strstr(res.message, "Not a directory"));
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_string_equal(unit_read_text(fx->pool, file), "content");
}

static void test_write_fails_when_target_is_a_dir(void **state)
{
    fixture_t *fx = *state;
    const char *target = apr_pstrcat(fx->pool, fx->dir, "/target", NULL);
    acme_result_t res;

    put(fx, apr_pstrcat(fx->pool, target, "/inside", NULL), "x");
    assert_int_not_equal(acme_store_write_file(fx->pool, target, "y", 1, PERMS_0600, &res),
                         APR_SUCCESS);
    assert_non_null(strstr(res.message, "renaming"));
    assert_int_equal(count_entries(fx, fx->dir), 2);    /* store/ and target/: no temp file */
}

/*
 * A write that fails half-way (file size limit, as root too) leaves the old file as it was and
 * no temp file behind. The child reports the outcome of the write in its exit code.
 */
static void test_failed_write_keeps_old_content(void **state)
{
    fixture_t *fx = *state;
    const char *dir = apr_pstrcat(fx->pool, fx->dir, "/keep", NULL);
    const char *path = apr_pstrcat(fx->pool, dir, "/pubcert.pem", NULL);
    int status = 0;
    pid_t pid;

    put(fx, path, "old certificate");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = { .rlim_cur = 100, .rlim_max = RLIM_INFINITY };
        static char big[4096];
        acme_result_t res;
        apr_status_t rv;

        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &lim);
        memset(big, 'n', sizeof(big));
        rv = acme_store_write_file(fx->pool, path, big, sizeof(big), PERMS_0600, &res);
        _exit(rv != APR_SUCCESS && res.err_class == ACME_CLASS_RETRY_SOON
              && strstr(res.message, path) ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(unit_read_text(fx->pool, path), "old certificate");
    assert_int_equal(count_entries(fx, dir), 1);
}

/* ------------------------------------------------------------------ JSON */

static void test_json_round_trip(void **state)
{
    fixture_t *fx = *state;
    const char *path = acme_store_path(fx->pool, fx->st, "jobs", "example.org", "job.json");
    json_t *in = json_pack("{s:i, s:s, s:[i,i]}", "zeta", 1, "alpha", "x", "mid", 1, 2);
    json_t *out = NULL;
    acme_result_t res;

    assert_int_equal(acme_store_write_json(fx->pool, path, in, PERMS_0600, &res), APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, path),
                        "{\"alpha\":\"x\",\"mid\":[1,2],\"zeta\":1}\n");
    assert_int_equal(acme_store_read_json(fx->pool, path, &out, &res), APR_SUCCESS);
    assert_true(json_equal(in, out));
    json_decref(in);
}

static void test_json_parse_error_names_file(void **state)
{
    fixture_t *fx = *state;
    const char *path = apr_pstrcat(fx->pool, fx->dir, "/broken.json", NULL);
    json_t *out = NULL;
    acme_result_t res;

    put(fx, path, "{\n  \"a\": 1,\n  \"b\": }\n");
    assert_int_equal(acme_store_read_json(fx->pool, path, &out, &res), APR_EINVAL);
    assert_null(out);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, path));
    assert_non_null(strstr(res.message, "line 3"));
    assert_non_null(strstr(res.message, "column"));

    put(fx, path, "{\"a\":1,\"a\":2}");
    assert_int_equal(acme_store_read_json(fx->pool, path, &out, &res), APR_EINVAL);
    assert_true(APR_STATUS_IS_ENOENT(acme_store_read_json(fx->pool, apr_pstrcat(fx->pool, path,
                                                          ".missing", NULL), &out, &res)));
}

/* ------------------------------------------------------------------ replace_dir and recover */

typedef struct {
    const char *staging;    /* staging/example.org */
    const char *domain;     /* domains/example.org */
    const char *archive;    /* archive/ */
    const char *domains;    /* domains/ */
} paths_t;

static paths_t paths_of(fixture_t *fx, const char *name)
{
    return (paths_t){
        .staging = acme_store_path(fx->pool, fx->st, "staging", name, NULL),
        .domain = acme_store_path(fx->pool, fx->st, "domains", name, NULL),
        .archive = acme_store_path(fx->pool, fx->st, "archive", NULL, NULL),
        .domains = acme_store_path(fx->pool, fx->st, "domains", NULL, NULL),
    };
}

/* Stages a key+cert set whose contents are `tag`. */
static void stage(fixture_t *fx, const paths_t *ps, const char *tag)
{
    put(fx, apr_pstrcat(fx->pool, ps->staging, "/privkey.pem", NULL), tag);
    put(fx, apr_pstrcat(fx->pool, ps->staging, "/pubcert.pem", NULL), tag);
}

static const char *cert_in(fixture_t *fx, const char *dir)
{
    return unit_read_text(fx->pool, apr_pstrcat(fx->pool, dir, "/pubcert.pem", NULL));
}

/* Full path of the only archive entry of name, asserting there is exactly one. */
static const char *only_archive_entry(fixture_t *fx, const paths_t *ps, const char *name)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    const char *found = NULL;
    int n = 0;

    assert_int_equal(apr_dir_open(&d, ps->archive, fx->pool), APR_SUCCESS);
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strncmp(fi.name, name, strlen(name)) == 0 && fi.name[strlen(name)] == '.') {
            found = apr_pstrcat(fx->pool, ps->archive, "/", fi.name, NULL);
            n++;
        }
    }
    apr_dir_close(d);
    assert_int_equal(n, 1);
    return found;
}

static void test_replace_dir_first_time(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    stage(fx, &ps, "v1");
    assert_int_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res),
                     APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v1");
    assert_false(exists(ps.staging));
    assert_int_equal(count_entries(fx, ps.archive), 0);
}

static void test_replace_dir_swaps_and_archives(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    stage(fx, &ps, "v1");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res);
    stage(fx, &ps, "v2");
    assert_int_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res),
                     APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v2");
    assert_string_equal(unit_read_text(fx->pool, apr_pstrcat(fx->pool, ps.domain, "/privkey.pem",
                                                             NULL)), "v2");
    assert_string_equal(cert_in(fx, only_archive_entry(fx, &ps, "example.org")), "v1");
    assert_false(exists(ps.staging));
    assert_int_equal(count_entries(fx, ps.domains), 1);  /* no marker, no hidden leftovers */
}

static void test_replace_dir_prunes_archive(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    paths_t other = paths_of(fx, "a.example.org");
    const char *tags[] = { "v1", "v2", "v3", "v4", "v5" };
    acme_result_t res;

    stage(fx, &other, "other-v1");
    acme_store_replace_dir(fx->pool, other.staging, other.domain, other.archive, 1, &res);
    stage(fx, &other, "other-v2");
    acme_store_replace_dir(fx->pool, other.staging, other.domain, other.archive, 1, &res);
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        stage(fx, &ps, tags[i]);
        assert_int_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 2,
                                                &res), APR_SUCCESS);
    }
    assert_string_equal(cert_in(fx, ps.domain), "v5");
    /* v3 and v4 kept for example.org, plus the one entry of a.example.org, untouched */
    assert_int_equal(count_entries(fx, ps.archive), 3);
    assert_string_equal(cert_in(fx, only_archive_entry(fx, &other, "a.example.org")), "other-v1");
}

static void test_replace_dir_without_archive_drops_old(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    stage(fx, &ps, "v1");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, NULL, 0, &res);
    stage(fx, &ps, "v2");
    assert_int_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, NULL, 0, &res),
                     APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v2");
    assert_int_equal(count_entries(fx, ps.domains), 1);
    assert_int_equal(count_entries(fx, ps.archive), 0);
}

static void test_replace_dir_missing_src(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    stage(fx, &ps, "v1");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res);
    assert_int_not_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3,
                                                &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, ps.staging));
    assert_string_equal(cert_in(fx, ps.domain), "v1");
}

/* The state a crash between the two renames leaves: marker written, dst moved to the archive. */
static const char *crash_between_renames(fixture_t *fx, const paths_t *ps)
{
    const char *old = apr_pstrcat(fx->pool, ps->archive, "/example.org.20250101T000000.000000Z",
                                  NULL);
    acme_result_t res;

    stage(fx, ps, "v1");
    acme_store_replace_dir(fx->pool, ps->staging, ps->domain, ps->archive, 3, &res);
    stage(fx, ps, "v2");
    put(fx, apr_pstrcat(fx->pool, ps->domains, "/.example.org.replacing", NULL),
        apr_pstrcat(fx->pool, old, "\n", NULL));
    assert_int_equal(rename(ps->domain, old), 0);
    return old;
}

static void test_recover_restores_after_crash(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    crash_between_renames(fx, &ps);
    assert_false(exists(ps.domain));
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v1");
    assert_int_equal(count_entries(fx, ps.domains), 1);            /* marker gone */
    assert_int_equal(count_entries(fx, ps.archive), 0);
    assert_string_equal(cert_in(fx, ps.staging), "v2");            /* can be activated again */
    assert_int_equal(acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res),
                     APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v2");
}

static void test_recover_after_completed_swap(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    const char *old = crash_between_renames(fx, &ps);
    acme_result_t res;

    assert_int_equal(rename(ps.staging, ps.domain), 0);   /* step 3 done, marker not yet removed */
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v2");
    assert_string_equal(cert_in(fx, old), "v1");
    assert_int_equal(count_entries(fx, ps.domains), 1);
}

static void test_recover_finishes_drop(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    const char *old = apr_pstrcat(fx->pool, ps.domains, "/.example.org.old", NULL);
    acme_result_t res;

    stage(fx, &ps, "v1");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, NULL, 0, &res);
    put(fx, apr_pstrcat(fx->pool, old, "/pubcert.pem", NULL), "v0");
    put(fx, apr_pstrcat(fx->pool, ps.domains, "/.example.org.replacing", NULL), old);
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_string_equal(cert_in(fx, ps.domain), "v1");
    assert_int_equal(count_entries(fx, ps.domains), 1);
}

static void test_recover_ignores_foreign_marker(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    const char *outside = apr_pstrcat(fx->pool, fx->dir, "/outside", NULL);
    acme_result_t res;

    put(fx, apr_pstrcat(fx->pool, outside, "/pubcert.pem", NULL), "foreign");
    put(fx, apr_pstrcat(fx->pool, ps.domains, "/.example.org.replacing", NULL), outside);
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_false(exists(ps.domain));
    assert_string_equal(cert_in(fx, outside), "foreign");
    assert_int_equal(count_entries(fx, ps.domains), 0);
}

static void test_recover_without_marker_resurrects_nothing(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    stage(fx, &ps, "v1");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res);
    stage(fx, &ps, "v2");
    acme_store_replace_dir(fx->pool, ps.staging, ps.domain, ps.archive, 3, &res);
    acme_store_remove_tree(fx->pool, ps.domain, &res);     /* an admin removed the domain */
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_false(exists(ps.domain));
}

/* The attack of issue 13: a marker naming a path through a symlink the User made in staging/. */
static void test_recover_never_acts_in_staging_or_through_a_symlink(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    const char *victim = apr_pstrcat(fx->pool, fx->dir, "/victim", NULL);
    const char *staging = apr_pstrcat(fx->pool, acme_store_base(fx->st), "/staging", NULL);
    const char *link = apr_pstrcat(fx->pool, staging, "/l", NULL);
    acme_result_t res;

    put(fx, apr_pstrcat(fx->pool, victim, "/pubcert.pem", NULL), "root's");
    assert_int_equal(symlink(fx->dir, link), 0);
    /* In staging/ (the User's): root does not look at it at all. */
    put(fx, apr_pstrcat(fx->pool, staging, "/.example.org.replacing", NULL),
        apr_pstrcat(fx->pool, link, "/victim\n", NULL));
    /* In domains/: the path goes through the User's symlink, so it is no archive entry. */
    put(fx, apr_pstrcat(fx->pool, ps.domains, "/.example.org.replacing", NULL),
        apr_pstrcat(fx->pool, link, "/victim\n", NULL));
    acme_result_reset(&res);
    assert_int_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_string_equal(cert_in(fx, victim), "root's");
    assert_false(exists(ps.domain));
    assert_false(exists(apr_pstrcat(fx->pool, staging, "/example.org", NULL)));
}

/* A marker that cannot be read does not keep the others from being finished. */
static void test_recover_goes_on_past_a_bad_marker(void **state)
{
    fixture_t *fx = *state;
    paths_t ps = paths_of(fx, "example.org");
    acme_result_t res;

    crash_between_renames(fx, &ps);
    assert_int_equal(mkdir(apr_pstrcat(fx->pool, ps.domains, "/.aaa.example.replacing", NULL),
                           0700), 0);
    assert_int_equal(mkfifo(apr_pstrcat(fx->pool, ps.domains, "/.zzz.example.replacing", NULL),
                            0600), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_store_recover(fx->pool, fx->st, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "replacing"));
    assert_string_equal(cert_in(fx, ps.domain), "v1");
}

/* Each directory mkdirs makes is flushed into its parent (a crash must not lose it). */
static void test_mkdirs_syncs_each_new_directory_into_its_parent(void **state)
{
    fixture_t *fx = *state;
    const char *a = apr_pstrcat(fx->pool, fx->dir, "/accounts-x", NULL);
    const char *b = apr_pstrcat(fx->pool, a, "/ca-1", NULL);
    char *real_dir = realpath(fx->dir, NULL), *real_a;
    acme_result_t res;

    synced[0] = '\0';
    acme_result_reset(&res);
    assert_int_equal(acme_store_mkdirs(fx->pool, b, &res), APR_SUCCESS);
    real_a = realpath(a, NULL);
    assert_non_null(strstr(synced, apr_pstrcat(fx->pool, real_dir, "\n", NULL)));
    assert_non_null(strstr(synced, apr_pstrcat(fx->pool, real_a, "\n", NULL)));
    free(real_dir);
    free(real_a);
}

/* ------------------------------------------------------------------ locks */

/* In a child process: 0 when a non-blocking lock attempt returns `expect`. */
static int child_tries_lock(fixture_t *fx, const char *name, apr_status_t expect)
{
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        apr_pool_t *cp;
        acme_store_lock_t *lock = NULL;
        acme_result_t res;
        apr_status_t rv;

        apr_pool_create(&cp, NULL);
        rv = acme_store_lock(cp, fx->st, name, 0, &lock, &res);
        _exit(rv == expect ? 0 : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

static void test_lock_excludes_other_process(void **state)
{
    fixture_t *fx = *state;
    acme_store_lock_t *lock = NULL;
    acme_result_t res;

    assert_int_equal(acme_store_lock(fx->pool, fx->st, "example.org", 0, &lock, &res),
                     APR_SUCCESS);
    assert_int_equal(unit_mode_of(acme_store_path(fx->pool, fx->st, "locks", NULL, NULL)), 0700);
    assert_int_equal(child_tries_lock(fx, "example.org", APR_EAGAIN), 0);
    assert_int_equal(child_tries_lock(fx, "other.org", APR_SUCCESS), 0);
    assert_int_equal(acme_store_unlock(lock), APR_SUCCESS);
    assert_int_equal(child_tries_lock(fx, "example.org", APR_SUCCESS), 0);
}

static void test_lock_released_with_pool(void **state)
{
    fixture_t *fx = *state;
    acme_store_lock_t *lock = NULL;
    acme_result_t res;
    apr_pool_t *sp;

    apr_pool_create(&sp, fx->pool);
    assert_int_equal(acme_store_lock(sp, fx->st, "example.org", 1, &lock, &res), APR_SUCCESS);
    assert_int_equal(child_tries_lock(fx, "example.org", APR_EAGAIN), 0);
    apr_pool_destroy(sp);
    assert_int_equal(child_tries_lock(fx, "example.org", APR_SUCCESS), 0);
}

static void test_lock_message_and_bad_name(void **state)
{
    fixture_t *fx = *state;
    acme_store_lock_t *lock = NULL;
    acme_result_t res;

    assert_int_equal(acme_store_lock(fx->pool, fx->st, "../x", 0, &lock, &res), APR_EINVAL);
    assert_int_equal(acme_store_lock(fx->pool, fx->st, NULL, 0, &lock, &res), APR_EINVAL);
    assert_null(lock);
}

/* A full disk says so and what happens next; other errors get no hint. */
static void test_error_hint(void **state)
{
    (void)state;
    assert_non_null(strstr(acme_store_error_hint(APR_FROM_OS_ERROR(ENOSPC)), "ENOSPC"));
    assert_non_null(strstr(acme_store_error_hint(APR_FROM_OS_ERROR(ENOSPC)), "tried again"));
    assert_non_null(acme_store_error_hint(APR_FROM_OS_ERROR(EDQUOT)));
    assert_null(acme_store_error_hint(APR_FROM_OS_ERROR(EACCES)));
    assert_null(acme_store_error_hint(APR_SUCCESS));
}

/* A damaged file is renamed next to itself, never removed; a directory in its place too. */
static void test_set_aside(void **state)
{
    unit_store_fixture_t *fx = *state;
    const char *path = apr_pstrcat(fx->pool, fx->dir, "/account.key", NULL);
    const char *aside = NULL;
    acme_result_t res;
    char *data = NULL;

    acme_result_reset(&res);
    assert_int_equal(apr_dir_make(path, APR_OS_DEFAULT, fx->pool), APR_SUCCESS);
    assert_int_equal(acme_store_set_aside(fx->pool, path, &aside, &res), APR_SUCCESS);
    assert_non_null(strstr(aside, "/account.key.damaged-"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(aside, F_OK), 0);
    assert_int_equal(acme_store_write_file(fx->pool, path, "x", 1, APR_OS_DEFAULT, &res),
                     APR_SUCCESS);
    assert_int_equal(acme_store_set_aside(fx->pool, path, &aside, &res), APR_SUCCESS);
    assert_int_equal(acme_store_read_file(fx->pool, aside, &data, NULL, 0, &res), APR_SUCCESS);
    assert_string_equal(data, "x");
    assert_int_not_equal(acme_store_set_aside(fx->pool, path, &aside, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, path));
}

/* Old temp files of unfinished writes go; fresh ones, other names and symlinks stay. */
static void test_sweep_temps(void **state)
{
    unit_store_fixture_t *fx = *state;
    const char *jobs = acme_store_path(fx->pool, fx->st, ACME_STORE_JOBS, NULL, NULL);
    const char *old = apr_pstrcat(fx->pool, jobs, "/.a.json.tmp-0123456789abcdef", NULL);
    const char *fresh = apr_pstrcat(fx->pool, jobs, "/.b.json.tmp-0123456789abcdef", NULL);
    const char *other = apr_pstrcat(fx->pool, jobs, "/.c.json.tmp-0123", NULL);
    const char *link = apr_pstrcat(fx->pool, jobs, "/.d.json.tmp-fedcba9876543210", NULL);
    struct timeval past[2] = { { .tv_sec = time(NULL) - 3600 }, { .tv_sec = time(NULL) - 3600 } };
    acme_result_t res;
    int removed = -1;

    unit_write_file(fx->pool, old, "x", PERMS_0600);
    unit_write_file(fx->pool, fresh, "x", PERMS_0600);
    unit_write_file(fx->pool, other, "x", PERMS_0600);
    assert_int_equal(symlink(old, link), 0);
    assert_int_equal(utimes(old, past), 0);
    assert_int_equal(utimes(other, past), 0);
    assert_int_equal(lutimes(link, past), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_store_sweep_temps(fx->pool, fx->st, ACME_STORE_JOBS,
                                            apr_time_from_sec(60), &removed, &res), APR_SUCCESS);
    assert_int_equal(removed, 1);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(faccessat(AT_FDCWD, link, F_OK, AT_SYMLINK_NOFOLLOW), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_file_in_place_of_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_ignores_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_missing_and_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_when_parent_is_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_when_target_is_a_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_parse_error_names_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_dir_first_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_dir_swaps_and_archives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_dir_prunes_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_dir_without_archive_drops_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replace_dir_missing_src, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_restores_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_after_completed_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_finishes_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_ignores_foreign_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_never_acts_in_staging_or_through_a_symlink,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_goes_on_past_a_bad_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdirs_syncs_each_new_directory_into_its_parent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_without_marker_resurrects_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lock_excludes_other_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_released_with_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_message_and_bad_name, setup, teardown),
        cmocka_unit_test(test_error_hint),
        cmocka_unit_test_setup_teardown(test_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_temps, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, unit_setup_apr, unit_teardown_apr);
}
