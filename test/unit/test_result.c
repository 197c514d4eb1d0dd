#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "acme_result.h"
#include "unit_support.h"

static void test_reset_means_success(void **state)
{
    acme_result_t res = { .status = APR_EGENERAL, .message = "x" };

    acme_result_reset(&res);
    assert_int_equal(res.status, APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_NONE);
    assert_null(res.message);
}

static void test_fail_never_records_success(void **state)
{
    acme_result_t res;

    acme_result_reset(&res);
    assert_int_equal(acme_result_fail(&res, APR_SUCCESS, ACME_CLASS_ADMIN, "bad"), APR_EGENERAL);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_string_equal(res.message, "bad");
}

static void test_describe_includes_ca_detail(void **state)
{
    acme_result_t res;

    acme_result_reset(&res);
    acme_result_fail(&res, APR_EGENERAL, ACME_CLASS_ADMIN, "new order for example.test refused");
    res.problem_type = "urn:ietf:params:acme:error:caa";
    res.detail = "CAA record forbids issuance";
    assert_string_equal(acme_result_describe(&res, *state),
                        "new order for example.test refused [urn:ietf:params:acme:error:caa]: "
                        "CAA record forbids issuance");
}

static void test_class_names(void **state)
{
    assert_string_equal(acme_class_name(ACME_CLASS_RETRY_AFTER), "retry-after");
    assert_string_equal(acme_class_name(ACME_CLASS_ADMIN), "admin-action");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_means_success),
        cmocka_unit_test(test_fail_never_records_success),
        cmocka_unit_test(test_describe_includes_ca_detail),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests_name("result", tests, unit_setup_pool, unit_teardown_pool);
}
