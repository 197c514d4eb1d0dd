#ifndef ACME_STORE_H
#define ACME_STORE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_file_info.h>
#include <jansson.h>

#include "acme_result.h"

/*
 * The filesystem store: everything mod_acme keeps between runs.
 *
 *   <base>/                 0755  created by the parent (root) at start-up
 *   |- accounts/            0700  per CA: account key and account URL. Parent/worker only.
 *   |- domains/             0700  per managed domain: the ACTIVE key + certificate chain that
 *   |                             mod_ssl loads in the parent before forking. Replaced only as a
 *   |                             whole directory (acme_store_replace_dir). Never read by children.
 *   |- staging/             0700  per managed domain: key + chain of an issuance in progress or
 *   |                             finished and awaiting activation. Worker writes, parent
 *   |                             activates.
 *   |- archive/             0700  previous domains/<name> sets as <name>.<UTC timestamp>, pruned
 *   |                             to a configured count. Read only for recovery and by admins.
 *   |- jobs/                0700  per managed domain: scheduler state (failure counts, next run,
 *   |                             open order URL) that must survive restarts.
 *   |- challenges/          0755  per identifier: http-01 key authorizations and tls-alpn-01
 *   |                             certificates. The ONLY part children may read.
 *   |- tmp/                 0700  scratch space of the parent/worker; may be emptied at start-up.
 *   |- rejected/            0700  staged sets the parent refused for good, kept for the admin.
 *   |- requests/            0755  an admin's requests (a2acme renew: <name>.force); root writes.
 *   |- api/, api-queue/     0700  the certificate API's requests and results (acme_api.h); the
 *   |                             User's (children queue, the worker orders).
 *   `- locks/               0700  <name>.lock files for acme_store_lock (created on first use).
 *
 * Files are written atomically (temp file in the same directory, fsync, rename, fsync of the
 * directory), so a reader sees the complete old or the complete new content, also after a crash.
 * Hidden entries ("....") in these directories belong to the store itself: temp files and
 * replacement markers. Valid names never start with "." (acme_store_path refuses them).
 */

#define ACME_STORE_ACCOUNTS   "accounts"
#define ACME_STORE_DOMAINS    "domains"
#define ACME_STORE_STAGING    "staging"
#define ACME_STORE_ARCHIVE    "archive"
#define ACME_STORE_JOBS       "jobs"
#define ACME_STORE_CHALLENGES "challenges"
#define ACME_STORE_TMP        "tmp"
#define ACME_STORE_LOCKS      "locks"
#define ACME_STORE_REJECTED   "rejected"
#define ACME_STORE_REQUESTS   "requests"
/* The certificate API (acme_api.h): the User's, like jobs/. */
#define ACME_STORE_API        "api"
#define ACME_STORE_API_QUEUE  "api-queue"

/* Default limits of the readers (max_len 0). */
#define ACME_STORE_READ_MAX   (1024 * 1024)
#define ACME_STORE_JSON_MAX   (16 * 1024 * 1024)

typedef struct acme_store_t acme_store_t;
typedef struct acme_store_lock_t acme_store_lock_t;

/*
 * Opens the store at base_dir, creating it (0755) and the fixed subdirectories with the modes
 * above when missing. Modes of the fixed subdirectories are (re)applied on every open, so a
 * loosened accounts/ is tightened again.
 */
apr_status_t acme_store_open(apr_pool_t *p, const char *base_dir, acme_store_t **store,
                             acme_result_t *res);

/* The base directory as given to acme_store_open. */
const char *acme_store_base(const acme_store_t *st);

/*
 * <base>/<group>[/<name>[/<file>]]; name and file may be NULL. NULL when a component is empty,
 * contains '/' or starts with '.', so that no caller can step outside its directory.
 */
const char *acme_store_path(apr_pool_t *p, const acme_store_t *st, const char *group,
                            const char *name, const char *file);

/* Creates dir and missing parents with mode 0700. Existing directories are left as they are. */
apr_status_t acme_store_mkdirs(apr_pool_t *p, const char *dir, acme_result_t *res);

/*
 * Atomically replaces path with data: a uniquely named temp file (O_EXCL, final perms before any
 * byte is written) in the same directory, fsync, rename over path, fsync of the directory.
 * Missing parents are created (0700). On failure the temp file is gone, an existing file at path
 * is untouched, and res->message names the path and the OS error - except when only the final
 * fsync of the directory fails: the new content is then in place but may not survive a crash.
 * Class: ADMIN for permission and file-type problems (EACCES, EPERM, EROFS, ENOTDIR, EISDIR),
 * else RETRY_SOON (disk full, I/O errors).
 */
apr_status_t acme_store_write_file(apr_pool_t *p, const char *path, const void *data,
                                   apr_size_t len, apr_fileperms_t perms, acme_result_t *res);

/*
 * Like acme_store_write_file (atomic rename, never a half-written file in place) but without
 * the fsyncs: for files that can be made again after a crash (fallback certificates), where
 * the flush would cost more than the file is worth (thousands of them at start-up).
 */
apr_status_t acme_store_write_file_volatile(apr_pool_t *p, const char *path, const void *data,
                                            apr_size_t len, apr_fileperms_t perms,
                                            acme_result_t *res);

/*
 * Makes the files directly in dir and dir itself durable: after writing several files with
 * acme_store_write_file_volatile into a new directory, one pass instead of a sync per file and
 * its directory each time.
 */
apr_status_t acme_store_sync_files(apr_pool_t *p, const char *dir, acme_result_t *res);

/*
 * Reads a whole file into pool memory, NUL-terminated (len excludes the NUL). Files larger than
 * max_len (0: ACME_STORE_READ_MAX) fail with APR_EINVAL. A missing file returns the OS status
 * unchanged (test with APR_STATUS_IS_ENOENT).
 */
apr_status_t acme_store_read_file(apr_pool_t *p, const char *path, char **data, apr_size_t *len,
                                  apr_size_t max_len, acme_result_t *res);

/* Writes json compactly with sorted keys and a trailing newline, atomically as above. */
apr_status_t acme_store_write_json(apr_pool_t *p, const char *path, json_t *json,
                                   apr_fileperms_t perms, acme_result_t *res);
/* As acme_store_write_json, atomic but not synced: for what is recomputed if a crash loses it. */
apr_status_t acme_store_write_json_volatile(apr_pool_t *p, const char *path, json_t *json,
                                            apr_fileperms_t perms, acme_result_t *res);

/* "inode:mtime:size" of a file (a file replaced or rewritten since has another), NULL when it
 * cannot be examined. For root's own files: the path is followed as it is. */
const char *acme_store_file_stamp(apr_pool_t *p, const char *path);

/*
 * Reads and parses a JSON file (at most ACME_STORE_JSON_MAX bytes, duplicate keys refused).
 * The json_t is released by a cleanup of p (json_incref it to keep it longer). A parse error
 * returns APR_EINVAL, class ADMIN, with file, line and column in res->message.
 */
apr_status_t acme_store_read_json(apr_pool_t *p, const char *path, json_t **json,
                                  acme_result_t *res);

/*
 * Replaces the directory dst_dir by src_dir (both on the store's filesystem) so that at every
 * instant dst_dir is either the complete old set or the complete new set, or - only after a crash
 * between the two renames below - missing and restorable by acme_store_recover.
 *
 * Protocol, with parent = dirname(dst_dir) and base = basename(dst_dir):
 *   1. write the marker parent/.<base>.replacing naming where the old set goes (atomic write);
 *   2. rename dst_dir -> old: archive_dir/<base>.<YYYYmmddTHHMMSS.uuuuuuZ>, or parent/.<base>.old
 *      when archive_dir is NULL; fsync the directories;
 *   3. rename src_dir -> dst_dir; fsync. Failure here renames old back (rollback);
 *   4. without archive: remove parent/.<base>.old;
 *   5. remove the marker (the commit point);
 *   6. prune archive_dir to the newest archive_keep entries of base (best effort: errors ignored,
 *      the next replacement prunes again). archive_keep <= 0 keeps none.
 * When dst_dir does not exist yet, it is a single rename. src_dir's parent must be on the same
 * filesystem as dst_dir and archive_dir (rename(2) fails with EXDEV otherwise).
 */
apr_status_t acme_store_replace_dir(apr_pool_t *p, const char *src_dir, const char *dst_dir,
                                    const char *archive_dir, int archive_keep,
                                    acme_result_t *res);

/*
 * Start-up recovery of interrupted replacements in the root-owned accounts/ and domains/: for
 * each marker, if the target directory is missing its old set is renamed back (step 2 done,
 * step 3 not); if the target exists a left-over parent/.<base>.old is removed (crash in step 4);
 * then the marker is removed. A marker naming anything but parent/.<base>.old or an archive entry
 * of <base> in this store is removed without acting on it. Every marker is handled even when one
 * fails; the first failure is returned. Call before anything reads domains/ (in the parent,
 * before mod_ssl loads certificates).
 */
apr_status_t acme_store_recover(apr_pool_t *p, const acme_store_t *st, acme_result_t *res);

/* The same for one group: the worker recovers staging/ as the httpd User, never root. */
apr_status_t acme_store_recover_group(apr_pool_t *p, const acme_store_t *st, const char *group,
                                      acme_result_t *res);

/*
 * Removes the temporary files of writes that never finished (a process killed between creating
 * and renaming one) directly in `group`, when they are older than min_age. *removed counts them.
 * Symlinks and other non-regular files are left alone. Call as the owner of the group.
 */
apr_status_t acme_store_sweep_temps(apr_pool_t *p, const acme_store_t *st, const char *group,
                                    apr_interval_time_t min_age, int *removed,
                                    acme_result_t *res);

/*
 * Renames a damaged file (or whatever stands in its place) of a root-owned directory to
 * "<path>.damaged-<UTC stamp>", so the module can make a new one while the old stays for the
 * admin. *aside is the new name. Only for accounts/, domains/ and seal/: never a User's name.
 */
apr_status_t acme_store_set_aside(apr_pool_t *p, const char *path, const char **aside,
                                  acme_result_t *res);

/*
 * The sentence a failed store write adds for the admin: for a full file system (ENOSPC,
 * EDQUOT) what happens next, NULL for other errors. Pure: unit tested.
 */
const char *acme_store_error_hint(apr_status_t rv);

/* Removes path and, for a directory, everything below it; symlinks are removed, not followed. */
apr_status_t acme_store_remove_tree(apr_pool_t *p, const char *path, acme_result_t *res);

/*
 * Takes the advisory lock <base>/locks/<name>.lock, exclusive between PROCESSES (server worker
 * vs. admin command). APR uses fcntl(2) locks on Linux, which are per process: a second lock in
 * the same process succeeds and releasing either releases both, so threads of one process must
 * serialise with a mutex instead. With wait == 0 a lock held elsewhere fails at once with
 * APR_EAGAIN (class RETRY_SOON). The lock is released by acme_store_unlock or when p is
 * destroyed, whichever comes first.
 */
apr_status_t acme_store_lock(apr_pool_t *p, const acme_store_t *st, const char *name, int wait,
                             acme_store_lock_t **lock, acme_result_t *res);

/* Releases a lock taken by acme_store_lock. The handle is invalid afterwards. */
apr_status_t acme_store_unlock(acme_store_lock_t *lock);

#endif
