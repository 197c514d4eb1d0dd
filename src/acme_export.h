#ifndef ACME_EXPORT_H
#define ACME_EXPORT_H

#include <sys/types.h>

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "acme_result.h"

/*
 * ACMEExport: the served certificates copied, with their private keys, into a directory of the
 * admin's for other daemons (HAProxy, Postfix, Dovecot, txsni/txacme stores). Only root (the
 * httpd parent) calls this: the files hold private keys the User must never read unless the
 * admin's owner= says so.
 *
 * Every file is written atomically inside the export directory (a temporary file made with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, written, fsynced, chowned and chmodded, renamed over
 * the old name, then the directory fsynced), all through *at() calls on a descriptor of the
 * directory opened with O_DIRECTORY|O_NOFOLLOW. A file whose content, owner and mode are
 * already right is not touched, so a restart exports nothing and notifies nobody. The manifest
 * ACME_EXPORT_MANIFEST in the directory lists what the module wrote: only names listed there
 * are ever removed (the files of a domain no longer exported).
 */

#define ACME_EXPORT_MANIFEST ".mod_acme-export.json"
#define ACME_EXPORT_MODE_DEFAULT 0640
#define ACME_EXPORT_CRT_LIST "crt-list.txt"
/* Largest file the export compares or reads back (a chain with its key is a few KB). */
#define ACME_EXPORT_FILE_MAX (1024 * 1024)

typedef enum {
    ACME_EXPORT_TXSNI = 0,      /* <name>.pem per DNS name: key, certificate, chain */
    ACME_EXPORT_HAPROXY,        /* <domain>.pem per domain and key type, plus crt-list.txt */
    ACME_EXPORT_SPLIT           /* <domain>/privkey.pem, cert.pem, chain.pem, fullchain.pem */
} acme_export_format_t;

typedef struct {
    const char *dir;            /* absolute */
    acme_export_format_t format;
    int has_owner;              /* owner= given: files get uid/gid, else the writer's */
    uid_t uid;
    gid_t gid;
    mode_t mode;                /* of the files; directories get x where the mode has r */
} acme_export_spec_t;

/* One certificate of a domain (a domain has one per key type). */
typedef struct {
    const char *key_type;       /* e.g. "secp256r1", "rsa2048" */
    const char *key_pem;
    const char *chain_pem;      /* leaf first, then the intermediates */
} acme_export_cert_t;

typedef struct {
    const char *name;                   /* the domain (its first name) */
    const apr_array_header_t *names;    /* const char *: the certificate's DNS names */
    const apr_array_header_t *certs;    /* acme_export_cert_t; empty: keep what was exported */
} acme_export_domain_t;

/* One file to export: path relative to the directory ("a.pem" or "<domain>/cert.pem"). */
typedef struct {
    const char *path;
    const char *domain;         /* whose it is; NULL for crt-list.txt */
    const char *data;
    apr_size_t len;
} acme_export_file_t;

/* "txsni", "haproxy", "split"; 0 on success, -1 for an unknown name. */
int acme_export_format_parse(const char *text, acme_export_format_t *format);
const char *acme_export_format_name(acme_export_format_t format);

/*
 * The mode= value (octal, e.g. 0640). NULL when acceptable, else why: others get nothing and
 * nobody but the owner may write (the files hold private keys).
 */
const char *acme_export_mode_parse(apr_pool_t *p, const char *text, mode_t *mode);

/* The mode of a directory the export makes (split's <domain>/): x wherever the mode has r. */
mode_t acme_export_dir_mode(mode_t mode);

/*
 * The files of the format for these domains (pure). Names that cannot be file names or SNI
 * values (wildcards for txsni, IP addresses, anything with '/') are left out.
 */
apr_status_t acme_export_layout(apr_pool_t *p, const acme_export_spec_t *spec,
                                const apr_array_header_t *domains, apr_array_header_t **files,
                                acme_result_t *res);

/*
 * Brings the directory to exactly these files: writes those that differ, removes the files
 * the manifest lists that are no longer wanted (except those of the domains in `keep`, name ->
 * anything: configured domains with nothing to export now), and rewrites the manifest.
 * *changed (const char *, may be NULL) lists the domains whose files were written or removed.
 */
apr_status_t acme_export_write(apr_pool_t *p, const acme_export_spec_t *spec,
                               const apr_array_header_t *files, apr_hash_t *keep,
                               apr_array_header_t **changed, acme_result_t *res);

/* Reads a served certificate's key and chain files (root's, in domains/<name>/). */
apr_status_t acme_export_cert_read(apr_pool_t *p, const char *key_type, const char *key_file,
                                   const char *chain_file, acme_export_cert_t *cert,
                                   acme_result_t *res);

#endif
