/*
 * Account life (src/acme_account.c): contact comparison, terms-of-service change detection,
 * the userActionRequired block and how an admin lifts it, contact arguments, and the record's
 * new fields across a save and a load (src/acme_job.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_strings.h>

#include "acme_account.h"
#include "acme_job.h"
#include "acme_status.h"
#include "unit_support.h"

#define CA "https://ca.test/dir"
#define TOS1 "https://ca.test/terms-2025.pdf"
#define TOS2 "https://ca.test/terms-2026.pdf"

static apr_pool_t *pool_of(void **state)
{
    return *state;
}

static const char *canon(apr_pool_t *p, int n, ...)
{
    const char **list = apr_pcalloc(p, sizeof(*list) * (apr_size_t)(n + 1));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; ++i) {
        list[i] = va_arg(ap, const char *);
    }
    va_end(ap);
    return acme_account_contact_canon(p, list, n);
}

static void test_contact_canon_ignores_order_duplicates_and_scheme_case(void **state)
{
    apr_pool_t *p = pool_of(state);

    assert_string_equal(canon(p, 0), "[]");
    assert_string_equal(canon(p, 1, "mailto:a@x.test"), "[\"mailto:a@x.test\"]");
    assert_string_equal(canon(p, 3, "mailto:b@x.test", "MAILTO:a@x.test", "mailto:b@x.test"),
                        "[\"mailto:a@x.test\",\"mailto:b@x.test\"]");
    assert_string_equal(canon(p, 2, "mailto:b@x.test", "mailto:a@x.test"),
                        canon(p, 2, "mailto:a@x.test", "mailto:b@x.test"));
    /* The address part is the CA's business: a different case is a different contact. */
    assert_string_not_equal(canon(p, 1, "mailto:A@x.test"), canon(p, 1, "mailto:a@x.test"));
}

static void test_contact_check_pushes_only_a_changed_configuration(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_job_account_t *rec = acme_job_account_make(p, CA);
    const char *one = canon(p, 1, "mailto:a@x.test"), *two = canon(p, 1, "mailto:b@x.test");

    /* An older record knows nothing: adopt what is configured, no request. */
    assert_int_equal(acme_account_contact_check(rec, one), ACME_ACCOUNT_CONTACT_ADOPT);
    rec->contact_config = one;
    assert_int_equal(acme_account_contact_check(rec, one), ACME_ACCOUNT_CONTACT_SAME);
    assert_int_equal(acme_account_contact_check(rec, canon(p, 1, "MAILTO:a@x.test")),
                     ACME_ACCOUNT_CONTACT_SAME);
    assert_int_equal(acme_account_contact_check(rec, two), ACME_ACCOUNT_CONTACT_PUSH);
    /* ACMEContactEmail removed: the CA is told to forget the address. */
    assert_int_equal(acme_account_contact_check(rec, canon(p, 0)), ACME_ACCOUNT_CONTACT_PUSH);
    assert_int_equal(acme_account_contact_check(rec, NULL), ACME_ACCOUNT_CONTACT_SAME);
}

static void test_tos_change_is_detected_once(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_job_account_t *rec = acme_job_account_make(p, CA);

    assert_int_equal(acme_account_tos_check(rec, NULL), ACME_ACCOUNT_TOS_SAME);
    assert_int_equal(acme_account_tos_check(rec, TOS1), ACME_ACCOUNT_TOS_ADOPT);
    rec->tos_agreed = TOS1;
    assert_int_equal(acme_account_tos_check(rec, TOS1), ACME_ACCOUNT_TOS_SAME);
    assert_int_equal(acme_account_tos_check(rec, ""), ACME_ACCOUNT_TOS_SAME);
    assert_int_equal(acme_account_tos_check(rec, TOS2), ACME_ACCOUNT_TOS_CHANGED);
    rec->tos_announced = TOS2;
    assert_int_equal(acme_account_tos_check(rec, TOS2), ACME_ACCOUNT_TOS_ANNOUNCED);
    /* Yet newer terms are news again. */
    assert_int_equal(acme_account_tos_check(rec, "https://ca.test/terms-2027.pdf"),
                     ACME_ACCOUNT_TOS_CHANGED);
    acme_account_tos_agree(rec, p, TOS2);
    assert_int_equal(acme_account_tos_check(rec, TOS2), ACME_ACCOUNT_TOS_SAME);
    assert_null(rec->tos_announced);
}

static void test_block_holds_until_the_agreement_changes_or_the_admin_agrees(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_job_account_t *rec = acme_job_account_make(p, CA);
    int cleared = 1;

    assert_false(acme_account_tos_blocked(rec, 1, &cleared));
    assert_false(cleared);
    acme_account_tos_block(rec, p, TOS2, 1, apr_time_from_sec(1000));
    assert_string_equal(rec->tos_blocked, TOS2);
    assert_string_equal(rec->tos_announced, TOS2);
    assert_true(acme_account_tos_blocked(rec, 1, &cleared));
    assert_false(cleared);
    /* Blocked with ACMEAgreement accepted; a reload without it is a change too. */
    assert_false(acme_account_tos_blocked(rec, 0, &cleared));
    assert_true(cleared);
    assert_null(rec->tos_blocked);
    assert_int_equal(rec->tos_blocked_at, 0);

    /* A block the CA named no terms for still blocks. */
    acme_account_tos_block(rec, p, NULL, 0, apr_time_from_sec(2000));
    assert_true(acme_account_tos_blocked(rec, 0, NULL));
    acme_account_tos_agree(rec, p, TOS2);
    assert_false(acme_account_tos_blocked(rec, 0, NULL));
    assert_string_equal(rec->tos_agreed, TOS2);
}

static void test_upkeep_only_for_a_changed_contact_or_old_terms(void **state)
{
    apr_pool_t *p = pool_of(state);
    acme_job_account_t *rec = acme_job_account_make(p, CA);
    apr_time_t now = apr_time_from_sec(1000000);
    const char *one = canon(p, 1, "mailto:a@x.test");

    /* Never looked at (an older record): once. */
    rec->contact_config = one;
    assert_true(acme_account_upkeep_due(rec, one, now));
    rec->tos_checked_at = now - apr_time_from_sec(60);
    assert_false(acme_account_upkeep_due(rec, one, now));
    assert_true(acme_account_upkeep_due(rec, canon(p, 1, "mailto:b@x.test"), now));
    rec->tos_checked_at = now - ACME_ACCOUNT_TOS_RECHECK;
    assert_true(acme_account_upkeep_due(rec, one, now));
    /* A clock set back does not silence it for days. */
    rec->tos_checked_at = now + 2 * ACME_ACCOUNT_TOS_RECHECK;
    assert_true(acme_account_upkeep_due(rec, one, now));
}

static void test_contact_arguments(void **state)
{
    apr_pool_t *p = pool_of(state);
    const char *why = NULL;

    assert_string_equal(acme_account_contact_parse(p, "mailto:admin@x.test", &why),
                        "mailto:admin@x.test");
    assert_string_equal(acme_account_contact_parse(p, "admin@x.test", &why),
                        "mailto:admin@x.test");
    assert_string_equal(acme_account_contact_parse(p, "MAILTO:admin@x.test", &why),
                        "mailto:admin@x.test");
    assert_null(acme_account_contact_parse(p, "tel:+4912345", &why));
    assert_non_null(strstr(why, "only mailto"));
    assert_null(acme_account_contact_parse(p, "mailto:a@x.test?subject=hi", &why));
    assert_null(acme_account_contact_parse(p, "mailto:a@x.test,b@x.test", &why));
    assert_null(acme_account_contact_parse(p, "a@b@x.test", &why));
    assert_null(acme_account_contact_parse(p, "nobody", &why));
    assert_null(acme_account_contact_parse(p, "mailto:@x.test", &why));
    assert_null(acme_account_contact_parse(p, "a b@x.test", &why));
    assert_non_null(strstr(why, "not one e-mail address"));
}

static void test_record_round_trip_and_new_account_reset(void **state)
{
    apr_pool_t *p = pool_of(state);
    const char *dir = unit_tmpdir(p, "account");
    const char *path = apr_pstrcat(p, dir, "/account.x.json", NULL);
    acme_job_account_t *rec = acme_job_account_make(p, CA), *back = NULL;
    acme_result_t res;
    json_t *status;

    acme_job_account_note(rec, p, "https://ca.test/acct/1", "registered", apr_time_from_sec(5));
    rec->contact_config = "[\"mailto:a@x.test\"]";
    rec->tos_agreed = TOS1;
    rec->tos_current = TOS2;
    acme_account_tos_block(rec, p, TOS2, 1, apr_time_from_sec(100));
    rec->deactivated_at = apr_time_from_sec(200);
    rec->eab_kid = "kid-1";
    acme_result_reset(&res);
    assert_int_equal(acme_job_account_save(p, path, rec, &res), APR_SUCCESS);
    assert_int_equal(acme_job_account_load(p, path, CA, &back, &res), APR_SUCCESS);
    assert_string_equal(back->contact_config, "[\"mailto:a@x.test\"]");
    assert_string_equal(back->tos_agreed, TOS1);
    assert_string_equal(back->tos_current, TOS2);
    assert_string_equal(back->tos_blocked, TOS2);
    assert_int_equal(back->tos_blocked_at, apr_time_from_sec(100));
    assert_int_equal(back->tos_blocked_agreement, 1);
    assert_int_equal(back->deactivated_at, apr_time_from_sec(200));
    assert_string_equal(back->eab_kid, "kid-1");

    status = acme_status_account(back);
    assert_true(json_is_true(json_object_get(json_object_get(status, "terms_of_service"),
                                             "changed")));
    assert_true(json_is_true(json_object_get(json_object_get(status, "terms_of_service"),
                                             "orders_stopped")));
    json_decref(status);

    /* The same URL again keeps everything; another account starts clean (terms it agreed to
     * at registration are adopted by the worker's next look). */
    acme_job_account_note(back, p, "https://ca.test/acct/1", "found", apr_time_from_sec(300));
    assert_int_equal(back->deactivated_at, apr_time_from_sec(200));
    acme_job_account_note(back, p, "https://ca.test/acct/2", "registered",
                          apr_time_from_sec(400));
    assert_int_equal(back->deactivated_at, 0);
    assert_null(back->tos_blocked);
    assert_null(back->tos_agreed);
    assert_null(back->contact_config);
    assert_null(back->eab_kid);
    unit_tmpdir_remove(p, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contact_canon_ignores_order_duplicates_and_scheme_case,
                                        unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_contact_check_pushes_only_a_changed_configuration,
                                        unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_tos_change_is_detected_once, unit_setup_pool,
                                        unit_teardown_pool),
        cmocka_unit_test_setup_teardown(
            test_block_holds_until_the_agreement_changes_or_the_admin_agrees, unit_setup_pool,
            unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_upkeep_only_for_a_changed_contact_or_old_terms,
                                        unit_setup_pool, unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_contact_arguments, unit_setup_pool,
                                        unit_teardown_pool),
        cmocka_unit_test_setup_teardown(test_record_round_trip_and_new_account_reset,
                                        unit_setup_pool, unit_teardown_pool),
    };
    return cmocka_run_group_tests_name("account", tests, unit_setup_apr, unit_teardown_apr);
}
