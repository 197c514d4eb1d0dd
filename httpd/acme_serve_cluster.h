#ifndef ACME_SERVE_CLUSTER_H
#define ACME_SERVE_CLUSTER_H

#include <httpd.h>

#include "acme_ident.h"

/*
 * A child's side of a cluster (issue 16): the http-01 answer for a token this node has no local
 * answer for, from etcd, where the node that orders put it. APR_SUCCESS with *key_authz, or
 * APR_ENOENT (not clustered, not there, etcd unreachable).
 * Every miss asks etcd (2 s at most): only for well-formed tokens of managed names.
 */
apr_status_t acme_serve_cluster_http01(request_rec *r, const char *token, const char **key_authz,
                                       apr_size_t *len);

/* The same for tls-alpn-01: the answer (certificate and key PEM) made here from the key
 * authorization in etcd. */
apr_status_t acme_serve_cluster_tlsalpn01(conn_rec *c, const acme_ident_t *id, const char **pem);

#endif
