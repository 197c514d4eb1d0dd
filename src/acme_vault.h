#ifndef ACME_VAULT_H
#define ACME_VAULT_H

#include <apr_pools.h>

#include "acme_result.h"

/*
 * Private keys (account and certificate keys) enter the cluster's etcd only sealed with the
 * cluster secret (ACMEClusterKey, issue 16): AES-256-GCM under a key derived from the secret
 * with HKDF-SHA-256, a fresh 96-bit nonce per seal, and the etcd key the value is stored under
 * as additional authenticated data, so a sealed value copied to another domain's key does not
 * open. etcd, its backups and anyone reading them see only:
 *
 *   "acme-vault-v1:" base64(nonce[12] || ciphertext || tag[16])
 *
 * The derived key lives in the pool given to acme_vault_create and is wiped when it goes.
 */

#define ACME_VAULT_MIN_SECRET 32        /* bytes of the secret file, whatever they are */
#define ACME_VAULT_MAX_SECRET 4096

typedef struct acme_vault_t acme_vault_t;

/* From the secret's bytes (the file's content; trailing newlines are not part of it). */
apr_status_t acme_vault_create(acme_vault_t **vault, apr_pool_t *p, const void *secret,
                               apr_size_t len, acme_result_t *res);

/* A short public fingerprint of the derived key, to tell nodes with different secrets apart
 * in logs and the status without revealing anything of it. */
const char *acme_vault_id(const acme_vault_t *vault);

apr_status_t acme_vault_seal(const acme_vault_t *vault, apr_pool_t *p, const char *where,
                             const void *data, apr_size_t len, const char **sealed,
                             acme_result_t *res);

/* APR_EINVAL (class ADMIN) for anything that is not a value sealed with this secret for where:
 * another cluster's secret, another key's value, a changed byte. */
apr_status_t acme_vault_open(const acme_vault_t *vault, apr_pool_t *p, const char *where,
                             const char *sealed, char **data, apr_size_t *len,
                             acme_result_t *res);

#endif
