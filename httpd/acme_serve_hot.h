#ifndef ACME_SERVE_HOT_H
#define ACME_SERVE_HOT_H

/*
 * Hot activation in the children (issue 19): mod_ssl's optional hook ssl_init_server gives the
 * module each SSL virtual host's SSL_CTX before the children exist; for the virtual hosts that
 * serve managed domains (or ACMEOnDemand) a certificate callback is installed there. In a
 * handshake it serves the domain's set from the shared segment (acme_hot.h) when the parent
 * published one since this generation started, and does nothing otherwise.
 */
#include <httpd.h>
#include <http_config.h>

#include <openssl/ssl.h>

#include "acme_activate.h"
#include "acme_domain.h"
#include "acme_hot.h"

#include <apr_shm.h>

/* The segment, kept across generations in the process pool (the parent makes it). */
typedef struct {
    apr_shm_t *shm;                     /* NULL until made */
    acme_hot_t hot;
} acme_serve_hot_shm_t;

acme_serve_hot_shm_t *acme_serve_hot_shm(process_rec *process);

/* The segment this process sees, or NULL (none, or hot activation is off). */
acme_hot_t *acme_serve_hot_segment(process_rec *process);

/* This generation's slots: domain name -> int * (the parent fills it at post_config). */
apr_hash_t *acme_serve_hot_slots(apr_pool_t *pconf);

/* Whether virtual host s needs the certificate callback for hot activation or on-demand. */
int acme_serve_hot_wanted(server_rec *s);

/* From the certificate callback (after challenge answers): serves a published set when there
 * is a newer one than mod_ssl's, or waits for an on-demand name's; always 1. */
int acme_serve_hot_cert(SSL *ssl, server_rec *s);

/* The segment becomes read-only in this process (the renewal worker: it runs as the User). */
void acme_serve_hot_readonly(server_rec *s);

/* child_init: the segment becomes read-only here; the per-process cache is made. */
void acme_serve_hot_child_init(apr_pool_t *pchild, server_rec *s);

/*
 * For the status and the metrics in a child: what it serves of dom now, `loaded` (this
 * generation's set) or the set the parent published since, leaf information only.
 */
const acme_active_t *acme_serve_hot_active(apr_pool_t *p, process_rec *process,
                                           const acme_domain_t *dom, const acme_active_t *loaded);

/*
 * In a child: the names approved on demand since this generation started (published in a slot
 * the configuration does not list), as domains with their site's policy, for the status, the
 * summary and the metrics. Each is served already; the next generation lists it as configured.
 */
apr_array_header_t *acme_serve_hot_ondemand_domains(apr_pool_t *p, process_rec *process);

#endif
