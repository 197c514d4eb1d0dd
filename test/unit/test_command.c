#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "acme_command.h"
#include "acme_dns01.h"
#include "acme_store.h"
#include "unit_support.h"

static apr_array_header_t *sh(apr_pool_t *p, const char *script)
{
    apr_array_header_t *argv = apr_array_make(p, 3, sizeof(const char *));

    APR_ARRAY_PUSH(argv, const char *) = "/bin/sh";
    APR_ARRAY_PUSH(argv, const char *) = "-c";
    APR_ARRAY_PUSH(argv, const char *) = script;
    return argv;
}

static void test_success_and_clean_environment(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *env = apr_array_make(p, 1, sizeof(const char *));
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        .argv = sh(p, "test \"$ACME_X\" = 1 && test -z \"$HOME\" && echo ok $PATH >&2"),
        .env = env, .timeout = apr_time_from_sec(10), .what = "test",
    };

    setenv("HOME", "/root", 1);
    APR_ARRAY_PUSH(env, const char *) = "ACME_X=1";
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    assert_int_equal(out.exit_code, 0);
    assert_non_null(strstr(out.stderr_text, "ok /usr/local/sbin"));
}

/* The input arrives whole on stdin, also when it is larger than a pipe holds. */
static void test_input_on_stdin(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t len = 300000, i;
    char *big = apr_palloc(p, len + 1);
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        .argv = sh(p, "wc -c >&2"), .timeout = apr_time_from_sec(10), .what = "test",
        .input = big, .input_len = len,
    };

    for (i = 0; i < len; ++i) {
        big[i] = (char)('a' + i % 26);
    }
    big[len] = '\0';
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    assert_int_equal(atoi(out.stderr_text), (int)len);
    /* Small documents are read as they are. */
    cmd.argv = sh(p, "read line; test \"$line\" = '{\"event\":\"renewed\"}' || exit 4");
    cmd.input = "{\"event\":\"renewed\"}\n";
    cmd.input_len = strlen(cmd.input);
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
}

/* A program that never reads its input neither blocks the caller nor fails. */
static void test_unread_input_does_not_block(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t len = 1 << 20;
    char *big = apr_pcalloc(p, len);
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        .argv = sh(p, "exit 0"), .timeout = apr_time_from_sec(10), .what = "test",
        .input = big, .input_len = len,
    };

    signal(SIGPIPE, SIG_IGN);
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    assert_true(out.elapsed < apr_time_from_sec(5));
    /* Without input the program's stdin is empty, not the caller's. */
    cmd = (acme_command_t){ .argv = sh(p, "test \"$(cat)\" = ''"),
                            .timeout = apr_time_from_sec(10), .what = "test" };
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
}

static void test_exit_status_and_stderr_in_message(void **state)
{
    apr_pool_t *p = *state;
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        .argv = sh(p, "echo first >&2; echo 'zone refused the update' >&2; exit 3"),
        .timeout = apr_time_from_sec(10), .what = "ACMEDns01Command (setup)",
    };

    acme_result_reset(&res);
    assert_int_not_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    assert_int_equal(out.exit_code, 3);
    assert_int_equal(res.err_class, ACME_CLASS_RETRY_SOON);
    assert_non_null(strstr(res.message, "exit status 3"));
    assert_non_null(strstr(res.message, "zone refused the update"));
    assert_non_null(strstr(res.message, "ACMEDns01Command (setup)"));
}

/*
 * A descriptor the worker holds without close-on-exec (a library's socket, a lock file) must not
 * reach the admin's program: the hook lists its own descriptors, and only 0, 1 and 2 may be there.
 */
static void test_hook_inherits_only_stdio(void **state)
{
    apr_pool_t *p = *state;
    int leaky = open("/dev/null", O_RDONLY);        /* deliberately without O_CLOEXEC */
    int high = leaky >= 0 ? fcntl(leaky, F_DUPFD, 40) : -1;
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        /* ls lists its own descriptors: stdio and the one it reads the directory with (3).
         * Not the shell's, which holds the pipe to tr for a moment while it starts both. */
        .argv = sh(p, "ls /proc/self/fd | tr '\\n' ' ' >&2"),
        .timeout = apr_time_from_sec(10), .what = "test",
    };

    assert_true(leaky > 2);
    assert_true(high >= 40);
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    close(leaky);
    close(high);
    assert_string_equal(out.stderr_text, "0 1 2 3 ");
}

/* A program writing Latin-1 or binary to stderr: the captured text is valid UTF-8 (it goes into
 * JSON), the bad bytes replaced and the rest kept. */
static void test_stderr_is_valid_utf8(void **state)
{
    apr_pool_t *p = *state;
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = {
        .argv = sh(p, "printf 'r\\351ponse \\342\\202\\254 \\377\\n' >&2; exit 1"),
        .timeout = apr_time_from_sec(10), .what = "test",
    };
    json_t *js;

    acme_result_reset(&res);
    assert_int_not_equal(acme_command_run(p, &cmd, &out, &res), APR_SUCCESS);
    assert_string_equal(out.stderr_text, "r?ponse \xe2\x82\xac ?\n");
    js = json_string(res.message);
    assert_non_null(js);
    json_decref(js);
}

static void test_timeout_kills_the_process_group(void **state)
{
    apr_pool_t *p = *state;
    char marker[] = "/tmp/acme-cmd-XXXXXX";
    acme_command_outcome_t out;
    acme_result_t res;
    acme_command_t cmd = { .timeout = apr_time_from_msec(500), .what = "hang" };
    int fd = mkstemp(marker);
    apr_time_t start = apr_time_now();

    close(fd);
    unlink(marker);
    /* A grandchild that would write the marker after 3 s: it must die with the group. */
    cmd.argv = sh(p, apr_psprintf(p, "(sleep 3; touch %s) & sleep 30", marker));
    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, &out, &res), APR_TIMEUP);
    assert_true(out.timed_out);
    assert_true(apr_time_now() - start < apr_time_from_sec(5));
    assert_non_null(strstr(res.message, "did not finish"));
    sleep(4);
    assert_int_not_equal(access(marker, F_OK), 0);
}

static void test_cancel_stops_the_program(void **state)
{
    apr_pool_t *p = *state;
    volatile int cancel = 1;
    acme_result_t res;
    acme_command_t cmd = { .argv = sh(p, "sleep 30"), .timeout = apr_time_from_sec(20),
                           .what = "hook", .cancel = &cancel };
    apr_time_t start = apr_time_now();

    acme_result_reset(&res);
    assert_int_equal(acme_command_run(p, &cmd, NULL, &res), APR_EINTR);
    assert_true(apr_time_now() - start < apr_time_from_sec(5));
    assert_non_null(strstr(res.message, "stopped"));
}

static void test_missing_program(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *argv = apr_array_make(p, 1, sizeof(const char *));
    acme_result_t res;
    acme_command_t cmd = { .argv = argv, .timeout = apr_time_from_sec(5), .what = "hook" };

    APR_ARRAY_PUSH(argv, const char *) = "/nonexistent/acme-hook";
    acme_result_reset(&res);
    assert_int_not_equal(acme_command_run(p, &cmd, NULL, &res), APR_SUCCESS);
    assert_int_equal(res.err_class, ACME_CLASS_ADMIN);
    assert_non_null(strstr(res.message, "cannot run /nonexistent/acme-hook"));
    assert_non_null(acme_command_check_program(p, "/nonexistent/acme-hook"));
    assert_non_null(acme_command_check_program(p, "relative/hook"));
    assert_non_null(acme_command_check_program(p, "/etc"));
    assert_null(acme_command_check_program(p, "/bin/sh"));
}

static void test_last_line(void **state)
{
    assert_string_equal(acme_command_last_line(*state, "a\nb\n\n"), "b");
    assert_string_equal(acme_command_last_line(*state, ""), "");
}

static void test_dns01_value_and_fqdn(void **state)
{
    apr_pool_t *p = *state;

    /* RFC 8555 §8.4: base64url(SHA-256("token.thumbprint")), 43 characters, no padding. */
    assert_int_equal(strlen(acme_dns01_txt_value(p, "abc.def")), 43);
    assert_string_equal(acme_dns01_fqdn(p, "*.example.org"), "_acme-challenge.example.org");
    assert_string_equal(acme_dns01_fqdn(p, "www.example.org"), "_acme-challenge.www.example.org");
}

/* Setups are remembered until their teardown works; teardowns that keep failing stay bounded. */
static void test_dns01_pending_teardowns(void **state)
{
    apr_pool_t *p = *state;
    const char *dir = unit_tmpdir(p, "dns01");
    acme_store_t *st = unit_store_open(p, dir);
    acme_result_t res;
    apr_array_header_t *ok = sh(p, "exit 0"), *failing = sh(p, "echo refused >&2; exit 1");
    acme_dns01_t d = { .command = ok, .timeout = apr_time_from_sec(10), .domain = "example.org" };
    int i, done = 0;

    d.store_dir = dir;
    for (i = 0; i < ACME_DNS01_PENDING_MAX + 10; ++i) {
        acme_dns01_record_t rec = { .fqdn = "_acme-challenge.example.org",
                                    .value = apr_psprintf(p, "value-%d", i) };
        d.command = ok;
        assert_int_equal(acme_dns01_setup(p, st, &d, &rec, NULL, &res), APR_SUCCESS);
        d.command = failing;
        assert_int_not_equal(acme_dns01_teardown(p, st, &d, &rec, NULL, &res), APR_SUCCESS);
        assert_non_null(strstr(res.message, "refused"));
    }
    /* A working program removes what is left: the newest ACME_DNS01_PENDING_MAX records. */
    d.command = ok;
    acme_result_reset(&res);
    assert_int_equal(acme_dns01_teardown_pending(p, st, &d, &done, &res), APR_SUCCESS);
    assert_int_equal(done, ACME_DNS01_PENDING_MAX);
    assert_int_equal(acme_dns01_teardown_pending(p, st, &d, &done, &res), APR_SUCCESS);
    assert_int_equal(done, 0);
    unit_tmpdir_remove(p, dir);
}

static void test_dns01_propagation_parse(void **state)
{
    apr_pool_t *p = *state;
    acme_dns01_propagation_t prop;
    const char *reason = NULL;

    assert_int_equal(acme_dns01_propagation_parse(p, NULL, &prop, &reason), APR_SUCCESS);
    assert_int_equal(acme_dns01_propagation_parse(p, "", &prop, &reason), APR_SUCCESS);
    assert_int_equal(acme_dns01_propagation_parse(p, "none", &prop, &reason), APR_SUCCESS);
    assert_int_equal(prop.delay, 0);
    assert_int_equal(acme_dns01_propagation_parse(p, "30s", &prop, &reason), APR_SUCCESS);
    assert_int_equal(prop.delay, apr_time_from_sec(30));
    assert_int_equal(acme_dns01_propagation_parse(p, "check 127.0.0.1:5353 1m", &prop, &reason),
                     APR_SUCCESS);
    assert_string_equal(prop.resolver, "127.0.0.1:5353");
    assert_int_equal(prop.max_wait, apr_time_from_sec(60));
    assert_int_not_equal(acme_dns01_propagation_parse(p, "check", &prop, &reason), APR_SUCCESS);
    assert_int_not_equal(acme_dns01_propagation_parse(p, "check dns.example", &prop, &reason),
                         APR_SUCCESS);
    assert_int_not_equal(acme_dns01_propagation_parse(p, "soon", &prop, &reason), APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_and_clean_environment),
        cmocka_unit_test(test_input_on_stdin),
        cmocka_unit_test(test_unread_input_does_not_block),
        cmocka_unit_test(test_exit_status_and_stderr_in_message),
        cmocka_unit_test(test_hook_inherits_only_stdio),
        cmocka_unit_test(test_stderr_is_valid_utf8),
        cmocka_unit_test(test_timeout_kills_the_process_group),
        cmocka_unit_test(test_cancel_stops_the_program),
        cmocka_unit_test(test_missing_program),
        cmocka_unit_test(test_last_line),
        cmocka_unit_test(test_dns01_value_and_fqdn),
        cmocka_unit_test(test_dns01_propagation_parse),
        cmocka_unit_test(test_dns01_pending_teardowns),
    };

    return cmocka_run_group_tests(tests, unit_setup_pool, unit_teardown_pool);
}
