#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
/*
 * Shared by the libFuzzer harnesses: one APR pool for the process, a child pool per input,
 * and helpers to cut an input into NUL-terminated pieces. Each harness defines
 * LLVMFuzzerTestOneInput; the first byte of an input usually picks the parser (see the
 * harness), the rest is the text handed to it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *fuzz_child_pool;

/*
 * The last input's pool goes before LeakSanitizer's check at exit: APR may keep pool memory in
 * mmap()ed blocks it does not scan, so what the pool still owns would look leaked.
 */
static inline void fuzz_pool_release(void)
{
    if (fuzz_child_pool) {
        apr_pool_destroy(fuzz_child_pool);
        fuzz_child_pool = NULL;
    }
}

/* A fresh pool for one input; the previous input's pool is destroyed first. */
static inline apr_pool_t *fuzz_pool(void)
{
    static apr_pool_t *root;

    if (!root) {
        if (apr_initialize() != APR_SUCCESS || apr_pool_create(&root, NULL) != APR_SUCCESS
            || atexit(fuzz_pool_release) != 0) {
            abort();
        }
    }
    fuzz_pool_release();
    if (apr_pool_create(&fuzz_child_pool, root) != APR_SUCCESS) {
        abort();
    }
    return fuzz_child_pool;
}

/* The bytes as a NUL-terminated string (an embedded NUL ends it early, as it would in C). */
static inline char *fuzz_str(apr_pool_t *p, const uint8_t *data, size_t size)
{
    return apr_pstrmemdup(p, (const char *)data, size);
}

/*
 * The next piece of the input up to a newline (or the end), NUL-terminated; NULL once the
 * input is used up. *off moves past the newline.
 */
static inline char *fuzz_line(apr_pool_t *p, const uint8_t *data, size_t size, size_t *off)
{
    size_t start = *off, end = start;

    if (start > size) {
        return NULL;
    }
    while (end < size && data[end] != '\n') {
        ++end;
    }
    *off = end + 1;
    return apr_pstrmemdup(p, (const char *)data + start, end - start);
}

/*
 * A path under the current directory for the harnesses that read files (test/fuzz/run.sh runs
 * each harness in a work directory of its own and removes it afterwards).
 */
static inline const char *fuzz_scratch(const char *name)
{
    static char path[4096];
    char cwd[3800];

    if (!getcwd(cwd, sizeof(cwd))) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/%s.%ld", cwd, name, (long)getpid());
    return path;
}

/* Stops the run when a parser broke its own contract: libFuzzer records the input. */
#define FUZZ_ASSERT(cond) do { if (!(cond)) { abort(); } } while (0)

#endif
