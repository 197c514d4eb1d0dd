/*
 * The renewal worker's account and authorization steps, without a CA: this program compiles
 * src/acme_worker.c itself, with the few client calls those steps make replaced by fakes and
 * every pool allocation in it checked for the thread it comes from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_thread_proc.h>

#include "acme_client.h"
#include "acme_domain.h"
#include "acme_job.h"
#include "acme_problem.h"
#include "acme_renewal.h"
#include "acme_store.h"
#include "unit_support.h"

/* ------------------------------------------------------------------ allocation watch */

/* The run's shared pool: only the thread that made it may allocate from it. */
static apr_pool_t *watched_pool;
static apr_os_thread_t watched_owner;
static volatile apr_uint32_t foreign_allocations;

static void unit_pool_note(apr_pool_t *p)
{
    if (watched_pool && p == watched_pool
        && !apr_os_thread_equal(apr_os_thread_current(), watched_owner)) {
        apr_atomic_inc32(&foreign_allocations);
    }
}

/* ------------------------------------------------------------------ fake client calls */

static volatile apr_uint32_t registers_arrived;
static char last_eab_kid[64], last_eab_hmac[128];   /* the binding the last registration got */
static apr_uint32_t registers_expected;
static volatile apr_uint32_t key_authorizations;
static apr_array_header_t *fake_authzs;

/* Holds each caller until all expected callers are inside: the registrations overlap. */
static apr_status_t fake_account_register(acme_client_t *c, apr_pool_t *p,
                                          const acme_client_account_params_t *params,
                                          acme_client_account_t **acct, acme_result_t *res)
{
    apr_uint32_t n = apr_atomic_inc32(&registers_arrived) + 1;
    int i;

    (void)c;
    (void)res;
    apr_cpystrn(last_eab_kid, params->eab_kid ? params->eab_kid : "", sizeof(last_eab_kid));
    apr_cpystrn(last_eab_hmac, params->eab_hmac ? params->eab_hmac : "", sizeof(last_eab_hmac));
    for (i = 0; i < 2000 && apr_atomic_read32(&registers_arrived) < registers_expected; ++i) {
        apr_sleep(apr_time_from_msec(1));
    }
    *acct = apr_pcalloc(p, sizeof(**acct));
    (*acct)->url = apr_psprintf(p, "https://ca.test/acct/%u", (unsigned)n);
    return APR_SUCCESS;
}

static void fake_account_use(acme_client_t *c, const acme_key_t *key, const char *url)
{
    (void)c;
    (void)key;
    (void)url;
}

static apr_status_t fake_order_authzs(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                      apr_array_header_t **authzs, acme_result_t *res)
{
    (void)c;
    (void)p;
    (void)order;
    (void)res;
    *authzs = fake_authzs;
    return APR_SUCCESS;
}

/* The first step of answering: counted, and the end of the road for these tests. */
static apr_status_t fake_key_authorization(acme_client_t *c, apr_pool_t *p, const char *token,
                                           const char **out, acme_result_t *res)
{
    (void)c;
    (void)p;
    (void)token;
    (void)out;
    apr_atomic_inc32(&key_authorizations);
    return acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON, "fake: stop here");
}

/* The account the CA forgot: every fake client signs with it until recovered. */
#define LOST_URL "https://ca.test/acct/lost"
static volatile apr_uint32_t finds;
static int find_deactivated;            /* the CA reports the key's account deactivated */

static const char *fake_account_url(const acme_client_t *c)
{
    (void)c;
    return LOST_URL;
}

/* The CA has no account for the key; slow enough that the callers would overlap. */
static apr_status_t fake_account_find(acme_client_t *c, apr_pool_t *p,
                                      acme_client_account_t **acct, acme_result_t *res)
{
    static const char body[] = "{\"type\":\"urn:ietf:params:acme:error:accountDoesNotExist\","
                               "\"detail\":\"no account for the key\"}";

    static const char gone[] = "{\"type\":\"urn:ietf:params:acme:error:unauthorized\","
                               "\"detail\":\"An account with the provided public key exists "
                               "but is deactivated\"}";

    (void)c;
    (void)acct;
    apr_atomic_inc32(&finds);
    apr_sleep(apr_time_from_msec(50));
    if (find_deactivated) {
        return acme_problem_from_response(res, p, "account lookup", 403,
                                          "application/problem+json", gone, sizeof(gone) - 1, 0);
    }
    return acme_problem_from_response(res, p, "account lookup", 400, "application/problem+json",
                                      body, sizeof(body) - 1, 0);
}

#define acme_client_account_url fake_account_url
#define acme_client_account_find fake_account_find
/* The CA's answer to re-reading a stored order: pending, or the failure scripted here. */
static int refreshes;
static apr_status_t refresh_rv;
static acme_class_t refresh_class;

static apr_status_t fake_order_refresh(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                       acme_result_t *res)
{
    (void)c;
    (void)p;
    ++refreshes;
    if (refresh_rv == APR_SUCCESS) {
        order->status = ACME_ORDER_PENDING;
        return APR_SUCCESS;
    }
    return acme_result_fail(res, refresh_rv, refresh_class, "fake: the order refresh failed");
}

/* The CA's directory meta a new order is planned with (ACMEProfile); NULL: no profiles. */
static const acme_client_meta_t *fake_meta;

static apr_status_t fake_client_meta(acme_client_t *c, const acme_client_meta_t **meta,
                                     acme_result_t *res)
{
    static const acme_client_meta_t none = { .profiles = NULL };

    (void)c;
    (void)res;
    *meta = fake_meta ? fake_meta : &none;
    return APR_SUCCESS;
}

#define acme_client_meta fake_client_meta
#define acme_client_account_register fake_account_register
#define acme_client_order_refresh fake_order_refresh
#define acme_client_account_use fake_account_use
#define acme_client_order_authzs fake_order_authzs
#define acme_client_key_authorization fake_key_authorization

#define apr_palloc(p, n) (unit_pool_note(p), apr_palloc(p, n))
#define apr_pstrdup(p, s) (unit_pool_note(p), apr_pstrdup(p, s))
#define apr_pstrndup(p, s, n) (unit_pool_note(p), apr_pstrndup(p, s, n))
#define apr_pstrmemdup(p, s, n) (unit_pool_note(p), apr_pstrmemdup(p, s, n))
#define apr_pstrcat(p, ...) (unit_pool_note(p), apr_pstrcat(p, __VA_ARGS__))
#define apr_psprintf(p, ...) (unit_pool_note(p), apr_psprintf(p, __VA_ARGS__))
#define apr_array_make(p, n, size) (unit_pool_note(p), apr_array_make(p, n, size))
#define apr_hash_make(p) (unit_pool_note(p), apr_hash_make(p))

#include "acme_worker.c"
#include "acme_worker_plan.c"
#include "acme_worker_order.c"
#include "acme_worker_challenge.c"
#include "acme_worker_account.c"
#include "acme_worker_persist.c"

#undef apr_palloc
#undef apr_pstrdup
#undef apr_pstrndup
#undef apr_pstrmemdup
#undef apr_pstrcat
#undef apr_psprintf
#undef apr_array_make
#undef apr_hash_make

/* ------------------------------------------------------------------ fixture */

#define CA_ONE "https://ca-one.test/directory"
#define CA_TWO "https://ca-two.test/directory"

typedef struct {
    unit_store_fixture_t *fx;
    acme_worker_config_t cfg;
    acme_worker_t w;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    acme_result_t res;

    f->fx = unit_store_fixture_make("worker");
    f->cfg = (acme_worker_config_t){ .store_dir = f->fx->store, .parallel_orders = 2 };
    f->w = (acme_worker_t){
        .cfg = &f->cfg, .pool = f->fx->pool, .cas = apr_hash_make(f->fx->pool),
        .items = apr_array_make(f->fx->pool, 2, sizeof(acme_worker_item_t)),
        .due = apr_array_make(f->fx->pool, 2, sizeof(acme_worker_item_t *)),
    };
    apr_thread_mutex_create(&f->w.lock, APR_THREAD_MUTEX_DEFAULT, f->fx->pool);
    acme_result_reset(&res);
    assert_int_equal(acme_store_open(f->fx->pool, f->fx->store, &f->w.store, &res), APR_SUCCESS);
    registers_arrived = key_authorizations = foreign_allocations = finds = 0;
    find_deactivated = 0;
    registers_expected = 1;
    watched_pool = NULL;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    watched_pool = NULL;
    unit_store_fixture_free(f->fx);
    free(f);
    return 0;
}

static acme_domain_t *domain(apr_pool_t *p, const char *name, const char *ca_url)
{
    acme_domain_t *dom = acme_domain_make(p, "test", 1);
    const char *reason = NULL;

    assert_int_equal(acme_domain_add_name(p, dom, name, &reason), APR_SUCCESS);
    dom->policy.ca_urls = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = ca_url;
    acme_policy_defaults(&dom->policy, p);
    return dom;
}

static acme_worker_item_t *item_at(fixture_t *f, const char *name, const char *ca_url)
{
    acme_worker_item_t *item = apr_pcalloc(f->fx->pool, sizeof(*item));
    acme_result_t res;

    item->dom = domain(f->fx->pool, name, ca_url);
    acme_result_reset(&res);
    assert_int_equal(acme_worker_ca_get(&f->w, ca_url, &item->dom->policy, &item->ca, &res),
                     APR_SUCCESS);
    item->cas = &item->ca;
    item->n_cas = 1;
    return item;
}

static acme_worker_run_t run_of(fixture_t *f, apr_pool_t *p, acme_worker_item_t *item)
{
    static int not_a_client;

    return (acme_worker_run_t){
        .w = &f->w, .p = p, .item = item, .client = (acme_client_t *)&not_a_client,
        .job = acme_job_make(p, item->dom->name),
    };
}

/* ------------------------------------------------------------------ item 1: shared pool */

typedef struct {
    acme_worker_run_t run;
    apr_status_t rv;
} account_call_t;

static void *APR_THREAD_FUNC account_thread(apr_thread_t *thread, void *data)
{
    account_call_t *call = data;
    acme_result_t res;

    acme_result_reset(&res);
    (void)thread;
    call->rv = acme_worker_account(&call->run, &res);
    return NULL;        /* not apr_thread_exit: pthread_exit upsets ASan's thread teardown */
}

/*
 * Two order threads registering at two CAs at once: neither may allocate from the run's pool
 * (APR pools are not thread-safe; the main thread uses that pool meanwhile).
 */
static void test_concurrent_registrations_leave_the_run_pool_alone(void **state)
{
    fixture_t *f = *state;
    acme_worker_item_t *one = item_at(f, "one.example", CA_ONE);
    acme_worker_item_t *two = item_at(f, "two.example", CA_TWO);
    apr_pool_t *tp1 = NULL, *tp2 = NULL, *threads_pool = NULL;
    account_call_t calls[2];
    apr_thread_t *t[2];
    apr_status_t trv;

    apr_pool_create(&threads_pool, NULL);
    apr_pool_create(&tp1, NULL);
    apr_pool_create(&tp2, NULL);
    calls[0] = (account_call_t){ .run = run_of(f, tp1, one), .rv = APR_EGENERAL };
    calls[1] = (account_call_t){ .run = run_of(f, tp2, two), .rv = APR_EGENERAL };
    registers_expected = 2;
    watched_owner = apr_os_thread_current();
    watched_pool = f->w.pool;
    assert_int_equal(apr_thread_create(&t[0], NULL, account_thread, &calls[0], threads_pool),
                     APR_SUCCESS);
    assert_int_equal(apr_thread_create(&t[1], NULL, account_thread, &calls[1], threads_pool),
                     APR_SUCCESS);
    apr_thread_join(&trv, t[0]);
    apr_thread_join(&trv, t[1]);
    watched_pool = NULL;

    assert_int_equal(calls[0].rv, APR_SUCCESS);
    assert_int_equal(calls[1].rv, APR_SUCCESS);
    assert_int_equal(apr_atomic_read32(&registers_arrived), 2);
    assert_int_equal(apr_atomic_read32(&foreign_allocations), 0);
    assert_non_null(one->ca->account_url);
    assert_non_null(two->ca->account_url);
    assert_string_not_equal(one->ca->account_url, two->ca->account_url);
    apr_pool_destroy(tp1);
    apr_pool_destroy(tp2);
    apr_pool_destroy(threads_pool);
}

/* ------------------------------------------------------------------ issue 14: lost account */

typedef struct {
    acme_worker_run_t run;
    int again;
    acme_result_t res;
} recover_call_t;

static void lost_account_result(apr_pool_t *p, acme_result_t *res)
{
    static const char body[] = "{\"type\":\"urn:ietf:params:acme:error:accountDoesNotExist\","
                               "\"detail\":\"Account " LOST_URL " not found.\"}";

    acme_result_reset(res);
    acme_problem_from_response(res, p, "newOrder", 400, "application/problem+json", body,
                               sizeof(body) - 1, 0);
}

static void *APR_THREAD_FUNC recover_thread(apr_thread_t *thread, void *data)
{
    recover_call_t *call = data;
    int tried = 0;

    (void)thread;
    lost_account_result(call->run.p, &call->res);
    call->again = acme_worker_account_recover(&call->run, &call->res, &tried);
    return NULL;
}

/* The CA's account as the store had it before the CA forgot it. */
static acme_worker_item_t *item_with_lost_account(fixture_t *f, const char *name)
{
    acme_worker_item_t *item = item_at(f, name, CA_ONE);

    acme_job_account_note(item->ca->record, item->ca->pool, LOST_URL, "registered",
                          apr_time_now() - apr_time_from_sec(86400));
    item->ca->account_url = item->ca->record->url;
    item->ca->key_new = 0;
    return item;
}

/*
 * Four order threads meet the lost account at once: one looks the key up and registers it
 * again, the others take its URL; all order again at once; nothing from the run's pool.
 */
static void test_lost_account_recovered_once_for_all_threads(void **state)
{
    fixture_t *f = *state;
    acme_worker_item_t *item = item_with_lost_account(f, "one.example");
    apr_pool_t *pools[4] = { NULL }, *threads_pool = NULL;
    recover_call_t calls[4];
    apr_thread_t *t[4];
    apr_status_t trv;
    acme_job_account_t *rec = NULL;
    acme_result_t res;
    int i;

    apr_pool_create(&threads_pool, NULL);
    for (i = 0; i < 4; ++i) {
        apr_pool_create(&pools[i], NULL);
        calls[i] = (recover_call_t){ .run = run_of(f, pools[i], item) };
        calls[i].run.job->order_json = "{}";
    }
    watched_owner = apr_os_thread_current();
    watched_pool = f->w.pool;
    for (i = 0; i < 4; ++i) {
        assert_int_equal(apr_thread_create(&t[i], NULL, recover_thread, &calls[i],
                                           threads_pool), APR_SUCCESS);
    }
    for (i = 0; i < 4; ++i) {
        apr_thread_join(&trv, t[i]);
    }
    watched_pool = NULL;
    for (i = 0; i < 4; ++i) {
        assert_int_equal(calls[i].again, 1);
        assert_int_equal(calls[i].res.status, APR_SUCCESS);
        assert_null(calls[i].run.job->order_json);       /* a fresh order, not the old one */
    }
    assert_int_equal(apr_atomic_read32(&finds), 1);
    assert_int_equal(apr_atomic_read32(&registers_arrived), 1);
    assert_int_equal(apr_atomic_read32(&foreign_allocations), 0);
    assert_string_equal(item->ca->account_url, "https://ca.test/acct/1");
    /* Recorded: both accounts in the history, and when it was registered again. */
    acme_result_reset(&res);
    assert_int_equal(acme_job_account_load(f->fx->pool, acme_worker_account_url_path(&f->w,
                                           f->fx->pool, item->ca), CA_ONE, &rec, &res),
                     APR_SUCCESS);
    assert_string_equal(rec->url, "https://ca.test/acct/1");
    assert_int_equal(rec->history->nelts, 2);
    assert_true(rec->reregistered_at > apr_time_now() - apr_time_from_sec(60));
    for (i = 0; i < 4; ++i) {
        apr_pool_destroy(pools[i]);
    }
    apr_pool_destroy(threads_pool);
}

/* Registered again 10 minutes ago and lost again: no new account before the hour is over. */
static void test_lost_account_not_registered_twice_an_hour(void **state)
{
    fixture_t *f = *state;
    acme_worker_item_t *item = item_with_lost_account(f, "one.example");
    apr_time_t before = apr_time_now() - apr_time_from_sec(600);
    acme_worker_run_t run = run_of(f, f->fx->pool, item);
    acme_result_t res;
    int tried = 0;

    item->ca->record->reregistered_at = before;
    lost_account_result(f->fx->pool, &res);
    assert_int_equal(acme_worker_account_recover(&run, &res, &tried), 0);
    assert_int_equal(apr_atomic_read32(&registers_arrived), 0);
    assert_int_equal(apr_atomic_read32(&finds), 1);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_AFTER);
    assert_int_equal(res.retry_after, before + apr_time_from_sec(3600));
    assert_string_equal(item->ca->account_url, LOST_URL);
    /* Another order of the run fails alike without asking the CA again. */
    run = run_of(f, f->fx->pool, item);
    tried = 0;
    lost_account_result(f->fx->pool, &res);
    assert_int_equal(acme_worker_account_recover(&run, &res, &tried), 0);
    assert_int_equal(apr_atomic_read32(&finds), 1);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_AFTER);
    /* And once per domain and run: the second call does not even look. */
    assert_int_equal(acme_worker_account_recover(&run, &res, &tried), 0);
}

/* A key whose account the CA deactivated is never registered again: the admin decides. */
static void test_deactivated_account_is_not_recreated(void **state)
{
    fixture_t *f = *state;
    acme_worker_item_t *item = item_with_lost_account(f, "one.example");
    acme_worker_run_t run = run_of(f, f->fx->pool, item);
    acme_result_t res;
    int tried = 0;

    find_deactivated = 1;
    lost_account_result(f->fx->pool, &res);
    assert_int_equal(acme_worker_account_recover(&run, &res, &tried), 0);
    assert_int_equal(apr_atomic_read32(&finds), 1);
    assert_int_equal(apr_atomic_read32(&registers_arrived), 0);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "deactivated"));
    assert_non_null(strstr(res.message, "account.key"));
    assert_int_equal(item->ca->record->reregistered_at, 0);
    assert_string_equal(item->ca->account_url, LOST_URL);
}

/* ------------------------------------------------------------------ item 6: account lock */

static const char *account_lock_name(apr_pool_t *p, const char *ca_url)
{
    return apr_pstrcat(p, "account-", acme_domain_ca_id(p, ca_url), NULL);
}

/* What a2acme rollover does first, in another process: 0 when the lock was busy. */
static int rollover_lock_busy_elsewhere(fixture_t *f, const char *ca_url)
{
    int status = -1;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        acme_store_lock_t *lock = NULL;
        acme_result_t res;
        alarm(20);
        acme_result_reset(&res);
        _exit(acme_store_lock(f->fx->pool, f->w.store, account_lock_name(f->fx->pool, ca_url),
                              0, &lock, &res) == APR_EAGAIN ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* While the worker may use the account, a rollover cannot take the account's lock. */
static void test_worker_holds_the_account_lock(void **state)
{
    fixture_t *f = *state;

    item_at(f, "one.example", CA_ONE);
    assert_true(rollover_lock_busy_elsewhere(f, CA_ONE));
    /* Once no due domain uses the CA, it is released for a rollover. */
    acme_worker_ca_unlock_idle(&f->w, 0);
    assert_false(rollover_lock_busy_elsewhere(f, CA_ONE));
}

/*
 * A rollover holding the lock when the worker starts: the CA's orders fail as retry-soon, the
 * account is not touched, and it is no reason to fail over to another CA.
 */
static void test_rollover_in_progress_means_retry_soon(void **state)
{
    fixture_t *f = *state;
    int ready[2], hold[2], status = 0;
    acme_worker_item_t *item;
    acme_worker_run_t run;
    acme_result_t res;
    char byte = 0;
    pid_t pid;

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        acme_store_lock_t *lock = NULL;
        acme_result_t cres;
        alarm(30);
        close(ready[0]);
        close(hold[1]);
        acme_result_reset(&cres);
        if (acme_store_lock(f->fx->pool, f->w.store, account_lock_name(f->fx->pool, CA_ONE), 0,
                            &lock, &cres) != APR_SUCCESS) {
            _exit(1);
        }
        (void)!write(ready[1], "L", 1);
        (void)!read(hold[0], &byte, 1);     /* until the test closes its end */
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    assert_int_equal(read(ready[0], &byte, 1), 1);

    item = item_at(f, "one.example", CA_ONE);
    run = run_of(f, f->fx->pool, item);
    acme_result_reset(&res);
    assert_int_not_equal(acme_worker_account(&run, &res), APR_SUCCESS);
    close(hold[1]);
    close(ready[0]);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, "locked by another process"));
    assert_int_equal(apr_atomic_read32(&registers_arrived), 0);
    assert_false(acme_renewal_ca_side(&res));
}

/* ------------------------------------------------------------------ item 3: authorizations */

static acme_client_authz_t *authz(apr_pool_t *p, const char *value, int wildcard)
{
    acme_client_authz_t *a = apr_pcalloc(p, sizeof(*a));

    a->url = "https://ca.test/authz/1";
    a->identifier = (acme_ident_t){ .type = ACME_IDENT_DNS, .value = value };
    a->status = "pending";
    a->wildcard = wildcard;
    a->challenges = apr_array_make(p, 1, sizeof(acme_client_challenge_t));
    APR_ARRAY_PUSH(a->challenges, acme_client_challenge_t) = (acme_client_challenge_t){
        .type = "http-01", .url = "https://ca.test/chall/1", .token = "tok", .status = "pending",
    };
    return a;
}

static apr_status_t answer_with(fixture_t *f, const char *name, acme_result_t *res, int n, ...)
{
    acme_worker_item_t *item = apr_pcalloc(f->fx->pool, sizeof(*item));
    acme_worker_run_t run;
    va_list ap;
    int i;

    item->dom = domain(f->fx->pool, name, CA_ONE);
    run = run_of(f, f->fx->pool, item);
    fake_authzs = apr_array_make(f->fx->pool, n, sizeof(acme_client_authz_t *));
    va_start(ap, n);
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(fake_authzs, acme_client_authz_t *) = va_arg(ap, acme_client_authz_t *);
    }
    va_end(ap);
    acme_result_reset(res);
    return acme_worker_answer(&run, acme_order_make(f->fx->pool, NULL, 0, "secp256r1"), res);
}

/* An authorization for a name the domain does not have: nothing is set up, the order is given up. */
static void test_foreign_authorization_refused(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->fx->pool;
    acme_result_t res;

    assert_int_not_equal(answer_with(f, "example.org", &res, 2, authz(p, "example.org", 0),
                                     authz(p, "../../etc\nevil", 0)), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_non_null(strstr(res.message, "not one of the domain's names"));
    assert_null(strchr(res.message, '\n'));
    assert_int_equal(apr_atomic_read32(&key_authorizations), 0);

    /* a wildcard authorization for a domain without that wildcard */
    assert_int_not_equal(answer_with(f, "www.example.org", &res, 1, authz(p, "example.org", 1)),
                         APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_PERMANENT);
    assert_int_equal(apr_atomic_read32(&key_authorizations), 0);
}

/* The domain's own names, wildcard included, pass the check (and reach the first CA call). */
static void test_own_authorizations_accepted(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->fx->pool;
    acme_result_t res;

    answer_with(f, "*.example.org", &res, 1, authz(p, "example.org", 1));
    assert_string_equal(res.message, "fake: stop here");
    answer_with(f, "example.org", &res, 1, authz(p, "example.org", 0));
    assert_string_equal(res.message, "fake: stop here");
    assert_int_equal(apr_atomic_read32(&key_authorizations), 2);
}

/* ------------------------------------------------------------------ resuming the order */

#define ORDER_URL "https://ca-one.test/order/7"

/* A run whose job holds a pending order of this item's names, account and key type. */
static acme_worker_run_t run_with_order(fixture_t *f, acme_keyspec_t **spec)
{
    acme_worker_item_t *item = item_at(f, "resume.test", CA_ONE);
    acme_worker_run_t run = run_of(f, f->fx->pool, item);
    acme_order_t *order;
    acme_result_t res;

    /* The account the fake clients sign with, so that the stored order is theirs. */
    item->ca->account_url = LOST_URL;
    item->active = apr_pcalloc(f->fx->pool, sizeof(*item->active)
                               * (apr_size_t)item->dom->policy.key_specs->nelts);
    *spec = &APR_ARRAY_IDX(item->dom->policy.key_specs, 0, acme_keyspec_t);
    order = acme_order_make(f->fx->pool, (const acme_ident_t *)item->dom->idents->elts,
                            item->dom->idents->nelts, acme_crypto_keyspec_name(*spec));
    order->url = ORDER_URL;
    order->account_url = item->ca->account_url;
    order->status = ACME_ORDER_PENDING;
    acme_result_reset(&res);
    assert_int_equal(acme_order_to_json(order, f->fx->pool, &run.job->order_json, &res),
                     APR_SUCCESS);
    refreshes = 0;
    return run;
}

static void test_transient_refresh_failure_keeps_the_order(void **state)
{
    fixture_t *f = *state;
    acme_keyspec_t *spec;
    acme_worker_run_t run = run_with_order(f, &spec);
    const char *stored = run.job->order_json;
    acme_order_t *order = NULL;
    acme_result_t res;

    /* badNonce past the request's budget, a 503: the same order is resumed next time. */
    refresh_rv = APR_EGENERAL;
    refresh_class = ACME_CLASS_RETRY_SOON;
    acme_result_reset(&res);
    assert_int_not_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_int_equal(refreshes, 1);
    assert_null(order);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_ptr_equal(run.job->order_json, stored);
    assert_true(acme_worker_quick_due(&run, &res, 0));

    refresh_rv = APR_SUCCESS;
    acme_result_reset(&res);
    assert_int_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_non_null(order);
    assert_string_equal(order->url, ORDER_URL);
    assert_int_equal(order->status, ACME_ORDER_PENDING);
}

static void test_order_the_ca_forgot_is_replaced(void **state)
{
    fixture_t *f = *state;
    acme_keyspec_t *spec;
    acme_worker_run_t run = run_with_order(f, &spec);
    acme_order_t *order = NULL;
    acme_result_t res;

    refresh_rv = APR_ENOENT;
    refresh_class = ACME_CLASS_PERMANENT;
    acme_result_reset(&res);
    assert_int_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_int_equal(refreshes, 1);
    assert_non_null(order);
    assert_null(order->url);
    assert_int_equal(order->status, ACME_ORDER_NEW);
}

/*
 * A new order (here: the stored one is gone) names the served certificate in `replaces` (RFC
 * 9773; acme_client_order_new drops it when the CA has no ARI) unless ARI is off, and carries
 * the profile ACMEProfile names when the CA offers it; an unknown one fails before any order.
 */
static void test_new_order_carries_replaces_and_profile(void **state)
{
    static const char dir[] = "{\"meta\":{\"profiles\":{\"classic\":\"90 days\","
                              "\"tlsserver\":\"45 days\"}}}";
    fixture_t *f = *state;
    acme_keyspec_t *spec;
    acme_worker_run_t run = run_with_order(f, &spec);
    acme_domain_t *dom = (acme_domain_t *)run.item->dom;
    acme_client_meta_t meta;
    acme_order_t *order = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_client_meta_parse(f->fx->pool, dir, strlen(dir), &meta, &res),
                     APR_SUCCESS);
    fake_meta = &meta;
    run.item->active[0] = (acme_worker_active_t){ .present = 1, .covers = 1,
                                                  .cert_id = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" };
    dom->policy.profile = "tlsserver";
    refresh_rv = APR_ENOENT;
    refresh_class = ACME_CLASS_PERMANENT;
    assert_int_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_string_equal(order->replaces, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_string_equal(order->profile, "tlsserver");

    f->cfg.ari_off = 1;
    dom->policy.profile = NULL;         /* DNS names only: the CA's default */
    acme_result_reset(&res);
    assert_int_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_null(order->replaces);
    assert_null(order->profile);

    dom->policy.profile = "shortlived";
    acme_result_reset(&res);
    assert_int_not_equal(acme_worker_order_resume(&run, spec, &order, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "classic, tlsserver"));
    fake_meta = NULL;
    f->cfg.ari_off = 0;
}

static void test_quick_retries_are_bounded_and_transient_only(void **state)
{
    fixture_t *f = *state;
    acme_keyspec_t *spec;
    acme_worker_run_t run = run_with_order(f, &spec);
    acme_result_t res;

    acme_result_reset(&res);
    acme_result_fail(&res, APR_EGENERAL, ACME_CLASS_RETRY_SOON, "fake: 503 mid-order");
    res.http_status = 503;
    assert_true(acme_worker_quick_due(&run, &res, 0));
    assert_true(acme_worker_quick_due(&run, &res, ACME_WORKER_QUICK_RETRIES - 1));
    assert_false(acme_worker_quick_due(&run, &res, ACME_WORKER_QUICK_RETRIES));
    res.retry_after = apr_time_now() + apr_time_from_sec(30);
    assert_false(acme_worker_quick_due(&run, &res, 0));     /* the CA named the time */
    res.retry_after = 0;
    res.err_class = ACME_CLASS_ADMIN;
    assert_false(acme_worker_quick_due(&run, &res, 0));
    res.err_class = ACME_CLASS_RETRY_SOON;
    res.status = APR_EAGAIN;                                 /* our own lock: not the CA */
    assert_false(acme_worker_quick_due(&run, &res, 0));
    res.status = APR_EGENERAL;
    run.job->order_json = NULL;
    assert_false(acme_worker_quick_due(&run, &res, 0));     /* nothing to resume */
    res.problem_type = "urn:ietf:params:acme:error:badNonce";
    assert_true(acme_worker_quick_due(&run, &res, 0));      /* newOrder itself refused */
}

/* Finalizing a resumed ready order (finalize failed before) needs a key that can sign the CSR. */
static void test_finalize_after_a_failed_finalize_gets_a_signing_key(void **state)
{
    fixture_t *f = *state;
    acme_keyspec_t *spec;
    acme_worker_run_t run = run_with_order(f, &spec);
    acme_key_t *first = NULL, *again = NULL, *stored = NULL;
    const char *pub_first = NULL, *pub_again = NULL, *pub_stored = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_seal_keypair_ensure(f->fx->pool, f->fx->store, &f->cfg.seal_cert_pem,
                                              &res), APR_SUCCESS);
    run.pending_dir = apr_pstrcat(f->fx->pool, f->fx->dir, "/pending", NULL);
    assert_int_equal(acme_store_mkdirs(f->fx->pool, run.pending_dir, &res), APR_SUCCESS);
    assert_int_equal(acme_worker_cert_key(&run, spec, 1, &first, &res), APR_SUCCESS);
    assert_true(acme_crypto_key_is_private(first));
    assert_int_equal(acme_worker_cert_key(&run, spec, 1, &again, &res), APR_SUCCESS);
    assert_true(acme_crypto_key_is_private(again));
    /* Processing or valid, in the same run: the key the last CSR carried, from memory. */
    assert_int_equal(acme_worker_cert_key(&run, spec, 0, &stored, &res), APR_SUCCESS);
    assert_ptr_equal(stored, again);
    /* ... and in a run resuming the order: its public part, from the pending directory. */
    run.fresh_key = NULL;
    run.fresh_spec = NULL;
    assert_int_equal(acme_worker_cert_key(&run, spec, 0, &stored, &res), APR_SUCCESS);
    assert_false(acme_crypto_key_is_private(stored));
    assert_int_equal(acme_seal_public_pem(f->fx->pool, first, &pub_first, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_public_pem(f->fx->pool, again, &pub_again, &res), APR_SUCCESS);
    assert_int_equal(acme_seal_public_pem(f->fx->pool, stored, &pub_stored, &res), APR_SUCCESS);
    assert_string_equal(pub_stored, pub_again);
    assert_string_not_equal(pub_first, pub_again);
}

/* domains/<name>/ with a key and a one-certificate chain naming name, serial `serial`. */
static void install_set(fixture_t *f, const char *name, long serial)
{
    apr_pool_t *p = f->fx->pool;
    const char *dir = acme_store_path(p, f->w.store, ACME_STORE_DOMAINS, name, NULL);
    acme_key_t *key = unit_key_generate(p, ACME_KEY_EC, 256);
    unit_cert_spec_t spec = {
        .cn = name, .key = key, .sans = apr_pstrcat(p, "DNS:", name, NULL), .serial = serial,
        .not_before = -3600, .not_after = 30 * 86400,
    };
    X509 *x = unit_cert_make(&spec);
    const char *pem = NULL;
    acme_result_t res;

    assert_non_null(x);
    acme_result_reset(&res);
    assert_int_equal(acme_crypto_key_to_pem(p, key, &pem, &res), APR_SUCCESS);
    unit_write_file(p, apr_pstrcat(p, dir, "/privkey.secp256r1.pem", NULL), pem, ACME_PERMS_0600);
    unit_write_file(p, apr_pstrcat(p, dir, "/pubcert.secp256r1.pem", NULL), unit_x509_pem(p, x),
                    ACME_PERMS_0644);
    X509_free(x);
}

/*
 * A chain the parent read (its details and the file's stamp in cfg->chains_known, its key
 * vouched for) is not parsed again by the worker: the same details come from the parent's copy,
 * and a chain file replaced since is read from the file.
 */
static void test_active_chain_known_to_the_parent(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->fx->pool;
    acme_domain_t *dom = domain(p, "known.test", CA_ONE);
    const acme_keyspec_t *spec = &APR_ARRAY_IDX(dom->policy.key_specs, 0, acme_keyspec_t);
    acme_worker_active_t parsed, known;
    acme_active_t *active = NULL;
    acme_active_cert_t *c, forged;
    apr_hash_t *keys = apr_hash_make(p), *chains = apr_hash_make(p);
    acme_result_t res;

    install_set(f, "known.test", 4242);
    acme_worker_active_read(&f->w, dom, spec, &parsed);
    assert_true(parsed.present && parsed.covers);
    assert_string_equal(parsed.serial, "1092");
    acme_result_reset(&res);
    assert_int_equal(acme_activate_load_ex(p, f->w.store, dom, apr_time_now(), NULL, 0, &active,
                                           &res), APR_SUCCESS);
    c = &APR_ARRAY_IDX(active->certs, 0, acme_active_cert_t);
    apr_hash_set(keys, c->key_file, APR_HASH_KEY_STRING, c->key_stamp);
    apr_hash_set(chains, c->cert_file, APR_HASH_KEY_STRING, c);
    f->cfg.keys_loadable = keys;
    f->cfg.chains_known = chains;
    acme_worker_active_read(&f->w, dom, spec, &known);
    assert_int_equal(known.present, parsed.present);
    assert_int_equal(known.covers, parsed.covers);
    assert_true(known.not_before == parsed.not_before && known.not_after == parsed.not_after);
    assert_string_equal(known.serial, parsed.serial);
    assert_non_null(parsed.cert_id);
    assert_string_equal(known.cert_id, parsed.cert_id);
    /* Taken from the parent's copy, not the file ... */
    forged = *c;
    forged.info.serial_hex = "F0F0";
    apr_hash_set(chains, c->cert_file, APR_HASH_KEY_STRING, &forged);
    acme_worker_active_read(&f->w, dom, spec, &known);
    assert_string_equal(known.serial, "F0F0");
    /* ... as long as the file is the one the parent read. */
    install_set(f, "known.test", 4243);
    apr_hash_set(keys, c->key_file, APR_HASH_KEY_STRING, acme_store_file_stamp(p, c->key_file));
    acme_worker_active_read(&f->w, dom, spec, &known);
    assert_string_equal(known.serial, "1093");
}

/* A CA item whose domain has ACMEExternalAccountBinding kid-1 with its key in `file`. */
static acme_worker_item_t *bound_item_at(fixture_t *f, const char *name, const char *file)
{
    acme_worker_item_t *item = apr_pcalloc(f->fx->pool, sizeof(*item));
    acme_domain_t *dom = domain(f->fx->pool, name, CA_ONE);
    acme_result_t res;

    dom->policy.eab_kid = "kid-1";
    dom->policy.eab_file = file;
    item->dom = dom;
    acme_result_reset(&res);
    assert_int_equal(acme_worker_ca_get(&f->w, CA_ONE, &item->dom->policy, &item->ca, &res),
                     APR_SUCCESS);
    item->cas = &item->ca;
    item->n_cas = 1;
    return item;
}

/* The binding's key is read in prepare and goes with the registration at that CA. */
static void test_registration_carries_the_binding(void **state)
{
    fixture_t *f = *state;
    const char *file = apr_pstrcat(f->fx->pool, f->fx->dir, "/eab.key", NULL);
    acme_worker_item_t *item;
    acme_worker_run_t run;
    acme_result_t res;

    unit_write_file(f->fx->pool, file, "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wE\n",
                    ACME_PERMS_0600);
    item = bound_item_at(f, "bound.example", file);
    run = run_of(f, f->fx->pool, item);
    registers_expected = 1;
    acme_result_reset(&res);
    assert_int_equal(acme_worker_account(&run, &res), APR_SUCCESS);
    assert_string_equal(last_eab_kid, "kid-1");
    assert_string_equal(last_eab_hmac, "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wE");
}

/* An unreadable key file stops registrations at that CA only, naming the file, and no request. */
static void test_unreadable_binding_key_is_an_admin_error(void **state)
{
    fixture_t *f = *state;
    const char *file = apr_pstrcat(f->fx->pool, f->fx->dir, "/missing.key", NULL);
    acme_worker_item_t *item = bound_item_at(f, "bound.example", file);
    acme_worker_run_t run = run_of(f, f->fx->pool, item);
    apr_uint32_t before = apr_atomic_read32(&registers_arrived);
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_not_equal(acme_worker_account(&run, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, file));
    assert_non_null(strstr(res.message, "external account binding"));
    assert_int_equal(apr_atomic_read32(&registers_arrived), before);
}

/* Planning: the domains go to w->due, unless the parent (httpd) is gone: then it stops. */
static int plan_due(fixture_t *f, pid_t parent)
{
    static const char *const names[] = { "one.example", "two.example", "three.example" };

    f->cfg.parent_pid = parent;
    apr_array_clear(f->w.items);
    apr_array_clear(f->w.due);
    for (int i = 0; i < 3; ++i) {
        acme_worker_item_t *item = item_at(f, names[i], CA_ONE);
        item->active = apr_pcalloc(f->fx->pool, sizeof(*item->active)
                                   * (apr_size_t)item->dom->policy.key_specs->nelts);
        APR_ARRAY_PUSH(f->w.items, acme_worker_item_t) = *item;
    }
    acme_worker_plan(&f->w, apr_time_from_sec(3600));
    return f->w.due->nelts;
}

/* A worker whose httpd stopped plans no further domain (and orders none). */
static void test_plan_stops_between_domains_when_the_parent_is_gone(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(plan_due(f, getppid()), 3);
    assert_false(acme_worker_stopping);
    assert_int_equal(plan_due(f, getppid() + 100000), 0);
    assert_true(acme_worker_stopping);
    acme_worker_stopping = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plan_stops_between_domains_when_the_parent_is_gone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_registrations_leave_the_run_pool_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_holds_the_account_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_carries_the_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_binding_key_is_an_admin_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rollover_in_progress_means_retry_soon, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_foreign_authorization_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_authorizations_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_account_recovered_once_for_all_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lost_account_not_registered_twice_an_hour, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deactivated_account_is_not_recreated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transient_refresh_failure_keeps_the_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_order_the_ca_forgot_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_order_carries_replaces_and_profile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quick_retries_are_bounded_and_transient_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_active_chain_known_to_the_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_after_a_failed_finalize_gets_a_signing_key,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, unit_setup_apr, unit_teardown_apr);
}
