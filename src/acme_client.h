#ifndef ACME_CLIENT_H
#define ACME_CLIENT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_crypto.h"
#include "acme_ident.h"
#include "acme_order.h"
#include "acme_result.h"

/*
 * An RFC 8555 client for one CA (one directory URL) and one account.
 *
 * It fetches the directory at most once per instance, keeps a pool of
 * nonces fed by every response (HEAD newNonce only when the pool is empty)
 * and re-sends a request refused with badNonce, signed with the nonce the
 * error carried, until the request's time budget (retry_budget) runs out:
 * a CA refusing many good nonces costs requests, never a failed order. It never
 * knows how challenge answers are published: the caller sequences the steps
 *   acme_client_order_new → acme_client_order_authzs → (caller provisions)
 *   → acme_client_challenge_respond → acme_client_order_wait
 *   → acme_client_order_finalize → acme_client_order_wait
 * (or, after the respond, acme_client_order_finalize_early → acme_client_order_wait_after)
 *   → acme_client_cert_download
 * and may persist the acme_order_t (acme_order_to_json) between any two of
 * them; acme_client_order_refresh picks a stored order up again.
 *
 * Not thread-safe: one client per thread; clients of one CA in several threads may share
 * the directory and nonces through acme_client_share. Functions taking a pool `p`
 * allocate their results there; for functions that fill an acme_order_t,
 * p must live as long as the order.
 */
typedef struct acme_client_t acme_client_t;

typedef struct {
    const char *ca_file;                    /* trust for the CA's HTTPS; NULL: system store */
    const char *proxy;                      /* outbound proxy URL, NULL: direct */
    apr_interval_time_t connect_timeout;    /* 0: 10 s */
    apr_interval_time_t timeout;            /* one whole request; 0: 30 s */
    apr_size_t max_response_size;           /* 0: 1 MiB */
    int max_bad_nonce_retries;              /* optional cap on badNonce retries per request;
                                             * 0: none, the time budget alone bounds them */
    apr_interval_time_t retry_budget;       /* time one signed request may spend re-sending
                                             * after badNonce, from its first send; 0: 45 s */
    apr_interval_time_t poll_interval;      /* wait when the CA sends no Retry-After; 0: 1 s */
    apr_interval_time_t poll_step_max;      /* longest wait slept through in one
                                             * acme_client_order_wait step; 0: 10 s */
    apr_interval_time_t poll_timeout;       /* cap on one acme_client_order_wait; 0: 120 s */
} acme_client_options_t;

/*
 * A profile of the directory's meta.profiles (draft-ietf-acme-profiles). The draft gives only a
 * description (a string); a CA may publish an object instead, and then mod_acme reads limits from
 * it: "maxNames" (identifiers per certificate) and "identifierTypes" (e.g. ["dns", "ip"]).
 */
typedef struct {
    const char *name;
    const char *description;
    int max_names;                          /* 0: not published */
    const char *identifier_types;           /* "dns,ip", or NULL: not published */
} acme_client_profile_t;

/* The directory's meta object and the optional resources a caller plans with. */
typedef struct {
    const char *terms_of_service;           /* NULL if the CA has none */
    const char *website;
    int external_account_required;
    apr_array_header_t *caa_identities;     /* of const char * */
    apr_array_header_t *profiles;           /* of acme_client_profile_t */
    const char *renewal_info;               /* ARI base URL, NULL without ARI */
    /* dns-persist-01 (draft-ietf-acme-dns-persist-02 §3.2, §4.1): NULL/empty without */
    apr_array_header_t *issuer_domain_names; /* of const char *, normalised */
    const char *account_hash_prefix;
} acme_client_meta_t;

/* Requests sent by this client instance. */
typedef struct {
    unsigned total;                 /* everything, including the two below */
    unsigned directory;             /* GET directory (at most 1) */
    unsigned nonce;                 /* HEAD newNonce */
    unsigned bad_nonce_retries;     /* POSTs repeated after badNonce */
    unsigned failed;                /* of total: no answer, or an error answer (metrics) */
} acme_client_counts_t;

apr_status_t acme_client_create(acme_client_t **client, apr_pool_t *p, const char *directory_url,
                                const acme_client_options_t *opts, acme_result_t *res);

/*
 * Shares the directory and the nonce pool with the other clients attached to `shared`
 * (acme_client_shared.h), e.g. the order threads of one worker run at one CA and proxy. Before
 * the first request; NULL (the default) keeps the client's own. A badNonce error's nonce stays
 * with the client that re-sends.
 */
struct acme_client_shared_t;
void acme_client_share(acme_client_t *c, struct acme_client_shared_t *shared);

/* Fetches the directory on first use. The meta lives as long as the client. */
apr_status_t acme_client_meta(acme_client_t *c, const acme_client_meta_t **meta,
                              acme_result_t *res);

unsigned acme_client_request_count(const acme_client_t *c);
void acme_client_counts(const acme_client_t *c, acme_client_counts_t *counts);
const char *acme_client_user_agent(const acme_client_t *c);

/* ------------------------------------------------------------------ account */

typedef struct {
    const char *url;
    const char *status;             /* "valid", "deactivated", "revoked" */
    const char *contact;            /* JSON array text, or NULL */
    const char *orders;             /* orders list URL, or NULL */
    int created;                    /* newAccount answered 201 */
} acme_client_account_t;

typedef struct {
    const char *const *contact;     /* e.g. "mailto:admin@example.org" */
    int n_contact;
    int agree_tos;                  /* the operator agreed to meta.termsOfService */
    const char *eab_kid;            /* external account binding, when the CA wants it */
    const char *eab_hmac;           /* base64url HMAC key: a secret, never logged */
    const char *eab_alg;            /* "HS256" (NULL), "HS384", "HS512" */
    int eab_only_if_required;       /* bind only when the directory says it is required (a
                                     * binding is for one CA; failover CAs may not know it) */
} acme_client_account_params_t;

/*
 * The account key to sign with and its URL (kid) when known. With a URL no
 * account request is needed at all before ordering.
 */
void acme_client_account_use(acme_client_t *c, const acme_key_t *key, const char *account_url);
const char *acme_client_account_url(const acme_client_t *c);
const acme_key_t *acme_client_account_key(const acme_client_t *c);

/*
 * newAccount with the key given to acme_client_account_use. Refuses without
 * a request (ADMIN) when the CA has terms of service the operator did not
 * agree to, or wants EAB and none is configured. A key that already has an
 * account gets that account back (created = 0).
 */
apr_status_t acme_client_account_register(acme_client_t *c, apr_pool_t *p,
                                          const acme_client_account_params_t *params,
                                          acme_client_account_t **acct, acme_result_t *res);

/* newAccount with onlyReturnExisting. APR_ENOENT when the key has no account. */
apr_status_t acme_client_account_find(acme_client_t *c, apr_pool_t *p,
                                      acme_client_account_t **acct, acme_result_t *res);

/* POST-as-GET of the account. */
apr_status_t acme_client_account_get(acme_client_t *c, apr_pool_t *p,
                                     acme_client_account_t **acct, acme_result_t *res);

apr_status_t acme_client_account_update(acme_client_t *c, apr_pool_t *p,
                                        const char *const *contact, int n_contact,
                                        acme_client_account_t **acct, acme_result_t *res);

/*
 * keyChange (RFC 8555 §7.3.5): on success the client signs with new_key from
 * then on; the caller stores it. new_key must stay valid as long as c.
 */
apr_status_t acme_client_account_key_change(acme_client_t *c, apr_pool_t *p,
                                            const acme_key_t *new_key, acme_result_t *res);

/*
 * The terms of service (Link rel="terms-of-service") of the last userActionRequired this
 * client received, or NULL: the new terms a CA wants the operator to agree to (RFC 8555 §7.3.3).
 */
const char *acme_client_terms_required(const acme_client_t *c);

/* Irreversible. */
apr_status_t acme_client_account_deactivate(acme_client_t *c, apr_pool_t *p,
                                            acme_result_t *res);

/* ------------------------------------------------------------------ orders */

typedef struct {
    const char *type;               /* "http-01", "dns-01", "tls-alpn-01", ... */
    const char *url;
    const char *token;
    const char *status;             /* "pending", "processing", "valid", "invalid" */
    const char *error;              /* problem document as compact JSON, or NULL */
    apr_array_header_t *issuer_domain_names;    /* dns-persist-01: const char *, or NULL */
} acme_client_challenge_t;

typedef struct {
    const char *url;
    acme_ident_t identifier;
    const char *status;             /* "pending", "valid", "invalid", ... */
    int wildcard;
    const char *expires;
    apr_array_header_t *challenges; /* of acme_client_challenge_t */
} acme_client_authz_t;

/*
 * newOrder for order->identifiers (+ profile, replaces). A profile the CA
 * does not advertise fails (ADMIN) without a request; `replaces` is dropped
 * when the CA has no ARI, and once after alreadyReplaced. Sets order->url,
 * status, authorizations, finalize.
 */
apr_status_t acme_client_order_new(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                   acme_result_t *res);

/* POST-as-GET of order->url; APR_ENOENT (PERMANENT) when the CA forgot it. */
apr_status_t acme_client_order_refresh(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                       acme_result_t *res);

/* Every authorization of the order (one request each), as acme_client_authz_t *. */
apr_status_t acme_client_order_authzs(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                      apr_array_header_t **authzs, acme_result_t *res);

apr_status_t acme_client_authz_get(acme_client_t *c, apr_pool_t *p, const char *url,
                                   acme_client_authz_t **authz, acme_result_t *res);

/* The authorization's challenge of that type, or NULL. */
const acme_client_challenge_t *acme_client_authz_challenge(const acme_client_authz_t *authz,
                                                           const char *type);

/* token.thumbprint of the current account key: a secret until validation is over. */
apr_status_t acme_client_key_authorization(acme_client_t *c, apr_pool_t *p, const char *token,
                                           const char **key_authz, acme_result_t *res);

/* The dns-01 TXT value: base64url(SHA-256(key authorization)). */
const char *acme_client_dns01_value(apr_pool_t *p, const char *key_authz);

/*
 * Tells the CA to validate (POST {}). No request for a challenge that is
 * already processing or valid; an invalid one fails PERMANENT with its error.
 */
apr_status_t acme_client_challenge_respond(acme_client_t *c, apr_pool_t *p,
                                           const acme_client_challenge_t *chal,
                                           acme_result_t *res);

/*
 * Polls the order (never the authorizations) while it is pending or
 * processing, waiting Retry-After (poll_interval without one) before each
 * poll. It never polls earlier than the CA asked: when the next wait would
 * exceed poll_step_max or end past poll_timeout it returns APR_TIMEUP with
 * res->retry_after = when to poll again (class RETRY_AFTER if the CA named
 * the time, else RETRY_SOON), so the caller can persist the order and resume
 * it later. An order that turns invalid is explained: PERMANENT, naming the
 * identifier and the challenge error.
 */
apr_status_t acme_client_order_wait(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                    acme_result_t *res);

/* The same, counting `polls` looks already taken (an early finalize is the first). */
apr_status_t acme_client_order_wait_after(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                          int polls, acme_result_t *res);

/* Fills res for an invalid order, fetching authorizations only to say which failed. */
apr_status_t acme_client_order_explain(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                       acme_result_t *res);

/*
 * Finalizes a ready order with a CSR for exactly order->identifiers, signed
 * by cert_key (which must not be the account key). orderNotReady re-reads
 * the order and finalizes once more if it is ready by then. Leaves the order
 * processing or valid.
 */
apr_status_t acme_client_order_finalize(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                        const acme_key_t *cert_key, acme_result_t *res);

/* The same with a CSR (DER) made elsewhere, sent as given (the certificate API). */
apr_status_t acme_client_order_finalize_csr(acme_client_t *c, apr_pool_t *p, acme_order_t *order,
                                            const unsigned char *der, apr_size_t der_len,
                                            acme_result_t *res);

/*
 * Right after the answers went out (`answered`), a finalize in place of the first poll of
 * acme_client_order_wait: a CA that validated already takes it, and the order is processing or
 * valid one poll sooner; a CA that has not answers orderNotReady, which costs the request the
 * poll would have, and the order is left pending, res reset, for
 * acme_client_order_wait_after(..., 1, ...). Only a failure to make the CSR is returned.
 */
apr_status_t acme_client_order_finalize_early(acme_client_t *c, apr_pool_t *p,
                                              acme_order_t *order, const acme_key_t *cert_key,
                                              apr_time_t answered, acme_result_t *res);
apr_status_t acme_client_order_finalize_early_csr(acme_client_t *c, apr_pool_t *p,
                                                  acme_order_t *order, const unsigned char *der,
                                                  apr_size_t der_len, apr_time_t answered,
                                                  acme_result_t *res);

/* ------------------------------------------------------------------ certificates */

typedef struct {
    const char *pem;                /* as the CA sent it: only CERTIFICATE blocks */
    apr_size_t pem_len;
    apr_array_header_t *certs;      /* of acme_cert_t *, leaf first */
    const char *url;                /* the chain's URL (default or alternate) */
    const char *top_issuer_cn;      /* issuer CN of the last certificate, or NULL */
    int n_alternates;               /* alternates the CA offered */
    int is_alternate;
    int preferred_found;            /* a preferred issuer was asked for and this chain has it */
} acme_client_chain_t;

/*
 * Downloads the certificate of a valid order and checks it: only
 * CERTIFICATE blocks, leaf key = cert_key (if given), leaf covers the
 * order's identifiers, chain in order. With preferred_issuer, chains whose
 * top issuer CN contains it (case-insensitively) win: the alternates
 * (Link rel="alternate") are fetched one by one until one matches; without
 * a match the default chain is kept.
 */
apr_status_t acme_client_cert_download(acme_client_t *c, apr_pool_t *p, const acme_order_t *order,
                                       const acme_key_t *cert_key, const char *preferred_issuer,
                                       acme_client_chain_t **chain, acme_result_t *res);

/*
 * revokeCert for the first certificate of cert_pem with an RFC 5280 reason
 * (< 0: omitted). Signed by the account, or with cert_key's jwk when given.
 * alreadyRevoked counts as success.
 */
apr_status_t acme_client_cert_revoke(acme_client_t *c, apr_pool_t *p, const char *cert_pem,
                                     apr_size_t len, int reason, const acme_key_t *cert_key,
                                     acme_result_t *res);

/* ------------------------------------------------------------------ ARI (RFC 9773) */

typedef struct {
    apr_time_t start;               /* suggestedWindow */
    apr_time_t end;
    const char *explanation_url;    /* or NULL */
    apr_time_t retry_after;         /* when to ask again (absolute), 0 if not said */
} acme_client_renewal_info_t;

/*
 * Unauthenticated GET renewalInfo/<cert_id> (acme_crypto_ari_cert_id).
 * APR_ENOTIMPL when the directory has no renewalInfo.
 */
apr_status_t acme_client_renewal_info(acme_client_t *c, apr_pool_t *p, const char *cert_id,
                                      acme_client_renewal_info_t *info, acme_result_t *res);

/* ---- pure parsing and policy, public for the unit tests ---- */

/*
 * Whether a signed request refused with a transient protocol error (badNonce)
 * is sent again: `retries` re-sends so far, first sent at `started`. 1 with
 * *pause (0 for the first few, then growing to 1 s, never past the budget)
 * while the budget (opts->retry_budget, 0: the default) and the optional
 * count cap allow; 0 once either is spent.
 */
int acme_client_retry_plan(const acme_client_options_t *opts, int retries, apr_time_t started,
                           apr_time_t now, apr_interval_time_t *pause);

apr_status_t acme_client_renewal_info_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                            apr_time_t retry_after,
                                            acme_client_renewal_info_t *info,
                                            acme_result_t *res);

apr_status_t acme_client_authz_parse(apr_pool_t *p, const char *url, const char *json,
                                     apr_size_t len, acme_client_authz_t **authz,
                                     acme_result_t *res);

apr_status_t acme_client_meta_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                    acme_client_meta_t *meta, acme_result_t *res);

/* RFC 3339 date-time (with fraction and offset) → apr_time_t; APR_EINVAL otherwise. */
apr_status_t acme_client_parse_time(const char *text, apr_time_t *t);

#endif
