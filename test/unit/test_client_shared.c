/*
 * The directory and nonce pool an ACME client shares with the other clients of its CA across
 * a worker's threads (acme_client_shared.h): order, cap, concurrent use, one directory fetch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "acme_client_shared.h"
#include "unit_support.h"

#define THREADS 8
#define ROUNDS  2000

static acme_client_shared_t *shared_make(void **state)
{
    acme_client_shared_t *s = NULL;

    assert_int_equal(acme_client_shared_create(&s, *state), APR_SUCCESS);
    return s;
}

static void test_nonces_newest_first(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    char buf[ACME_CLIENT_SHARED_NONCE_MAX];

    assert_int_equal(acme_client_shared_nonce_pop(s, buf, sizeof(buf)), 0);
    acme_client_shared_nonce_push(s, "first");
    acme_client_shared_nonce_push(s, "second");
    acme_client_shared_nonce_push(s, "third");
    assert_int_equal(acme_client_shared_nonce_count(s), 3);
    assert_int_equal(acme_client_shared_nonce_pop(s, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "third");
    assert_int_equal(acme_client_shared_nonce_pop(s, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "second");
    assert_int_equal(acme_client_shared_nonce_pop(s, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "first");
    assert_int_equal(acme_client_shared_nonce_pop(s, buf, sizeof(buf)), 0);
}

static void test_full_pool_drops_oldest(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    char buf[ACME_CLIENT_SHARED_NONCE_MAX];
    int i, n = 0;

    for (i = 0; i < ACME_CLIENT_SHARED_NONCES + 5; ++i) {
        acme_client_shared_nonce_push(s, apr_psprintf(*state, "n%d", i));
    }
    assert_int_equal(acme_client_shared_nonce_count(s), ACME_CLIENT_SHARED_NONCES);
    while (acme_client_shared_nonce_pop(s, buf, sizeof(buf))) {
        assert_string_equal(buf, apr_psprintf(*state, "n%d", ACME_CLIENT_SHARED_NONCES + 4 - n));
        ++n;
    }
    assert_int_equal(n, ACME_CLIENT_SHARED_NONCES);
    /* The last one out is the oldest kept: n0 .. n4 went when the pool was full. */
    assert_string_equal(buf, "n5");
}

static void test_unusable_nonces_not_kept(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    char *long_nonce = apr_pcalloc(*state, ACME_CLIENT_SHARED_NONCE_MAX + 1);
    char small[4];

    memset(long_nonce, 'a', ACME_CLIENT_SHARED_NONCE_MAX);
    acme_client_shared_nonce_push(s, NULL);
    acme_client_shared_nonce_push(s, "");
    acme_client_shared_nonce_push(s, long_nonce);
    assert_int_equal(acme_client_shared_nonce_count(s), 0);
    /* A buffer too small for the nonce gets nothing, and the nonce stays for another caller. */
    acme_client_shared_nonce_push(s, "abcdef");
    assert_int_equal(acme_client_shared_nonce_pop(s, small, sizeof(small)), 0);
    assert_int_equal(acme_client_shared_nonce_count(s), 1);
}

typedef struct {
    acme_client_shared_t *s;
    int id;
    char (*popped)[32];             /* ROUNDS entries */
    int misses;
} pusher_t;

static void *APR_THREAD_FUNC push_pop(apr_thread_t *t, void *data)
{
    pusher_t *pp = data;
    char mine[32];

    for (int i = 0; i < ROUNDS; ++i) {
        snprintf(mine, sizeof(mine), "t%d-%d", pp->id, i);
        acme_client_shared_nonce_push(pp->s, mine);
        /* Every thread pushes before it pops: the pool cannot be empty here. */
        if (!acme_client_shared_nonce_pop(pp->s, pp->popped[i], sizeof(pp->popped[i]))) {
            ++pp->misses;
        }
    }
    (void)t;
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Threads pushing and popping at once: every nonce comes out exactly once, none is lost. */
static void test_concurrent_push_pop(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    char (*all)[32] = apr_pcalloc(*state, sizeof(*all) * THREADS * ROUNDS);
    pusher_t pp[THREADS];
    apr_thread_t *th[THREADS];
    apr_status_t trv;
    int i;

    for (i = 0; i < THREADS; ++i) {
        pp[i] = (pusher_t){ .s = s, .id = i, .popped = all + i * ROUNDS };
        assert_int_equal(apr_thread_create(&th[i], NULL, push_pop, &pp[i], *state), APR_SUCCESS);
    }
    for (i = 0; i < THREADS; ++i) {
        apr_thread_join(&trv, th[i]);
        assert_int_equal(pp[i].misses, 0);
    }
    assert_int_equal(acme_client_shared_nonce_count(s), 0);
    qsort(all, THREADS * ROUNDS, sizeof(*all), cmp_str);
    for (i = 1; i < THREADS * ROUNDS; ++i) {
        assert_true(all[i][0] != '\0');
        assert_true(strcmp(all[i - 1], all[i]) != 0);      /* no nonce handed out twice */
    }
}

typedef struct {
    acme_client_shared_t *s;
    apr_pool_t *p;
    int got;
    const char *body;
} claimer_t;

static void *APR_THREAD_FUNC claim(apr_thread_t *t, void *data)
{
    claimer_t *c = data;
    apr_size_t len = 0;

    c->got = acme_client_shared_directory_claim(c->s, c->p, apr_time_from_sec(20), &c->body,
                                                &len);
    (void)t;
    return NULL;
}

/* The first caller fetches; one arriving meanwhile waits for that answer instead of fetching. */
static void test_directory_fetched_once(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    claimer_t c = { .s = s };
    apr_thread_t *th;
    apr_status_t trv;
    const char *body = NULL;
    apr_size_t len = 0;

    apr_pool_create(&c.p, NULL);
    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 0);
    assert_int_equal(apr_thread_create(&th, NULL, claim, &c, *state), APR_SUCCESS);
    apr_sleep(apr_time_from_msec(100));
    acme_client_shared_directory_put(s, "{\"newNonce\":\"x\"}", 16);
    apr_thread_join(&trv, th);
    assert_int_equal(c.got, 1);
    assert_string_equal(c.body, "{\"newNonce\":\"x\"}");
    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 1);
    assert_int_equal(len, 16);
    apr_pool_destroy(c.p);
}

/* A failed fetch is not kept: the next caller fetches; so after a drop. */
static void test_directory_failure_refetched(void **state)
{
    acme_client_shared_t *s = shared_make(state);
    const char *body = NULL;
    apr_size_t len = 0;

    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 0);
    acme_client_shared_directory_put(s, NULL, 0);
    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 0);
    acme_client_shared_directory_put(s, "{}", 2);
    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 1);
    acme_client_shared_directory_drop(s);
    assert_int_equal(acme_client_shared_directory_claim(s, *state, 0, &body, &len), 0);
    acme_client_shared_directory_put(s, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonces_newest_first),
        cmocka_unit_test(test_full_pool_drops_oldest),
        cmocka_unit_test(test_unusable_nonces_not_kept),
        cmocka_unit_test(test_concurrent_push_pop),
        cmocka_unit_test(test_directory_fetched_once),
        cmocka_unit_test(test_directory_failure_refetched),
    };
    return cmocka_run_group_tests_name("client_shared", tests, unit_setup_pool,
                                       unit_teardown_pool);
}
