/* fchownat/AT_* and O_NOFOLLOW|O_DIRECTORY come with POSIX 2008. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <jansson.h>

#include "acme_export.h"

/* ------------------------------------------------------------------ settings */

static const char *const acme_export_formats[] = {
    [ACME_EXPORT_TXSNI] = "txsni", [ACME_EXPORT_HAPROXY] = "haproxy",
    [ACME_EXPORT_SPLIT] = "split",
};

int acme_export_format_parse(const char *text, acme_export_format_t *format)
{
    int i;

    for (i = 0; i < (int)(sizeof(acme_export_formats) / sizeof(acme_export_formats[0])); ++i) {
        if (text && !strcmp(text, acme_export_formats[i])) {
            *format = (acme_export_format_t)i;
            return 0;
        }
    }
    return -1;
}

const char *acme_export_format_name(acme_export_format_t format)
{
    return format <= ACME_EXPORT_SPLIT ? acme_export_formats[format] : "?";
}

const char *acme_export_mode_parse(apr_pool_t *p, const char *text, mode_t *mode)
{
    char *end = NULL;
    long value;

    if (!text || strlen(text) < 3 || strlen(text) > 4 || strspn(text, "01234567") != strlen(text)) {
        return apr_psprintf(p, "mode '%s' is not an octal file mode like 0640", text ? text : "");
    }
    value = strtol(text, &end, 8);
    if (value > 0777) {
        return apr_psprintf(p, "mode '%s': setuid, setgid and sticky bits make no sense for "
                            "exported keys; use e.g. 0640", text);
    }
    if (value & 0007) {
        return apr_psprintf(p, "mode '%s' gives others access to private keys; use 0640 "
                            "(owner and group) or 0600", text);
    }
    if (value & 0020) {
        return apr_psprintf(p, "mode '%s' lets the group write the exported files; only the "
                            "owner may: use 0640 or 0600", text);
    }
    if (!(value & 0400)) {
        return apr_psprintf(p, "mode '%s' does not let the owner read the files; use 0640 "
                            "or 0600", text);
    }
    *mode = (mode_t)value;
    return NULL;
}

mode_t acme_export_dir_mode(mode_t mode)
{
    return (mode_t)(mode | ((mode & 0444) >> 2));
}

/* ------------------------------------------------------------------ layout (pure) */

/* Splits a chain (leaf first) after its first certificate; both parts end with a newline. */
static void acme_export_chain_split(apr_pool_t *p, const char *chain, const char **leaf,
                                    const char **rest)
{
    static const char end_tag[] = "-----END CERTIFICATE-----";
    const char *begin = strstr(chain, "-----BEGIN");
    const char *end = strstr(chain, end_tag);

    if (!begin || !end || end < begin) {
        *leaf = chain;
        *rest = "";
        return;
    }
    end += sizeof(end_tag) - 1;
    *leaf = apr_pstrcat(p, apr_pstrndup(p, begin, (apr_size_t)(end - begin)), "\n", NULL);
    end += strspn(end, "\r\n \t");
    *rest = end;
}

/* PEM text ending with exactly one newline (empty stays empty). */
static const char *acme_export_nl(apr_pool_t *p, const char *pem)
{
    apr_size_t len = strlen(pem);

    while (len > 0 && (pem[len - 1] == '\n' || pem[len - 1] == '\r' || pem[len - 1] == ' ')) {
        len--;
    }
    return len ? apr_pstrcat(p, apr_pstrndup(p, pem, len), "\n", NULL) : "";
}

/* A name usable as one path component: not empty, no '/', not starting with '.'. */
static int acme_export_component_ok(const char *name)
{
    return name && *name && *name != '.' && !strchr(name, '/') && strlen(name) <= 250;
}

/* A DNS name (not an IP address); wildcards only when allowed. */
static int acme_export_dns_ok(const char *name, int wildcard_ok)
{
    if (!acme_export_component_ok(name) || strchr(name, ':')) {
        return 0;
    }
    if (strspn(name, "0123456789.") == strlen(name)) {
        return 0;       /* IPv4 address: SNI never carries one */
    }
    return wildcard_ok || !strchr(name, '*');
}

static void acme_export_add(apr_array_header_t *files, const char *path, const char *domain,
                            const char *data)
{
    APR_ARRAY_PUSH(files, acme_export_file_t) = (acme_export_file_t){
        .path = path, .domain = domain, .data = data, .len = strlen(data),
    };
}

static void acme_export_txsni(apr_pool_t *p, const acme_export_domain_t *d,
                              apr_array_header_t *files)
{
    const acme_export_cert_t *c = &APR_ARRAY_IDX(d->certs, 0, acme_export_cert_t);
    const char *pem = apr_pstrcat(p, acme_export_nl(p, c->key_pem),
                                  acme_export_nl(p, c->chain_pem), NULL);
    int i;

    /* txsni's directory store looks the SNI name up as <name>.pem: one file per name. */
    for (i = 0; d->names && i < d->names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(d->names, i, const char *);
        if (acme_export_dns_ok(name, 0)) {
            acme_export_add(files, apr_pstrcat(p, name, ".pem", NULL), d->name, pem);
        }
    }
}

/* The file of the j-th certificate: the first key type keeps the plain name. */
static const char *acme_export_keyed(apr_pool_t *p, const char *base, int j, const char *type)
{
    return j == 0 ? apr_pstrcat(p, base, ".pem", NULL)
                  : apr_pstrcat(p, base, ".", type, ".pem", NULL);
}

/*
 * HAProxy (2.2 and later) loads each key type's PEM as a certificate of its own and picks the
 * ECDSA or RSA one per client from the same SNI filters: one crt-list line per file.
 */
static void acme_export_haproxy(apr_pool_t *p, const acme_export_spec_t *spec,
                                const acme_export_domain_t *d, apr_array_header_t *files,
                                const char **list)
{
    const char *snis = "";
    int i, j;

    for (i = 0; d->names && i < d->names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(d->names, i, const char *);
        if (acme_export_dns_ok(name, 1)) {
            snis = apr_pstrcat(p, snis, " ", name, NULL);
        }
    }
    for (j = 0; j < d->certs->nelts; ++j) {
        const acme_export_cert_t *c = &APR_ARRAY_IDX(d->certs, j, acme_export_cert_t);
        const char *file = acme_export_keyed(p, d->name, j, c->key_type);
        acme_export_add(files, file, d->name, apr_pstrcat(p, acme_export_nl(p, c->chain_pem),
                                                          acme_export_nl(p, c->key_pem), NULL));
        *list = apr_pstrcat(p, *list, spec->dir, "/", file, snis, "\n", NULL);
    }
}

static void acme_export_split(apr_pool_t *p, const acme_export_domain_t *d,
                              apr_array_header_t *files)
{
    int j;

    for (j = 0; j < d->certs->nelts; ++j) {
        const acme_export_cert_t *c = &APR_ARRAY_IDX(d->certs, j, acme_export_cert_t);
        const char *dir = apr_pstrcat(p, d->name, "/", NULL), *leaf, *rest;
        acme_export_chain_split(p, c->chain_pem, &leaf, &rest);
        acme_export_add(files, apr_pstrcat(p, dir, acme_export_keyed(p, "privkey", j,
                                                                     c->key_type), NULL),
                        d->name, acme_export_nl(p, c->key_pem));
        acme_export_add(files, apr_pstrcat(p, dir, acme_export_keyed(p, "cert", j, c->key_type),
                                           NULL), d->name, acme_export_nl(p, leaf));
        acme_export_add(files, apr_pstrcat(p, dir, acme_export_keyed(p, "chain", j,
                                                                     c->key_type), NULL),
                        d->name, acme_export_nl(p, rest));
        acme_export_add(files, apr_pstrcat(p, dir, acme_export_keyed(p, "fullchain", j,
                                                                     c->key_type), NULL),
                        d->name, acme_export_nl(p, c->chain_pem));
    }
}

apr_status_t acme_export_layout(apr_pool_t *p, const acme_export_spec_t *spec,
                                const apr_array_header_t *domains, apr_array_header_t **files,
                                acme_result_t *res)
{
    const char *list = "# written by mod_acme (ACMEExport); changes are overwritten\n";
    int i;

    *files = apr_array_make(p, 8, sizeof(acme_export_file_t));
    for (i = 0; i < domains->nelts; ++i) {
        const acme_export_domain_t *d = &APR_ARRAY_IDX(domains, i, acme_export_domain_t);
        if (!acme_export_component_ok(d->name)) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                    apr_psprintf(p, "'%s' cannot be an export file name",
                                                 d->name ? d->name : ""));
        }
        if (!d->certs || d->certs->nelts == 0) {
            continue;
        }
        if (spec->format == ACME_EXPORT_TXSNI) {
            acme_export_txsni(p, d, *files);
        }
        else if (spec->format == ACME_EXPORT_HAPROXY) {
            acme_export_haproxy(p, spec, d, *files, &list);
        }
        else {
            acme_export_split(p, d, *files);
        }
    }
    if (spec->format == ACME_EXPORT_HAPROXY) {
        acme_export_add(*files, ACME_EXPORT_CRT_LIST, NULL, list);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ reading */

static apr_status_t acme_export_fd_close(void *data)
{
    close(*(int *)data);
    return APR_SUCCESS;
}

/* The descriptor is closed with the pool. */
static void acme_export_fd_keep(apr_pool_t *p, int fd)
{
    int *box = apr_palloc(p, sizeof(*box));

    *box = fd;
    apr_pool_cleanup_register(p, box, acme_export_fd_close, apr_pool_cleanup_null);
}

/* Reads an open regular file of at most max bytes; NUL-terminated. Closes fd. */
static apr_status_t acme_export_read_fd(apr_pool_t *p, int fd, apr_size_t max, char **data,
                                        apr_size_t *len)
{
    struct stat st;
    apr_size_t got = 0;
    char *buf;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (apr_size_t)st.st_size > max) {
        close(fd);
        return APR_EINVAL;
    }
    buf = apr_palloc(p, (apr_size_t)st.st_size + 1);
    while (got < (apr_size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (apr_size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (apr_size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return APR_SUCCESS;
}

static apr_status_t acme_export_read_path(apr_pool_t *p, const char *path, char **data,
                                          acme_result_t *res)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    apr_size_t len = 0;
    apr_status_t rv;

    if (fd < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "cannot read %s: %s", path,
                                             strerror(errno)));
    }
    if ((rv = acme_export_read_fd(p, fd, ACME_EXPORT_FILE_MAX, data, &len)) != APR_SUCCESS
        || len == 0) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "%s is not a regular file of at most 1 MB", path));
    }
    return APR_SUCCESS;
}

apr_status_t acme_export_cert_read(apr_pool_t *p, const char *key_type, const char *key_file,
                                   const char *chain_file, acme_export_cert_t *cert,
                                   acme_result_t *res)
{
    char *key = NULL, *chain = NULL;
    apr_status_t rv;

    if ((rv = acme_export_read_path(p, key_file, &key, res)) != APR_SUCCESS
        || (rv = acme_export_read_path(p, chain_file, &chain, res)) != APR_SUCCESS) {
        return rv;
    }
    *cert = (acme_export_cert_t){ .key_type = key_type, .key_pem = key, .chain_pem = chain };
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    apr_pool_t *p;
    const acme_export_spec_t *spec;
    int dfd;                    /* the export directory */
    uid_t uid;                  /* what every file must belong to */
    gid_t gid;
    unsigned int serial;        /* of temporary names */
    apr_hash_t *changed;        /* domain -> "" */
    int dirty;                  /* entries of the directory changed since its last fsync */
    acme_result_t *res;
} acme_export_run_t;

/* Makes the renames and removals in the export directory durable. */
static void acme_export_sync(acme_export_run_t *run)
{
    if (run->dirty) {
        fsync(run->dfd);
        run->dirty = 0;
    }
}

static apr_status_t acme_export_os_fail(acme_export_run_t *run, const char *what,
                                        const char *name)
{
    int err = errno;

    return acme_result_fail(run->res, APR_FROM_OS_ERROR(err), ACME_CLASS_RETRY_SOON,
                            apr_psprintf(run->p, "export to %s: %s %s: %s", run->spec->dir, what,
                                         name, strerror(err)));
}

/*
 * Keys go in, and names listed in the manifest are removed: nobody but the writer (root) may
 * change the directory, or another user could plant a manifest or swap a subdirectory.
 */
static apr_status_t acme_export_dir_check(acme_export_run_t *run)
{
    struct stat st;

    if (fstat(run->dfd, &st) != 0) {
        return acme_export_os_fail(run, "cannot stat", "the directory");
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0022)) {
        return acme_result_fail(run->res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(run->p, "export to %s: the directory belongs to uid "
                                             "%ld with mode %04o; it must belong to uid %ld and "
                                             "be writable by it only (chown, chmod go-w)",
                                             run->spec->dir, (long)st.st_uid,
                                             (unsigned int)(st.st_mode & 07777),
                                             (long)geteuid()));
    }
    return APR_SUCCESS;
}

/* The admin's directory, never through a symlink; made (0755) when missing. */
static apr_status_t acme_export_open_dir(acme_export_run_t *run)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

    run->dfd = open(run->spec->dir, flags);
    if (run->dfd < 0 && errno == ENOENT && mkdir(run->spec->dir, 0755) == 0) {
        run->dfd = open(run->spec->dir, flags);
    }
    if (run->dfd < 0) {
        return acme_export_os_fail(run, "cannot open the directory", "(a real directory, not "
                                   "a symlink, is needed)");
    }
    acme_export_fd_keep(run->p, run->dfd);
    return acme_export_dir_check(run);
}

/* 1 when dfd/name already is a regular file with this content, owner and mode. */
static int acme_export_same(acme_export_run_t *run, int dfd, const char *name, const char *data,
                            apr_size_t len)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    apr_size_t got = 0;
    char *have = NULL;

    if (fd < 0) {
        return 0;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (apr_size_t)st.st_size != len
        || st.st_uid != run->uid || st.st_gid != run->gid
        || (st.st_mode & 07777) != run->spec->mode) {
        close(fd);
        return 0;
    }
    return acme_export_read_fd(run->p, fd, len, &have, &got) == APR_SUCCESS && got == len
           && memcmp(have, data, len) == 0;
}

static apr_status_t acme_export_write_all(int fd, const char *data, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return APR_FROM_OS_ERROR(n < 0 ? errno : EIO);
        }
        data += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/*
 * Atomic replacement of dfd/name: a reader sees the old file or the new one, never a part,
 * and the key is never readable by anyone the final owner and mode do not allow.
 */
static apr_status_t acme_export_put(acme_export_run_t *run, int dfd, const char *name,
                                    const char *data, apr_size_t len)
{
    const char *tmp = apr_psprintf(run->p, ".%s.tmp-%ld-%u", name, (long)getpid(),
                                   ++run->serial);
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dfd, tmp, flags, 0600);

    if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) == 0) {
        fd = openat(dfd, tmp, flags, 0600);     /* left by a crash of an earlier export */
    }
    if (fd < 0) {
        return acme_export_os_fail(run, "cannot create", tmp);
    }
    errno = 0;
    if (acme_export_write_all(fd, data, len) != APR_SUCCESS || fsync(fd) != 0
        || fchown(fd, run->uid, run->gid) != 0 || fchmod(fd, run->spec->mode) != 0) {
        apr_status_t rv = acme_export_os_fail(run, "cannot write", tmp);
        close(fd);
        unlinkat(dfd, tmp, 0);
        return rv;
    }
    close(fd);
    if (renameat(dfd, tmp, dfd, name) != 0) {
        apr_status_t rv = acme_export_os_fail(run, "cannot rename into place", name);
        unlinkat(dfd, tmp, 0);
        return rv;
    }
    if (dfd == run->dfd) {
        run->dirty = 1;     /* one fsync of the directory for the whole run: acme_export_sync */
    }
    else {
        fsync(dfd);
    }
    return APR_SUCCESS;
}

/*
 * split's <domain>/: made or reused, never through a symlink, owned and moded as configured.
 * The caller closes *sfd (thousands of domains must not hold thousands of descriptors).
 */
static apr_status_t acme_export_subdir(acme_export_run_t *run, const char *name, int *sfd)
{
    mode_t mode = acme_export_dir_mode(run->spec->mode);
    apr_status_t rv;
    struct stat st;

    if (mkdirat(run->dfd, name, 0700) == 0) {
        run->dirty = 1;
    }
    else if (errno != EEXIST) {
        return acme_export_os_fail(run, "cannot make the directory", name);
    }
    *sfd = openat(run->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*sfd < 0) {
        return acme_export_os_fail(run, "cannot open the directory", name);
    }
    if (fstat(*sfd, &st) == 0 && (st.st_uid == run->uid || fchown(*sfd, run->uid, run->gid) == 0)
        && (st.st_gid == run->gid || fchown(*sfd, run->uid, run->gid) == 0)
        && ((st.st_mode & 07777) == mode || fchmod(*sfd, mode) == 0)) {
        return APR_SUCCESS;
    }
    rv = acme_export_os_fail(run, "cannot set the owner and mode of", name);
    close(*sfd);
    *sfd = -1;
    return rv;
}

static void acme_export_mark(acme_export_run_t *run, const char *domain)
{
    if (domain && *domain) {
        apr_hash_set(run->changed, apr_pstrdup(run->p, domain), APR_HASH_KEY_STRING, "");
    }
}

/* One wanted file, written when it differs. */
static apr_status_t acme_export_one(acme_export_run_t *run, const acme_export_file_t *f)
{
    const char *slash = strchr(f->path, '/');
    const char *leaf = slash ? slash + 1 : f->path;
    int dfd = run->dfd;
    apr_status_t rv;

    if (slash) {
        rv = acme_export_subdir(run, apr_pstrndup(run->p, f->path,
                                                  (apr_size_t)(slash - f->path)), &dfd);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rv = APR_SUCCESS;
    if (!acme_export_same(run, dfd, leaf, f->data, f->len)
        && (rv = acme_export_put(run, dfd, leaf, f->data, f->len)) == APR_SUCCESS) {
        acme_export_mark(run, f->domain);
    }
    if (dfd != run->dfd) {
        close(dfd);
    }
    return rv;
}

/* ------------------------------------------------------------------ the manifest */

/* A path the manifest may name: "a" or "a/b", each a plain component. */
static int acme_export_path_ok(apr_pool_t *p, const char *path)
{
    const char *slash = strchr(path, '/');

    if (!slash) {
        return acme_export_component_ok(path);
    }
    return acme_export_component_ok(apr_pstrndup(p, path, (apr_size_t)(slash - path)))
           && acme_export_component_ok(slash + 1);
}

/* What the last export wrote: path -> domain ("" for none). Missing or unreadable: nothing. */
static apr_hash_t *acme_export_manifest_load(acme_export_run_t *run)
{
    apr_hash_t *old = apr_hash_make(run->p);
    int fd = openat(run->dfd, ACME_EXPORT_MANIFEST, O_RDONLY | O_NOFOLLOW | O_NONBLOCK
                    | O_CLOEXEC);
    char *text = NULL;
    apr_size_t len = 0;
    const char *path;
    json_t *json, *files, *dom;

    if (fd < 0 || acme_export_read_fd(run->p, fd, ACME_EXPORT_FILE_MAX, &text, &len)
                  != APR_SUCCESS) {
        return old;
    }
    json = json_loadb(text, len, 0, NULL);
    files = json_object_get(json, "files");
    json_object_foreach(files, path, dom) {
        if (acme_export_path_ok(run->p, path) && strcmp(path, ACME_EXPORT_MANIFEST)) {
            apr_hash_set(old, apr_pstrdup(run->p, path), APR_HASH_KEY_STRING,
                         apr_pstrdup(run->p, json_is_string(dom) ? json_string_value(dom) : ""));
        }
    }
    json_decref(json);
    return old;
}

/* Removes one file the last export wrote, and its directory when that is now empty. */
static void acme_export_unlink(acme_export_run_t *run, const char *path, const char *domain)
{
    const char *slash = strchr(path, '/');
    const char *sub = slash ? apr_pstrndup(run->p, path, (apr_size_t)(slash - path)) : NULL;
    int dfd = sub ? openat(run->dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                  : run->dfd;

    if (dfd < 0) {
        return;     /* gone, or not a directory of ours: nothing below it is followed */
    }
    if (unlinkat(dfd, slash ? slash + 1 : path, 0) == 0 || errno != ENOENT) {
        acme_export_mark(run, domain);
    }
    if (sub) {
        fsync(dfd);
        close(dfd);
        /* Fails while other files are in it: only the last one's removal removes it. */
        unlinkat(run->dfd, sub, AT_REMOVEDIR);
    }
}

/*
 * Removes what the manifest lists and nobody wants any more, except the files of kept domains
 * (those go into the new manifest as they are).
 */
static void acme_export_stale(acme_export_run_t *run, apr_hash_t *old, apr_hash_t *wanted,
                              apr_hash_t *keep, json_t *manifest)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(run->p, old); hi; hi = apr_hash_next(hi)) {
        const char *path = apr_hash_this_key(hi), *domain = apr_hash_this_val(hi);
        if (apr_hash_get(wanted, path, APR_HASH_KEY_STRING)) {
            continue;
        }
        if (*domain && keep && apr_hash_get(keep, domain, APR_HASH_KEY_STRING)) {
            json_object_set_new(manifest, path, json_string(domain));
            continue;
        }
        acme_export_unlink(run, path, domain);
        run->dirty = 1;
    }
}

static apr_status_t acme_export_manifest_save(acme_export_run_t *run, json_t *files)
{
    json_t *doc = json_pack("{s:s, s:O}", "format", acme_export_format_name(run->spec->format),
                            "files", files);
    char *text = doc ? json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1)) : NULL;
    const char *data = text ? apr_pstrcat(run->p, text, "\n", NULL) : NULL;
    apr_status_t rv = APR_SUCCESS;

    free(text);
    json_decref(doc);
    if (!data) {
        return acme_result_fail(run->res, APR_ENOMEM, ACME_CLASS_RETRY_SOON,
                                "export: cannot build the manifest");
    }
    if (!acme_export_same(run, run->dfd, ACME_EXPORT_MANIFEST, data, strlen(data))) {
        rv = acme_export_put(run, run->dfd, ACME_EXPORT_MANIFEST, data, strlen(data));
    }
    return rv;
}

static apr_status_t acme_export_files(acme_export_run_t *run, const apr_array_header_t *files,
                                      apr_hash_t *wanted, json_t *manifest)
{
    apr_status_t rv;
    int i;

    for (i = 0; i < files->nelts; ++i) {
        const acme_export_file_t *f = &APR_ARRAY_IDX(files, i, acme_export_file_t);
        if (!acme_export_path_ok(run->p, f->path)) {
            return acme_result_fail(run->res, APR_EINVAL, ACME_CLASS_ADMIN,
                                    apr_psprintf(run->p, "export: '%s' is not a file name the "
                                                 "export may write", f->path));
        }
        /* Listed before it is written: a failure half-way still lets a later run remove it. */
        json_object_set_new(manifest, f->path, f->domain ? json_string(f->domain) : json_null());
        apr_hash_set(wanted, f->path, APR_HASH_KEY_STRING, f);
        if ((rv = acme_export_one(run, f)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t acme_export_write(apr_pool_t *p, const acme_export_spec_t *spec,
                               const apr_array_header_t *files, apr_hash_t *keep,
                               apr_array_header_t **changed, acme_result_t *res)
{
    acme_export_run_t run = {
        .p = p, .spec = spec, .dfd = -1, .changed = apr_hash_make(p), .res = res,
        .uid = spec->has_owner ? spec->uid : geteuid(),
        .gid = spec->has_owner ? spec->gid : getegid(),
    };
    apr_hash_t *old, *wanted = apr_hash_make(p);
    json_t *manifest = json_object();
    apr_hash_index_t *hi;
    apr_status_t rv;

    if (changed) {
        *changed = apr_array_make(p, 4, sizeof(const char *));
    }
    if ((rv = acme_export_open_dir(&run)) != APR_SUCCESS) {
        json_decref(manifest);
        return rv;
    }
    old = acme_export_manifest_load(&run);
    rv = acme_export_files(&run, files, wanted, manifest);
    if (rv == APR_SUCCESS) {
        acme_export_stale(&run, old, wanted, keep, manifest);
    }
    else {
        /* Whatever the last export listed stays listed until a run gets through. */
        for (hi = apr_hash_first(p, old); hi; hi = apr_hash_next(hi)) {
            const char *domain = apr_hash_this_val(hi);
            json_object_set_new(manifest, apr_hash_this_key(hi),
                                *domain ? json_string(domain) : json_null());
        }
    }
    /* The files' names are durable before the manifest that lists them, and then it is. */
    acme_export_sync(&run);
    if (acme_export_manifest_save(&run, manifest) != APR_SUCCESS && rv == APR_SUCCESS) {
        rv = res->status ? res->status : APR_EGENERAL;
    }
    acme_export_sync(&run);
    json_decref(manifest);
    for (hi = apr_hash_first(p, run.changed); changed && hi; hi = apr_hash_next(hi)) {
        APR_ARRAY_PUSH(*changed, const char *) = apr_hash_this_key(hi);
    }
    return rv;
}
