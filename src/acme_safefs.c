/* _GNU_SOURCE comes from configure (O_NOFOLLOW, fdopendir, *at()). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "acme_safefs.h"

#define SAFEFS_OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

static apr_status_t acme_safefs_close(void *data)
{
    close(*(int *)data);
    return APR_SUCCESS;
}

/* Errors of the system are worth a retry; what another user planted is not. */
static acme_class_t acme_safefs_class(int err)
{
    switch (err) {
    case EIO: case EMFILE: case ENFILE: case ENOMEM: case ENOSPC: case EINTR: case EAGAIN:
    case EDQUOT: case EBUSY:
        return ACME_CLASS_RETRY_SOON;
    default:
        return ACME_CLASS_ADMIN;
    }
}

static apr_status_t acme_safefs_os_fail(apr_pool_t *p, acme_result_t *res, int err,
                                        const char *what, const char *dir, const char *name)
{
    return acme_result_fail(res, APR_FROM_OS_ERROR(err), acme_safefs_class(err),
                            apr_psprintf(p, "%s %s/%s: %s", what, dir, name ? name : "",
                                         strerror(err)));
}

static apr_status_t acme_safefs_refuse(apr_pool_t *p, acme_result_t *res, const char *dir,
                                       const char *name, const char *why)
{
    return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                            apr_psprintf(p, "%s/%s %s: refused, not touched", dir, name, why));
}

static int acme_safefs_component_ok(const char *name)
{
    return name && *name && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/');
}

static acme_safefs_dir_t *acme_safefs_wrap(apr_pool_t *p, int fd, const char *path)
{
    acme_safefs_dir_t *dir = apr_palloc(p, sizeof(*dir));

    *dir = (acme_safefs_dir_t){ .fd = fd, .path = apr_pstrdup(p, path) };
    apr_pool_cleanup_register(p, &dir->fd, acme_safefs_close, apr_pool_cleanup_null);
    return dir;
}

apr_status_t acme_safefs_dir_open(apr_pool_t *p, const char *path, acme_safefs_dir_t **dir,
                                  acme_result_t *res)
{
    int fd = open(path, SAFEFS_OPEN_FLAGS | O_DIRECTORY);

    if (fd < 0) {
        return acme_safefs_os_fail(p, res, errno, "opening the directory", path, NULL);
    }
    *dir = acme_safefs_wrap(p, fd, path);
    return APR_SUCCESS;
}

/* Why st is not what was expected, or NULL. */
static const char *acme_safefs_mismatch(const struct stat *st, mode_t type, uid_t owner)
{
    if ((st->st_mode & S_IFMT) != type) {
        return type == S_IFDIR ? "is not a directory" : "is not a regular file";
    }
    if (owner != ACME_SAFEFS_ANY_OWNER && st->st_uid != owner) {
        return "has an unexpected owner";
    }
    return NULL;
}

apr_status_t acme_safefs_dir_sub(apr_pool_t *p, const acme_safefs_dir_t *parent,
                                 const char *name, uid_t owner, acme_safefs_dir_t **dir,
                                 acme_result_t *res)
{
    struct stat st;
    const char *why;
    int fd;

    if (!acme_safefs_component_ok(name)) {
        return acme_safefs_refuse(p, res, parent->path, name ? name : "", "is no plain name");
    }
    if ((fd = openat(parent->fd, name, SAFEFS_OPEN_FLAGS | O_DIRECTORY)) < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
            return acme_safefs_refuse(p, res, parent->path, name, "is not a directory");
        }
        return acme_safefs_os_fail(p, res, errno, "opening the directory", parent->path, name);
    }
    why = fstat(fd, &st) != 0 ? "cannot be examined"
          : acme_safefs_mismatch(&st, S_IFDIR, owner);
    if (why) {
        close(fd);
        return acme_safefs_refuse(p, res, parent->path, name, why);
    }
    *dir = acme_safefs_wrap(p, fd, apr_pstrcat(p, parent->path, "/", name, NULL));
    return APR_SUCCESS;
}

/* Reads exactly up to cap bytes from fd (the file may shrink or grow meanwhile). */
static apr_status_t acme_safefs_read_fd(int fd, char *buf, apr_size_t cap, apr_size_t *got)
{
    *got = 0;
    while (*got < cap) {
        ssize_t n = read(fd, buf + *got, cap - *got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (n == 0) {
            break;
        }
        *got += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t acme_safefs_read(apr_pool_t *p, const acme_safefs_dir_t *dir, const char *name,
                              uid_t owner, apr_size_t max_len, char **data, apr_size_t *len,
                              acme_result_t *res)
{
    struct stat st;
    const char *why;
    apr_size_t got = 0;
    apr_status_t rv;
    char *buf;
    int fd;

    if (!acme_safefs_component_ok(name)) {
        return acme_safefs_refuse(p, res, dir->path, name ? name : "", "is no plain name");
    }
    if ((fd = openat(dir->fd, name, SAFEFS_OPEN_FLAGS)) < 0) {
        return errno == ELOOP ? acme_safefs_refuse(p, res, dir->path, name, "is a symlink")
               : acme_safefs_os_fail(p, res, errno, "opening", dir->path, name);
    }
    why = fstat(fd, &st) != 0 ? "cannot be examined"
          : acme_safefs_mismatch(&st, S_IFREG, owner);
    if (!why && (st.st_size < 0 || (apr_uint64_t)st.st_size > (apr_uint64_t)max_len)) {
        why = "is larger than expected";
    }
    if (why) {
        close(fd);
        return acme_safefs_refuse(p, res, dir->path, name, why);
    }
    buf = apr_palloc(p, (apr_size_t)st.st_size + 1);
    rv = acme_safefs_read_fd(fd, buf, (apr_size_t)st.st_size, &got);
    close(fd);
    if (rv != APR_SUCCESS) {
        return acme_safefs_os_fail(p, res, APR_TO_OS_ERROR(rv), "reading", dir->path, name);
    }
    buf[got] = '\0';
    *data = buf;
    if (len) {
        *len = got;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ removal */

static apr_status_t acme_safefs_remove_at(apr_pool_t *p, int dirfd, const char *dir_path,
                                          const char *name, int depth, acme_result_t *res);

/* The names in the directory open as fd (which stays open: fdopendir gets a duplicate). */
static apr_status_t acme_safefs_list(apr_pool_t *p, int fd, apr_array_header_t **names)
{
    int copy = dup(fd);
    struct dirent *e;
    DIR *d;

    *names = apr_array_make(p, 8, sizeof(const char *));
    if (copy < 0 || (d = fdopendir(copy)) == NULL) {
        int err = errno;
        if (copy >= 0) {
            close(copy);
        }
        return APR_FROM_OS_ERROR(err);
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            APR_ARRAY_PUSH(*names, const char *) = apr_pstrdup(p, e->d_name);
        }
    }
    closedir(d);
    return APR_SUCCESS;
}

static apr_status_t acme_safefs_remove_dir(apr_pool_t *p, int dirfd, const char *dir_path,
                                           const char *name, int depth, acme_result_t *res)
{
    const char *path = apr_pstrcat(p, dir_path, "/", name, NULL);
    apr_array_header_t *names = NULL;
    apr_status_t rv;
    int fd = openat(dirfd, name, SAFEFS_OPEN_FLAGS | O_DIRECTORY), i;

    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        /* Swapped for a symlink or a file since it was looked at: unlink that instead. */
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? APR_SUCCESS
               : acme_safefs_os_fail(p, res, errno, "removing", dir_path, name);
    }
    if (fd < 0) {
        return errno == ENOENT ? APR_SUCCESS
               : acme_safefs_os_fail(p, res, errno, "opening", dir_path, name);
    }
    rv = acme_safefs_list(p, fd, &names);
    for (i = 0; rv == APR_SUCCESS && i < names->nelts; ++i) {
        rv = acme_safefs_remove_at(p, fd, path, APR_ARRAY_IDX(names, i, const char *),
                                   depth + 1, res);
    }
    close(fd);
    if (rv != APR_SUCCESS) {
        return res->status != APR_SUCCESS ? rv
               : acme_safefs_os_fail(p, res, APR_TO_OS_ERROR(rv), "listing", dir_path, name);
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return errno == ENOTDIR && unlinkat(dirfd, name, 0) == 0 ? APR_SUCCESS
               : acme_safefs_os_fail(p, res, errno, "removing", dir_path, name);
    }
    return APR_SUCCESS;
}

static apr_status_t acme_safefs_remove_at(apr_pool_t *p, int dirfd, const char *dir_path,
                                          const char *name, int depth, acme_result_t *res)
{
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errno == ENOENT ? APR_SUCCESS
               : acme_safefs_os_fail(p, res, errno, "examining", dir_path, name);
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? APR_SUCCESS
               : errno == EISDIR ? acme_safefs_remove_dir(p, dirfd, dir_path, name, depth, res)
               : acme_safefs_os_fail(p, res, errno, "removing", dir_path, name);
    }
    if (depth >= ACME_SAFEFS_MAX_DEPTH) {
        return acme_safefs_refuse(p, res, dir_path, name, "is nested too deep");
    }
    return acme_safefs_remove_dir(p, dirfd, dir_path, name, depth, res);
}

apr_status_t acme_safefs_remove(apr_pool_t *p, const acme_safefs_dir_t *dir, const char *name,
                                acme_result_t *res)
{
    apr_pool_t *sp = NULL;
    apr_status_t rv;

    if (!acme_safefs_component_ok(name)) {
        return acme_safefs_refuse(p, res, dir->path, name ? name : "", "is no plain name");
    }
    apr_pool_create(&sp, p);
    rv = acme_safefs_remove_at(sp, dir->fd, dir->path, name, 0, res);
    if (rv != APR_SUCCESS && res->message) {
        res->message = apr_pstrdup(p, res->message);
    }
    apr_pool_destroy(sp);
    return rv;
}

/* ------------------------------------------------------------------ the rest */

apr_status_t acme_safefs_move(apr_pool_t *p, const acme_safefs_dir_t *from, const char *name,
                              const acme_safefs_dir_t *to, const char *to_name,
                              acme_result_t *res)
{
    if (!acme_safefs_component_ok(name) || !acme_safefs_component_ok(to_name)) {
        return acme_safefs_refuse(p, res, from->path, name ? name : "", "is no plain name");
    }
    if (renameat(from->fd, name, to->fd, to_name) != 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), acme_safefs_class(errno),
                                apr_psprintf(p, "moving %s/%s to %s/%s: %s", from->path, name,
                                             to->path, to_name, strerror(errno)));
    }
    return APR_SUCCESS;
}

int acme_safefs_exists(const acme_safefs_dir_t *dir, const char *name)
{
    struct stat st;

    return acme_safefs_component_ok(name)
           && fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int acme_safefs_is_dir(const acme_safefs_dir_t *dir, const char *name)
{
    struct stat st;

    return acme_safefs_component_ok(name)
           && fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

apr_status_t acme_safefs_sync(const acme_safefs_dir_t *dir)
{
    if (fsync(dir->fd) != 0 && errno != EINVAL && errno != EROFS) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}
