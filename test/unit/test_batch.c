#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_batch.h"
#include "unit_support.h"

/* Resident memory of this process in bytes, from /proc/self/statm. */
static long test_resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/*
 * The parent retries activation for as long as the configuration test fails, for days: each
 * attempt keeps the batch's names. 20000 attempts with a 4 KiB name list would keep 80 MB if
 * attempts accumulated in the long-lived pool; cleared per attempt, the growth is one block.
 */
static void test_attempts_do_not_accumulate(void **state)
{
    apr_pool_t *process = *state;
    acme_batch_t batch = { .pool = NULL, .names = NULL };
    char names[4096];
    long before, after;
    acme_result_t res;
    int i;

    memset(names, 'a', sizeof(names) - 1);
    names[sizeof(names) - 1] = '\0';
    acme_result_reset(&res);
    assert_int_equal(acme_batch_begin(&batch, process, names, &res), APR_SUCCESS);
    before = test_resident_bytes();
    for (i = 0; i < 20000; ++i) {
        names[i % 64] = (char)('a' + i % 26);
        assert_int_equal(acme_batch_begin(&batch, process, names, &res), APR_SUCCESS);
    }
    after = test_resident_bytes();
    assert_string_equal(batch.names, names);
    assert_true(after - before < 8L * 1024 * 1024);
}

/* The names outlive the attempt's temporary pool they came from. */
static void test_names_are_a_copy(void **state)
{
    apr_pool_t *process = *state, *attempt = NULL;
    acme_batch_t batch = { .pool = NULL, .names = NULL };
    acme_result_t res;

    acme_result_reset(&res);
    apr_pool_create(&attempt, process);
    assert_int_equal(acme_batch_begin(&batch, process, apr_pstrdup(attempt, "a.test, b.test"),
                                      &res), APR_SUCCESS);
    apr_pool_destroy(attempt);
    assert_string_equal(batch.names, "a.test, b.test");
    assert_int_equal(acme_batch_begin(&batch, process, NULL, &res), APR_SUCCESS);
    assert_string_equal(batch.names, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attempts_do_not_accumulate),
        cmocka_unit_test(test_names_are_a_copy),
    };
    return cmocka_run_group_tests_name("batch", tests, unit_setup_pool, unit_teardown_pool);
}
