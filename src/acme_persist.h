#ifndef ACME_PERSIST_H
#define ACME_PERSIST_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

/*
 * dns-persist-01 (draft-ietf-acme-dns-persist-02, September 2026): a standing TXT record at
 * _validation-persist.<name> whose value is an RFC 8659 issue-value
 *
 *   <issuer-domain-name>; accounturi=<hashed URI>[; policy=wildcard][; persistUntil=<unix time>]
 *
 * The hashed URI is <accountHashPrefix>sha-256/<base64url(SHA-256(len(d) || d || thumbprint ||
 * account URL))>, d the name without "*." (or "*" for the form that fits every name). The CA
 * names its issuer domain names and accountHashPrefix in its directory's meta object and the
 * challenge object. Nothing here touches the network: the record texts come from
 * acme_persist_txt_answer over a DNS answer (acme_dns01_txt_exchange asks the resolver).
 */

#define ACME_PERSIST_PREFIX "_validation-persist."
#define ACME_PERSIST_MAX_ISSUERS 10
/* Message IDs of the worker's log lines (docs/admin-guide.md "dns-persist-01"). */
#define ACME_PERSIST_MSG_CHECK "ACME01601"       /* the record is missing or wrong: no order */
#define ACME_PERSIST_MSG_EXPIRING "ACME01602"    /* persistUntil is near */
#define ACME_PERSIST_MSG_CA "ACME01603"          /* the CA does not do dns-persist-01 */
#define ACME_PERSIST_MSG_WATCH "ACME01604"       /* a valid domain's record went missing or wrong */
#define ACME_PERSIST_EVENT_EXPIRING "dns-persist-expiring"

typedef struct {
    const char *issuer;             /* lowercase, no trailing dot; NULL when unparsable */
    const char *accounturi;         /* NULL when absent */
    int wildcard;                   /* policy=wildcard (value case-insensitive) */
    int has_until;
    apr_int64_t persist_until;      /* seconds since the epoch */
} acme_persist_record_t;

/* Verdicts, ordered: a later one is closer to a usable record. */
typedef enum {
    ACME_PERSIST_NONE = 0,          /* no TXT record at all */
    ACME_PERSIST_OTHER_CA,          /* records, but none names this CA */
    ACME_PERSIST_MALFORMED,         /* this CA's record does not parse */
    ACME_PERSIST_WRONG_ACCOUNT,     /* this CA's record names another account */
    ACME_PERSIST_EXPIRED,           /* persistUntil has passed */
    ACME_PERSIST_NO_WILDCARD,       /* a wildcard is wanted but policy=wildcard is missing */
    ACME_PERSIST_OK
} acme_persist_verdict_t;

typedef struct {
    const char *fqdn;                       /* _validation-persist.<name>, for messages */
    const apr_array_header_t *issuers;      /* const char *: names the CA accepts */
    const apr_array_header_t *accounturis;  /* const char *: hashed URIs of this account */
    const char *expected;                   /* the value to create, for messages */
    int wildcard;                           /* a wildcard name is to be validated */
    apr_int64_t now;                        /* seconds since the epoch */
} acme_persist_want_t;

/* _validation-persist.<name>, without the "*." of a wildcard. */
const char *acme_persist_fqdn(apr_pool_t *p, const char *name);

/*
 * Parses one TXT value. APR_EINVAL with *reason for a value the CA must reject as malformed;
 * rec->issuer is still set when the issuer part parsed. Unknown parameters are ignored.
 */
apr_status_t acme_persist_parse(apr_pool_t *p, const char *text, acme_persist_record_t *rec,
                                const char **reason);

/* The hashed account URI (sha-256). domain: the name without "*.", or "*". NULL if too long. */
const char *acme_persist_account_uri(apr_pool_t *p, const char *prefix, const char *domain,
                                     const char *thumbprint, const char *account_url);

/* The TXT value to create. until 0: no persistUntil. */
const char *acme_persist_value(apr_pool_t *p, const char *issuer, const char *accounturi,
                               int wildcard, apr_int64_t until);

/*
 * The best of the TXT values (const char *) for want; *match gets the record that gave the
 * verdict (OK, EXPIRED, NO_WILDCARD, WRONG_ACCOUNT), *why a sentence saying what is missing or
 * wrong (expected against found). Never fails.
 */
acme_persist_verdict_t acme_persist_check(apr_pool_t *p, const apr_array_header_t *txts,
                                          const acme_persist_want_t *want,
                                          acme_persist_record_t *match, const char **why);

/* Lowercase, no trailing dot, A-label characters only, at most 253 octets; NULL otherwise. */
const char *acme_persist_issuer_norm(apr_pool_t *p, const char *name);

/*
 * The TXT values (const char *, each record's strings joined) of a DNS answer with the given id;
 * APR_EINVAL for a message that is not that answer.
 */
apr_status_t acme_persist_txt_answer(apr_pool_t *p, const unsigned char *m, apr_size_t len,
                                     unsigned int id, apr_array_header_t **txts);

/*
 * jobs/<domain>.persist.json: what the domain's records were last found valid against, so that
 * the worker's pass after each check can look them up again between renewals (persistUntil
 * approaching, a record gone) without asking the CA. notified_at: the last dns-persist-expiring
 * notification, for its hourly limit.
 */
typedef struct {
    const char *name;                   /* as configured, "*.x" for a wildcard */
    acme_persist_want_t want;           /* .now is set when checking */
} acme_persist_watch_t;

json_t *acme_persist_watch_json(const apr_array_header_t *watches, apr_time_t notified_at);

/* Entries that do not have the expected shape are skipped. */
void acme_persist_watch_parse(apr_pool_t *p, json_t *doc, apr_array_header_t **watches,
                              apr_time_t *notified_at);

/* The first IPv4 nameserver of /etc/resolv.conf (or path), "127.0.0.1" when none. */
const char *acme_persist_system_resolver(apr_pool_t *p, const char *path);

#endif
