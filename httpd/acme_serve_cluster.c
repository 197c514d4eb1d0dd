#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>

#include "acme_challenge.h"
#include "acme_config_cluster.h"
#include "acme_crypto.h"
#include "acme_etcd.h"
#include "acme_serve_cluster.h"

APLOG_USE_MODULE(acme);

#define ACME_SERVE_CLUSTER_TIMEOUT apr_time_from_sec(2)
#define ACME_SERVE_CLUSTER_AUTHZ_MAX 512
/* After etcd failed to answer, this child does not ask again for a while: requests for unknown
 * tokens (scanners) must not each wait for an unreachable etcd. */
#define ACME_SERVE_CLUSTER_QUIET apr_time_from_sec(10)

static volatile apr_time_t acme_serve_cluster_quiet_until;     /* per child; races are benign */

/*
 * The key authorization another node put for type/what, or NULL (not clustered, none, etcd
 * unreachable: *err says so, and the child does not ask again for ACME_SERVE_CLUSTER_QUIET).
 * One short-lived client per look: children are many, looks rare.
 */
static const char *acme_serve_cluster_get(apr_pool_t *pconf, apr_pool_t *p, const char *type,
                                          const char *what, const char **err)
{
    const acme_cluster_config_t *cfg = acme_config_cluster_worker(pconf);
    acme_etcd_options_t opts;
    acme_etcd_t *etcd = NULL;
    acme_etcd_kv_t *kv = NULL;
    acme_result_t res;

    *err = NULL;
    if (!cfg || apr_time_now() < acme_serve_cluster_quiet_until) {
        return NULL;
    }
    opts = (acme_etcd_options_t){
        .endpoints = cfg->endpoints, .prefix = apr_pstrcat(p, cfg->prefix, "/", NULL),
        .client_cert = cfg->client_cert, .client_key = cfg->client_key,
        .client_key_pem = cfg->client_key_pem, .client_key_pem_len = cfg->client_key_pem_len,
        .ca_file = cfg->ca_file, .timeout = ACME_SERVE_CLUSTER_TIMEOUT,
    };
    acme_result_reset(&res);
    if (acme_etcd_create(&etcd, p, &opts, &res) != APR_SUCCESS
        || acme_etcd_get(etcd, p, acme_cluster_key_answer(p, type, what), &kv, NULL, &res)
           != APR_SUCCESS) {
        *err = acme_result_describe(&res, p);
        acme_serve_cluster_quiet_until = apr_time_now() + ACME_SERVE_CLUSTER_QUIET;
        return NULL;
    }
    /* A key authorization is "<token>.<thumbprint>", nothing else. */
    if (!kv || kv->value_len > ACME_SERVE_CLUSTER_AUTHZ_MAX || !strchr(kv->value, '.')
        || strlen(kv->value) != kv->value_len) {
        return NULL;
    }
    return kv->value;
}

apr_status_t acme_serve_cluster_http01(request_rec *r, const char *token, const char **key_authz,
                                       apr_size_t *len)
{
    const char *err = NULL, *value = NULL;
    apr_size_t tlen = strlen(token);

    /* Asked under the name the request came for: another name's answer is not this one's. */
    if (r->hostname && *r->hostname && !strchr(r->hostname, '/')) {
        value = acme_serve_cluster_get(r->server->process->pconf, r->pool, "http-01",
                                       apr_pstrcat(r->pool, r->hostname, "/", token, NULL), &err);
    }
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "ACME12021: %s: http-01 token not known "
                      "here and etcd cannot be asked (%s); answered 404", r->hostname, err);
    }
    if (!value || strncmp(value, token, tlen) != 0 || value[tlen] != '.') {
        return APR_ENOENT;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "ACME12022: %s: http-01 answered from etcd "
                  "(another node orders the certificate)", r->hostname);
    *key_authz = value;
    *len = strlen(value);
    return APR_SUCCESS;
}

apr_status_t acme_serve_cluster_tlsalpn01(conn_rec *c, const acme_ident_t *id, const char **pem)
{
    const char *err = NULL;
    const char *value = acme_serve_cluster_get(c->base_server->process->pconf, c->pool,
                                               "tls-alpn-01", id->value, &err);
    unsigned char digest[32];
    acme_result_t res;

    if (err) {
        ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, "ACME12023: %s: no local tls-alpn-01 "
                      "answer and etcd cannot be asked (%s); the handshake goes on without it",
                      id->value, err);
    }
    if (!value) {
        return APR_ENOENT;
    }
    /* Made here from the key authorization: no challenge key ever travels through etcd. */
    acme_crypto_sha256(value, strlen(value), digest);
    acme_result_reset(&res);
    if (acme_challenge_tls_answer_pem(c->pool, id, digest, pem, &res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, "ACME12024: %s: tls-alpn-01 answered from etcd "
                  "(another node orders the certificate)", id->value);
    return APR_SUCCESS;
}
