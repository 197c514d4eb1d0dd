/*
 * The shared segment of hot activation (src/acme_hot.c): slots claimed by name, publication
 * under the seqlock, sets that do not fit refused, a reader never returning a torn copy while
 * another process writes, clearing for a new configuration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_hot.h"
#include "unit_support.h"

static acme_hot_t make(apr_pool_t *p, apr_uint32_t nslots, apr_uint32_t slot_size)
{
    acme_hot_t hot;
    apr_size_t size = acme_hot_size(nslots, slot_size);

    acme_hot_init(&hot, apr_palloc(p, size), size, nslots, slot_size);
    return hot;
}

static void test_claim_find_and_clear(void **state)
{
    apr_pool_t *p = *state;
    acme_hot_t hot = make(p, 3, 128), view;
    char name[ACME_HOT_NAME_MAX + 10];

    assert_int_equal(acme_hot_find(&hot, "a.example"), -1);
    assert_int_equal(acme_hot_claim(&hot, "a.example"), 0);
    assert_int_equal(acme_hot_claim(&hot, "b.example"), 1);
    assert_int_equal(acme_hot_claim(&hot, "A.Example"), 0);      /* names are case-blind */
    assert_int_equal(acme_hot_claim(&hot, "c.example"), 2);
    assert_int_equal(acme_hot_claim(&hot, "d.example"), -1);     /* full */
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(acme_hot_find(&hot, "b.example"), 1);
    acme_hot_clear(&hot);
    assert_int_equal(acme_hot_find(&hot, "b.example"), -1);
    assert_int_equal(acme_hot_claim(&hot, name), -1);            /* longer than a slot name */
    /* A view of the same memory, as a child attaches it; garbage is refused. */
    assert_int_equal(acme_hot_attach(&view, hot.mem, hot.size), APR_SUCCESS);
    assert_int_equal(acme_hot_nslots(&view), 3);
    memset(name, 0, 64);
    assert_int_equal(acme_hot_attach(&view, name, 64), APR_EINVAL);
}

static void test_publish_and_read(void **state)
{
    apr_pool_t *p = *state;
    acme_hot_t hot = make(p, 2, 64);
    char buf[64], big[65];
    apr_size_t len = 0;
    apr_uint32_t gen = 0;
    int slot = acme_hot_claim(&hot, "a.example");

    /* Claimed but never published: nothing to serve, mod_ssl's certificate stands. */
    assert_int_equal(acme_hot_gen(&hot, slot), 0);
    assert_int_equal(acme_hot_read(&hot, slot, "a.example", buf, sizeof(buf), &len, &gen),
                     APR_ENOENT);
    assert_int_equal(acme_hot_publish(&hot, slot, "first", 5), APR_SUCCESS);
    assert_int_equal(acme_hot_gen(&hot, slot), 1);
    assert_int_equal(acme_hot_read(&hot, slot, "a.example", buf, sizeof(buf), &len, &gen),
                     APR_SUCCESS);
    assert_int_equal(len, 5);
    assert_int_equal(gen, 1);
    assert_memory_equal(buf, "first", 5);
    /* The slot is another name's (a new configuration reassigned it): not served. */
    assert_int_equal(acme_hot_read(&hot, slot, "b.example", buf, sizeof(buf), &len, &gen),
                     APR_ENOENT);
    /* Too large for the slot: refused, the slot keeps its set. */
    memset(big, 'z', sizeof(big));
    assert_int_equal(acme_hot_publish(&hot, slot, big, sizeof(big)), APR_ENOSPC);
    assert_int_equal(acme_hot_gen(&hot, slot), 1);
    assert_int_equal(acme_hot_publish(&hot, slot, "second", 6), APR_SUCCESS);
    assert_int_equal(acme_hot_read(&hot, slot, "a.example", buf, 4, &len, &gen), APR_ENOSPC);
    assert_int_equal(acme_hot_read(&hot, slot, "a.example", buf, sizeof(buf), &len, &gen),
                     APR_SUCCESS);
    assert_int_equal(gen, 2);
    assert_memory_equal(buf, "second", 6);
    assert_int_equal(acme_hot_publish(&hot, 7, "x", 1), APR_EINVAL);
}

/*
 * A writer process publishes sets of one repeated byte (length and byte change together) as
 * fast as it can while this process reads: every copy read must be one whole set.
 */
static void test_reader_never_sees_a_torn_set(void **state)
{
    apr_size_t size = acme_hot_size(1, 4096);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    acme_hot_t hot;
    char buf[4096];
    int ok = 0, again = 0, i, status = 0;
    pid_t pid;

    (void)state;
    assert_true(mem != MAP_FAILED);
    acme_hot_init(&hot, mem, size, 1, 4096);
    acme_hot_claim(&hot, "a.example");
    acme_hot_publish(&hot, 0, "aaaa", 4);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char set[4096];
        unsigned n;
        for (n = 0;; ++n) {
            apr_size_t len = 100 + (n * 37) % 3900;
            memset(set, 'a' + (int)(n % 26), len);
            acme_hot_publish(&hot, 0, set, len);
            if (n % 4 == 0) {
                usleep(20);             /* gaps, as a real parent leaves, so reads complete */
            }
        }
    }
    for (i = 0; i < 200000; ++i) {
        apr_size_t len = 0, j;
        apr_uint32_t gen = 0;
        apr_status_t rv = acme_hot_read(&hot, 0, "a.example", buf, sizeof(buf), &len, &gen);
        if (rv == APR_EAGAIN) {
            ++again;
            continue;
        }
        assert_int_equal(rv, APR_SUCCESS);
        for (j = 1; j < len; ++j) {
            assert_int_equal(buf[j], buf[0]);
        }
        ++ok;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    munmap(mem, size);
    /* Whole reads happened (and each was checked above); how many depends on the machine. */
    assert_true(ok > 100);
    print_message("%d whole reads, %d gave up after repeated tearing\n", ok, again);
}

/*
 * The parent's index (acme_hot_index): 10,000 names claimed as at start-up with 10,000 domains,
 * each at its own slot, found again case-blind by claim and by the children's scan; the index
 * survives a clear, a name already in the segment when indexed keeps its slot, and the index
 * goes with its pool (claims then scan, and still agree).
 */
#define TEST_HOT_MANY 10000

static void test_many_names_indexed(void **state)
{
    apr_pool_t *p = *state, *gen = NULL;
    acme_hot_t hot = make(p, TEST_HOT_MANY + 2, 16);
    char name[64];
    int i;

    assert_int_equal(apr_pool_create(&gen, p), APR_SUCCESS);
    assert_int_equal(acme_hot_claim(&hot, "pre.example"), 0);  /* named before indexing */
    acme_hot_index(&hot, gen);
    assert_non_null(hot.index);
    assert_int_equal(acme_hot_claim(&hot, "PRE.example"), 0);
    for (i = 0; i < TEST_HOT_MANY; ++i) {
        snprintf(name, sizeof(name), "d%05d.Example.test", i);
        assert_int_equal(acme_hot_claim(&hot, name), i + 1);
    }
    for (i = 0; i < TEST_HOT_MANY; i += 997) {
        snprintf(name, sizeof(name), "D%05d.example.TEST", i);
        assert_int_equal(acme_hot_claim(&hot, name), i + 1);  /* its own slot, not a new one */
        assert_int_equal(acme_hot_find(&hot, name), i + 1);
    }
    snprintf(name, sizeof(name), "d%05d.example.test", TEST_HOT_MANY - 1);
    assert_int_equal(acme_hot_claim(&hot, name), TEST_HOT_MANY);
    assert_int_equal(acme_hot_claim(&hot, "last.example"), TEST_HOT_MANY + 1);
    assert_int_equal(acme_hot_claim(&hot, "full.example"), -1);
    assert_int_equal(acme_hot_find(&hot, "full.example"), -1);
    /* A new configuration: every slot free, the index emptied with them. */
    acme_hot_clear(&hot);
    assert_int_equal(acme_hot_claim(&hot, "d00005.example.test"), 0);
    assert_int_equal(acme_hot_claim(&hot, "pre.example"), 1);
    /* The generation's pool goes: the index with it, claims scan and agree. */
    apr_pool_destroy(gen);
    assert_null(hot.index);
    assert_int_equal(acme_hot_claim(&hot, "pre.example"), 1);
    assert_int_equal(acme_hot_claim(&hot, "new.example"), 2);
    assert_int_equal(acme_hot_find(&hot, "D00005.example.test"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_find_and_clear),
        cmocka_unit_test(test_many_names_indexed),
        cmocka_unit_test(test_publish_and_read),
        cmocka_unit_test(test_reader_never_sees_a_torn_set),
    };
    return cmocka_run_group_tests_name("hot", tests, unit_setup_pool, unit_teardown_pool);
}
