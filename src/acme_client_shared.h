#ifndef ACME_CLIENT_SHARED_H
#define ACME_CLIENT_SHARED_H

#include <apr_pools.h>
#include <apr_time.h>

/*
 * What clients of one CA (one directory URL and proxy) may share across threads: the
 * directory, fetched once, and a pool of nonces every response feeds (RFC 8555 7.2: any unused
 * nonce the CA gave out is good for any request). Without it every thread's client fetches its
 * own directory and asks HEAD newNonce for its first request.
 *
 * Thread-safe: one mutex, held for a push, a pop or a copy only, never across network I/O. A
 * thread that finds the directory being fetched by another waits for that fetch (a condition
 * variable, bounded by `wait`), then fetches itself if it failed.
 */
typedef struct acme_client_shared_t acme_client_shared_t;

#define ACME_CLIENT_SHARED_NONCES   64
#define ACME_CLIENT_SHARED_NONCE_MAX 256

/* Lives as long as p; p is used at creation only (the directory is kept in malloc'd memory). */
apr_status_t acme_client_shared_create(acme_client_shared_t **shared, apr_pool_t *p);

/*
 * Nonces, newest first (LIFO: the newest is the least likely to have expired); a full pool
 * drops its oldest. Empty or too long nonces are not kept.
 */
void acme_client_shared_nonce_push(acme_client_shared_t *s, const char *nonce);
/* 1 and the nonce copied into buf (size len), or 0 when the pool is empty. */
int acme_client_shared_nonce_pop(acme_client_shared_t *s, char *buf, apr_size_t len);
int acme_client_shared_nonce_count(acme_client_shared_t *s);

/*
 * The directory's JSON. 1: the body is copied into p. 0: the caller fetches it now and must
 * call acme_client_shared_directory_put (NULL on failure: the next caller fetches again).
 * While another caller fetches, waits up to `wait` for it.
 */
int acme_client_shared_directory_claim(acme_client_shared_t *s, apr_pool_t *p,
                                       apr_interval_time_t wait, const char **body,
                                       apr_size_t *len);
void acme_client_shared_directory_put(acme_client_shared_t *s, const char *body, apr_size_t len);
/* Forgets the directory (a client found it wrong): the next claim fetches it again. */
void acme_client_shared_directory_drop(acme_client_shared_t *s);

#endif
