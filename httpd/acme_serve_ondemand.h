#ifndef ACME_SERVE_ONDEMAND_H
#define ACME_SERVE_ONDEMAND_H

/*
 * On-demand certificates in the children (issue 19): what the handshake of a name that has no
 * certificate does on a virtual host with ACMEOnDemand on. It leaves a request for the worker
 * (at most once a minute per name and process) and waits, up to ACMEOnDemandWait and with a
 * bound on the handshakes waiting at once, for the parent to publish the name's certificate;
 * `published` says whether it has. Called from the certificate callback only for names no
 * certificate exists for: the common handshake never comes here.
 */
#include <httpd.h>

/* 1 when a certificate for name is ready to be served. */
typedef int acme_serve_ondemand_ready_fn(void *baton, const char *name);

/* At child_init: the per-process state (requests made, handshakes waiting). */
void acme_serve_ondemand_child_init(apr_pool_t *pchild, server_rec *s);

/*
 * For a handshake on virtual host s with SNI name sni: 1 when the name's certificate became
 * ready while waiting (the caller serves it), 0 when the handshake goes on with the virtual
 * host's own certificate (not an on-demand vhost, not a name for on-demand, no wait, timeout).
 */
int acme_serve_ondemand_handshake(conn_rec *c, server_rec *s, const char *sni,
                                  acme_serve_ondemand_ready_fn *ready, void *baton);

#endif
