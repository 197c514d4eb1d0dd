#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <apr_strings.h>
#include <apr_file_io.h>

#include "acme_api_store.h"
#include "acme_b64.h"
#include "acme_names.h"
#include "acme_perms.h"
#include "acme_safefs.h"

#define ACME_API_SEEN_DIR "seen"
#define ACME_API_RATE_DIR "rate"
#define ACME_API_QUEUE_SCAN_MAX 4096

static const char *acme_api_store_file(apr_pool_t *p, const acme_store_t *st, const char *group,
                                       const char *id, const char *suffix)
{
    return acme_store_path(p, st, group, apr_pstrcat(p, id, suffix, NULL), NULL);
}

/* Reads <group>/<name> with no symlink followed and a size cap. */
static apr_status_t acme_api_store_read(apr_pool_t *p, const acme_store_t *st, const char *group,
                                        const char *name, apr_size_t max, char **data,
                                        apr_size_t *len, acme_result_t *res)
{
    acme_safefs_dir_t *dir = NULL;
    apr_status_t rv = acme_safefs_dir_open(p, acme_store_path(p, st, group, NULL, NULL), &dir,
                                           res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_safefs_read(p, dir, name, ACME_SAFEFS_ANY_OWNER, max, data, len, res);
}

static apr_status_t acme_api_store_json_free(void *json)
{
    json_decref(json);
    return APR_SUCCESS;
}

static apr_status_t acme_api_store_read_json(apr_pool_t *p, const acme_store_t *st,
                                             const char *group, const char *name, json_t **json,
                                             acme_result_t *res)
{
    char *data = NULL;
    apr_size_t len = 0;
    json_error_t err;
    apr_status_t rv = acme_api_store_read(p, st, group, name, ACME_API_REQUEST_MAX, &data, &len,
                                          res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *json = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!*json || !json_is_object(*json)) {
        json_decref(*json);
        *json = NULL;
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(p, "%s/%s is not a JSON object", group, name));
    }
    apr_pool_cleanup_register(p, *json, acme_api_store_json_free, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static json_t *acme_api_store_names_json(const apr_array_header_t *names)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; names && i < names->nelts; ++i) {
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(names, i, const char *)));
    }
    return arr;
}

apr_status_t acme_api_store_queue(apr_pool_t *p, const acme_store_t *st,
                                  const acme_api_csr_t *csr, const char *client,
                                  acme_result_t *res)
{
    json_t *json = json_pack("{s:s, s:s, s:o, s:s, s:I}", "id", csr->id, "client", client,
                             "names", acme_api_store_names_json(csr->names),
                             "csr", acme_b64_encode(p, csr->der, csr->der_len),
                             "submitted", (json_int_t)apr_time_sec(apr_time_now()));
    apr_status_t rv;

    /* The state first: a worker that takes the request at once then overwrites it. */
    rv = acme_api_store_state_put(p, st, csr->id, client, csr->names, ACME_API_STATE_QUEUED,
                                  NULL, 0, 0, res);
    if (rv == APR_SUCCESS) {
        rv = acme_store_write_json(p, acme_api_store_file(p, st, ACME_API_QUEUE_DIR, csr->id,
                                                          ".json"),
                                   json, ACME_PERMS_0600, res);
    }
    json_decref(json);
    return rv;
}

apr_status_t acme_api_store_state(apr_pool_t *p, const acme_store_t *st, const char *id,
                                  json_t **state, acme_result_t *res)
{
    if (!acme_api_id_valid(id)) {
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_PERMANENT, "no such request");
    }
    return acme_api_store_read_json(p, st, ACME_API_DIR, apr_pstrcat(p, id, ".json", NULL),
                                    state, res);
}

apr_status_t acme_api_store_state_put(apr_pool_t *p, const acme_store_t *st, const char *id,
                                      const char *client, const apr_array_header_t *names,
                                      const char *state, const char *error,
                                      apr_time_t not_before, apr_time_t not_after,
                                      acme_result_t *res)
{
    json_t *json = json_pack("{s:s, s:s, s:o, s:s, s:o, s:I, s:I, s:I}", "id", id,
                             "client", client, "names", acme_api_store_names_json(names),
                             "state", state, "error", error ? json_string(error) : json_null(),
                             "updated", (json_int_t)apr_time_sec(apr_time_now()),
                             "not_before", (json_int_t)apr_time_sec(not_before),
                             "not_after", (json_int_t)apr_time_sec(not_after));
    apr_status_t rv;

    if (!json) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "the request's state cannot be written (not UTF-8?)");
    }
    rv = acme_store_write_json(p, acme_api_store_file(p, st, ACME_API_DIR, id, ".json"), json,
                               ACME_PERMS_0600, res);
    json_decref(json);
    return rv;
}

apr_status_t acme_api_store_chain(apr_pool_t *p, const acme_store_t *st, const char *id,
                                  char **pem, apr_size_t *len, acme_result_t *res)
{
    if (!acme_api_id_valid(id)) {
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_PERMANENT, "no such request");
    }
    return acme_api_store_read(p, st, ACME_API_DIR, apr_pstrcat(p, id, ".pem", NULL),
                               ACME_API_CHAIN_MAX, pem, len, res);
}

apr_status_t acme_api_store_chain_put(apr_pool_t *p, const acme_store_t *st, const char *id,
                                      const char *pem, apr_size_t len, acme_result_t *res)
{
    return acme_store_write_file(p, acme_api_store_file(p, st, ACME_API_DIR, id, ".pem"), pem,
                                 len, ACME_PERMS_0600, res);
}

/* Removes signatures older than the window: they are refused by their timestamp anyway. */
static void acme_api_store_seen_prune(apr_pool_t *p, const char *dir, apr_time_t now)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    struct stat sb;
    int n = 0;

    (void)p;
    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return;
    }
    while ((e = readdir(d)) && n++ < ACME_API_QUEUE_SCAN_MAX) {
        if (e->d_name[0] != '.'
            && fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0
            && apr_time_from_sec(sb.st_mtime) < now - 2 * ACME_API_HMAC_WINDOW) {
            unlinkat(dfd, e->d_name, 0);
        }
    }
    closedir(d);
}

apr_status_t acme_api_store_seen(apr_pool_t *p, const acme_store_t *st, const char *signature,
                                 apr_time_t now, acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_API_DIR, ACME_API_SEEN_DIR, NULL);
    const char *path = acme_store_path(p, st, ACME_API_DIR, ACME_API_SEEN_DIR, signature);
    int fd;

    if (!path || strlen(signature) > 128) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, "bad signature");
    }
    if (acme_store_mkdirs(p, dir, res) != APR_SUCCESS) {
        return res->status;
    }
    /* The signature as a file name: O_EXCL makes "first use" atomic across children. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);
        return errno == EEXIST ? APR_EEXIST
               : acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                  apr_psprintf(p, "%s cannot be created", path));
    }
    close(fd);
    if ((now / APR_USEC_PER_SEC) % 16 == 0) {
        acme_api_store_seen_prune(p, dir, now);
    }
    return APR_SUCCESS;
}

int acme_api_store_rate(apr_pool_t *p, const acme_store_t *st, const char *client,
                        const acme_api_rate_t *rate, apr_time_t now, long *retry_after,
                        acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, ACME_API_DIR, ACME_API_RATE_DIR, NULL);
    const char *path = acme_store_path(p, st, ACME_API_DIR, ACME_API_RATE_DIR, client);
    char buf[64] = "";
    long long start_s = 0;
    apr_time_t start;
    int fd, count = 0, ok = 1;
    ssize_t n;

    if (rate->n <= 0 || !path || acme_store_mkdirs(p, dir, res) != APR_SUCCESS) {
        return 1;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                         apr_psprintf(p, "%s cannot be opened", path));
        return 1;
    }
    /* flock: per open file, so threads of one child exclude each other too (fcntl locks
     * would not). */
    if (flock(fd, LOCK_EX) == 0) {
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        if (sscanf(buf, "%lld %d", &start_s, &count) != 2 || count < 0) {
            start_s = 0;
            count = 0;
        }
        start = apr_time_from_sec((apr_time_t)start_s);
        ok = acme_api_rate_take(rate, now, &start, &count, retry_after);
        n = snprintf(buf, sizeof(buf), "%lld %d\n", (long long)apr_time_sec(start), count);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
            acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                             apr_psprintf(p, "%s cannot be written", path));
        }
        flock(fd, LOCK_UN);
    }
    close(fd);
    return ok;
}

static int acme_api_store_queue_name(const char *name, char *id)
{
    apr_size_t n = strlen(name);

    if (n != ACME_API_ID_LEN + 5 || strcmp(name + ACME_API_ID_LEN, ".json") != 0) {
        return 0;
    }
    memcpy(id, name, ACME_API_ID_LEN);
    id[ACME_API_ID_LEN] = '\0';
    return acme_api_id_valid(id);
}

/* Whether the result api/<id>.json says it is of no use any more at now. */
static int acme_api_store_stale(apr_pool_t *p, const acme_store_t *st, const char *id,
                                apr_time_t now)
{
    json_t *state = NULL;
    acme_result_t res;
    const char *what;
    apr_time_t at;

    acme_result_reset(&res);
    if (acme_api_store_state(p, st, id, &state, &res) != APR_SUCCESS) {
        return 0;
    }
    what = json_string_value(json_object_get(state, "state"));
    at = apr_time_from_sec((apr_time_t)json_integer_value(json_object_get(
        state, what && !strcmp(what, ACME_API_STATE_VALID) ? "not_after" : "updated")));
    return what && (!strcmp(what, ACME_API_STATE_VALID) || !strcmp(what, ACME_API_STATE_INVALID)
                    || !strcmp(what, ACME_API_STATE_PENDING))
           && at > 0 && now - at > ACME_API_KEEP;
}

int acme_api_store_prune(apr_pool_t *p, const acme_store_t *st, apr_time_t now, int max)
{
    const char *dir = acme_store_path(p, st, ACME_API_DIR, NULL, NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), seen = 0, gone = 0;
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    char id[ACME_API_ID_LEN + 1];

    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return 0;
    }
    while ((e = readdir(d)) && seen++ < max) {
        if (acme_api_store_queue_name(e->d_name, id) && acme_api_store_stale(p, st, id, now)) {
            unlinkat(dirfd(d), apr_pstrcat(p, id, ".pem", NULL), 0);
            gone += unlinkat(dirfd(d), e->d_name, 0) == 0;
        }
    }
    closedir(d);
    return gone;
}

apr_array_header_t *acme_api_store_queued(apr_pool_t *p, const acme_store_t *st, int max)
{
    apr_array_header_t *ids = apr_array_make(p, 4, sizeof(const char *));
    const char *dir = acme_store_path(p, st, ACME_API_QUEUE_DIR, NULL, NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    char id[ACME_API_ID_LEN + 1];
    int seen = 0;

    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return ids;
    }
    while ((e = readdir(d)) && ids->nelts < max && seen++ < ACME_API_QUEUE_SCAN_MAX) {
        if (acme_api_store_queue_name(e->d_name, id)) {
            APR_ARRAY_PUSH(ids, const char *) = apr_pstrdup(p, id);
        }
    }
    closedir(d);
    return ids;
}

static apr_status_t acme_api_store_parse(apr_pool_t *p, json_t *json, const char *id,
                                         const char **client, acme_api_csr_t **csr,
                                         acme_result_t *res)
{
    const char *b64 = json_string_value(json_object_get(json, "csr"));
    const char *who = json_string_value(json_object_get(json, "client"));
    const char *reason = NULL;
    unsigned char *der = NULL;
    apr_size_t der_len = 0;

    if (!b64 || !who || acme_b64_decode(p, b64, &der, &der_len) != APR_SUCCESS
        || acme_api_csr_check(p, (const char *)der, der_len, csr, &reason) != APR_SUCCESS
        || strcmp((*csr)->id, id) != 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT, apr_psprintf(p,
            "the queued request %s is damaged (%s)", id,
            reason ? reason : "no client, no CSR or not the CSR of this id"));
    }
    *client = apr_pstrdup(p, who);
    return APR_SUCCESS;
}

apr_status_t acme_api_store_take(apr_pool_t *p, const acme_store_t *st, const char *id,
                                 const char **client, acme_api_csr_t **csr, acme_result_t *res)
{
    const char *name = apr_pstrcat(p, id, ".json", NULL);
    json_t *json = NULL;
    apr_status_t rv = acme_api_store_read_json(p, st, ACME_API_QUEUE_DIR, name, &json, res);

    if (rv == APR_SUCCESS) {
        rv = acme_api_store_parse(p, json, id, client, csr, res);
    }
    if (!APR_STATUS_IS_ENOENT(rv)) {
        apr_file_remove(acme_store_path(p, st, ACME_API_QUEUE_DIR, name, NULL), p);
    }
    return rv;
}

unsigned long acme_api_store_queue_stamp(apr_pool_t *p, const char *store_dir)
{
    const char *dir = apr_pstrcat(p, store_dir, "/" ACME_API_QUEUE_DIR, NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    unsigned long stamp = 0;
    struct dirent *e;
    struct stat sb;
    int entries = 0, seen = 0;

    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return 0;
    }
    while ((e = readdir(d)) && seen++ < ACME_API_QUEUE_SCAN_MAX) {
        entries += e->d_name[0] != '.';
    }
    if (entries > 0 && fstat(dfd, &sb) == 0) {
        stamp = ((unsigned long)sb.st_mtim.tv_sec * 1000003ul)
                ^ (unsigned long)sb.st_mtim.tv_nsec ^ (unsigned long)entries;
        stamp |= 1ul;
    }
    closedir(d);
    return stamp;
}

apr_status_t acme_api_store_renew_put(apr_pool_t *p, const acme_store_t *st, const char *name,
                                      acme_result_t *res)
{
    return acme_store_write_file(p, acme_api_store_file(p, st, ACME_API_QUEUE_DIR, name,
                                                        ACME_API_RENEW_SUFFIX),
                                 "", 0, ACME_PERMS_0600, res);
}

/* "<name>.renew" with a valid DNS name: the name, else NULL. */
static const char *acme_api_store_renew_name(apr_pool_t *p, const char *entry)
{
    apr_size_t n = strlen(entry), s = sizeof(ACME_API_RENEW_SUFFIX) - 1;
    acme_ident_t ident;

    if (n <= s || strcmp(entry + n - s, ACME_API_RENEW_SUFFIX) != 0
        || acme_names_parse(p, apr_pstrndup(p, entry, n - s), &ident, NULL) != APR_SUCCESS
        || ident.type != ACME_IDENT_DNS) {
        return NULL;
    }
    return ident.value;
}

apr_array_header_t *acme_api_store_renew_take(apr_pool_t *p, const char *store_dir, int max)
{
    apr_array_header_t *names = apr_array_make(p, 2, sizeof(const char *));
    const char *dir = apr_pstrcat(p, store_dir, "/" ACME_API_QUEUE_DIR, NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    int seen = 0;

    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return names;
    }
    while ((e = readdir(d)) && names->nelts < max && seen++ < ACME_API_QUEUE_SCAN_MAX) {
        const char *name = e->d_name[0] != '.' ? acme_api_store_renew_name(p, e->d_name) : NULL;
        if (name && unlinkat(dfd, e->d_name, 0) == 0) {
            APR_ARRAY_PUSH(names, const char *) = name;
        }
    }
    closedir(d);
    return names;
}
