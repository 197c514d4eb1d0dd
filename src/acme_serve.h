#ifndef ACME_SERVE_H
#define ACME_SERVE_H

/*
 * What the running server does with the store (httpd glue): prepare it at
 * post_config (activate staged certificates, load what is served), hand
 * certificates to mod_ssl, answer http-01 challenges and show the status.
 */
#include <httpd.h>

#include "acme_config.h"

/* post_config (both passes): store, seal key, activation, the active sets. */
int acme_serve_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf);

int acme_serve_add_cert_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                              apr_array_header_t *key_files);
int acme_serve_add_fallback_cert_files(server_rec *s, apr_pool_t *p,
                                       apr_array_header_t *cert_files,
                                       apr_array_header_t *key_files);

/* post_read_request: GET /.well-known/acme-challenge/<token> for managed hosts. */
int acme_serve_http01(request_rec *r);

/* handler "acme-status": JSON of every domain, or of one at .../<name>. */
int acme_serve_status(request_rec *r);

#endif
