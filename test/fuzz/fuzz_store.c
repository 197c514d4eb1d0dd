/*
 * The JSON files the store reads back (src/acme_store.c, acme_job.c, acme_domain.c,
 * acme_activate.c): a file in the store may be truncated, damaged or planted. acme_activate.c
 * is compiled into this harness to reach the staged.json reader. First byte:
 *   0  jobs/<name>.json through acme_job_load, and the order it keeps
 *   1  domains.json (acme_domain_set_from_json) and its round trip
 *   2  staging/<name>/staged.json through the proof reader
 *   3  any store JSON (account json, ...) through acme_store_read_json
 *   4  jobs/next-run
 */
#include <stdio.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sanitizer/lsan_interface.h>

#include <apr_file_io.h>

#include "fuzz_common.h"
#include "../../src/acme_activate.c"
#include "acme_job.h"
#include "acme_order.h"

static const char *scratch_dir(void)
{
    static char dir[4096];

    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s", fuzz_scratch("fuzz_store"));
        if (mkdir(dir, 0700) != 0) {
            abort();
        }
    }
    return dir;
}

static void put(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        abort();
    }
}

static void fuzz_job(apr_pool_t *p, const acme_store_t *st, const uint8_t *data, size_t size)
{
    const char *path = acme_store_path(p, st, ACME_STORE_JOBS, "example.org.json", NULL);
    acme_job_t *job = NULL;
    acme_order_t *order = NULL;
    acme_result_t res;
    json_t *json;

    put(path, data, size);
    acme_result_reset(&res);
    if (acme_job_load(p, st, "example.org", &job, &res) != APR_SUCCESS) {
        return;
    }
    json = acme_job_to_json(job);
    FUZZ_ASSERT(json != NULL);
    json_decref(json);
    (void)acme_job_state_name(job->state);
    if (job->order_json) {
        (void)acme_order_from_json(p, job->order_json, strlen(job->order_json), &order, &res);
    }
}

static void fuzz_domains(apr_pool_t *p, const uint8_t *data, size_t size)
{
    json_t *json = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL), *again;
    apr_array_header_t *domains = NULL, *back = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (json && acme_domain_set_from_json(p, json, &domains, &res) == APR_SUCCESS) {
        again = acme_domain_set_to_json(domains);
        FUZZ_ASSERT(acme_domain_set_from_json(p, again, &back, &res) == APR_SUCCESS);
        FUZZ_ASSERT(back->nelts == domains->nelts);
        json_decref(again);
    }
    json_decref(json);
}

static void fuzz_staged(apr_pool_t *p, const char *dir, const uint8_t *data, size_t size)
{
    acme_safefs_dir_t *d = NULL;
    const char *proof = NULL;
    acme_result_t res;

    put(apr_pstrcat(p, dir, "/" ACME_WORKER_STAGED_FILE, NULL), data, size);
    acme_result_reset(&res);
    if (acme_safefs_dir_open(p, dir, &d, &res) != APR_SUCCESS) {
        abort();
    }
    if (acme_activate_read_proof(p, d, geteuid(), &proof, &res) == APR_SUCCESS) {
        FUZZ_ASSERT(proof != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static acme_store_t *st;
    static apr_pool_t *sp;
    const char *dir = scratch_dir();
    apr_pool_t *p = fuzz_pool();
    acme_result_t res;
    json_t *json = NULL;

    acme_result_reset(&res);
    if (!st) {
        __lsan_disable();
        if (apr_pool_create(&sp, NULL) != APR_SUCCESS
            || acme_store_open(sp, dir, &st, &res) != APR_SUCCESS
            || acme_store_mkdirs(sp, acme_store_path(sp, st, ACME_STORE_JOBS, NULL, NULL), &res)
               != APR_SUCCESS) {
            abort();
        }
        __lsan_enable();
    }
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 5) {
    case 0:
        fuzz_job(p, st, data + 1, size - 1);
        break;
    case 1:
        fuzz_domains(p, data + 1, size - 1);
        break;
    case 2:
        fuzz_staged(p, dir, data + 1, size - 1);
        break;
    case 3: {
        const char *path = apr_pstrcat(p, dir, "/account.json", NULL);
        put(path, data + 1, size - 1);
        if (acme_store_read_json(p, path, &json, &res) == APR_SUCCESS) {
            FUZZ_ASSERT(json != NULL);
        }
        break;
    }
    default:
        put(acme_store_path(p, st, ACME_STORE_JOBS, ACME_JOB_NEXT_RUN_FILE, NULL), data + 1,
            size - 1);
        FUZZ_ASSERT(acme_job_next_run_load(p, st) >= 0);
        break;
    }
    return 0;
}
