/*
 * The on-demand request queue (see acme_ondemand_queue.h): entries in api-queue/, created by
 * the children and taken by the worker, both the httpd User. Opened through the directory's
 * descriptor with O_NOFOLLOW: a symlink or FIFO planted there is never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include "acme_ondemand.h"
#include "acme_ondemand_queue.h"
#include "acme_store.h"

#define ACME_ONDEMAND_QUEUE_SCAN_MAX 8192

static int acme_ondemand_queue_dir(apr_pool_t *p, const char *store_dir)
{
    return open(apr_pstrcat(p, store_dir, "/" ACME_STORE_API_QUEUE, NULL),
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

apr_status_t acme_ondemand_queue_put(apr_pool_t *p, const char *store_dir, const char *name,
                                     acme_result_t *res)
{
    int dfd = acme_ondemand_queue_dir(p, store_dir), fd;

    if (dfd < 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_RETRY_SOON,
                                "the request queue (api-queue/) cannot be opened");
    }
    fd = openat(dfd, apr_pstrcat(p, name, ACME_ONDEMAND_QUEUE_SUFFIX, NULL),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
        int err = errno;
        close(dfd);
        return acme_result_fail(res, APR_FROM_OS_ERROR(err), ACME_CLASS_RETRY_SOON,
                                "the on-demand request cannot be queued");
    }
    if (fd >= 0) {
        close(fd);
    }
    close(dfd);
    return APR_SUCCESS;
}

/* The name of "<name>.ondemand" when it is one on-demand may order, else NULL. */
static const char *acme_ondemand_queue_name(apr_pool_t *p, const char *entry, int allow_ip,
                                            int *is_request)
{
    apr_size_t n = strlen(entry), s = sizeof(ACME_ONDEMAND_QUEUE_SUFFIX) - 1;
    const char *why = NULL, *name;

    *is_request = n > s && !strcmp(entry + n - s, ACME_ONDEMAND_QUEUE_SUFFIX);
    if (!*is_request) {
        return NULL;
    }
    name = acme_ondemand_name(p, apr_pstrndup(p, entry, n - s), allow_ip, &why);
    /* Only the canonical spelling: "A.example" and "a.example" are one request, taken once. */
    return name && !strncmp(name, entry, n - s) && strlen(name) == n - s ? name : NULL;
}

apr_array_header_t *acme_ondemand_queue_take(apr_pool_t *p, const char *store_dir, int max,
                                             int allow_ip, int *dropped)
{
    apr_array_header_t *names = apr_array_make(p, 8, sizeof(const char *));
    int dfd = acme_ondemand_queue_dir(p, store_dir), seen = 0, is_request;
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;

    if (dropped) {
        *dropped = 0;
    }
    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return names;
    }
    while (names->nelts < max && seen++ < ACME_ONDEMAND_QUEUE_SCAN_MAX && (e = readdir(d))) {
        const char *name = acme_ondemand_queue_name(p, e->d_name, allow_ip, &is_request);
        if (!is_request) {
            continue;
        }
        /* Removed first: a name the worker cannot take now is requested again by a handshake. */
        if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
            continue;
        }
        if (name) {
            APR_ARRAY_PUSH(names, const char *) = name;
        }
        else if (dropped) {
            ++*dropped;
        }
    }
    closedir(d);
    return names;
}
