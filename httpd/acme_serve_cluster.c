#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>

#include "acme_config_cluster.h"
#include "acme_etcd.h"
#include "acme_serve_cluster.h"

APLOG_USE_MODULE(acme);

#define ACME_SERVE_CLUSTER_TIMEOUT apr_time_from_sec(2)

apr_status_t acme_serve_cluster_http01(request_rec *r, const char *token, const char **key_authz,
                                       apr_size_t *len)
{
    const acme_cluster_config_t *cfg = acme_config_cluster_worker(r->server->process->pconf);
    acme_etcd_options_t opts;
    acme_etcd_t *etcd = NULL;
    acme_etcd_kv_t *kv = NULL;
    acme_result_t res;
    apr_size_t tlen = strlen(token);

    if (!cfg) {
        return APR_ENOENT;
    }
    opts = (acme_etcd_options_t){
        .endpoints = cfg->endpoints, .prefix = apr_pstrcat(r->pool, cfg->prefix, "/", NULL),
        .client_cert = cfg->client_cert, .client_key = cfg->client_key,
        .client_key_pem = cfg->client_key_pem, .client_key_pem_len = cfg->client_key_pem_len,
        .ca_file = cfg->ca_file, .timeout = ACME_SERVE_CLUSTER_TIMEOUT,
    };
    acme_result_reset(&res);
    if (acme_etcd_create(&etcd, r->pool, &opts, &res) != APR_SUCCESS
        || acme_etcd_get(etcd, r->pool, apr_pstrcat(r->pool, "challenges/http-01/", token, NULL),
                         &kv, NULL, &res) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "ACME12021: %s: http-01 token not known "
                      "here and etcd cannot be asked (%s); answered 404", r->hostname,
                      acme_result_describe(&res, r->pool));
        return APR_ENOENT;
    }
    /* A key authorization is "<token>.<thumbprint>": anything else is not one of ours. */
    if (!kv || kv->value_len <= tlen + 1 || strncmp(kv->value, token, tlen) != 0
        || kv->value[tlen] != '.' || kv->value_len > 512) {
        return APR_ENOENT;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "ACME12022: %s: http-01 answered from etcd "
                  "(another node orders the certificate)", r->hostname);
    *key_authz = kv->value;
    *len = kv->value_len;
    return APR_SUCCESS;
}
