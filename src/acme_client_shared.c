/*
 * The directory and the nonce pool that the clients of one CA share across a worker's threads
 * (acme_client_shared.h). Fixed buffers and malloc'd directory text: pools are not thread-safe,
 * and a long run must not grow one per request.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include "acme_client_shared.h"

struct acme_client_shared_t {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *fetched;     /* signalled when a directory fetch ends */
    int fetching;                   /* a caller is fetching the directory now */
    char *dir_body;                 /* malloc'd, NULL until fetched */
    apr_size_t dir_len;
    char nonces[ACME_CLIENT_SHARED_NONCES][ACME_CLIENT_SHARED_NONCE_MAX];
    int n_nonces;                   /* nonces[0] is the oldest */
};

static apr_status_t shared_cleanup(void *data)
{
    acme_client_shared_t *s = data;

    free(s->dir_body);
    s->dir_body = NULL;
    return APR_SUCCESS;
}

apr_status_t acme_client_shared_create(acme_client_shared_t **shared, apr_pool_t *p)
{
    acme_client_shared_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv;

    if ((rv = apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&s->fetched, p)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(p, s, shared_cleanup, apr_pool_cleanup_null);
    *shared = s;
    return APR_SUCCESS;
}

void acme_client_shared_nonce_push(acme_client_shared_t *s, const char *nonce)
{
    apr_size_t len = nonce ? strlen(nonce) : 0;

    if (len == 0 || len >= ACME_CLIENT_SHARED_NONCE_MAX) {
        return;
    }
    apr_thread_mutex_lock(s->lock);
    if (s->n_nonces == ACME_CLIENT_SHARED_NONCES) {
        /* Drop the oldest: it is the likeliest to have expired. */
        memmove(s->nonces[0], s->nonces[1],
                sizeof(s->nonces[0]) * (ACME_CLIENT_SHARED_NONCES - 1));
        --s->n_nonces;
    }
    memcpy(s->nonces[s->n_nonces], nonce, len + 1);
    ++s->n_nonces;
    apr_thread_mutex_unlock(s->lock);
}

int acme_client_shared_nonce_pop(acme_client_shared_t *s, char *buf, apr_size_t len)
{
    int got = 0;

    apr_thread_mutex_lock(s->lock);
    if (s->n_nonces > 0 && len > strlen(s->nonces[s->n_nonces - 1])) {
        --s->n_nonces;
        strcpy(buf, s->nonces[s->n_nonces]);
        got = 1;
    }
    apr_thread_mutex_unlock(s->lock);
    return got;
}

int acme_client_shared_nonce_count(acme_client_shared_t *s)
{
    int n;

    apr_thread_mutex_lock(s->lock);
    n = s->n_nonces;
    apr_thread_mutex_unlock(s->lock);
    return n;
}

int acme_client_shared_directory_claim(acme_client_shared_t *s, apr_pool_t *p,
                                       apr_interval_time_t wait, const char **body,
                                       apr_size_t *len)
{
    apr_time_t until = apr_time_now() + wait;
    int got = 0;

    apr_thread_mutex_lock(s->lock);
    /* Another thread's fetch is under way: its answer serves this one too. */
    while (!s->dir_body && s->fetching && apr_time_now() < until) {
        apr_thread_cond_timedwait(s->fetched, s->lock, until - apr_time_now());
    }
    if (s->dir_body) {
        *body = apr_pstrmemdup(p, s->dir_body, s->dir_len);
        *len = s->dir_len;
        got = 1;
    }
    else {
        s->fetching = 1;
    }
    apr_thread_mutex_unlock(s->lock);
    return got;
}

void acme_client_shared_directory_put(acme_client_shared_t *s, const char *body, apr_size_t len)
{
    char *copy = body ? malloc(len + 1) : NULL;

    if (copy) {
        memcpy(copy, body, len);
        copy[len] = '\0';
    }
    apr_thread_mutex_lock(s->lock);
    if (copy && !s->dir_body) {
        s->dir_body = copy;
        s->dir_len = len;
        copy = NULL;
    }
    s->fetching = 0;
    apr_thread_cond_broadcast(s->fetched);
    apr_thread_mutex_unlock(s->lock);
    free(copy);
}

void acme_client_shared_directory_drop(acme_client_shared_t *s)
{
    char *old;

    apr_thread_mutex_lock(s->lock);
    old = s->dir_body;
    s->dir_body = NULL;
    s->dir_len = 0;
    apr_thread_mutex_unlock(s->lock);
    free(old);
}
