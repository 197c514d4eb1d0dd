/* Descriptor-based access to directories another user can write (src/acme_safefs.c). */
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

#include "acme_perms.h"
#include "acme_safefs.h"
#include "acme_store.h"
#include "unit_support.h"

typedef struct {
    apr_pool_t *pool;
    const char *dir;            /* the directory "another user" writes */
    const char *victim;         /* root's files outside it */
    acme_safefs_dir_t *d;
} fixture_t;

static const char *at(fixture_t *fx, const char *base, const char *name)
{
    return apr_pstrcat(fx->pool, base, "/", name, NULL);
}

static int mode_of(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    acme_result_t res;

    apr_pool_create(&fx->pool, NULL);
    fx->dir = unit_tmpdir(fx->pool, "safefs");
    fx->victim = at(fx, fx->dir, "victim");
    fx->dir = at(fx, fx->dir, "user");
    assert_int_equal(mkdir(fx->dir, 0755), 0);
    assert_int_equal(mkdir(fx->victim, 0700), 0);
    unit_write_file(fx->pool, at(fx, fx->victim, "shadow"), "root:secret\n", ACME_PERMS_0600);
    acme_result_reset(&res);
    assert_int_equal(acme_safefs_dir_open(fx->pool, fx->dir, &fx->d, &res), APR_SUCCESS);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    unit_tmpdir_remove(fx->pool, apr_pstrndup(fx->pool, fx->dir, strlen(fx->dir) - 5));
    apr_pool_destroy(fx->pool);
    free(fx);
    return 0;
}

static void test_reads_a_regular_file(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    char *data = NULL;
    apr_size_t len = 0;

    unit_write_file(fx->pool, at(fx, fx->dir, "staged.json"), "{\"a\":1}\n", 0644);
    acme_result_reset(&res);
    assert_int_equal(acme_safefs_read(fx->pool, fx->d, "staged.json", geteuid(), 1024, &data,
                                      &len, &res), APR_SUCCESS);
    assert_string_equal(data, "{\"a\":1}\n");
    assert_int_equal(len, 8);
}

static void test_refuses_a_symlink(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    char *data = NULL;

    assert_int_equal(symlink(at(fx, fx->victim, "shadow"), at(fx, fx->dir, "pubcert.pem")), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_read(fx->pool, fx->d, "pubcert.pem", ACME_SAFEFS_ANY_OWNER,
                                          1024, &data, NULL, &res), APR_SUCCESS);
    assert_null(data);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "symlink"));
}

static void test_a_fifo_never_blocks(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    char *data = NULL;

    /* A blocking open of a FIFO without a writer would hang this test for ever. */
    assert_int_equal(mkfifo(at(fx, fx->dir, "staged.json"), 0644), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_read(fx->pool, fx->d, "staged.json", ACME_SAFEFS_ANY_OWNER,
                                          1024, &data, NULL, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "not a regular file"));
    /* The store's plain reader is as careful about the last component. */
    acme_result_reset(&res);
    assert_int_not_equal(acme_store_read_file(fx->pool, at(fx, fx->dir, "staged.json"), &data,
                                              NULL, 0, &res), APR_SUCCESS);
}

static void test_refuses_the_wrong_owner_and_oversize(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;
    char *data = NULL;

    unit_write_file(fx->pool, at(fx, fx->dir, "big"), "0123456789", 0644);
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_read(fx->pool, fx->d, "big", geteuid() + 1, 1024, &data,
                                          NULL, &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "owner"));
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_read(fx->pool, fx->d, "big", geteuid(), 9, &data, NULL,
                                          &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "larger"));
}

static void test_dir_sub_refuses_a_symlinked_directory(void **state)
{
    fixture_t *fx = *state;
    acme_safefs_dir_t *sub = NULL;
    acme_result_t res;

    assert_int_equal(symlink(fx->victim, at(fx, fx->dir, "example.org")), 0);
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_dir_sub(fx->pool, fx->d, "example.org",
                                             ACME_SAFEFS_ANY_OWNER, &sub, &res), APR_SUCCESS);
    assert_null(sub);
    assert_int_not_equal(acme_safefs_dir_sub(fx->pool, fx->d, "..", ACME_SAFEFS_ANY_OWNER, &sub,
                                             &res), APR_SUCCESS);
    assert_false(acme_safefs_is_dir(fx->d, "example.org"));
}

/* Removal unlinks symlinks found anywhere in the tree, and never what they point to. */
static void test_remove_never_follows(void **state)
{
    fixture_t *fx = *state;
    const char *set = at(fx, fx->dir, "example.org");
    acme_result_t res;

    assert_int_equal(mkdir(set, 0700), 0);
    assert_int_equal(mkdir(at(fx, set, "sub"), 0700), 0);
    unit_write_file(fx->pool, at(fx, set, "pubcert.pem"), "x", 0644);
    assert_int_equal(symlink(fx->victim, at(fx, set, "victim-dir")), 0);
    assert_int_equal(symlink(at(fx, fx->victim, "shadow"), at(fx, set, "sub/victim-file")), 0);
    assert_int_equal(mkfifo(at(fx, set, "sub/fifo"), 0644), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_safefs_remove(fx->pool, fx->d, "example.org", &res), APR_SUCCESS);
    assert_int_equal(unit_mode_of(set), -1);
    assert_string_equal(unit_read_text(fx->pool, at(fx, fx->victim, "shadow")), "root:secret\n");
    assert_int_equal(mode_of(at(fx, fx->victim, "shadow")), 0600);
}

/* A directory swapped for a symlink to root's directory: the symlink goes, the target stays. */
static void test_remove_of_a_swapped_directory(void **state)
{
    fixture_t *fx = *state;
    acme_result_t res;

    assert_int_equal(symlink(fx->victim, at(fx, fx->dir, "example.org")), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_safefs_remove(fx->pool, fx->d, "example.org", &res), APR_SUCCESS);
    assert_int_equal(unit_mode_of(at(fx, fx->dir, "example.org")), -1);
    assert_string_equal(unit_read_text(fx->pool, at(fx, fx->victim, "shadow")), "root:secret\n");
    /* The store's remove_tree goes the same way. */
    assert_int_equal(symlink(fx->victim, at(fx, fx->dir, "again")), 0);
    assert_int_equal(acme_store_remove_tree(fx->pool, at(fx, fx->dir, "again"), &res),
                     APR_SUCCESS);
    assert_int_equal(mode_of(fx->victim), 0700);
    assert_string_equal(unit_read_text(fx->pool, at(fx, fx->victim, "shadow")), "root:secret\n");
}

static void test_remove_refuses_a_tree_too_deep(void **state)
{
    fixture_t *fx = *state;
    const char *paths[ACME_SAFEFS_MAX_DEPTH + 3];
    acme_result_t res;
    int i, n = ACME_SAFEFS_MAX_DEPTH + 3;

    paths[0] = at(fx, fx->dir, "deep");
    for (i = 1; i < n; ++i) {
        paths[i] = at(fx, paths[i - 1], "d");
    }
    for (i = 0; i < n; ++i) {
        assert_int_equal(mkdir(paths[i], 0700), 0);
    }
    acme_result_reset(&res);
    assert_int_not_equal(acme_safefs_remove(fx->pool, fx->d, "deep", &res), APR_SUCCESS);
    assert_non_null(strstr(res.message, "too deep"));
    for (i = n - 1; i >= 0; --i) {
        rmdir(paths[i]);
    }
}

static void test_move_moves_the_entry_itself(void **state)
{
    fixture_t *fx = *state;
    acme_safefs_dir_t *to = NULL;
    acme_result_t res;

    assert_int_equal(symlink(at(fx, fx->victim, "shadow"), at(fx, fx->dir, "link")), 0);
    acme_result_reset(&res);
    assert_int_equal(acme_safefs_dir_open(fx->pool, fx->victim, &to, &res), APR_SUCCESS);
    assert_int_equal(acme_safefs_move(fx->pool, fx->d, "link", to, "moved", &res), APR_SUCCESS);
    assert_string_equal(unit_read_text(fx->pool, at(fx, fx->victim, "shadow")), "root:secret\n");
    assert_int_not_equal(acme_safefs_move(fx->pool, fx->d, "../victim", to, "x", &res),
                         APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_a_regular_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_fifo_never_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_the_wrong_owner_and_oversize, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dir_sub_refuses_a_symlinked_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_remove_never_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_of_a_swapped_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_refuses_a_tree_too_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_moves_the_entry_itself, setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
