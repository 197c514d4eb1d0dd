/* The external account binding key file (src/acme_eab.c): only a root-only file with one key. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_eab.h"
#include "unit_support.h"

/* 32 bytes, base64url as a CA shows it. */
#define KEY "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wE"

typedef struct {
    apr_pool_t *pool;
    const char *dir;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    apr_pool_create(&fx->pool, NULL);
    fx->dir = unit_tmpdir(fx->pool, "eab");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    apr_pool_destroy(fx->pool);
    free(fx);
    return 0;
}

/* Writes text to dir/name with exactly `mode`; the path. */
static const char *put(fixture_t *fx, const char *name, const char *text, mode_t mode)
{
    const char *path = apr_pstrcat(fx->pool, fx->dir, "/", name, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* Reading fails as ADMIN, names the file, says `hint`, and never shows the content. */
static void refused(fixture_t *fx, const char *path, const char *hint, const char *content)
{
    char *hmac = (char *)"unchanged";
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_eab_read(fx->pool, path, &hmac, &res), APR_SUCCESS);
    assert_null(hmac);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, path));
    assert_non_null(strstr(res.message, hint));
    if (content) {
        assert_null(strstr(res.message, content));
    }
}

static void test_reads_a_root_only_key(void **state)
{
    fixture_t *fx = *state;
    char *hmac = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_eab_read(fx->pool, put(fx, "k", "  " KEY "\r\n", 0600), &hmac, &res),
                     APR_SUCCESS);
    assert_string_equal(hmac, KEY);
    acme_eab_wipe(hmac);
    assert_int_equal(hmac[0], '\0');
    acme_eab_wipe(NULL);
}

static void test_refuses_a_file_others_can_read(void **state)
{
    fixture_t *fx = *state;

    refused(fx, put(fx, "k", KEY "\n", 0644), "chmod 600", KEY);
    refused(fx, put(fx, "g", KEY "\n", 0640), "mode 0640", KEY);
    refused(fx, put(fx, "w", KEY "\n", 0602), "chmod 600", KEY);
}

static void test_refuses_what_is_not_one_key(void **state)
{
    fixture_t *fx = *state;

    refused(fx, put(fx, "empty", "", 0600), "empty", NULL);
    refused(fx, put(fx, "quoted", "\"" KEY "\"\n", 0600), "base64url", KEY);
    refused(fx, put(fx, "padded", KEY "=\n", 0600), "base64url", KEY);
    refused(fx, put(fx, "two", KEY " " KEY "\n", 0600), "base64url", KEY);
    refused(fx, put(fx, "short", "c2hvcnQ\n", 0600), "at least 16 bytes", "c2hvcnQ");
}

static void test_refuses_links_directories_and_missing_files(void **state)
{
    fixture_t *fx = *state;
    const char *target = put(fx, "k", KEY "\n", 0600);
    const char *link = apr_pstrcat(fx->pool, fx->dir, "/link", NULL);
    const char *dir = apr_pstrcat(fx->pool, fx->dir, "/dir", NULL);

    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    refused(fx, link, "symbolic link", KEY);
    refused(fx, dir, "not a regular file", NULL);
    refused(fx, apr_pstrcat(fx->pool, fx->dir, "/missing", NULL), "cannot be read", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_a_root_only_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_file_others_can_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_is_not_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_links_directories_and_missing_files, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("eab", tests, unit_setup_apr, unit_teardown_apr);
}
