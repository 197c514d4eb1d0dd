#ifndef ACME_SEAL_H
#define ACME_SEAL_H

#include <apr_pools.h>

#include "acme_crypto.h"
#include "acme_result.h"

/*
 * Sealing hands private keys from the unprivileged renewal worker to the root
 * parent: the worker encrypts (CMS enveloped data) to the store's seal
 * certificate, whose private key only root can read; the parent opens them at
 * activation. A sealed key on disk is useless to the httpd User.
 *
 * <store>/seal/seal.key  0600 root   the seal private key
 * <store>/seal/seal.pem  0644 root   its self-signed certificate (public)
 */
#define ACME_SEAL_DIR "seal"

/* Creates the seal key pair when missing (as root, at start-up); returns the certificate PEM. */
apr_status_t acme_seal_keypair_ensure(apr_pool_t *p, const char *store_dir,
                                      const char **cert_pem, acme_result_t *res);

/* Loads the seal private key (parent, at activation only). */
apr_status_t acme_seal_key_load(apr_pool_t *p, const char *store_dir, acme_key_t **key,
                                acme_cert_t **cert, acme_result_t *res);

/* Encrypts data to the seal certificate; PEM "CMS" text. */
apr_status_t acme_seal_encrypt(apr_pool_t *p, const char *seal_cert_pem, const void *data,
                               apr_size_t len, const char **sealed, acme_result_t *res);

/* Decrypts; the plaintext is wiped when p is cleared. */
apr_status_t acme_seal_decrypt(apr_pool_t *p, const acme_key_t *key, const acme_cert_t *cert,
                               const char *sealed, apr_size_t len, char **data,
                               apr_size_t *data_len, acme_result_t *res);

/* The public half of a key as PEM ("PUBLIC KEY"), and back (public-only key). */
apr_status_t acme_seal_public_pem(apr_pool_t *p, const acme_key_t *key, const char **pem,
                                  acme_result_t *res);
apr_status_t acme_seal_public_from_pem(apr_pool_t *p, const char *pem, apr_size_t len,
                                       acme_key_t **key, acme_result_t *res);

#endif
