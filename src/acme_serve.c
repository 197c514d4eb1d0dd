#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <unixd.h>
#include <apr_strings.h>

#include "acme_activate.h"
#include "acme_challenge.h"
#include "acme_job.h"
#include "acme_seal.h"
#include "acme_serve.h"
#include "acme_status.h"
#include "acme_version.h"

APLOG_USE_MODULE(acme);

#define ACME_HTTP01_PREFIX "/.well-known/acme-challenge/"

/* ------------------------------------------------------------------ post_config */

/* The worker runs as the User: it owns what it writes, and nothing else. */
static void acme_serve_grant_worker(apr_pool_t *p, server_rec *s, const acme_store_t *st)
{
    static const char *const groups[] = { ACME_STORE_JOBS, ACME_STORE_STAGING,
                                          ACME_STORE_CHALLENGES };
    apr_size_t i;

    if (geteuid() != 0) {
        return;
    }
    for (i = 0; i < sizeof(groups) / sizeof(groups[0]); ++i) {
        const char *dir = acme_store_path(p, st, groups[i], NULL, NULL);
        if (chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), s,
                         "mod_acme: cannot hand %s to the httpd User; renewals will fail", dir);
        }
    }
}

static void acme_serve_activate(apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf,
                                apr_hash_t *errors)
{
    acme_activate_seal_t seal = { .key = NULL, .cert = NULL };
    acme_result_t res;
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        if (!acme_activate_staged(ptemp, conf->store, dom)) {
            continue;
        }
        acme_result_reset(&res);
        if (!seal.key && acme_seal_key_load(ptemp, conf->store_dir, &seal.key, &seal.cert, &res)
                         != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_acme: staged certificates cannot be "
                         "activated: %s", acme_result_describe(&res, ptemp));
            return;
        }
        if (acme_activate_install(ptemp, conf->store, &seal, dom, &res) == APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "mod_acme: %s: new certificate "
                         "activated", dom->name);
            continue;
        }
        apr_hash_set(errors, dom->name, APR_HASH_KEY_STRING,
                     apr_pstrdup(conf->active ? apr_hash_pool_get(conf->active) : ptemp,
                                 acme_result_describe(&res, ptemp)));
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_acme: %s: %s; the previous certificate "
                     "stays in use", dom->name, acme_result_describe(&res, ptemp));
    }
}

static void acme_serve_load_active(apr_pool_t *pconf, server_rec *s, acme_conf_t *conf,
                                   apr_hash_t *errors)
{
    apr_time_t now = apr_time_now();
    acme_result_t res;
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        acme_active_t *active = NULL;
        acme_result_reset(&res);
        if (acme_activate_load(pconf, conf->store, dom, now, &active, &res) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_acme: %s: no certificate and no "
                         "fallback certificate could be prepared: %s", dom->name,
                         acme_result_describe(&res, pconf));
        }
        active->last_activation_error = apr_hash_get(errors, dom->name, APR_HASH_KEY_STRING);
        apr_hash_set(conf->active, dom->name, APR_HASH_KEY_STRING, active);
    }
}

int acme_serve_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf)
{
    apr_hash_t *errors = apr_hash_make(pconf);
    acme_store_t *st = NULL;
    acme_result_t res;

    if (conf->domains->nelts == 0) {
        return OK;
    }
    acme_result_reset(&res);
    if (acme_store_open(pconf, conf->store_dir, &st, &res) != APR_SUCCESS
        || acme_store_recover(ptemp, st, &res) != APR_SUCCESS
        || acme_seal_keypair_ensure(pconf, conf->store_dir, &conf->seal_cert_pem, &res)
           != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "mod_acme: the store %s is unusable: %s; "
                     "no certificate can be obtained until this is fixed", conf->store_dir,
                     acme_result_describe(&res, ptemp));
        return OK;
    }
    conf->store = st;
    acme_serve_grant_worker(ptemp, s, st);
    acme_serve_activate(ptemp, s, conf, errors);
    acme_serve_load_active(pconf, s, conf, errors);
    return OK;
}

/* ------------------------------------------------------------------ mod_ssl */

static const acme_active_t *acme_serve_active_of(server_rec *s)
{
    acme_conf_t *conf = acme_config_get(s->process->pconf);
    const acme_domain_t *dom = acme_config_domain_of_server(conf, s);

    return dom ? apr_hash_get(conf->active, dom->name, APR_HASH_KEY_STRING) : NULL;
}

int acme_serve_add_cert_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                              apr_array_header_t *key_files)
{
    const acme_active_t *active = acme_serve_active_of(s);
    int i;

    if (!active || active->certs->nelts == 0) {
        return DECLINED;
    }
    for (i = 0; i < active->certs->nelts; ++i) {
        const acme_active_cert_t *cert = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        APR_ARRAY_PUSH(cert_files, const char *) = cert->cert_file;
        APR_ARRAY_PUSH(key_files, const char *) = cert->key_file;
    }
    return OK;
}

int acme_serve_add_fallback_cert_files(server_rec *s, apr_pool_t *p,
                                       apr_array_header_t *cert_files,
                                       apr_array_header_t *key_files)
{
    const acme_active_t *active = acme_serve_active_of(s);

    if (!active || active->certs->nelts > 0 || !active->fallback_cert) {
        return DECLINED;
    }
    APR_ARRAY_PUSH(cert_files, const char *) = active->fallback_cert;
    APR_ARRAY_PUSH(key_files, const char *) = active->fallback_key;
    return OK;
}

/* ------------------------------------------------------------------ http-01 */

int acme_serve_http01(request_rec *r)
{
    const char *path = r->parsed_uri.path;
    acme_conf_t *conf;
    const char *token, *key_authz = NULL;
    apr_size_t len = 0;

    if (!path || strncmp(path, ACME_HTTP01_PREFIX, sizeof(ACME_HTTP01_PREFIX) - 1) != 0) {
        return DECLINED;
    }
    conf = acme_config_get(r->server->process->pconf);
    if (!conf->store || !r->hostname || !acme_config_domain_for(conf, r->hostname)) {
        return DECLINED;    /* not ours: another ACME client may answer */
    }
    token = path + sizeof(ACME_HTTP01_PREFIX) - 1;
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!acme_challenge_token_valid(token)
        || acme_challenge_http01_get(r->pool, conf->store_dir, r->hostname, token, &key_authz,
                                     &len) != APR_SUCCESS) {
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, (apr_off_t)len);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        ap_rwrite(key_authz, (int)len, r);
    }
    return DONE;
}

/* ------------------------------------------------------------------ status */

static json_t *acme_serve_status_of(request_rec *r, acme_conf_t *conf, const acme_domain_t *dom)
{
    const acme_active_t *active = apr_hash_get(conf->active, dom->name, APR_HASH_KEY_STRING);
    acme_job_t *job = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_job_load(r->pool, conf->store, dom->name, &job, &res) != APR_SUCCESS) {
        job = NULL;
    }
    return acme_status_domain(dom, active, job);
}

static json_t *acme_serve_status_all(request_rec *r, acme_conf_t *conf)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        json_array_append_new(list, acme_serve_status_of(r, conf,
                              APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *)));
    }
    return json_pack("{s:s, s:o}", "version", ACME_VERSION, "domains", list);
}

int acme_serve_status(request_rec *r)
{
    acme_conf_t *conf;
    const char *last;
    const acme_domain_t *one = NULL;
    json_t *json;
    char *text;

    if (!r->handler || strcmp(r->handler, "acme-status") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    conf = acme_config_get(r->server->process->pconf);
    last = strrchr(r->uri, '/');
    if (last && last[1]) {
        one = acme_config_domain_for(conf, last + 1);
        one = (one && !strcasecmp(one->name, last + 1)) ? one : NULL;
    }
    json = !conf->store ? json_pack("{s:s, s:[]}", "version", ACME_VERSION, "domains")
           : one ? acme_serve_status_of(r, conf, one) : acme_serve_status_all(r, conf);
    text = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(json);
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (text && !r->header_only) {
        ap_rputs(text, r);
        ap_rputs("\n", r);
    }
    free(text);
    return OK;
}
