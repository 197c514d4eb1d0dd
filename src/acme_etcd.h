#ifndef ACME_ETCD_H
#define ACME_ETCD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_result.h"

/*
 * A client for etcd v3 through its JSON gateway (POST <endpoint>/v3/...), the store a cluster of
 * httpd nodes shares (issue 16). libcurl and jansson only: no gRPC library.
 *
 * Keys are given without the cluster prefix; the client adds it on the way out and strips it on
 * the way in, so a key outside the prefix is never seen. Values are bytes (base64 on the wire).
 * Revisions and lease IDs are 64-bit (JSON strings on the wire).
 *
 * Endpoints are tried in order starting with the last one that answered; a transport failure
 * moves to the next. Every request has a timeout. A failure is ACME_CLASS_RETRY_SOON with a
 * message naming the endpoint: etcd trouble is never a verdict on a certificate.
 * Not thread-safe: one acme_etcd_t per thread.
 */

typedef struct {
    apr_array_header_t *endpoints;      /* const char *: "http(s)://host:port" */
    const char *prefix;                 /* "/mod_acme"; NULL or "": none */
    const char *client_cert;            /* PEM, for etcd's --client-cert-auth; NULL: none */
    const char *client_key;
    const char *client_key_pem;         /* the key's PEM in memory instead of client_key */
    apr_size_t client_key_pem_len;
    const char *ca_file;                /* verifies etcd's server certificate; NULL: system */
    apr_interval_time_t timeout;        /* one request; 0: 5 s */
} acme_etcd_options_t;

typedef struct {
    const char *key;                    /* without the prefix */
    const char *value;                  /* NUL-terminated; may hold NULs */
    apr_size_t value_len;
    apr_int64_t create_revision;
    apr_int64_t mod_revision;
    apr_int64_t lease;                  /* 0: none */
} acme_etcd_kv_t;

typedef struct {
    int deleted;                        /* 0: a put */
    acme_etcd_kv_t kv;
} acme_etcd_event_t;

/* One operation of a transaction: a put of value, or (remove) a delete of key, or of every key
 * under it (remove and prefix). */
typedef struct {
    const char *key;
    const char *value;
    apr_size_t len;
    int remove;
    int prefix;
} acme_etcd_op_t;

typedef struct acme_etcd_t acme_etcd_t;

apr_status_t acme_etcd_create(acme_etcd_t **etcd, apr_pool_t *p,
                              const acme_etcd_options_t *opts, acme_result_t *res);

/* The endpoint that answered last (for logs and the status). */
const char *acme_etcd_endpoint(const acme_etcd_t *etcd);

/* One key: *kv NULL when absent. *revision (may be NULL): the store's revision at the read. */
apr_status_t acme_etcd_get(acme_etcd_t *etcd, apr_pool_t *p, const char *key,
                           acme_etcd_kv_t **kv, apr_int64_t *revision, acme_result_t *res);

/* Every key starting with key_prefix, in key order, as acme_etcd_kv_t. */
apr_status_t acme_etcd_list(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                            apr_array_header_t **kvs, apr_int64_t *revision, acme_result_t *res);

/* The first kv of a read's answer (acme_etcd_read_many), or NULL when it found nothing. */
const acme_etcd_kv_t *acme_etcd_first(const apr_array_header_t *kvs);

/*
 * Several linearizable reads in one request (a read-only transaction; 64 keys a request, each
 * request at one revision): kvs[i] gets what keys[i] holds, or every key under keys[i] when it
 * ends in '/'.
 */
apr_status_t acme_etcd_read_many(acme_etcd_t *etcd, apr_pool_t *p, const char *const *keys,
                                 int n, apr_array_header_t **kvs, acme_result_t *res);

/* As acme_etcd_read_many, from the member asked without a round through the leader (serializable
 * reads): cheaper, and possibly a moment behind. For a look that a linearizable read or a
 * transaction confirms. */
apr_status_t acme_etcd_read_local(acme_etcd_t *etcd, apr_pool_t *p, const char *const *keys,
                                  int n, apr_array_header_t **kvs, acme_result_t *res);

/* As acme_etcd_list, keys and revisions only (value ""): what exists, at a fraction of the size. */
apr_status_t acme_etcd_keys(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                            apr_array_header_t **kvs, apr_int64_t *revision, acme_result_t *res);

/* lease 0: none. */
apr_status_t acme_etcd_put(acme_etcd_t *etcd, apr_pool_t *p, const char *key, const char *value,
                           apr_size_t len, apr_int64_t lease, acme_result_t *res);

/* One key, or (as_prefix) every key under it. *deleted (may be NULL): how many went. */
apr_status_t acme_etcd_delete(acme_etcd_t *etcd, apr_pool_t *p, const char *key, int as_prefix,
                              long *deleted, acme_result_t *res);

apr_status_t acme_etcd_lease_grant(acme_etcd_t *etcd, apr_pool_t *p, long ttl_seconds,
                                   apr_int64_t *lease, acme_result_t *res);
/* *ttl_left 0 (or less): the lease has expired, with every key attached to it. */
apr_status_t acme_etcd_lease_keepalive(acme_etcd_t *etcd, apr_pool_t *p, apr_int64_t lease,
                                       long *ttl_left, acme_result_t *res);
apr_status_t acme_etcd_lease_revoke(acme_etcd_t *etcd, apr_pool_t *p, apr_int64_t lease,
                                    acme_result_t *res);

/*
 * Takes key for this holder when nobody holds it (a transaction on create_revision == 0; the
 * key bound to lease, so it goes when the holder stops keeping the lease alive).
 * *acquired 1: ours, and *holder is our kv, whose create_revision is the fencing token.
 * *acquired 0: *holder is the current holder's kv.
 */
apr_status_t acme_etcd_lock(acme_etcd_t *etcd, apr_pool_t *p, const char *key, const char *value,
                            apr_int64_t lease, int *acquired, acme_etcd_kv_t **holder,
                            acme_result_t *res);
/* As acme_etcd_lock, and in the same transaction also_kvs[i]: the key also[i] (NULL when
 * absent). */
apr_status_t acme_etcd_lock_reading(acme_etcd_t *etcd, apr_pool_t *p, const char *key,
                                    const char *value, apr_int64_t lease,
                                    const char *const *also, int n_also, int *acquired,
                                    acme_etcd_kv_t **holder, acme_etcd_kv_t **also_kvs,
                                    acme_result_t *res);

/*
 * Writes key only while lock_key still has create_revision token (fencing): a holder that
 * stalled past its lease, whose lock someone else has taken since, writes nothing.
 * *fenced 1: refused for that reason (not an error of etcd's).
 */
apr_status_t acme_etcd_put_fenced(acme_etcd_t *etcd, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t token, const char *key, const char *value,
                                  apr_size_t len, int *fenced, acme_result_t *res);
/* As acme_etcd_put_fenced with n operations, all applied or none: one raft entry, not n. */
apr_status_t acme_etcd_txn_fenced(acme_etcd_t *etcd, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t token, const acme_etcd_op_t *ops, int n,
                                  int *fenced, acme_result_t *res);

/*
 * Watches key_prefix from start_revision for at most wait: returns as soon as one batch of
 * events arrived, or with none when wait ran out. *next_revision: where the next watch starts
 * (the last event's revision + 1, or the store's revision when nothing happened). A watch whose
 * start revision was compacted away fails with APR_EGENERAL and *next_revision 0: the caller
 * lists again.
 */
apr_status_t acme_etcd_watch(acme_etcd_t *etcd, apr_pool_t *p, const char *key_prefix,
                             apr_int64_t start_revision, apr_interval_time_t wait,
                             apr_array_header_t **events, apr_int64_t *next_revision,
                             acme_result_t *res);

/* How many requests went out (for the bench's etcd requests per certificate). */
apr_uint64_t acme_etcd_requests(const acme_etcd_t *etcd);

#endif
