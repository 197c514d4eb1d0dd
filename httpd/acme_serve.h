#ifndef ACME_SERVE_H
#define ACME_SERVE_H

/*
 * What the running server does with the store (httpd glue): prepare it at
 * post_config (activate staged certificates, load what is served), hand
 * certificates to mod_ssl, answer http-01 challenges and show the status.
 */
#include <httpd.h>
#include <apr_optional_hooks.h>
#include <mod_ssl.h>            /* SSL_DECLARE, for mod_ssl's optional hooks */
#include <openssl/ssl.h>

#include "acme_config.h"
#include "acme_status.h"
#include "acme_job.h"

/* post_config (both passes): store, seal key, activation, the active sets. */
int acme_serve_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf);

/*
 * Lists the domains (name -> acme_domain_t *) whose new certificates this
 * generation serves, for the worker's post-restart self-check.
 */
void acme_serve_selfcheck_list(apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf,
                               apr_hash_t *activated);

int acme_serve_add_cert_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                              apr_array_header_t *key_files);
int acme_serve_add_fallback_cert_files(server_rec *s, apr_pool_t *p,
                                       apr_array_header_t *cert_files,
                                       apr_array_header_t *key_files);

/* post_read_request: GET /.well-known/acme-challenge/<token> for managed hosts. */
int acme_serve_http01(request_rec *r);

/* handler "acme-status": JSON of every domain, or of one at .../<name>. */
int acme_serve_status(request_rec *r);

/* One domain's entry of the status JSON (the certificate API's GET <base>/domains). */
json_t *acme_serve_status_domain(apr_pool_t *p, acme_conf_t *conf, const acme_domain_t *dom);

/*
 * The counts mod_status shows (server-status): from the same reads as the status handler, one job
 * file per domain and jobs/worker.json, nothing read twice.
 */
void acme_serve_summary(apr_pool_t *p, acme_conf_t *conf, acme_status_summary_t *sum);

/*
 * jobs/<name>.json as the status handlers show it (one read; a missing file is a fresh idle
 * job), NULL when it cannot be read. Shared by acme-status and acme-metrics.
 */
acme_job_t *acme_serve_job(apr_pool_t *p, const acme_conf_t *conf, const acme_domain_t *dom);

/*
 * TLS challenges. tls-alpn-01 (RFC 8737): the CA's handshake offers only ALPN "acme-tls/1";
 * mod_acme proposes and switches to it (mod_ssl selects it only where Protocols allows it),
 * then mod_ssl asks ssl_answer_challenge for the certificate of the SNI name. tls-sni-01 (legacy,
 * opt-in): the SNI is a Z[0:32].Z[32:64].acme.invalid name. mod_ssl 2.4 asks the hook only after
 * an ALPN switch, so these names are also answered from an OpenSSL certificate callback that
 * mod_acme installs on mod_ssl's server contexts (mod_ssl's init_server hook) when a domain may
 * use a TLS challenge; it makes the challenge certificate the only one of the handshake.
 * Other handshakes pay a string check there and nothing else. A connection that negotiated
 * acme-tls/1 or got a challenge certificate serves no request.
 */
int acme_serve_protocol_propose(conn_rec *c, request_rec *r, server_rec *s,
                                const apr_array_header_t *offers,
                                apr_array_header_t *proposals);
int acme_serve_protocol_switch(conn_rec *c, request_rec *r, server_rec *s,
                               const char *protocol);
const char *acme_serve_protocol_get(const conn_rec *c);
int acme_serve_answer_challenge(conn_rec *c, const char *server_name, const char **pcert_pem,
                                const char **pkey_pem);
/* post_read_request, first: requests on challenge connections get no response. */
int acme_serve_challenge_request(request_rec *r);

/* mod_ssl's optional init_server hook (mod_ssl_openssl.h, which Debian does not install). */
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, init_server,
                          (server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx))
int acme_serve_ssl_init_server(server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx);

#endif
