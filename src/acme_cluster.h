#ifndef ACME_CLUSTER_H
#define ACME_CLUSTER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/*
 * Clustering through etcd (issue 16): the settings the parent reads (ACMECluster,
 * ACMEClusterTLS, ACMEClusterKey, ACMEClusterNode) and hands to its worker, their checks, the
 * layout of the keys under the cluster prefix and the JSON record of a published certificate.
 * Pure logic, no network: the etcd client is acme_etcd.c, the worker's side
 * acme_worker_cluster.c.
 *
 * Keys (the etcd client adds the prefix, /mod_acme by default):
 *   locks/<domain>                 the order lock, bound to the holder's lease
 *   orders/<domain>                the order in flight (URL), written fenced by the holder
 *   certs/<domain>/record          acme_cluster_record_t as JSON
 *   certs/<domain>/<spec>/chain    the issued chain, PEM
 *   certs/<domain>/<spec>/key      the private key, sealed with acme_vault (AAD: this key)
 *   nodes/<name>                   node presence, bound to the node's lease
 *   challenges/http-01/<token>     a key authorization being validated, bound to the run lease
 *   challenges/tls-alpn-01/<ident> the same for tls-alpn-01 (the node answering makes the cert)
 *   acks/<type>/<what>/<node>      a node saw that answer (bound to its run lease); the holder
 *                                  asks the CA to validate once every live node has
 */

#define ACME_CLUSTER_PREFIX_DEFAULT "/mod_acme"
#define ACME_CLUSTER_ENDPOINTS_MAX 16
#define ACME_CLUSTER_NODE_MAX 64

typedef struct {
    apr_array_header_t *endpoints;      /* const char *: "http(s)://host:port" */
    const char *prefix;                 /* "/mod_acme" */
    const char *client_cert;            /* ACMEClusterTLS; NULL: none */
    const char *client_key;
    const char *client_key_pem;         /* its content, read as root (the worker is the User) */
    apr_size_t client_key_pem_len;
    const char *ca_file;
    const unsigned char *secret;        /* ACMEClusterKey's bytes, read as root; never logged */
    apr_size_t secret_len;
    const char *node;                   /* ACMEClusterNode, default the host name */
} acme_cluster_config_t;

/* "http://127.0.0.1:2379,https://etcd-b:2379" -> *endpoints; NULL, or why not (for configtest). */
const char *acme_cluster_endpoints_parse(apr_pool_t *p, const char *list,
                                         apr_array_header_t **endpoints);

/* "/mod_acme": NULL, or why it is no usable prefix. */
const char *acme_cluster_prefix_check(apr_pool_t *p, const char *prefix);

/* A node name (letters, digits, '.', '-', '_', at most 64): NULL, or why not. */
const char *acme_cluster_node_check(apr_pool_t *p, const char *name);

/* The secret file's bytes without trailing newlines: their length, or 0 when shorter than
 * ACME_VAULT_MIN_SECRET (the caller says so). */
apr_size_t acme_cluster_secret_len(const char *buf, apr_size_t n);

const char *acme_cluster_key_lock(apr_pool_t *p, const char *domain);
const char *acme_cluster_key_order(apr_pool_t *p, const char *domain);
const char *acme_cluster_key_record(apr_pool_t *p, const char *domain);
/* The prefix of everything published for domain: its record, every spec's chain and key. */
const char *acme_cluster_key_certs(apr_pool_t *p, const char *domain);
/* what: "chain" or "key" */
const char *acme_cluster_key_cert(apr_pool_t *p, const char *domain, const char *spec,
                                  const char *what);
const char *acme_cluster_key_node(apr_pool_t *p, const char *name);
/* A key authorization any node answers with (public by design: the CA fetches it in clear);
 * what: the http-01 token or the tls-alpn-01 identifier. */
const char *acme_cluster_key_answer(apr_pool_t *p, const char *type, const char *what);
/* A node's acknowledgement of that answer; node "": the prefix of every node's. */
const char *acme_cluster_key_ack(apr_pool_t *p, const char *type, const char *what,
                                 const char *node);
/* The domain a "certs/<domain>/..." key belongs to, or NULL. */
const char *acme_cluster_key_domain(apr_pool_t *p, const char *key);

/* A published certificate: what a node compares with what it serves before it fetches. */
typedef struct {
    const char *domain;
    const char *node;                   /* who ordered it */
    const char *serial;                 /* of the first key spec's certificate, upper-case hex */
    apr_time_t not_before;
    apr_time_t not_after;
    apr_time_t published;
    apr_array_header_t *specs;          /* const char *: the key specs, each with chain and key */
    const char *config_digest;          /* acme_worker_config_digest of the orderer's config */
} acme_cluster_record_t;

/* JSON text, malloc'ed by jansson and copied into p. */
const char *acme_cluster_record_to_json(apr_pool_t *p, const acme_cluster_record_t *rec);
/* NULL, or why the text is no record (a node never trusts etcd's content blindly). */
const char *acme_cluster_record_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                      acme_cluster_record_t *rec);

/* rec is newer than a certificate served (or staged) from not_before with that serial. */
int acme_cluster_record_newer(const acme_cluster_record_t *rec, apr_time_t not_before,
                              const char *serial);

#endif
