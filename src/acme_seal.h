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

/*
 * Before acme_seal_keypair_ensure (as root, at start-up): a seal key pair or proof key that is
 * there but cannot be used (truncated, garbage, not a file, key and certificate apart) would
 * keep every staged set out for good. It is set aside (acme_store_set_aside) so that
 * acme_seal_keypair_ensure makes a new one; sets staged under the old one are then refused or
 * left to the worker, which orders them again. *note says what was set aside, NULL when nothing.
 */
apr_status_t acme_seal_repair(apr_pool_t *p, const char *store_dir, const char **note,
                              acme_result_t *res);

/* Loads the seal private key (parent, at activation only). */
apr_status_t acme_seal_key_load(apr_pool_t *p, const char *store_dir, acme_key_t **key,
                                acme_cert_t **cert, acme_result_t *res);

/* Encrypts data to the seal certificate; PEM "CMS" text. */
apr_status_t acme_seal_encrypt(apr_pool_t *p, const char *seal_cert_pem, const void *data,
                               apr_size_t len, const char **sealed, acme_result_t *res);
/* As acme_seal_encrypt, to a seal certificate parsed already (once per worker, not per key). */
apr_status_t acme_seal_encrypt_to(apr_pool_t *p, const acme_cert_t *seal_cert, const void *data,
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

/*
 * Proof of origin for staged sets. The httpd User can write staging/ and every child holds the
 * public seal certificate, so a sealed key proves nothing about who staged it. The worker reads
 * seal/proof.key (0600 root, in the 0700 root seal/) while it is still root, is non-dumpable as
 * the User (no ptrace, no /proc/PID/mem), and MACs each set it stages; the parent checks the MAC
 * before it looks at anything else in the set. Another process of the User cannot make one.
 */
#define ACME_SEAL_PROOF_KEY_LEN 32

typedef struct {
    const char *data;
    apr_size_t len;
} acme_seal_part_t;

/* Creates seal/proof.key when missing (parent, at start-up, as root). */
apr_status_t acme_seal_proof_key_ensure(apr_pool_t *p, const char *store_dir,
                                        acme_result_t *res);

/* Loads the proof key (ACME_SEAL_PROOF_KEY_LEN bytes); wiped when p is cleared. */
apr_status_t acme_seal_proof_key_load(apr_pool_t *p, const char *store_dir,
                                      const unsigned char **key, acme_result_t *res);

/* Hex HMAC-SHA256 over context and every part, each length-prefixed; NULL on failure. */
const char *acme_seal_proof(apr_pool_t *p, const unsigned char *key, const char *context,
                            const acme_seal_part_t *parts, int n_parts);

/* 1 when both proofs are present and equal (compared in constant time). */
int acme_seal_proof_equal(const char *a, const char *b);

#endif
