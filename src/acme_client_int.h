/*
 * Internal to the RFC 8555 client (acme_client*.c): the client's state and the transport the
 * parts share. acme_client.c holds the transport (directory, nonces, signed requests and the
 * helpers that judge an answer); acme_client_account.c the account; acme_client_order.c orders,
 * authorizations, challenges and finalization; acme_client_cert.c certificate download,
 * revocation and ARI renewal information. Not for other parts of the module: acme_client.h is
 * the interface.
 */
#ifndef ACME_CLIENT_INT_H
#define ACME_CLIENT_INT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

#include "acme_client.h"
#include "acme_client_shared.h"
#include "acme_http.h"

#define CLIENT_DEFAULT_RETRY_BUDGET apr_time_from_sec(45)
/* Re-sends after badNonce go out at once this many times, then with a growing pause. */
#define CLIENT_RETRY_QUICK           8
#define CLIENT_RETRY_PAUSE_FIRST     apr_time_from_msec(50)
#define CLIENT_RETRY_PAUSE_MAX       apr_time_from_sec(1)
#define CLIENT_DEFAULT_POLL_INTERVAL apr_time_from_sec(1)
#define CLIENT_POLL_FIRST apr_time_from_msec(50)
#define CLIENT_DEFAULT_POLL_STEP_MAX apr_time_from_sec(10)
#define CLIENT_DEFAULT_POLL_TIMEOUT  apr_time_from_sec(120)
/* A CA asking for "Retry-After: 0" over and over must not make us spin. */
#define CLIENT_POLL_STEP_MIN         apr_time_from_msec(50)
#define CLIENT_NONCE_POOL            8
#define CLIENT_NONCE_MAX             256

typedef struct {
    const char *new_nonce;
    const char *new_account;
    const char *new_order;
    const char *revoke_cert;
    const char *key_change;
    acme_client_meta_t meta;
} client_directory_t;

struct acme_client_t {
    apr_pool_t *pool;
    const char *directory_url;
    acme_client_options_t opts;
    acme_http_t *http;
    client_directory_t *dir;        /* NULL until fetched */
    const acme_key_t *account_key;
    const char *account_url;
    const char *thumbprint;         /* of account_key, computed on first use */
    /* Fixed buffers: a long-lived client must not grow its pool per request. */
    char nonces[CLIENT_NONCE_POOL][CLIENT_NONCE_MAX];
    int n_nonces;
    acme_client_shared_t *shared;   /* directory and nonces of the CA's other clients, or NULL */
    acme_client_counts_t counts;
    char terms_required[1024];      /* Link terms-of-service of the last userActionRequired */
};

typedef struct {
    const char *what;               /* for messages: what we were doing (no secrets) */
    const char *url;
    const char *payload;            /* NULL: POST-as-GET */
    const acme_key_t *key;          /* NULL: the account key */
    int embed_jwk;                  /* jwk instead of kid */
} client_post_t;

static inline const char *str_array_item(apr_array_header_t *arr, int i)
{
    return APR_ARRAY_IDX(arr, i, const char *);
}

/* Reading JSON: copies in p; NULL for a missing or null value. */
const char *acme_client_json_text(apr_pool_t *p, json_t *value);
const char *acme_client_json_str(apr_pool_t *p, json_t *obj, const char *key);
/* The JSON text of `doc` for a request payload; drops the reference. */
const char *acme_client_payload(apr_pool_t *p, json_t *doc);

/* A dns-persist-01 issuerDomainNames array (directory meta or a challenge); empty if bad. */
apr_array_header_t *acme_client_issuer_names(apr_pool_t *p, json_t *list);

/* Judging an answer. */
int acme_client_is_2xx(const acme_http_response_t *resp);
int acme_client_is_failure(const acme_http_response_t *resp);
apr_status_t acme_client_bad_answer(acme_result_t *res, apr_pool_t *p, const char *what,
                                    const acme_http_response_t *resp);
const char *acme_client_body_note(apr_pool_t *p, const acme_http_response_t *resp);
apr_status_t acme_client_answer_failed(acme_result_t *res, apr_pool_t *p, const char *what,
                                       const acme_http_response_t *resp);
apr_status_t acme_client_check_origin(acme_client_t *c, apr_pool_t *p, const char *what,
                                      const char *kind, const char *url, acme_result_t *res);

/* Transport: unsigned GET, the directory (fetched once), signed POSTs. */
apr_status_t acme_client_get_url(acme_client_t *c, apr_pool_t *p, const char *url,
                                 acme_http_response_t **resp, acme_result_t *res);
apr_status_t acme_client_directory_load(acme_client_t *c, acme_result_t *res);
apr_status_t acme_client_post_signed(acme_client_t *c, apr_pool_t *p, const client_post_t *req,
                                     acme_http_response_t **out, acme_result_t *res);
apr_status_t acme_client_post_as_get(acme_client_t *c, apr_pool_t *p, const char *what,
                                     const char *url, acme_http_response_t **resp,
                                     acme_result_t *res);

#endif
