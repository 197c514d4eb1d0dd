#ifndef ACME_SAFEFS_H
#define ACME_SAFEFS_H

#include <sys/types.h>

#include <apr_pools.h>
#include <apr_errno.h>

#include "acme_result.h"

/*
 * Descriptor-based access for root to directories that another user (the httpd User) can
 * write: staging/, jobs/, challenges/. Nothing here follows a name that user could have made:
 * every step is an *at() call on a directory descriptor opened before, with O_NOFOLLOW and
 * O_NONBLOCK, and what was opened is checked with fstat (type, owner, size) before it is used.
 * A symlink, FIFO, device or socket where a file or directory is expected is refused, never
 * opened for reading and never waited on.
 *
 * Refusals of what the other user planted (wrong type, wrong owner, oversize) fail with
 * APR_EINVAL and class ADMIN; errors of the system (EIO, EMFILE, ENOSPC, ENOMEM) keep their
 * status and get class RETRY_SOON: a caller can tell "hostile or broken" from "try again".
 */

/* Any owner is accepted. */
#define ACME_SAFEFS_ANY_OWNER ((uid_t)-1)

/* Deepest tree acme_safefs_remove walks: deeper ones are refused, never recursed into. */
#define ACME_SAFEFS_MAX_DEPTH 16

typedef struct {
    int fd;                     /* closed by a cleanup of the pool it was opened in */
    const char *path;           /* for messages only: never used to open anything */
} acme_safefs_dir_t;

/*
 * Opens a directory the caller trusts by path (the store's own fixed directories below a
 * root-owned base); the last component must not be a symlink.
 */
apr_status_t acme_safefs_dir_open(apr_pool_t *p, const char *path, acme_safefs_dir_t **dir,
                                  acme_result_t *res);

/*
 * Opens the directory `name` inside `parent`: not a symlink, a directory, owned by `owner`
 * (ACME_SAFEFS_ANY_OWNER: any). `name` is one component (no '/', not "." or "..").
 */
apr_status_t acme_safefs_dir_sub(apr_pool_t *p, const acme_safefs_dir_t *parent,
                                 const char *name, uid_t owner, acme_safefs_dir_t **dir,
                                 acme_result_t *res);

/*
 * Reads the regular file `name` inside dir, owned by `owner`, at most max_len bytes (a larger
 * file is refused); NUL-terminated, *len without the NUL. A missing file returns APR_ENOENT.
 */
apr_status_t acme_safefs_read(apr_pool_t *p, const acme_safefs_dir_t *dir, const char *name,
                              uid_t owner, apr_size_t max_len, char **data, apr_size_t *len,
                              acme_result_t *res);

/*
 * Removes `name` inside dir and, for a directory, everything below it (at most
 * ACME_SAFEFS_MAX_DEPTH levels): symlinks and other special files are unlinked, never
 * followed; a directory swapped for a symlink during the walk is unlinked as the symlink.
 * Missing is success.
 */
apr_status_t acme_safefs_remove(apr_pool_t *p, const acme_safefs_dir_t *dir, const char *name,
                                acme_result_t *res);

/* renameat(): moves the entry `name` of `from` to `to_name` in `to`, never following it. */
apr_status_t acme_safefs_move(apr_pool_t *p, const acme_safefs_dir_t *from, const char *name,
                              const acme_safefs_dir_t *to, const char *to_name,
                              acme_result_t *res);

/* 1 when dir has an entry `name` of any type (nothing is followed or opened). */
int acme_safefs_exists(const acme_safefs_dir_t *dir, const char *name);

/* 1 when `name` exists in dir as a directory (not a symlink to one), 0 otherwise. */
int acme_safefs_is_dir(const acme_safefs_dir_t *dir, const char *name);

/* Makes the directory's entries durable (fsync); filesystems that cannot are fine. */
apr_status_t acme_safefs_sync(const acme_safefs_dir_t *dir);

#endif
