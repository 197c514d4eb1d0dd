#ifndef ACME_SERVE_CLUSTER_H
#define ACME_SERVE_CLUSTER_H

#include <httpd.h>

/*
 * A child's side of a cluster (issue 16): the http-01 answer for a token this node has no local
 * answer for, from etcd, where the node that orders put it. APR_SUCCESS with *key_authz, or
 * APR_ENOENT (not clustered, not there, etcd unreachable).
 */
apr_status_t acme_serve_cluster_http01(request_rec *r, const char *token, const char **key_authz,
                                       apr_size_t *len);

#endif
