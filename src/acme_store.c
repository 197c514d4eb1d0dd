#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_portable.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_store.h"
#include "acme_safefs.h"

#define PERMS_0700 (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE)
#define PERMS_0755 (PERMS_0700 | APR_FPROT_GREAD | APR_FPROT_GEXECUTE \
                    | APR_FPROT_WREAD | APR_FPROT_WEXECUTE)
#define PERMS_0600 (APR_FPROT_UREAD | APR_FPROT_UWRITE)

#define TEMP_ATTEMPTS    16
#define ARCHIVE_STAMP    "YYYYmmddTHHMMSS.uuuuuuZ"
#define MARKER_SUFFIX    ".replacing"
#define OLD_SUFFIX       ".old"

struct acme_store_t {
    apr_pool_t *pool;
    const char *base;
};

struct acme_store_lock_t {
    apr_pool_t *pool;           /* owns the file: destroying it closes the fd and drops the lock */
    apr_file_t *file;
};

typedef struct {
    const char *name;
    apr_fileperms_t perms;
} store_group_t;

static const store_group_t store_groups[] = {
    { ACME_STORE_ACCOUNTS,   PERMS_0700 },
    { ACME_STORE_DOMAINS,    PERMS_0700 },
    { ACME_STORE_STAGING,    PERMS_0700 },
    { ACME_STORE_ARCHIVE,    PERMS_0700 },
    { ACME_STORE_JOBS,       PERMS_0700 },
    { ACME_STORE_CHALLENGES, PERMS_0755 },
    { ACME_STORE_TMP,        PERMS_0700 },
    { ACME_STORE_REJECTED,   PERMS_0700 },
    { ACME_STORE_REQUESTS,   PERMS_0755 },
    { ACME_STORE_API,        PERMS_0700 },
    { ACME_STORE_API_QUEUE,  PERMS_0700 },
};

/*
 * Root-owned groups whose entries acme_store_replace_dir swaps; acme_store_recover scans these.
 * staging/ belongs to the httpd User: the worker recovers it itself (acme_store_recover_group).
 */
static const char *const replace_groups[] = {
    ACME_STORE_ACCOUNTS, ACME_STORE_DOMAINS,
};

/* ------------------------------------------------------------------ errors */

static const char *os_error(apr_pool_t *p, apr_status_t rv)
{
    char buf[256];

    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

/* Problems a retry will not fix without a human. */
static acme_class_t fs_class(apr_status_t rv)
{
    if (APR_STATUS_IS_EACCES(rv) || APR_STATUS_IS_ENOTDIR(rv) || rv == APR_FROM_OS_ERROR(EPERM)
        || rv == APR_FROM_OS_ERROR(EROFS) || rv == APR_FROM_OS_ERROR(EISDIR)) {
        return ACME_CLASS_ADMIN;
    }
    return ACME_CLASS_RETRY_SOON;
}

/* acme_result_fail that also serves callers passing no result. */
static apr_status_t result_fail(acme_result_t *res, apr_status_t rv, acme_class_t cls,
                                const char *message)
{
    if (!res) {
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    return acme_result_fail(res, rv, cls, message);
}

static apr_status_t fs_fail(acme_result_t *res, apr_status_t rv, const char *message)
{
    return result_fail(res, rv, fs_class(rv), message);
}

const char *acme_store_error_hint(apr_status_t rv)
{
#ifdef EDQUOT
    if (rv == APR_FROM_OS_ERROR(EDQUOT)) {
        return "the disk quota of the store is used up (EDQUOT): nothing was changed, the "
               "old files stay in use, and the write is tried again soon; free some space";
    }
#endif
    if (rv == APR_FROM_OS_ERROR(ENOSPC)) {
        return "the file system holding the store is full (ENOSPC): nothing was changed, the "
               "old files stay in use, and the write is tried again soon; free some space";
    }
    return NULL;
}

/* "<what> <path>: <OS error>[; <what happens next>]" */
static apr_status_t os_fail(apr_pool_t *p, acme_result_t *res, apr_status_t rv, const char *what,
                            const char *path)
{
    const char *hint = acme_store_error_hint(rv);

    return fs_fail(res, rv, apr_pstrcat(p, what, " ", path, ": ", os_error(p, rv),
                                        hint ? "; " : "", hint ? hint : "", NULL));
}

static apr_status_t succeed(acme_result_t *res)
{
    if (res) {
        acme_result_reset(res);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ path helpers */

static char *strip_slashes(apr_pool_t *p, const char *path)
{
    char *s = apr_pstrdup(p, path);
    apr_size_t len = strlen(s);

    while (len > 1 && s[len - 1] == '/') {
        s[--len] = '\0';
    }
    return s;
}

static const char *parent_of(apr_pool_t *p, const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        return ".";
    }
    return slash == path ? "/" : apr_pstrmemdup(p, path, (apr_size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

static int valid_component(const char *c)
{
    return c && *c && *c != '.' && !strchr(c, '/');
}

static int path_exists(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_LINK, p) == APR_SUCCESS;
}

/* A directory itself, not a symlink to one. */
static int is_real_dir(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_LINK, p) == APR_SUCCESS
           && fi.filetype == APR_DIR;
}

static int is_dir(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR;
}

/* Names in dir except "." and "..", allocated in p. */
static apr_status_t list_dir(apr_pool_t *p, const char *dir, apr_array_header_t **names)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;

    *names = apr_array_make(p, 8, sizeof(const char *));
    if ((rv = apr_dir_open(&d, dir, p)) != APR_SUCCESS) {
        return rv;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS || rv == APR_INCOMPLETE) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            APR_ARRAY_PUSH(*names, const char *) = apr_pstrdup(p, fi.name);
        }
    }
    apr_dir_close(d);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

/* Makes a rename or a removal in dir durable. Filesystems that cannot sync directories are fine. */
static apr_status_t sync_dir(apr_pool_t *p, const char *dir)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, dir, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_sync(f);
    apr_file_close(f);
    if (APR_STATUS_IS_EINVAL(rv) || rv == APR_FROM_OS_ERROR(EROFS)) {
        return APR_SUCCESS;
    }
    return rv;
}

/* Flushes every file directly in dir, then dir itself (files written with _volatile). */
apr_status_t acme_store_sync_files(apr_pool_t *p, const char *dir, acme_result_t *res)
{
    apr_array_header_t *names = NULL;
    apr_status_t rv = list_dir(p, dir, &names);
    int i;

    for (i = 0; rv == APR_SUCCESS && i < names->nelts; ++i) {
        const char *path = apr_pstrcat(p, dir, "/", APR_ARRAY_IDX(names, i, const char *), NULL);
        apr_file_t *f;
        if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p))
            == APR_SUCCESS) {
            rv = apr_file_sync(f);
            apr_file_close(f);
        }
        if (rv != APR_SUCCESS) {
            return os_fail(p, res, rv, "syncing", path);
        }
    }
    if (rv == APR_SUCCESS && (rv = sync_dir(p, dir)) == APR_SUCCESS) {
        return succeed(res);
    }
    return os_fail(p, res, rv, "syncing", dir);
}

/* ------------------------------------------------------------------ open, paths, dirs */

/* Makes dir exist as a directory with exactly `perms` (umask does not apply). */
static apr_status_t ensure_dir(apr_pool_t *p, const char *dir, apr_fileperms_t perms,
                               acme_result_t *res)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, dir, APR_FINFO_TYPE, p);

    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = apr_dir_make(dir, perms, p);
        if (APR_STATUS_IS_EEXIST(rv)) {
            rv = apr_stat(&fi, dir, APR_FINFO_TYPE, p);
        }
        else if (rv == APR_SUCCESS) {
            fi.filetype = APR_DIR;
        }
    }
    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "creating store directory", dir);
    }
    if (fi.filetype != APR_DIR) {
        return fs_fail(res, APR_ENOTDIR, apr_pstrcat(p, "store directory ", dir,
                                                     " exists but is not a directory", NULL));
    }
    if ((rv = apr_file_perms_set(dir, perms)) != APR_SUCCESS) {
        return os_fail(p, res, rv, "setting the mode of store directory", dir);
    }
    return APR_SUCCESS;
}

apr_status_t acme_store_open(apr_pool_t *p, const char *base_dir, acme_store_t **store,
                             acme_result_t *res)
{
    const char *base = strip_slashes(p, base_dir);
    apr_status_t rv = APR_SUCCESS;
    acme_store_t *st;

    if (!path_exists(p, base)) {
        rv = apr_dir_make_recursive(base, PERMS_0755, p);
        rv = (rv == APR_SUCCESS) ? apr_file_perms_set(base, PERMS_0755) : rv;
    }
    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "creating store base directory", base);
    }
    for (size_t i = 0; i < sizeof(store_groups) / sizeof(store_groups[0]); i++) {
        const char *dir = apr_pstrcat(p, base, "/", store_groups[i].name, NULL);

        if ((rv = ensure_dir(p, dir, store_groups[i].perms, res)) != APR_SUCCESS) {
            return rv;
        }
    }
    st = apr_palloc(p, sizeof(*st));
    *st = (acme_store_t){ .pool = p, .base = base };
    *store = st;
    return succeed(res);
}

const char *acme_store_base(const acme_store_t *st)
{
    return st->base;
}

const char *acme_store_path(apr_pool_t *p, const acme_store_t *st, const char *group,
                            const char *name, const char *file)
{
    if (!valid_component(group) || (name && !valid_component(name))
        || (file && !valid_component(file)) || (file && !name)) {
        return NULL;
    }
    return apr_pstrcat(p, st->base, "/", group, name ? "/" : "", name ? name : "",
                       file ? "/" : "", file ? file : "", NULL);
}

/*
 * Like mkdir -p with 0700, and each directory made is flushed into its parent: a file written
 * and synced into a new directory must not vanish with the directory after a crash.
 */
apr_status_t acme_store_mkdirs(apr_pool_t *p, const char *dir, acme_result_t *res)
{
    const char *clean = strip_slashes(p, dir);
    apr_status_t rv;

    if (is_dir(p, clean)) {
        return succeed(res);
    }
    if (strcmp(parent_of(p, clean), clean) && (rv = acme_store_mkdirs(p, parent_of(p, clean), res))
                                              != APR_SUCCESS) {
        return rv;
    }
    rv = apr_dir_make(clean, PERMS_0700, p);
    if (APR_STATUS_IS_EEXIST(rv)) {
        return succeed(res);    /* made meanwhile, or no directory: what uses it says which */
    }
    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "creating directory", clean);
    }
    if (rv == APR_SUCCESS && (rv = sync_dir(p, parent_of(p, clean))) != APR_SUCCESS) {
        return os_fail(p, res, rv, "syncing the directory of", clean);
    }
    return succeed(res);
}

/* ------------------------------------------------------------------ atomic writes */

static const char *temp_name(apr_pool_t *p, const char *dir, const char *base)
{
    unsigned char rnd[8];
    char hex[sizeof(rnd) * 2 + 1];

    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        apr_time_t now = apr_time_now();

        memcpy(rnd, &now, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    }
    return apr_pstrcat(p, dir, "/.", base, ".tmp-", hex, NULL);
}

static mode_t unix_mode(apr_fileperms_t perms)
{
    static const struct { apr_fileperms_t apr; mode_t unix_bit; } bits[] = {
        { APR_FPROT_UREAD, S_IRUSR }, { APR_FPROT_UWRITE, S_IWUSR },
        { APR_FPROT_UEXECUTE, S_IXUSR }, { APR_FPROT_GREAD, S_IRGRP },
        { APR_FPROT_GWRITE, S_IWGRP }, { APR_FPROT_GEXECUTE, S_IXGRP },
        { APR_FPROT_WREAD, S_IROTH }, { APR_FPROT_WWRITE, S_IWOTH },
        { APR_FPROT_WEXECUTE, S_IXOTH },
    };
    mode_t mode = 0;

    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        mode |= (perms & bits[i].apr) ? bits[i].unix_bit : 0;
    }
    return mode;
}

static apr_status_t fchmod_file(apr_file_t *f, apr_fileperms_t perms)
{
    apr_os_file_t fd;

    if (apr_os_file_get(&fd, f) != APR_SUCCESS) {
        return APR_EBADF;
    }
    return fchmod(fd, unix_mode(perms)) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

/* Creates a new temp file next to path with exactly `perms` before anything is written. */
static apr_status_t open_temp(apr_pool_t *p, const char *path, apr_fileperms_t perms,
                              apr_file_t **f, const char **tmp, acme_result_t *res)
{
    const char *dir = parent_of(p, path);
    apr_int32_t flags = APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_EXCL | APR_FOPEN_BINARY;
    apr_status_t rv = APR_EEXIST;

    for (int i = 0; i < TEMP_ATTEMPTS && APR_STATUS_IS_EEXIST(rv); i++) {
        *tmp = temp_name(p, dir, base_of(path));
        rv = apr_file_open(f, *tmp, flags, perms, p);
    }
    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "creating a temporary file for", path);
    }
    /* By descriptor: the name sits in a directory another user may write. */
    if (perms != APR_FPROT_OS_DEFAULT && (rv = fchmod_file(*f, perms)) != APR_SUCCESS) {
        apr_file_close(*f);
        apr_file_remove(*tmp, p);
        return os_fail(p, res, rv, "setting the mode of the temporary file for", path);
    }
    return APR_SUCCESS;
}

static apr_status_t fill_temp(apr_file_t *f, const void *data, apr_size_t len, int durable,
                              const char **what)
{
    apr_status_t rv;

    *what = "writing";
    if ((rv = apr_file_write_full(f, data, len, NULL)) != APR_SUCCESS) {
        apr_file_close(f);
        return rv;
    }
    *what = "syncing";
    if (durable && (rv = apr_file_sync(f)) != APR_SUCCESS) {
        apr_file_close(f);
        return rv;
    }
    *what = "closing";
    return apr_file_close(f);
}

static apr_status_t write_file(apr_pool_t *p, const char *path, const void *data,
                               apr_size_t len, apr_fileperms_t perms, int durable,
                               acme_result_t *res)
{
    const char *dir = parent_of(p, path);
    const char *tmp = NULL, *what = NULL;
    apr_file_t *f;
    apr_status_t rv;

    if ((rv = acme_store_mkdirs(p, dir, res)) != APR_SUCCESS
        || (rv = open_temp(p, path, perms, &f, &tmp, res)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = fill_temp(f, data, len, durable, &what)) != APR_SUCCESS) {
        apr_file_remove(tmp, p);
        return os_fail(p, res, rv, apr_pstrcat(p, what, " the temporary file for", NULL), path);
    }
    if ((rv = apr_file_rename(tmp, path, p)) != APR_SUCCESS) {
        apr_file_remove(tmp, p);
        return os_fail(p, res, rv, "renaming the temporary file over", path);
    }
    if (durable && (rv = sync_dir(p, dir)) != APR_SUCCESS) {
        return os_fail(p, res, rv, "syncing the directory of", path);
    }
    return succeed(res);
}

apr_status_t acme_store_write_file(apr_pool_t *p, const char *path, const void *data,
                                   apr_size_t len, apr_fileperms_t perms, acme_result_t *res)
{
    return write_file(p, path, data, len, perms, 1, res);
}

apr_status_t acme_store_write_file_volatile(apr_pool_t *p, const char *path, const void *data,
                                            apr_size_t len, apr_fileperms_t perms,
                                            acme_result_t *res)
{
    return write_file(p, path, data, len, perms, 0, res);
}

/* ------------------------------------------------------------------ reading */

/*
 * Opens path for reading without following a symlink in its last component and without
 * blocking on a FIFO (files in jobs/ and staging/ belong to another user), then checks that it
 * is a regular file of at most max_len bytes.
 */
static apr_status_t read_open(apr_pool_t *p, const char *path, apr_size_t max_len,
                              apr_file_t **f, apr_size_t *size, acme_result_t *res)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;

    if (fd < 0) {
        return errno == ELOOP
               ? result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                             apr_pstrcat(p, path, " is a symlink: not followed", NULL))
               : os_fail(p, res, APR_FROM_OS_ERROR(errno), "opening", path);
    }
    if (fstat(fd, &st) != 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);
        close(fd);
        return os_fail(p, res, rv, "examining", path);
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (apr_uint64_t)st.st_size > max_len) {
        close(fd);
        return result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                           !S_ISREG(st.st_mode)
                           ? apr_pstrcat(p, path, " is not a regular file", NULL)
                           : apr_psprintf(p, "%s is %" APR_OFF_T_FMT " bytes long, more than "
                                          "the %" APR_SIZE_T_FMT " expected", path,
                                          (apr_off_t)st.st_size, max_len));
    }
    *f = NULL;
    apr_os_file_put(f, &fd, APR_FOPEN_READ | APR_FOPEN_BINARY, p);
    *size = (apr_size_t)st.st_size;
    return APR_SUCCESS;
}

apr_status_t acme_store_read_file(apr_pool_t *p, const char *path, char **data, apr_size_t *len,
                                  apr_size_t max_len, acme_result_t *res)
{
    apr_file_t *f;
    apr_size_t size = 0, got = 0;
    apr_status_t rv;
    char *buf;

    rv = read_open(p, path, max_len ? max_len : ACME_STORE_READ_MAX, &f, &size, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    buf = apr_palloc(p, size + 1);
    rv = (size > 0) ? apr_file_read_full(f, buf, size, &got) : APR_SUCCESS;
    apr_file_close(f);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
        return os_fail(p, res, rv, "reading", path);
    }
    buf[got] = '\0';
    *data = buf;
    if (len) {
        *len = got;
    }
    return succeed(res);
}

/* ------------------------------------------------------------------ JSON */

static apr_status_t json_cleanup(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

static apr_status_t write_json(apr_pool_t *p, const char *path, json_t *json,
                               apr_fileperms_t perms, int durable, acme_result_t *res)
{
    char *text = json ? json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    const char *line;

    if (!text) {
        return result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_pstrcat(p, "cannot encode JSON for ", path, NULL));
    }
    line = apr_pstrcat(p, text, "\n", NULL);
    free(text);
    return write_file(p, path, line, strlen(line), perms, durable, res);
}

apr_status_t acme_store_write_json(apr_pool_t *p, const char *path, json_t *json,
                                   apr_fileperms_t perms, acme_result_t *res)
{
    return write_json(p, path, json, perms, 1, res);
}

apr_status_t acme_store_write_json_volatile(apr_pool_t *p, const char *path, json_t *json,
                                            apr_fileperms_t perms, acme_result_t *res)
{
    return write_json(p, path, json, perms, 0, res);
}

apr_status_t acme_store_read_json(apr_pool_t *p, const char *path, json_t **json,
                                  acme_result_t *res)
{
    json_error_t err;
    apr_size_t len = 0;
    char *data = NULL;
    json_t *j;
    apr_status_t rv = acme_store_read_file(p, path, &data, &len, ACME_STORE_JSON_MAX, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err)) == NULL) {
        return result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s: invalid JSON at line %d, column %d: %s",
                                             path, err.line, err.column, err.text));
    }
    apr_pool_cleanup_register(p, j, json_cleanup, apr_pool_cleanup_null);
    *json = j;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ trees */

/* By descriptors from the parent directory on: nothing below it is followed (acme_safefs.h). */
static apr_status_t remove_tree(apr_pool_t *p, const char *path)
{
    const char *clean = strip_slashes(p, path);
    acme_safefs_dir_t *parent = NULL;
    acme_result_t res;
    apr_pool_t *sp;
    apr_status_t rv;

    acme_result_reset(&res);
    apr_pool_create(&sp, p);
    rv = acme_safefs_dir_open(sp, parent_of(sp, clean), &parent, &res);
    if (rv == APR_SUCCESS) {
        rv = acme_safefs_remove(sp, parent, base_of(clean), &res);
    }
    apr_pool_destroy(sp);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

apr_status_t acme_store_remove_tree(apr_pool_t *p, const char *path, acme_result_t *res)
{
    apr_status_t rv = remove_tree(p, path);

    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "removing", path);
    }
    return succeed(res);
}

/* ------------------------------------------------------------------ directory replacement */

static const char *archive_stamp(apr_pool_t *p, apr_time_t t);

apr_status_t acme_store_set_aside(apr_pool_t *p, const char *path, const char **aside,
                                  acme_result_t *res)
{
    const char *clean = strip_slashes(p, path);
    apr_time_t t = apr_time_now();
    const char *to;
    apr_status_t rv;

    do {
        to = apr_pstrcat(p, clean, ".damaged-", archive_stamp(p, t++), NULL);
    } while (path_exists(p, to));
    if ((rv = apr_file_rename(clean, to, p)) != APR_SUCCESS) {
        return os_fail(p, res, rv, "setting aside the damaged", clean);
    }
    sync_dir(p, parent_of(p, clean));
    *aside = to;
    return succeed(res);
}

static const char *archive_stamp(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d%02d%02dT%02d%02d%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_usec);
}

/* True for "<base>.<stamp>" as made by archive_entry; "a.example.org" never matches
 * "example.org". */
static int is_archive_entry(const char *entry, const char *base)
{
    const char *pattern = ARCHIVE_STAMP;
    apr_size_t blen = strlen(base);
    const char *stamp = entry + blen + 1;

    if (strlen(entry) != blen + 1 + strlen(pattern) || strncmp(entry, base, blen)
        || entry[blen] != '.') {
        return 0;
    }
    for (size_t i = 0; pattern[i]; i++) {
        int want_digit = strchr("Ymd HMSu", pattern[i]) != NULL;

        if (want_digit ? !apr_isdigit(stamp[i]) : stamp[i] != pattern[i]) {
            return 0;
        }
    }
    return 1;
}

static const char *archive_entry(apr_pool_t *p, const char *archive_dir, const char *base)
{
    apr_time_t t = apr_time_now();
    const char *path;

    do {
        path = apr_pstrcat(p, archive_dir, "/", base, ".", archive_stamp(p, t++), NULL);
    } while (path_exists(p, path));
    return path;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keeps the newest `keep` archive entries of base; stamps sort chronologically as text. */
static apr_status_t prune_archive(apr_pool_t *p, const char *archive_dir, const char *base,
                                  int keep)
{
    apr_array_header_t *names, *mine;
    apr_status_t rv = list_dir(p, archive_dir, &names);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    mine = apr_array_make(p, names->nelts, sizeof(const char *));
    for (int i = 0; i < names->nelts; i++) {
        if (is_archive_entry(APR_ARRAY_IDX(names, i, const char *), base)) {
            APR_ARRAY_PUSH(mine, const char *) = APR_ARRAY_IDX(names, i, const char *);
        }
    }
    qsort(mine->elts, (size_t)mine->nelts, sizeof(const char *), cmp_names);
    for (int i = 0; rv == APR_SUCCESS && i < mine->nelts - (keep > 0 ? keep : 0); i++) {
        rv = remove_tree(p, apr_pstrcat(p, archive_dir, "/",
                                        APR_ARRAY_IDX(mine, i, const char *), NULL));
    }
    return rv == APR_SUCCESS ? sync_dir(p, archive_dir) : rv;
}

static const char *marker_path(apr_pool_t *p, const char *parent, const char *base)
{
    return apr_pstrcat(p, parent, "/.", base, MARKER_SUFFIX, NULL);
}

static const char *dropped_path(apr_pool_t *p, const char *parent, const char *base)
{
    return apr_pstrcat(p, parent, "/.", base, OLD_SUFFIX, NULL);
}

/* dst does not exist yet: nothing old to keep. */
static apr_status_t move_in(apr_pool_t *p, const char *src, const char *dst, acme_result_t *res)
{
    apr_status_t rv = apr_file_rename(src, dst, p);

    if (rv != APR_SUCCESS) {
        return fs_fail(res, rv, apr_pstrcat(p, "moving ", src, " to ", dst, ": ",
                                            os_error(p, rv), NULL));
    }
    sync_dir(p, parent_of(p, src));
    if ((rv = sync_dir(p, parent_of(p, dst))) != APR_SUCCESS) {
        return os_fail(p, res, rv, "syncing the directory of", dst);
    }
    return succeed(res);
}

/*
 * Steps 2 and 3 of the protocol. On failure *stranded is set when the old set could not be put
 * back: then the marker must stay for acme_store_recover.
 */
static apr_status_t swap_dirs(apr_pool_t *p, const char *src, const char *dst, const char *old,
                              int *stranded, acme_result_t *res)
{
    apr_status_t rv = apr_file_rename(dst, old, p);

    *stranded = 0;
    if (rv != APR_SUCCESS) {
        return fs_fail(res, rv, apr_pstrcat(p, "moving ", dst, " aside to ", old, ": ",
                                            os_error(p, rv), NULL));
    }
    sync_dir(p, parent_of(p, old));
    sync_dir(p, parent_of(p, dst));
    if ((rv = apr_file_rename(src, dst, p)) != APR_SUCCESS) {
        *stranded = (apr_file_rename(old, dst, p) != APR_SUCCESS);
        return fs_fail(res, rv, apr_pstrcat(p, "moving ", src, " to ", dst, ": ",
                                            os_error(p, rv), *stranded
                                            ? " (putting the old set back failed too: it is in "
                                            : " (old set put back", *stranded ? old : "", ")",
                                            NULL));
    }
    sync_dir(p, parent_of(p, src));
    if ((rv = sync_dir(p, parent_of(p, dst))) != APR_SUCCESS) {
        return os_fail(p, res, rv, "syncing the directory of", dst);
    }
    return APR_SUCCESS;
}

apr_status_t acme_store_replace_dir(apr_pool_t *p, const char *src_dir, const char *dst_dir,
                                    const char *archive_dir, int archive_keep,
                                    acme_result_t *res)
{
    const char *src = strip_slashes(p, src_dir), *dst = strip_slashes(p, dst_dir);
    const char *parent = parent_of(p, dst), *base = base_of(dst);
    const char *marker = marker_path(p, parent, base), *old;
    int stranded = 0;
    apr_status_t rv;

    if (!is_dir(p, src)) {
        return fs_fail(res, APR_ENOENT, apr_pstrcat(p, "replacing ", dst, ": ", src,
                                                    " is not a directory", NULL));
    }
    if ((rv = acme_store_mkdirs(p, parent, res)) != APR_SUCCESS
        || (archive_dir && (rv = acme_store_mkdirs(p, archive_dir, res)) != APR_SUCCESS)) {
        return rv;
    }
    if (!path_exists(p, dst)) {
        return move_in(p, src, dst, res);
    }
    old = archive_dir ? archive_entry(p, archive_dir, base) : dropped_path(p, parent, base);
    if ((!archive_dir && (rv = acme_store_remove_tree(p, old, res)) != APR_SUCCESS)
        || (rv = acme_store_write_file(p, marker, apr_pstrcat(p, old, "\n", NULL),
                                       strlen(old) + 1, PERMS_0600, res)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = swap_dirs(p, src, dst, old, &stranded, res)) != APR_SUCCESS) {
        if (!stranded) {
            apr_file_remove(marker, p);
        }
        return rv;
    }
    if (!archive_dir && (rv = acme_store_remove_tree(p, old, res)) != APR_SUCCESS) {
        return rv;  /* the marker stays: acme_store_recover finishes the removal */
    }
    apr_file_remove(marker, p);
    sync_dir(p, parent);
    if (archive_dir) {
        prune_archive(p, archive_dir, base, archive_keep);
    }
    return succeed(res);
}

/* ------------------------------------------------------------------ recovery */

static int is_marker(const char *entry)
{
    apr_size_t len = strlen(entry), slen = strlen(MARKER_SUFFIX);

    return entry[0] == '.' && len > slen + 1 && strcmp(entry + len - slen, MARKER_SUFFIX) == 0;
}

/*
 * Where a marker may say the old set went: parent/.<base>.old, or archive/<base>.<stamp> of
 * this store. Anything else (a path through a symlink, outside the store) is never acted on.
 */
static int marker_target_ok(apr_pool_t *p, const acme_store_t *st, const char *parent,
                            const char *base, const char *old)
{
    const char *archive = acme_store_path(p, st, ACME_STORE_ARCHIVE, NULL, NULL);

    if (!strcmp(old, dropped_path(p, parent, base))) {
        return 1;
    }
    return archive && !strcmp(parent_of(p, old), archive) && is_archive_entry(base_of(old), base);
}

/* Acts on one marker parent/.<base>.replacing as acme_store_recover describes. */
static apr_status_t recover_one(apr_pool_t *p, const acme_store_t *st, const char *parent,
                                const char *entry, acme_result_t *res)
{
    const char *base = apr_pstrndup(p, entry + 1, strlen(entry) - 1 - strlen(MARKER_SUFFIX));
    const char *marker = apr_pstrcat(p, parent, "/", entry, NULL);
    const char *dst = apr_pstrcat(p, parent, "/", base, NULL);
    char *old = NULL;
    apr_status_t rv = acme_store_read_file(p, marker, &old, NULL, 4096, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    old[strcspn(old, "\n")] = '\0';
    if (valid_component(base) && marker_target_ok(p, st, parent, base, old)) {
        if (!path_exists(p, dst) && is_real_dir(p, old)) {
            rv = apr_file_rename(old, dst, p);
        }
        else if (path_exists(p, dst) && strcmp(old, dropped_path(p, parent, base)) == 0) {
            rv = remove_tree(p, old);
        }
    }
    if (rv != APR_SUCCESS) {
        return os_fail(p, res, rv, "recovering", dst);
    }
    apr_file_remove(marker, p);
    if ((rv = sync_dir(p, parent)) != APR_SUCCESS) {
        return os_fail(p, res, rv, "syncing", parent);
    }
    return APR_SUCCESS;
}

apr_status_t acme_store_recover_group(apr_pool_t *p, const acme_store_t *st, const char *group,
                                      acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, group, NULL, NULL);
    apr_status_t first = APR_SUCCESS, rv;
    apr_array_header_t *names;
    acme_result_t one;

    if (!dir || (rv = list_dir(p, dir, &names)) != APR_SUCCESS) {
        return os_fail(p, res, dir ? rv : APR_EINVAL, "listing", dir ? dir : group);
    }
    /* One bad marker must not keep the others from being finished. */
    for (int i = 0; i < names->nelts; i++) {
        const char *entry = APR_ARRAY_IDX(names, i, const char *);

        acme_result_reset(&one);
        if (is_marker(entry) && (rv = recover_one(p, st, dir, entry, &one)) != APR_SUCCESS
            && first == APR_SUCCESS) {
            first = rv;
            if (res) {
                *res = one;
            }
        }
    }
    return first == APR_SUCCESS ? succeed(res) : first;
}

apr_status_t acme_store_recover(apr_pool_t *p, const acme_store_t *st, acme_result_t *res)
{
    apr_status_t first = APR_SUCCESS, rv;
    acme_result_t one;

    for (size_t g = 0; g < sizeof(replace_groups) / sizeof(replace_groups[0]); g++) {
        acme_result_reset(&one);
        if ((rv = acme_store_recover_group(p, st, replace_groups[g], &one)) != APR_SUCCESS
            && first == APR_SUCCESS) {
            first = rv;
            if (res) {
                *res = one;
            }
        }
    }
    return first == APR_SUCCESS ? succeed(res) : first;
}

/* ------------------------------------------------------------------ locks */

static apr_status_t lock_fail(apr_pool_t *p, acme_result_t *res, apr_status_t rv,
                              const char *path)
{
    if (APR_STATUS_IS_EAGAIN(rv) || APR_STATUS_IS_EACCES(rv)) {
        return result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON,
                                apr_pstrcat(p, "store lock ", path,
                                            " is held by another process", NULL));
    }
    return os_fail(p, res, rv, "locking", path);
}

apr_status_t acme_store_lock(apr_pool_t *p, const acme_store_t *st, const char *name, int wait,
                             acme_store_lock_t **lock, acme_result_t *res)
{
    const char *file = valid_component(name) ? apr_pstrcat(p, name, ".lock", NULL) : NULL;
    const char *path = file ? acme_store_path(p, st, ACME_STORE_LOCKS, file, NULL) : NULL;
    acme_store_lock_t *l;
    apr_pool_t *lp;
    apr_file_t *f;
    apr_status_t rv;

    if (!path) {
        return result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_pstrcat(p, "invalid store lock name '", name ? name : "",
                                            "'", NULL));
    }
    if ((rv = acme_store_mkdirs(p, parent_of(p, path), res)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_create(&lp, p);
    rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE, PERMS_0600, lp);
    if (rv == APR_SUCCESS) {
        rv = apr_file_lock(f, APR_FLOCK_EXCLUSIVE | (wait ? 0 : APR_FLOCK_NONBLOCK));
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(lp);
        return lock_fail(p, res, rv, path);
    }
    l = apr_palloc(lp, sizeof(*l));
    *l = (acme_store_lock_t){ .pool = lp, .file = f };
    *lock = l;
    return succeed(res);
}

apr_status_t acme_store_unlock(acme_store_lock_t *lock)
{
    apr_status_t rv;

    if (!lock) {
        return APR_EINVAL;
    }
    rv = apr_file_unlock(lock->file);
    apr_pool_destroy(lock->pool);
    return rv;
}

/* ------------------------------------------------------------------ stale temporary files */

/* The name temp_name gives: ".<base>.tmp-" and 16 hex digits. */
static int is_temp_name(const char *name)
{
    const char *tag = strstr(name, ".tmp-");
    size_t n = 0;

    if (name[0] != '.' || !tag || tag == name) {
        return 0;
    }
    for (tag += 5; apr_isxdigit(tag[n]); n++) {
    }
    return n == 16 && tag[n] == '\0';
}

apr_status_t acme_store_sweep_temps(apr_pool_t *p, const acme_store_t *st, const char *group,
                                    apr_interval_time_t min_age, int *removed,
                                    acme_result_t *res)
{
    const char *dir = acme_store_path(p, st, group, NULL, NULL);
    apr_time_t before = apr_time_now() - min_age;
    apr_array_header_t *names;
    apr_status_t rv;
    struct stat sb;
    int dfd;

    *removed = 0;
    if (!dir || (rv = list_dir(p, dir, &names)) != APR_SUCCESS) {
        return os_fail(p, res, dir ? rv : APR_EINVAL, "listing", dir ? dir : group);
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        return os_fail(p, res, APR_FROM_OS_ERROR(errno), "opening", dir);
    }
    /* Only files older than a write can take: another process may be writing one right now. */
    for (int i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);

        if (is_temp_name(name) && fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0
            && S_ISREG(sb.st_mode) && apr_time_from_sec(sb.st_mtime) < before
            && unlinkat(dfd, name, 0) == 0) {
            (*removed)++;
        }
    }
    close(dfd);
    return APR_SUCCESS;
}

const char *acme_store_file_stamp(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    if (apr_stat(&fi, path, APR_FINFO_INODE | APR_FINFO_MTIME | APR_FINFO_SIZE, p)
        != APR_SUCCESS) {
        return NULL;
    }
    return apr_psprintf(p, "%" APR_UINT64_T_FMT ":%" APR_TIME_T_FMT ":%" APR_OFF_T_FMT,
                        (apr_uint64_t)fi.inode, fi.mtime, fi.size);
}
