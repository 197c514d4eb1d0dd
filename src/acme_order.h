#ifndef ACME_ORDER_H
#define ACME_ORDER_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "acme_ident.h"
#include "acme_result.h"

/*
 * One certificate order as far as we know it: what we asked for, where it
 * lives at the CA and how far it got. It serializes to JSON so that a run
 * that died between two steps resumes the same order (POST-as-GET of `url`)
 * instead of creating a second one. It holds no secret: the certificate
 * key is stored by the caller next to it.
 */
typedef enum {
    ACME_ORDER_NEW = 0,         /* not sent to the CA yet */
    ACME_ORDER_PENDING,
    ACME_ORDER_READY,
    ACME_ORDER_PROCESSING,
    ACME_ORDER_VALID,
    ACME_ORDER_INVALID
} acme_order_status_t;

typedef struct {
    const char *account_url;        /* the account (kid) that owns the order */
    const char *url;                /* from newOrder's Location; NULL while NEW */
    acme_order_status_t status;
    apr_array_header_t *identifiers;/* of acme_ident_t, as requested */
    apr_array_header_t *authz_urls; /* of const char * */
    const char *finalize_url;
    const char *certificate_url;    /* once valid */
    const char *expires;            /* RFC 3339 text from the CA, or NULL */
    const char *key_spec;           /* certificate key type name, e.g. "secp256r1" */
    const char *profile;            /* requested profile, or NULL */
    const char *replaces;           /* ARI CertID of the predecessor, or NULL */
    const char *error;              /* the CA's order "error" as compact JSON, or NULL */
    apr_time_t retry_after;         /* from the last response about it; not serialized */
} acme_order_t;

/* A NEW order for the identifiers (copied into p). */
acme_order_t *acme_order_make(apr_pool_t *p, const acme_ident_t *idents, int n_idents,
                              const char *key_spec);

/* "pending", "ready", ... ("new" for ACME_ORDER_NEW). */
const char *acme_order_status_name(acme_order_status_t status);
/* APR_EINVAL for an unknown status text. */
apr_status_t acme_order_status_parse(const char *text, acme_order_status_t *status);

/* "dns" / "ip". */
const char *acme_order_ident_type_name(acme_ident_type_t type);

/*
 * Takes the CA's order object (RFC 8555 §7.1.3) into `order`: status,
 * authorizations, finalize, certificate, expires, error. Fails (PERMANENT)
 * for an object without a known status, with a field of the wrong JSON type
 * (authorizations not an array of strings, finalize, certificate or expires
 * not a string), and when the CA's identifier set is not the one requested
 * (a CA must not change what it issues for). The message does not name the
 * order: the caller knows which request it was.
 */
apr_status_t acme_order_update(acme_order_t *order, apr_pool_t *p, const char *json,
                               apr_size_t len, acme_result_t *res);

/* Whether the same identifiers (as sets, type and value) as idents. */
int acme_order_same_identifiers(const acme_order_t *order, const acme_ident_t *idents,
                                int n_idents);

/* Our own JSON for the store (a versioned object), and back. */
apr_status_t acme_order_to_json(const acme_order_t *order, apr_pool_t *p, const char **json,
                                acme_result_t *res);
apr_status_t acme_order_from_json(apr_pool_t *p, const char *json, apr_size_t len,
                                  acme_order_t **order, acme_result_t *res);

#endif
